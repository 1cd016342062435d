/*
 * test_cuda_fake.c - the cuda backend's driver code, run against a fake
 * driver (tests/unit/fake_libcuda.c, found as libcuda.so.1 through the
 * LD_LIBRARY_PATH CTest sets), on machines without a GPU.
 *
 * The fake runs each launch on the host through a runner installed here,
 * which runs the launched kernel's kernel IR with the interpreter on the
 * buffers the launch passes (the whole kernel at its stage 0, as its
 * stages run back to back): so the device addresses, transfers and launch
 * order the backend sets up decide the outputs, whatever CUDA the emitter
 * prints (tiled tensor-core kernels included), and these check end to end
 * what can be checked without silicon: which stored binary a device of each
 * architecture gets, that stale or missing binaries are compiled by NVRTC
 * through the cache, that runs replay one CUDA graph with one
 * synchronisation and only pinned copies and agree with the cpu backend
 * run after run (the four model tests, and a trainer whose state buffers
 * swap every step), that capture failures fall back to launches, and that
 * every driver call that fails is named, leaving nothing allocated. What
 * they cannot see: the CUDA code itself and the GPU's behaviour (timing,
 * real JIT, memory model); test_cuda_host, test_cuda_compile and, on a
 * GPU, test_cuda_run do.
 *
 * Exits 77 (skipped) when libcuda.so.1 is not the fake, e.g. when run by
 * hand without LD_LIBRARY_PATH. MPCC_TEST_FILTER=GLOB runs only the tests
 * it matches (for valgrind: LD_LIBRARY_PATH=BUILD/fakecuda
 * MPCC_TEST_FILTER='*fail*' valgrind BUILD/test_cuda_fake, from the source
 * root).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "codegen/cuda/emit.h"
#include "codegen/cuda/nvrtc.h"
#include "mpcc.h"
#include "runtime/api_internal.h"
#include "runtime/npy.h"
#include "runtime/plan.h"

#define SKIP 77

/* As in fake_libcuda.c. */
typedef struct fakecuda_stats {
	int calls;
	int live_device, live_host, live_modules, live_streams, live_graphs, live_execs;
	int ctx_refs;
	int syncs, graph_launches, launches, pageable_async, capture_mode;
	char loaded[64];
	char failed[64];
	int live_events, event_records;
} fakecuda_stats;

static struct {
	void *lib;
	void (*reset)(void);
	void (*set_device)(int cc, int n_devices, int ptx_isa);
	void (*set_fail)(const char *name, int nth, int code);
	void (*set_runner)(int (*run)(void *, const char *, void **, int), void *user);
	const fakecuda_stats *(*stats)(void);
} fake;

static char tmp[64];   /* the test's folder: the cache, plans */
static void *mlp_plan; /* tests/models/mlp, fp32, default binaries */
static size_t mlp_plan_size;
static void *bare_plan; /* the same without binaries */
static size_t bare_plan_size;
static mpcc_tensor mlp_x; /* its input */

#define ERR_OUT_OF_MEMORY 2
#define ERR_NOT_SUPPORTED 801

/* ---------------------------------------------------------------- helpers */

static void
compile_plan(const char *model, const char *archs, void **out, size_t *out_size)
{
	mpcc_compile_options o;
	mpcc_context *cx;
	void *buf;
	size_t size;

	mpcc_compile_options_init(&o);
	o.precision = MPCC_PRECISION_FP32;
	o.cuda_archs = archs;
	mpcc_diag d;

	mpcc_diag_init(&d);
	assert_int_equal(mpcc_context_create(&cx), MPCC_OK);
	assert_int_equal(mpcc_read_whole_file(model, &buf, &size, &d), MPCC_OK);
	if (mpcc_compile_buffer(cx, buf, size, "tests/models/mlp", &o, out, out_size) != MPCC_OK)
		fail_msg("%s", mpcc_context_last_error(cx));
	free(buf);
	mpcc_context_destroy(cx);
}

/* The fake's runner: "<kernel>_s<stage>" of the plan in user, on args. */
static int
run_interp(void *user, const char *name, void **args, int n_args)
{
	const mpcc_plan *p = user;
	const char *sep = strrchr(name, '_');
	mpcc_diag d;

	if (!sep || sep[1] != 's')
		return 1;
	for (int k = 0; k < p->n_kernels; k++) {
		const kir_kernel *kk = p->kernels[k];
		if (strlen(kk->name) != (size_t)(sep - name) || strncmp(kk->name, name, sep - name))
			continue;
		if (n_args != kk->n_bufs)
			return 1;
		if (atoi(sep + 2) != 0)
			return 0; /* the kernel ran whole at its stage 0 */
		mpcc_diag_init(&d);
		return kir_interpret(kk, args, &d) != MPCC_OK;
	}
	return 1;
}

/* The fake runs p's kernels from now on. */
static void
give_kernels(const mpcc_plan *p)
{
	fake.set_runner(run_interp, (void *)p);
}

static mpcc_plan *
load(mpcc_context *cx, const void *buf, size_t size)
{
	mpcc_plan *p;

	if (mpcc_plan_load_buffer(cx, buf, size, &p) != MPCC_OK)
		fail_msg("%s", mpcc_context_last_error(cx));
	return p;
}

static void
no_leaks(void)
{
	const fakecuda_stats *st = fake.stats();

	assert_int_equal(st->live_device, 0);
	assert_int_equal(st->live_host, 0);
	assert_int_equal(st->live_modules, 0);
	assert_int_equal(st->live_streams, 0);
	assert_int_equal(st->live_graphs, 0);
	assert_int_equal(st->live_execs, 0);
	assert_int_equal(st->ctx_refs, 0);
	assert_int_equal(st->live_events, 0);
}

