/*
 * test_cuda_compile.c - every kernel mpcc lowers compiles with NVRTC for the
 * GPUs we target, with no error and no warning; no GPU needed.
 *
 * The corpus is every ONNX backend conformance case that passes on the CPU
 * (tests/conformance_expected.txt) plus the model tests (tests/models). Each
 * is compiled to kernel IR exactly as runtime/api.c does, its kernels are
 * renamed with a per-case prefix and printed by the CUDA emitter, and the
 * sources are batched into a few large translation units (NVRTC's fixed
 * cost per program is high) compiled for sm_80 and sm_90 in two child
 * processes. Cases whose compilation needs inputs frozen at compile time
 * (shape-deciding inputs: the conformance runner's retry) are counted and
 * skipped. The model kernels are compiled once more per architecture with
 * ptxas's resource report: registers and spill bytes per stage function are
 * written to cuda_compile_sm<N>.log in the build folder, and any spill fails
 * the test.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "codegen/cuda/emit.h"
#include "codegen/cuda/nvrtc.h"
#include "codegen/lower.h"
#include "frontend/onnx.h"
#include "passes/passes.h"

#define DATA "/usr/share/libonnx-testdata/data"
#define BATCH_BYTES (3u << 20)
#define MAX_UNITS 256

static const char *models[] = {"mlp", "cnn", "lstm", "transformer"};

typedef struct unit {
	char *src; /* kernels only; the prelude is added at compile time */
	size_t len;
	char label[64];
	int n_kernels;
} unit;

static char out_dir[512] = "."; /* the test binary's folder: the build folder */
static unit units[MAX_UNITS];
static int n_units;
static unit model_units[4];

/*
 * Lowers the model at path and appends its kernels' CUDA source to u, each
 * kernel renamed c<id>_<k>_<name> so cases can share a unit. Returns 1 when
 * the case does not compile on the CPU path (skipped), 0 on success; an
 * emitter error fails the test.
 */
static int
emit_case(const char *path, int id, unit *u)
{
	mpcc_diag d;
	mpcc_graph *g = NULL;
	mpcc_compile_options opts;
	mpcc_pass_ctx pcx = {.d = &d, .opts = &opts};
	mpcc_lower lx;
	mpcc_status st;
	char *src = NULL;

	mpcc_diag_init(&d);
	mpcc_compile_options_init(&opts);
	opts.precision = MPCC_PRECISION_FP32; /* exact f32 results */
	if (mpcc_onnx_read_file(path, &g, &d) != MPCC_OK)
		return 1;
	st = mpcc_run_pipeline(g, &pcx);
	if (st != MPCC_OK) {
		mpcc_graph_destroy(g);
		return 1;
	}
	mpcc_lower_init(&lx, g, &d);
	st = mpcc_lower_graph(&lx);
	if (st == MPCC_OK) {
		for (int k = 0; k < lx.n_kernels; k++) {
			char name[64];
			snprintf(name, sizeof(name), "c%d_%d_%s", id, k, lx.kernels[k]->name);
			memcpy(lx.kernels[k]->name, name, sizeof(name));
		}
		mpcc_status est = mpcc_cuda_emit(lx.kernels, lx.n_kernels, false, &src, &d);
		if (est != MPCC_OK)
			fail_msg("%s: cuda emitter: %s", path, d.msg);
		size_t n = strlen(src);
		char *p = realloc(u->src, u->len + n + 1);
		assert_non_null(p);
		memcpy(p + u->len, src, n + 1);
		u->src = p;
		u->len += n;
		u->n_kernels += lx.n_kernels;
		free(src);
	}
	mpcc_lower_fini(&lx);
	mpcc_graph_destroy(g);
	return st == MPCC_OK ? 0 : 1;
}

