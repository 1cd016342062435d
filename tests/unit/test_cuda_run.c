/*
 * test_cuda_run.c - the cuda backend on a real GPU agrees with the cpu
 * backend on the model tests (tests/models): same plan, same inputs, every
 * output within relative L2 error 1e-5 (the GPU's libm differs from
 * glibc's by an ulp here and there; the kernel IR's rounding points are
 * the same).
 *
 * Each plan is compiled with its default GPU binaries (section CUDA), so
 * the session must load one from the plan, and is run twice: the second
 * run replays the session's CUDA graph and must give the same bits. Then
 * the mlp plan without binaries runs through NVRTC and the binary cache
 * (in a private MPCC_CACHE_DIR): compiled and cached by the first session,
 * taken from the cache by the second, both agreeing with the cpu backend.
 *
 * Needs an NVIDIA GPU and driver. Where session creation on "cuda" fails
 * because there is no driver or no device, the test prints why and exits
 * with 77, which CMake maps to SKIP (SKIP_RETURN_CODE), so a machine
 * without a GPU never counts it as passed; it checks that first, before
 * spending NVRTC's seconds on binaries.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mpcc.h"
#include "runtime/npy.h"

#define SKIP 77
#define MAX_REL_L2 1e-5

static double
as_double(const mpcc_tensor *t, size_t i)
{
	switch (t->dtype) {
	case MPCC_DTYPE_F32:
		return ((const float *)t->data)[i];
	case MPCC_DTYPE_F64:
		return ((const double *)t->data)[i];
	case MPCC_DTYPE_I64:
		return (double)((const int64_t *)t->data)[i];
	default:
		return NAN;
	}
}

static int
set_inputs(mpcc_session *s, const mpcc_plan *plan, const char *name, mpcc_context *cx)
{
	for (int i = 0; i < mpcc_plan_n_inputs(plan); i++) {
		const mpcc_tensor *in = mpcc_plan_input(plan, i);
		char path[512];
		mpcc_tensor t;
		mpcc_diag d;
		mpcc_diag_init(&d);
		snprintf(path, sizeof(path), "tests/models/%s/input_%s.npy", name, in->name);
		if (mpcc_npy_read_file(path, &t, &d)) {
			printf("FAIL %s: %s\n", name, d.msg);
			return 1;
		}
		mpcc_status st =
		    mpcc_session_set_input(s, in->name, t.dtype, t.rank, t.dims, t.data, t.nbytes);
		free(t.data);
		if (st) {
			printf("FAIL %s: set_input: %s\n", name, mpcc_context_last_error(cx));
			return 1;
		}
	}
	return 0;
}

/* Compiles tests/models/NAME with the given --cuda-archs and loads it. */
static mpcc_plan *
compile(mpcc_context *cx, const char *name, const char *archs)
{
	char path[512], plan_path[512];
	mpcc_compile_options o;
	mpcc_plan *plan = NULL;

	mpcc_compile_options_init(&o);
	o.cuda_archs = archs;
	snprintf(path, sizeof(path), "tests/models/%s/model.onnx", name);
	snprintf(plan_path, sizeof(plan_path), "/tmp/mpcc_cuda_%s_%d.plan", name, (int)getpid());
	if (mpcc_compile_file(cx, path, &o, plan_path) || mpcc_plan_load(cx, plan_path, &plan))
		printf("FAIL %s: %s\n", name, mpcc_context_last_error(cx));
	unlink(plan_path);
	return plan;
}

/* Every output of a within MAX_REL_L2 of b's; with `exact`, bit for bit. */
static int
compare(const char *what, const char *name, mpcc_session *a, mpcc_session *b, const mpcc_plan *plan,
        bool exact)
{
	int rc = 0;

	for (int i = 0; i < mpcc_plan_n_outputs(plan); i++) {
		mpcc_tensor x, y;
		double num = 0, den = 0;
		mpcc_session_output(a, i, &x);
		mpcc_session_output(b, i, &y);
		if (exact) {
			bool same = x.nbytes == y.nbytes && memcmp(x.data, y.data, x.nbytes) == 0;
			printf("%s %s/%s: %s\n", same ? "ok" : "FAIL", name, x.name, what);
			rc |= !same;
			continue;
		}
		size_t n = x.nbytes / mpcc_dtype_size(x.dtype);
		for (size_t j = 0; j < n; j++) {
			double e = as_double(&y, j) - as_double(&x, j);
			num += e * e;
			den += as_double(&x, j) * as_double(&x, j);
		}
		double rel = sqrt(num / (den > 0 ? den : 1));
		printf("%s %s/%s: %s relative L2 error %.3g\n", rel <= MAX_REL_L2 ? "ok" : "FAIL",
		       name, x.name, what, rel);
		rc |= !(rel <= MAX_REL_L2);
	}
	return rc;
}