/* Sets x (scaled by `scale`) and runs s; returns the output. */
static const float *
run_with(mpcc_context *cx, mpcc_session *s, float scale, size_t *n)
{
	float *x = malloc(mlp_x.nbytes);
	mpcc_tensor out;

	assert_non_null(x);
	for (size_t i = 0; i < mlp_x.nbytes / 4; i++)
		x[i] = ((const float *)mlp_x.data)[i] * scale;
	if (mpcc_session_set_input(s, "x", MPCC_DTYPE_F32, mlp_x.rank, mlp_x.dims, x,
	                           mlp_x.nbytes) != MPCC_OK ||
	    mpcc_session_run(s) != MPCC_OK)
		fail_msg("%s", mpcc_context_last_error(cx));
	free(x);
	assert_int_equal(mpcc_session_output(s, 0, &out), MPCC_OK);
	*n = out.nbytes / 4;
	return out.data;
}

/* The cuda session's output agrees with the cpu backend's on input x*scale. */
static void
agrees_with_cpu(mpcc_context *cx, const mpcc_plan *p, mpcc_session *gpu, float scale)
{
	mpcc_session *cpu;
	size_t n, m;
	double num = 0, den = 0;

	assert_int_equal(mpcc_session_create(cx, p, "cpu", &cpu), MPCC_OK);
	const float *a = run_with(cx, cpu, scale, &n);
	const float *b = run_with(cx, gpu, scale, &m);
	assert_int_equal(n, m);
	for (size_t i = 0; i < n; i++) {
		num += (a[i] - b[i]) * (double)(a[i] - b[i]);
		den += a[i] * (double)a[i];
	}
	mpcc_session_destroy(cpu);
	if (!(sqrt(num / (den > 0 ? den : 1)) <= 1e-6))
		fail_msg("cuda (fake) and cpu differ: relative L2 %g",
		         sqrt(num / (den > 0 ? den : 1)));
}

static mpcc_session *
cuda_session(mpcc_context *cx, const mpcc_plan *p)
{
	mpcc_session *s;

	if (mpcc_session_create(cx, p, "cuda", &s) != MPCC_OK)
		fail_msg("%s", mpcc_context_last_error(cx));
	return s;
}

/* The backend line holds want, in which "NVRTC" stands for this NVRTC's
 * version string ("NVRTC"). */
static void
says(const mpcc_session *s, const char *want)
{
	const char *line = mpcc_session_backend(s), *at = strstr(want, "NVRTC");
	char nvrtc[32], full[512];

	mpcc_nvrtc_version(nvrtc, sizeof(nvrtc));
	if (at)
		snprintf(full, sizeof(full), "%.*s%s%s", (int)(at - want), want, nvrtc, at + 5);
	else
		snprintf(full, sizeof(full), "%s", want);
	if (!strstr(line, full) || strchr(line, '\n'))
		fail_msg("backend line '%s' lacks '%s'", line, full);
}

static void
clear_cache(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s/cache", tmp);
	assert_int_equal(system(cmd), 0);
}

/* ---------------------------------------------------------------- tests */

/* The stored source is what the emitter prints for the stored kernels, and
 * the default binaries are there, tagged. */
static void
the_plan_stores_the_emitted_source_and_three_binaries(void **state)
{
	mpcc_context *cx;
	mpcc_diag d;
	char *src;

	assert_int_equal(mpcc_context_create(&cx), MPCC_OK);
	mpcc_plan *p = load(cx, mlp_plan, mlp_plan_size);
	assert_non_null(p->cuda);
	mpcc_diag_init(&d);
	assert_int_equal(mpcc_cuda_emit(p->kernels, p->n_kernels, true, &src, &d), MPCC_OK);
	assert_string_equal(p->cuda->source, src);
	free(src);
	assert_int_equal(p->cuda->n_images, 3);
	static const struct {
		mpcc_cuda_image_kind kind;
		int arch;
	} want[3] = {
	    {MPCC_CUDA_IMAGE_CUBIN, 80}, {MPCC_CUDA_IMAGE_CUBIN, 90}, {MPCC_CUDA_IMAGE_PTX, 90}};
	for (int i = 0; i < 3; i++) {
		const mpcc_plan_cuda_image *im = &p->cuda->images[i];
		assert_int_equal(im->kind, want[i].kind);
		assert_int_equal(im->arch, want[i].arch);
		assert_true(im->size > 100);
		assert_int_equal(im->nvrtc_version, mpcc_nvrtc_version_number());
	}
	assert_memory_equal(p->cuda->images[0].data,
	                    "\x7f"
	                    "ELF",
	                    4);
	assert_non_null(strstr((char *)p->cuda->images[2].data, ".target sm_90"));
	mpcc_plan_destroy(p);
	mpcc_plan *q = load(cx, bare_plan, bare_plan_size);
	assert_null(q->cuda);
	mpcc_plan_destroy(q);
	mpcc_context_destroy(cx);
}

/* "default" never fails a compile for the GPU's sake; a list does. */
static void
default_binaries_are_best_effort_and_a_list_is_not(void **state)
{
	mpcc_context *cx;
	mpcc_diag d;

	assert_int_equal(mpcc_context_create(&cx), MPCC_OK);
	mpcc_plan *p = load(cx, bare_plan, bare_plan_size);
	p->kernels[0]->exprs[0].dtype = MPCC_DTYPE_UNDEF; /* the emitter refuses it */
	mpcc_diag_init(&d);
	assert_int_equal(mpcc_plan_cuda_build(p, "default", &d), MPCC_OK);
	assert_null(p->cuda);
	assert_int_equal(d.status, MPCC_OK);
	assert_int_equal(mpcc_plan_cuda_build(p, "sm_90", &d), MPCC_ERR_INVALID);
	assert_non_null(strstr(d.msg, "has no dtype"));
	mpcc_plan_destroy(p);
	p = load(cx, bare_plan, bare_plan_size);
	mpcc_diag_init(&d);
	assert_int_equal(mpcc_plan_cuda_build(p, "sm_90,compute_99", &d), MPCC_ERR_UNSUPPORTED);
	assert_string_equal(d.msg, "nvrtc: architecture sm_99 is not supported by this NVRTC");
	assert_null(p->cuda);
	mpcc_plan_destroy(p);
	mpcc_context_destroy(cx);
}