static char *
with_prelude(const unit *u)
{
	char *pre = NULL, *all;
	mpcc_diag d;

	mpcc_diag_init(&d);
	assert_int_equal(mpcc_cuda_emit(NULL, 0, true, &pre, &d), MPCC_OK);
	all = malloc(strlen(pre) + u->len + 1);
	assert_non_null(all);
	strcpy(all, pre);
	memcpy(all + strlen(pre), u->src ? u->src : "", u->len + 1);
	free(pre);
	return all;
}

/* True when the log holds nothing but ptxas's info lines (no warning, no
 * error); other lines are copied to report. */
static bool
log_is_clean(const char *log, FILE *report)
{
	bool clean = true;

	for (const char *p = log; *p;) {
		const char *e = strchr(p, '\n');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		bool blank = true;
		for (size_t i = 0; i < n; i++)
			blank &= p[i] == ' ' || p[i] == '\t' || p[i] == '\r';
		bool info = strncmp(p, "ptxas", 5) == 0 && !memmem(p, n, "warning", 7) &&
		            !memmem(p, n, "error", 5);
		if (!blank && !info) {
			clean = false;
			fprintf(report, "  log: %.*s\n", (int)n, p);
		}
		p += n + (e ? 1 : 0);
	}
	return clean;
}

/*
 * Parses ptxas -v output: "Compiling entry function 'X' for 'sm_90'",
 * "N bytes stack frame, S bytes spill stores, L bytes spill loads",
 * "Used R registers". Returns the total spill bytes; writes one line per
 * function to report.
 */
static long
report_resources(const char *log, const char *model, int sm, FILE *report, int *max_regs)
{
	char fn[256] = "?";
	long spill_total = 0, st = 0, ld = 0;

	for (const char *p = log; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
		const char *q;
		int regs;
		if ((q = strstr(p, "entry function '")) &&
		    q < (strchr(p, '\n') ? strchr(p, '\n') : q + 1)) {
			sscanf(q + 16, "%255[^']", fn);
		} else if ((q = strstr(p, "bytes spill stores")) &&
		           q < (strchr(p, '\n') ? strchr(p, '\n') : q + 1)) {
			const char *c = strstr(p, "stack frame, ");
			if (c)
				sscanf(c + 13, "%ld bytes spill stores, %ld bytes spill loads", &st,
				       &ld);
		} else if ((q = strstr(p, "Used ")) &&
		           q < (strchr(p, '\n') ? strchr(p, '\n') : q + 1) &&
		           sscanf(q, "Used %d registers", &regs) == 1) {
			fprintf(report, "%s sm_%d %s: %d registers, %ld+%ld bytes spill\n", model,
			        sm, fn, regs, st, ld);
			if (regs > *max_regs)
				*max_regs = regs;
			spill_total += st + ld;
			st = ld = 0;
		}
	}
	return spill_total;
}

/* One architecture, in a child process: returns the number of failures. */
static int
compile_all(int sm)
{
	char path[600];
	int failures = 0, n_ok = 0;

	snprintf(path, sizeof(path), "%s/cuda_compile_sm%d.log", out_dir, sm);
	FILE *report = fopen(path, "w");
	if (!report)
		return 1;
	for (int i = 0; i < n_units; i++) {
		char *src = with_prelude(&units[i]);
		mpcc_nvrtc_result r;
		mpcc_diag d;
		mpcc_diag_init(&d);
		mpcc_status st = mpcc_nvrtc_compile(src, units[i].label, sm, false, false, &r, &d);
		if (st != MPCC_OK || !log_is_clean(r.log ? r.log : "", report)) {
			fprintf(report, "FAIL %s sm_%d: %s\n%s\n", units[i].label, sm,
			        st ? d.msg : "warnings", r.log ? r.log : "");
			failures++;
		} else {
			n_ok++;
		}
		mpcc_nvrtc_result_fini(&r);
		free(src);
	}
	for (int m = 0; m < 4; m++) {
		char *src = with_prelude(&model_units[m]);
		mpcc_nvrtc_result r;
		mpcc_diag d;
		int max_regs = 0;
		mpcc_diag_init(&d);
		mpcc_status st = mpcc_nvrtc_compile(src, models[m], sm, false, true, &r, &d);
		if (st != MPCC_OK || !log_is_clean(r.log ? r.log : "", report)) {
			fprintf(report, "FAIL model %s sm_%d: %s\n", models[m], sm,
			        st ? d.msg : "warnings");
			failures++;
		} else {
			long spill = report_resources(r.log, models[m], sm, report, &max_regs);
			printf("sm_%d %s: %d kernels, max %d registers, %ld bytes spilled\n", sm,
			       models[m], model_units[m].n_kernels, max_regs, spill);
			if (spill > 0) {
				fprintf(report, "FAIL model %s sm_%d: %ld bytes spilled\n",
				        models[m], sm, spill);
				failures++;
			}
		}
		mpcc_nvrtc_result_fini(&r);
		free(src);
	}
	printf("sm_%d: %d of %d units compiled clean, %d failures (details in %s)\n", sm, n_ok,
	       n_units, failures, path);
	fclose(report);
	return failures;
}