/*
 * One cuda session on plan: its backend line must contain want, two runs
 * must agree bit for bit, and the result with the cpu backend.
 */
static int
check_session(mpcc_context *cx, const mpcc_plan *plan, const char *name, const char *want)
{
	mpcc_session *cpu = NULL, *gpu = NULL;
	void **first = NULL;
	int rc = 0, n_out = mpcc_plan_n_outputs(plan);

	if (mpcc_session_create(cx, plan, "cuda", &gpu) ||
	    mpcc_session_create(cx, plan, "cpu", &cpu) || set_inputs(cpu, plan, name, cx) ||
	    set_inputs(gpu, plan, name, cx) || mpcc_session_run(cpu) || mpcc_session_run(gpu)) {
		printf("FAIL %s: %s\n", name, mpcc_context_last_error(cx));
		rc = 1;
		goto done;
	}
	const char *line = mpcc_session_backend(gpu);
	printf("%s %s: %s\n", strstr(line, want) ? "ok" : "FAIL", name, line);
	rc |= !strstr(line, want);
	rc |= compare("cuda vs cpu", name, cpu, gpu, plan, false);
	first = calloc((size_t)n_out + 1, sizeof(void *));
	for (int i = 0; first && i < n_out; i++) {
		mpcc_tensor t;
		mpcc_session_output(gpu, i, &t);
		if ((first[i] = malloc(t.nbytes + 1)))
			memcpy(first[i], t.data, t.nbytes);
	}
	if (mpcc_session_run(gpu)) {
		printf("FAIL %s: second run: %s\n", name, mpcc_context_last_error(cx));
		rc = 1;
		goto done;
	}
	for (int i = 0; i < n_out; i++) {
		mpcc_tensor t;
		mpcc_session_output(gpu, i, &t);
		bool same = first && first[i] && memcmp(first[i], t.data, t.nbytes) == 0;
		printf("%s %s/%s: the graph's replay gives the same bits\n", same ? "ok" : "FAIL",
		       name, t.name);
		rc |= !same;
	}
done:
	for (int i = 0; first && i < n_out; i++)
		free(first[i]);
	free(first);
	mpcc_session_destroy(gpu);
	mpcc_session_destroy(cpu);
	return rc;
}

/* 0 when a cuda session can be created; SKIP, with the reason printed,
 * when there is no GPU or driver; 1 for any other failure. */
static int
gpu_present(mpcc_context *cx)
{
	mpcc_plan *plan = compile(cx, "mlp", "none");
	mpcc_session *s = NULL;
	int rc = 0;

	if (!plan)
		return 1;
	if (mpcc_session_create(cx, plan, "cuda", &s)) {
		const char *msg = mpcc_context_last_error(cx);
		bool no_gpu = strstr(msg, "not found") || strstr(msg, "no CUDA device") ||
		              strstr(msg, "CUDA_ERROR_NO_DEVICE") || strstr(msg, "built without");
		printf("%s: %s\n", no_gpu ? "SKIP" : "FAIL", msg);
		rc = no_gpu ? SKIP : 1;
	}
	mpcc_session_destroy(s);
	mpcc_plan_destroy(plan);
	return rc;
}

int
main(void)
{
	static const char *models[] = {"mlp", "cnn", "lstm", "transformer"};
	char cache[] = "/tmp/mpcc_cuda_cache_XXXXXX", cmd[128];
	mpcc_context *cx;
	int failed = 0, rc;

	if (mpcc_context_create(&cx))
		return 1;
	if (!mkdtemp(cache))
		return 1;
	setenv("MPCC_CACHE_DIR", cache, 1);
	rc = gpu_present(cx);
	if (rc == SKIP)
		printf("test_cuda_run: skipped: no usable NVIDIA GPU on this machine\n");
	snprintf(cmd, sizeof(cmd), "rm -f %s/*", cache); /* what the probe compiled */
	if (system(cmd) != 0)
		rc = 1;
	for (int m = 0; rc == 0 && m < 4; m++) {
		mpcc_plan *plan = compile(cx, models[m], "default");
		failed += !plan || check_session(cx, plan, models[m], "from the plan;") != 0;
		mpcc_plan_destroy(plan);
	}
	if (rc == 0) {
		/* no binaries in the plan: NVRTC, then the cache */
		mpcc_plan *plan = compile(cx, "mlp", "none");
		failed += !plan || check_session(cx, plan, "mlp", ", now cached;") != 0;
		failed += !plan || check_session(cx, plan, "mlp", "from the cache;") != 0;
		mpcc_plan_destroy(plan);
		printf("test_cuda_run: %d of 6 checks pass\n", 6 - failed);
		rc = failed ? 1 : 0;
	}
	snprintf(cmd, sizeof(cmd), "rm -rf %s", cache);
	if (system(cmd) != 0)
		rc = rc ? rc : 1;
	mpcc_context_destroy(cx);
	return rc;
}