static void
runs_replay_one_graph_with_one_sync_and_agree_with_cpu(void **state)
{
	mpcc_context *cx;
	fakecuda_stats before;

	fake.reset();
	assert_int_equal(mpcc_context_create(&cx), MPCC_OK);
	mpcc_plan *p = load(cx, mlp_plan, mlp_plan_size);
	give_kernels(p);
	mpcc_session *s = cuda_session(cx, p);
	says(s, "cuda: Fake GPU 9.0 (sm_90), driver 13.0; cubin sm_90 from the plan; one CUDA "
	        "graph of");
	assert_string_equal(fake.stats()->loaded, "cubin sm_90");
	assert_int_equal(fake.stats()->capture_mode, 1); /* thread-local */
	assert_int_equal(fake.stats()->launches, 0);     /* captured, not run */
	before = *fake.stats();
	agrees_with_cpu(cx, p, s, 1.0f);
	agrees_with_cpu(cx, p, s, -0.5f); /* new inputs are uploaded */
	agrees_with_cpu(cx, p, s, 1.0f);
	const fakecuda_stats *st = fake.stats();
	assert_int_equal(st->syncs - before.syncs, 3);
	assert_int_equal(st->graph_launches - before.graph_launches, 3);
	assert_int_equal(st->pageable_async, before.pageable_async);
	/* the same input twice gives the same bits */
	size_t n;
	const float *y = run_with(cx, s, 2.0f, &n);
	float *first = malloc(n * 4);
	assert_non_null(first);
	memcpy(first, y, n * 4);
	y = run_with(cx, s, 2.0f, &n);
	assert_memory_equal(first, y, n * 4);
	free(first);
	mpcc_session_destroy(s);
	no_leaks();
	mpcc_plan_destroy(p);
	mpcc_context_destroy(cx);
}

/* Which stored binary each architecture gets (the cubin rule, then PTX). */
static void
each_architecture_gets_the_binary_that_runs_on_it(void **state)
{
	static const struct {
		int cc;
		const char *loaded;
	} cases[] = {
	    {90, "cubin sm_90"}, {80, "cubin sm_80"},     {86, "cubin sm_80"},
	    {89, "cubin sm_80"}, {100, "PTX compute_90"}, {120, "PTX compute_90"},
	};
	mpcc_context *cx;

	assert_int_equal(mpcc_context_create(&cx), MPCC_OK);
	mpcc_plan *p = load(cx, mlp_plan, mlp_plan_size);
	give_kernels(p);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char want[80];
		fake.reset();
		fake.set_device(cases[i].cc, 1, 90);
		mpcc_session *s = cuda_session(cx, p);
		assert_string_equal(fake.stats()->loaded, cases[i].loaded);
		snprintf(want, sizeof(want), "(sm_%d), driver 13.0; %s from the plan;", cases[i].cc,
		         cases[i].loaded);
		says(s, want);
		agrees_with_cpu(cx, p, s, 1.0f);
		mpcc_session_destroy(s);
		no_leaks();
	}
	mpcc_plan_destroy(p);
	mpcc_context_destroy(cx);
}

/* No binary fits sm_75: NVRTC compiles one, the cache keeps it. */
static void
an_unfit_device_compiles_with_nvrtc_once_then_hits_the_cache(void **state)
{
	mpcc_context *cx;

	clear_cache();
	fake.reset();
	fake.set_device(75, 1, 90);
	assert_int_equal(mpcc_context_create(&cx), MPCC_OK);
	mpcc_plan *p = load(cx, mlp_plan, mlp_plan_size);
	give_kernels(p);
	mpcc_session *s = cuda_session(cx, p);
	says(s, "no GPU binary in the plan fits sm_75, cubin sm_75 compiled by NVRTC, now cached");
	assert_string_equal(fake.stats()->loaded, "cubin sm_75");
	agrees_with_cpu(cx, p, s, 1.0f);
	mpcc_session_destroy(s);
	s = cuda_session(cx, p);
	says(s, "NVRTC binary for sm_75 from the cache");
	agrees_with_cpu(cx, p, s, 1.0f);
	mpcc_session_destroy(s);
	no_leaks();
	mpcc_plan_destroy(p);
	mpcc_context_destroy(cx);
}

/* A plan compiled without binaries runs through NVRTC and the cache; a
 * damaged cache entry is replaced. */
static void
a_plan_without_binaries_runs_through_the_cache(void **state)
{
	mpcc_context *cx;
	char cmd[256];

	clear_cache();
	fake.reset();
	assert_int_equal(mpcc_context_create(&cx), MPCC_OK);
	mpcc_plan *p = load(cx, bare_plan, bare_plan_size);
	give_kernels(p);
	mpcc_session *s = cuda_session(cx, p);
	says(s, "the plan stores no GPU binaries, cubin sm_90 compiled by NVRTC, now cached");
	agrees_with_cpu(cx, p, s, 1.0f);
	mpcc_session_destroy(s);
	s = cuda_session(cx, p);
	says(s, "the plan stores no GPU binaries, NVRTC binary for sm_90 from the cache");
	agrees_with_cpu(cx, p, s, 0.25f);
	mpcc_session_destroy(s);
	/* flip the last byte of the one entry */
	snprintf(cmd, sizeof(cmd),
	         "f=$(ls %s/cache/cuda-sm90-*.bin) && printf '\\377' | dd of=\"$f\" bs=1 "
	         "seek=$(($(stat -c %%s \"$f\") - 1)) conv=notrunc status=none",
	         tmp);
	assert_int_equal(system(cmd), 0);
	s = cuda_session(cx, p);
	says(s, "a damaged cache entry was deleted, cubin sm_90 compiled by NVRTC, now cached");
	agrees_with_cpu(cx, p, s, 1.0f);
	mpcc_session_destroy(s);
	no_leaks();
	mpcc_plan_destroy(p);
	mpcc_context_destroy(cx);
}