static void
every_kernel_compiles_for_sm80_and_sm90(void **state)
{
	FILE *f = fopen("tests/conformance_expected.txt", "r");
	char line[512], path[700];
	int n_cases = 0, n_skipped = 0, n_kernels = 0, id = 0;
	pid_t pid[2];
	int sms[2] = {80, 90}, failures = 0;

	(void)state;
	assert_non_null(f);
	if (access(DATA, R_OK) != 0)
		fail_msg("%s missing: run 'make deps' (libonnx-testdata)", DATA);
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\r\n")] = 0;
		if (!line[0] || line[0] == '#')
			continue;
		if (n_units == 0 || units[n_units - 1].len > BATCH_BYTES) {
			assert_true(n_units < MAX_UNITS);
			snprintf(units[n_units].label, sizeof(units[0].label),
			         "conformance_batch%d", n_units);
			n_units++;
		}
		snprintf(path, sizeof(path), "%s/%s/model.onnx", DATA, line);
		n_cases++;
		n_skipped += emit_case(path, id++, &units[n_units - 1]);
	}
	fclose(f);
	for (int m = 0; m < 4; m++) {
		snprintf(path, sizeof(path), "tests/models/%s/model.onnx", models[m]);
		snprintf(model_units[m].label, sizeof(model_units[m].label), "%s", models[m]);
		assert_int_equal(emit_case(path, id++, &model_units[m]), 0);
	}
	for (int i = 0; i < n_units; i++)
		n_kernels += units[i].n_kernels;
	printf("%d conformance cases: %d emitted (%d kernels in %d units), %d skipped (need "
	       "frozen inputs)\n",
	       n_cases, n_cases - n_skipped, n_kernels, n_units, n_skipped);
	fflush(stdout);
	for (int i = 0; i < 2; i++) {
		pid[i] = fork();
		assert_true(pid[i] >= 0);
		if (pid[i] == 0) {
			int n = compile_all(sms[i]);
			fflush(stdout);
			_exit(n > 100 ? 100 : n);
		}
	}
	for (int i = 0; i < 2; i++) {
		int status = 0;
		assert_int_equal(waitpid(pid[i], &status, 0), pid[i]);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			printf("sm_%d: failed (status %d)\n", sms[i], status);
			failures++;
		}
	}
	for (int i = 0; i < n_units; i++)
		free(units[i].src);
	for (int m = 0; m < 4; m++)
		free(model_units[m].src);
	assert_int_equal(failures, 0);
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(every_kernel_compiles_for_sm80_and_sm90),
	};
	char v[64];
	const char *slash = argc > 0 ? strrchr(argv[0], '/') : NULL;

	if (slash)
		snprintf(out_dir, sizeof(out_dir), "%.*s", (int)(slash - argv[0]), argv[0]);
	mpcc_nvrtc_version(v, sizeof(v));
	printf("%s\n", v);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