/* Binaries whose source is not what this mpcc emits are never loaded. */
static void
binaries_another_emitter_made_are_not_trusted(void **state)
{
	mpcc_context *cx;

	clear_cache();
	fake.reset();
	assert_int_equal(mpcc_context_create(&cx), MPCC_OK);
	mpcc_plan *p = load(cx, mlp_plan, mlp_plan_size);
	give_kernels(p);
	size_t len = strlen(p->cuda->source);
	char *older = realloc(p->cuda->source, len + 32);
	assert_non_null(older);
	strcat(older, "/* another emitter */\n");
	p->cuda->source = older;
	mpcc_session *s = cuda_session(cx, p);
	says(s, "the plan's GPU binaries are another mpcc's (its CUDA source differs), cubin sm_90 "
	        "compiled by NVRTC");
	agrees_with_cpu(cx, p, s, 1.0f);
	mpcc_session_destroy(s);
	no_leaks();
	mpcc_plan_destroy(p);
	mpcc_context_destroy(cx);
}

/* A driver older than the PTX: the next choice is NVRTC for the device. */
static void
ptx_the_driver_refuses_falls_back_to_nvrtc(void **state)
{
	mpcc_context *cx;

	clear_cache();
	fake.reset();
	fake.set_device(100, 1, 80);
	assert_int_equal(mpcc_context_create(&cx), MPCC_OK);
	mpcc_plan *p = load(cx, mlp_plan, mlp_plan_size);
	give_kernels(p);
	mpcc_session *s = cuda_session(cx, p);
	says(s, "PTX compute_90 from the plan did not load (cuModuleLoadDataEx failed: "
	        "CUDA_ERROR_UNSUPPORTED_PTX_VERSION (222): ptxas application ptx input");
	says(s, "cubin sm_100 compiled by NVRTC");
	assert_string_equal(fake.stats()->loaded, "cubin sm_100");
	agrees_with_cpu(cx, p, s, 1.0f);
	mpcc_session_destroy(s);
	no_leaks();
	mpcc_plan_destroy(p);
	mpcc_context_destroy(cx);
}

static void
graph_failures_fall_back_to_launches_and_say_so(void **state)
{
	static const struct {
		const char *call, *says;
	} cases[] = {
	    {"cuGraphInstantiateWithFlags",
	     "kernel by kernel (cuGraphInstantiateWithFlags failed: CUDA_ERROR_NOT_SUPPORTED)"},
	    {"cuStreamBeginCapture_v2",
	     "kernel by kernel (cuStreamBeginCapture_v2 failed: CUDA_ERROR_NOT_SUPPORTED)"},
	    {"cuStreamEndCapture",
	     "kernel by kernel (graph capture failed: CUDA_ERROR_NOT_SUPPORTED)"},
	};
	mpcc_context *cx;

	assert_int_equal(mpcc_context_create(&cx), MPCC_OK);
	mpcc_plan *p = load(cx, mlp_plan, mlp_plan_size);
	give_kernels(p);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		fake.reset();
		fake.set_fail(cases[i].call, 0, ERR_NOT_SUPPORTED);
		mpcc_session *s = cuda_session(cx, p);
		says(s, cases[i].says);
		assert_int_equal(fake.stats()->live_graphs, 0);
		int syncs = fake.stats()->syncs;
		agrees_with_cpu(cx, p, s, 1.0f);
		agrees_with_cpu(cx, p, s, 3.0f);
		assert_int_equal(fake.stats()->graph_launches, 0);
		assert_int_equal(fake.stats()->syncs - syncs, 2);
		mpcc_session_destroy(s);
		no_leaks();
	}
	mpcc_plan_destroy(p);
	mpcc_context_destroy(cx);
}

/* A launch that fails at run time is named with its kernel and stage. */
static void
a_failing_launch_names_the_kernel(void **state)
{
	mpcc_context *cx;
	mpcc_session *s;

	fake.reset();
	fake.set_fail("cuLaunchKernel", 0, ERR_OUT_OF_MEMORY);
	assert_int_equal(mpcc_context_create(&cx), MPCC_OK);
	mpcc_plan *p = load(cx, mlp_plan, mlp_plan_size);
	s = cuda_session(cx, p);
	says(s, "kernel by kernel (graph capture failed: cuda backend: cuLaunchKernel failed for ");
	assert_int_equal(mpcc_session_set_input(s, "x", MPCC_DTYPE_F32, mlp_x.rank, mlp_x.dims,
	                                        mlp_x.data, mlp_x.nbytes),
	                 MPCC_OK);
	assert_int_equal(mpcc_session_run(s), MPCC_ERR_BACKEND);
	char want[160];
	snprintf(want, sizeof(want),
	         "cuda backend: cuLaunchKernel failed for %s_s0: "
	         "CUDA_ERROR_OUT_OF_MEMORY (2)",
	         p->kernels[0]->name);
	assert_string_equal(mpcc_context_last_error(cx), want);
	mpcc_session_destroy(s);
	no_leaks();
	mpcc_plan_destroy(p);
	mpcc_context_destroy(cx);
}

/*
 * Fault injection: the Nth driver call of creating a session, two runs and
 * destroying it fails, for every N. Creating or running then either fails
 * with one line naming the call and the error, or takes a documented
 * fallback (another binary, no graph); either way nothing stays allocated.
 */
static void
every_failing_driver_call_is_named_and_leaks_nothing(void **state)
{
	mpcc_context *cx;
	int n_failed = 0, n_fallback = 0;

	assert_int_equal(mpcc_context_create(&cx), MPCC_OK);
	mpcc_plan *p = load(cx, mlp_plan, mlp_plan_size);
	give_kernels(p);
	for (int nth = 1;; nth++) {
		mpcc_session *s = NULL;
		bool failed = false;
		fake.reset();
		fake.set_fail(NULL, nth, ERR_OUT_OF_MEMORY);
		if (mpcc_session_create(cx, p, "cuda", &s) != MPCC_OK) {
			failed = true;
		} else {
			for (int r = 0; r < 2 && !failed; r++)
				failed = mpcc_session_set_input(s, "x", MPCC_DTYPE_F32, mlp_x.rank,
				                                mlp_x.dims, mlp_x.data,
				                                mlp_x.nbytes) != MPCC_OK ||
				         mpcc_session_run(s) != MPCC_OK;
		}
		int calls_before_destroy = fake.stats()->calls;
		if (failed) {
			const char *msg = mpcc_context_last_error(cx);
			if (strncmp(msg, "cuda backend: ", 14) != 0 || strchr(msg, '\n') ||
			    !strstr(msg, " failed") || !strstr(msg, "CUDA_ERROR_OUT_OF_MEMORY (2)"))
				fail_msg("call %d: message '%s'", nth, msg);
			n_failed++;
		} else if (calls_before_destroy >= nth) {
			n_fallback++;
		}
		if (!failed && calls_before_destroy >= nth &&
		    strcmp(fake.stats()->failed, "cuGraphDestroy") == 0)
			says(s, "(cuGraphDestroy failed: CUDA_ERROR_OUT_OF_MEMORY)");
		mpcc_session_destroy(s);
		/* a failure inside destroy has nowhere to go, and one to destroy
		 * the captured graph leaves it to the driver */
		const fakecuda_stats *st = fake.stats();
		if (calls_before_destroy >= nth && strcmp(st->failed, "cuGraphDestroy") != 0 &&
		    (st->live_device || st->live_host || st->live_modules || st->live_streams ||
		     st->live_graphs || st->live_execs || st->ctx_refs))
			fail_msg(
			    "call %d (%s) failing leaves device %d host %d modules %d streams %d "
			    "graphs %d instances %d context references %d",
			    nth, st->failed, st->live_device, st->live_host, st->live_modules,
			    st->live_streams, st->live_graphs, st->live_execs, st->ctx_refs);
		if (fake.stats()->calls < nth)
			break;
	}
	print_message("fault injection: %d calls failed a session, %d took a fallback\n", n_failed,
	              n_fallback);
	assert_true(n_failed > 20);
	assert_true(n_fallback > 0);
	mpcc_plan_destroy(p);
	mpcc_context_destroy(cx);
}

/* Sets every input of tests/models/NAME from its .npy file and runs s. */
static void
run_model(mpcc_context *cx, mpcc_session *s, const mpcc_plan *p, const char *name)
{
	for (int i = 0; i < mpcc_plan_n_inputs(p); i++) {
		const mpcc_tensor *in = mpcc_plan_input(p, i);
		char path[256];
		mpcc_tensor t;
		mpcc_diag d;
		mpcc_diag_init(&d);
		snprintf(path, sizeof(path), "tests/models/%s/input_%s.npy", name, in->name);
		if (mpcc_npy_read_file(path, &t, &d) != MPCC_OK)
			fail_msg("%s: %s", path, d.msg);
		mpcc_status st =
		    mpcc_session_set_input(s, in->name, t.dtype, t.rank, t.dims, t.data, t.nbytes);
		free(t.data);
		if (st != MPCC_OK)
			fail_msg("%s", mpcc_context_last_error(cx));
	}
	if (mpcc_session_run(s) != MPCC_OK)
		fail_msg("%s", mpcc_context_last_error(cx));
}

/*
 * The other model tests, compiled at mpcc's default precision (auto, so
 * f16 and bf16 kernels too) with an sm_90 cubin: the fake's outputs agree
 * with the cpu backend's, twice in a row.
 */
static void
every_model_test_agrees_with_cpu_through_the_fake(void **state)
{
	static const char *models[] = {"cnn", "lstm", "transformer"};
	mpcc_context *cx;

	assert_int_equal(mpcc_context_create(&cx), MPCC_OK);
	for (int m = 0; m < 3; m++) {
		char path[256], plan_path[128];
		mpcc_compile_options o;
		void *buf;
		size_t size;
		mpcc_compile_options_init(&o);
		o.cuda_archs = "sm_90"; /* the one the fake takes; the others cost NVRTC time */
		snprintf(path, sizeof(path), "tests/models/%s/model.onnx", models[m]);
		snprintf(plan_path, sizeof(plan_path), "%s/%s.plan", tmp, models[m]);
		if (mpcc_compile_file(cx, path, &o, plan_path) != MPCC_OK)
			fail_msg("%s", mpcc_context_last_error(cx));
		mpcc_diag d;
		mpcc_diag_init(&d);
		assert_int_equal(mpcc_read_whole_file(plan_path, &buf, &size, &d), MPCC_OK);
		mpcc_plan *p = load(cx, buf, size);
		free(buf);
		give_kernels(p);
		fake.reset();
		mpcc_session *gpu = cuda_session(cx, p), *cpu;
		says(gpu, "cubin sm_90 from the plan; one CUDA graph of");
		assert_int_equal(mpcc_session_create(cx, p, "cpu", &cpu), MPCC_OK);
		run_model(cx, cpu, p, models[m]);
		for (int r = 0; r < 2; r++) {
			run_model(cx, gpu, p, models[m]);
			for (int i = 0; i < mpcc_plan_n_outputs(p); i++) {
				mpcc_tensor a, b;
				double num = 0, den = 0;
				mpcc_session_output(cpu, i, &a);
				mpcc_session_output(gpu, i, &b);
				assert_int_equal(a.dtype, MPCC_DTYPE_F32);
				for (size_t j = 0; j < a.nbytes / 4; j++) {
					double x = ((float *)a.data)[j], y = ((float *)b.data)[j];
					num += (x - y) * (x - y);
					den += x * x;
				}
				double rel = sqrt(num / (den > 0 ? den : 1));
				if (!(rel <= 1e-5))
					fail_msg("%s/%s: run %d: relative L2 %g", models[m], a.name,
					         r, rel);
			}
		}
		assert_int_equal(fake.stats()->graph_launches, 2);
		mpcc_session_destroy(cpu);
		mpcc_session_destroy(gpu);
		no_leaks();
		mpcc_plan_destroy(p);
	}
	mpcc_context_destroy(cx);
}

/*
 * mpcc_session_profile on a model plan (the transformer at auto precision,
 * written by the test before, else compiled here): one record per stage
 * launch, in schedule order, each timed between two events on the fake's
 * clock (positive, ordered statistics), launched one by one, not through
 * the graph; the outputs stay right and the next plain run replays the
 * graph again. The cpu backend times its kernels, one record each.
 */
static void
a_profile_times_every_launch_in_schedule_order(void **state)
{
	mpcc_context *cx;
	char plan_path[128];
	void *buf;
	size_t size;
	mpcc_diag d;
	mpcc_launch_time *lt;
	int n, runs = 3;

	assert_int_equal(mpcc_context_create(&cx), MPCC_OK);
	snprintf(plan_path, sizeof(plan_path), "%s/transformer.plan", tmp);
	mpcc_diag_init(&d);
	if (access(plan_path, R_OK) != 0) {
		mpcc_compile_options o;
		mpcc_compile_options_init(&o);
		o.cuda_archs = "sm_90";
		if (mpcc_compile_file(cx, "tests/models/transformer/model.onnx", &o, plan_path) !=
		    MPCC_OK)
			fail_msg("%s", mpcc_context_last_error(cx));
	}
	assert_int_equal(mpcc_read_whole_file(plan_path, &buf, &size, &d), MPCC_OK);
	mpcc_plan *p = load(cx, buf, size);
	free(buf);
	give_kernels(p);
	fake.reset();
	mpcc_session *gpu = cuda_session(cx, p), *cpu;
	says(gpu, "one CUDA graph of");
	assert_int_equal(mpcc_session_create(cx, p, "cpu", &cpu), MPCC_OK);
	run_model(cx, cpu, p, "transformer");
	run_model(cx, gpu, p, "transformer");
	assert_int_equal(fake.stats()->graph_launches, 1);
	int launches = fake.stats()->launches, syncs = fake.stats()->syncs;

	if (mpcc_session_profile(gpu, runs, &lt, &n) != MPCC_OK)
		fail_msg("%s", mpcc_context_last_error(cx));
	int want = 0;
	for (int k = 0; k < p->n_kernels; k++) /* a launch per stage or row kernel */
		for (int st = 0; st < p->kernels[k]->n_stages;
		     st += mpcc_cuda_stage_span(p->kernels[k], st))
			want++;
	assert_int_equal(n, want);
	assert_true(n > 10);
	for (int i = 0, k = 0, st = 0; i < n; i++) {
		while (st >= p->kernels[k]->n_stages) {
			k++;
			st = 0;
		}
		assert_int_equal(lt[i].kernel_index, k);
		assert_string_equal(lt[i].kernel, p->kernels[k]->name);
		assert_int_equal(lt[i].stage, st);
		st += mpcc_cuda_stage_span(p->kernels[k], st);
		assert_true(lt[i].grid >= 1 && lt[i].block >= 1 && lt[i].block <= 1024);
		if (!(lt[i].min_ms > 0 && lt[i].min_ms <= lt[i].median_ms &&
		      lt[i].median_ms <= lt[i].max_ms))
			fail_msg("launch %d (%s_s%d): min %g median %g max %g ms", i, lt[i].kernel,
			         lt[i].stage, lt[i].min_ms, lt[i].median_ms, lt[i].max_ms);
	}
	mpcc_free(lt);
	assert_int_equal(fake.stats()->graph_launches, 1);
	assert_int_equal(fake.stats()->launches - launches, runs * n);
	assert_int_equal(fake.stats()->event_records, 2 * runs * n);
	assert_int_equal(fake.stats()->syncs - syncs, runs);
	assert_int_equal(fake.stats()->live_events, 2 * n); /* kept for the next profile */
	for (int i = 0; i < mpcc_plan_n_outputs(p); i++) {
		mpcc_tensor a, b;
		double num = 0, den = 0;
		mpcc_session_output(cpu, i, &a);
		mpcc_session_output(gpu, i, &b);
		for (size_t j = 0; j < a.nbytes / 4; j++) {
			double x = ((float *)a.data)[j], y = ((float *)b.data)[j];
			num += (x - y) * (x - y);
			den += x * x;
		}
		if (!(sqrt(num / (den > 0 ? den : 1)) <= 1e-5))
			fail_msg("profiled run: %s differs from cpu", a.name);
	}
	run_model(cx, gpu, p, "transformer");
	assert_int_equal(fake.stats()->graph_launches, 2);

	/* the cpu backend: one record per kernel, host clock */
	if (mpcc_session_profile(cpu, 2, &lt, &n) != MPCC_OK)
		fail_msg("%s", mpcc_context_last_error(cx));
	assert_int_equal(n, p->n_kernels);
	for (int k = 0; k < n; k++) {
		assert_string_equal(lt[k].kernel, p->kernels[k]->name);
		assert_int_equal(lt[k].stage, -1);
		assert_int_equal(lt[k].grid, 0);
		assert_true(lt[k].min_ms >= 0 && lt[k].min_ms <= lt[k].max_ms);
	}
	mpcc_free(lt);
	assert_int_equal(mpcc_session_profile(cpu, 0, &lt, &n), MPCC_ERR_INVALID);
	assert_null(lt);
	assert_string_equal(mpcc_context_last_error(cx), "profile: runs must be >= 1, got 0");
	mpcc_session_destroy(cpu);
	mpcc_session_destroy(gpu);
	no_leaks();
	mpcc_plan_destroy(p);
	mpcc_context_destroy(cx);
}

/*
 * Each event call failing is one line naming it; the session stays usable
 * and nothing leaks. Then every driver call of a profile fails in turn.
 */
static void
a_failing_event_call_is_named_and_leaks_nothing(void **state)
{
	static const char *calls[] = {"cuEventCreate", "cuEventRecord", "cuEventElapsedTime_v2"};
	mpcc_context *cx;
	mpcc_launch_time *lt;
	int n, n_failed = 0;
	char want[160];

	assert_int_equal(mpcc_context_create(&cx), MPCC_OK);
	mpcc_plan *p = load(cx, mlp_plan, mlp_plan_size);
	give_kernels(p);
	for (size_t i = 0; i < sizeof(calls) / sizeof(calls[0]); i++) {
		fake.reset();
		mpcc_session *s = cuda_session(cx, p);
		assert_int_equal(mpcc_session_set_input(s, "x", MPCC_DTYPE_F32, mlp_x.rank,
		                                        mlp_x.dims, mlp_x.data, mlp_x.nbytes),
		                 MPCC_OK);
		fake.set_fail(calls[i], 0, ERR_OUT_OF_MEMORY);
		assert_int_equal(mpcc_session_profile(s, 2, &lt, &n), MPCC_ERR_BACKEND);
		assert_null(lt);
		assert_int_equal(n, 0);
		snprintf(want, sizeof(want), "cuda backend: %s failed: CUDA_ERROR_OUT_OF_MEMORY (2)",
		         calls[i]);
		assert_string_equal(mpcc_context_last_error(cx), want);
		fake.set_fail(NULL, 0, 0);
		agrees_with_cpu(cx, p, s, 1.0f);
		if (mpcc_session_profile(s, 1, &lt, &n) != MPCC_OK)
			fail_msg("after %s: %s", calls[i], mpcc_context_last_error(cx));
		mpcc_free(lt);
		mpcc_session_destroy(s);
		no_leaks();
	}
	for (int nth = 1;; nth++) {
		fake.reset();
		mpcc_session *s = cuda_session(cx, p);
		assert_int_equal(mpcc_session_set_input(s, "x", MPCC_DTYPE_F32, mlp_x.rank,
		                                        mlp_x.dims, mlp_x.data, mlp_x.nbytes),
		                 MPCC_OK);
		fake.set_fail(NULL, nth, ERR_OUT_OF_MEMORY);
		mpcc_status st = mpcc_session_profile(s, 2, &lt, &n);
		int calls_made = fake.stats()->calls;
		if (st != MPCC_OK) {
			const char *msg = mpcc_context_last_error(cx);
			if (strncmp(msg, "cuda backend: ", 14) != 0 || strchr(msg, '\n') ||
			    !strstr(msg, " failed") || !strstr(msg, "CUDA_ERROR_OUT_OF_MEMORY (2)"))
				fail_msg("profile call %d: message '%s'", nth, msg);
			assert_null(lt);
			n_failed++;
		} else {
			mpcc_free(lt);
		}
		fake.set_fail(NULL, 0, 0);
		mpcc_session_destroy(s);
		no_leaks();
		if (calls_made < nth)
			break;
	}
	print_message("profile fault injection: %d calls failed it\n", n_failed);
	assert_true(n_failed > 5);
	mpcc_plan_destroy(p);
	mpcc_context_destroy(cx);
}

/*
 * A trainer on cuda: its state buffers are rebound (swapped) every step,
 * so each run must read the inputs and write the outputs where they are
 * now. Five SGD steps give the cpu trainer's losses and final state.
 */
static void
a_trainer_steps_on_cuda_as_on_cpu(void **state)
{
	mpcc_compile_options o;
	mpcc_train_options t;
	mpcc_context *cx;
	mpcc_trainer *tr[2];
	char path[128];
	void *buf;
	size_t size;
	mpcc_diag d;

	mpcc_compile_options_init(&o);
	mpcc_train_options_init(&t);
	o.precision = MPCC_PRECISION_FP32;
	o.train = &t;
	t.label = "y";
	t.optimizer = MPCC_OPTIMIZER_MOMENTUM;
	t.lr = 0.1;
	assert_int_equal(mpcc_context_create(&cx), MPCC_OK);
	snprintf(path, sizeof(path), "%s/step.plan", tmp);
	if (mpcc_compile_file(cx, "tests/models/mlp/model.onnx", &o, path) != MPCC_OK)
		fail_msg("%s", mpcc_context_last_error(cx));
	mpcc_diag_init(&d);
	assert_int_equal(mpcc_read_whole_file(path, &buf, &size, &d), MPCC_OK);
	mpcc_plan *p = load(cx, buf, size);
	free(buf);
	give_kernels(p);
	fake.reset();
	assert_int_equal(mpcc_trainer_create(cx, p, "cpu", &tr[0]), MPCC_OK);
	if (mpcc_trainer_create(cx, p, "cuda", &tr[1]) != MPCC_OK)
		fail_msg("%s", mpcc_context_last_error(cx));
	int64_t labels[4] = {3, 1, 4, 1};
	mpcc_tensor in[2] = {mlp_x, {"y", MPCC_DTYPE_I64, 1, {4}, labels, sizeof(labels)}};
	in[0].name = "x";
	double first = 0;
	for (int step = 0; step < 5; step++) {
		mpcc_train_result r[2];
		for (int i = 0; i < 2; i++)
			if (mpcc_trainer_step(tr[i], in, 2, &r[i]) != MPCC_OK)
				fail_msg("%s", mpcc_context_last_error(cx));
		if (!(fabs(r[0].loss - r[1].loss) <= 1e-6 * fabs(r[0].loss)))
			fail_msg("step %d: loss %.9g on cpu, %.9g on cuda", step, r[0].loss,
			         r[1].loss);
		assert_true(r[0].loss > 0);
		if (step == 0)
			first = r[0].loss;
		else if (step == 4)
			assert_true(r[0].loss < first); /* the state did move */
	}
	for (int i = 0; i < mpcc_trainer_n_state(tr[0]); i++) {
		const mpcc_tensor *a, *b;
		assert_int_equal(mpcc_trainer_state(tr[0], i, &a), MPCC_OK);
		assert_int_equal(mpcc_trainer_state(tr[1], i, &b), MPCC_OK);
		assert_int_equal(a->nbytes, b->nbytes);
		if (a->dtype != MPCC_DTYPE_F32)
			continue;
		for (size_t j = 0; j < a->nbytes / 4; j++) {
			float x = ((const float *)a->data)[j], y = ((const float *)b->data)[j];
			if (!(fabsf(x - y) <= 1e-5f * (1 + fabsf(x))))
				fail_msg("state '%s'[%zu]: %g on cpu, %g on cuda", a->name, j, x,
				         y);
		}
	}
	assert_int_equal(fake.stats()->graph_launches, 5);
	mpcc_trainer_destroy(tr[0]);
	mpcc_trainer_destroy(tr[1]);
	no_leaks();
	mpcc_plan_destroy(p);
	mpcc_context_destroy(cx);
}

static void
no_device_is_one_line_and_leaks_nothing(void **state)
{
	mpcc_context *cx;
	mpcc_session *s;

	fake.reset();
	fake.set_device(90, 0, 90);
	assert_int_equal(mpcc_context_create(&cx), MPCC_OK);
	mpcc_plan *p = load(cx, mlp_plan, mlp_plan_size);
	assert_int_equal(mpcc_session_create(cx, p, "cuda", &s), MPCC_ERR_UNSUPPORTED);
	assert_null(s);
	assert_string_equal(mpcc_context_last_error(cx), "cuda backend: no CUDA device found");
	no_leaks();
	mpcc_plan_destroy(p);
	mpcc_context_destroy(cx);
}

/* ---------------------------------------------------------------- setup */

static int
setup(void **state)
{
	char path[128];
	mpcc_diag d;

	snprintf(tmp, sizeof(tmp), "/tmp/mpcc_fake_XXXXXX");
	if (!mkdtemp(tmp))
		return -1;
	snprintf(path, sizeof(path), "%s/cache", tmp);
	setenv("MPCC_CACHE_DIR", path, 1);
	compile_plan("tests/models/mlp/model.onnx", "default", &mlp_plan, &mlp_plan_size);
	compile_plan("tests/models/mlp/model.onnx", NULL, &bare_plan, &bare_plan_size);
	mpcc_diag_init(&d);
	return mpcc_npy_read_file("tests/models/mlp/input_x.npy", &mlp_x, &d) == MPCC_OK ? 0 : -1;
}

static int
teardown(void **state)
{
	char cmd[128];

	free(mlp_plan);
	free(bare_plan);
	free(mlp_x.data);
	fake.set_runner(NULL, NULL);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmp);
	return system(cmd) == 0 ? 0 : -1;
}

static bool
find_fake(void)
{
	fake.lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
	if (!fake.lib)
		return false;
	*(void **)&fake.reset = dlsym(fake.lib, "fakecuda_reset");
	*(void **)&fake.set_device = dlsym(fake.lib, "fakecuda_set_device");
	*(void **)&fake.set_fail = dlsym(fake.lib, "fakecuda_set_fail");
	*(void **)&fake.set_runner = dlsym(fake.lib, "fakecuda_set_runner");
	*(void **)&fake.stats = dlsym(fake.lib, "fakecuda_stats_get");
	return fake.reset && fake.set_device && fake.set_fail && fake.set_runner && fake.stats;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(the_plan_stores_the_emitted_source_and_three_binaries),
	    cmocka_unit_test(default_binaries_are_best_effort_and_a_list_is_not),
	    cmocka_unit_test(runs_replay_one_graph_with_one_sync_and_agree_with_cpu),
	    cmocka_unit_test(each_architecture_gets_the_binary_that_runs_on_it),
	    cmocka_unit_test(an_unfit_device_compiles_with_nvrtc_once_then_hits_the_cache),
	    cmocka_unit_test(a_plan_without_binaries_runs_through_the_cache),
	    cmocka_unit_test(binaries_another_emitter_made_are_not_trusted),
	    cmocka_unit_test(ptx_the_driver_refuses_falls_back_to_nvrtc),
	    cmocka_unit_test(graph_failures_fall_back_to_launches_and_say_so),
	    cmocka_unit_test(a_failing_launch_names_the_kernel),
	    cmocka_unit_test(every_failing_driver_call_is_named_and_leaks_nothing),
	    cmocka_unit_test(no_device_is_one_line_and_leaks_nothing),
	    cmocka_unit_test(a_trainer_steps_on_cuda_as_on_cpu),
	    cmocka_unit_test(every_model_test_agrees_with_cpu_through_the_fake),
	    cmocka_unit_test(a_profile_times_every_launch_in_schedule_order),
	    cmocka_unit_test(a_failing_event_call_is_named_and_leaks_nothing),
	};
	int rc;

	if (!find_fake()) {
		printf("test_cuda_fake: skipped: libcuda.so.1 is not tests/unit/fake_libcuda.c "
		       "(run through ctest, which sets LD_LIBRARY_PATH)\n");
		if (fake.lib)
			dlclose(fake.lib);
		return SKIP;
	}
	if (getenv("MPCC_TEST_FILTER")) /* e.g. to run one test under valgrind */
		cmocka_set_test_filter(getenv("MPCC_TEST_FILTER"));
	rc = cmocka_run_group_tests(tests, setup, teardown);
	dlclose(fake.lib);
	return rc;
}
