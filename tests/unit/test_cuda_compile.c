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
 * skipped. The model kernels, in fp32, fp16 and bf16 plans (so the
 * tensor-core kernels are among them), and the matrix cases of
 * tests/unit/matrix_cases.h (MatMul 256x512x384, batched MatMul, Gemm with
 * transB, bias and Relu, padded strided Conv, ...) in the same three
 * precisions, once with the tiles the emitter chooses and once per tile
 * variant forced, are compiled once more per architecture with ptxas's
 * resource report: registers and spill bytes per stage function are written
 * to cuda_compile_sm<N>.log in the build folder, with the matrix variant
 * (kind, dtype, tile, operand forms) of each matrix stage and a summary per
 * variant, and any spill fails the test. Every kernel is lowered and fused
 * as runtime/api.c does, so the fused epilogues are what gets compiled.
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
#include "codegen/cuda/matrix.h"
#include "codegen/cuda/nvrtc.h"
#include "codegen/lower.h"
#include "frontend/onnx.h"
#include "passes/passes.h"
#include "tests/unit/matrix_cases.h"

#define DATA "/usr/share/libonnx-testdata/data"
#define BATCH_BYTES (3u << 20)
#define MAX_UNITS 256
#define MAX_VERBOSE 64
#define MAX_MATRIX 4096

static const char *models[] = {"mlp", "cnn", "lstm", "transformer"};
static const mpcc_precision precisions[] = {MPCC_PRECISION_FP32, MPCC_PRECISION_FP16,
                                            MPCC_PRECISION_BF16};
static const char *const precision_names[] = {"fp32", "fp16", "bf16"};

typedef struct unit {
	char *src; /* kernels only; the prelude is added at compile time */
	size_t len;
	char label[64];
	int n_kernels;
} unit;

/* A matrix stage as emitted: its function's name and plan. */
typedef struct matrix_fn {
	char name[96];
	char variant[48]; /* "mma bf16 128x128x32": the summary's key */
	char desc[160];   /* with the operand forms */
} matrix_fn;

static char out_dir[512] = "."; /* the test binary's folder: the build folder */
static unit units[MAX_UNITS];
static int n_units;
/* Compiled with ptxas's report, spills failing: models and matrix cases. */
static unit verbose_units[MAX_VERBOSE];
static int n_verbose;
static matrix_fn matrix_fns[MAX_MATRIX];
static int n_matrix_fns;

/* Launches by path (mpcc_cuda_stage_describe's wording), chosen tiles only. */
enum { N_PATHS = 7 };
static const char *const path_prefix[N_PATHS] = {
    "tiled matrix",  "row kernel", "cooperative", "vectorised", "elementwise",
    "sequential",    "" /* serial and anything else */};
static int n_path[N_PATHS], n_launch_stages;

/*
 * Appends the CUDA source of lx's kernels to u, each kernel renamed
 * c<id>_<k>_<name> so cases can share a unit, matrix stages with tile
 * `variant` (-1: chosen) and recorded in matrix_fns. An emitter error
 * fails the test.
 */
static void
emit_kernels(mpcc_lower *lx, int id, int variant, unit *u, const char *what)
{
	mpcc_diag d;
	char *src = NULL;

	mpcc_diag_init(&d);
	for (int k = 0; k < lx->n_kernels; k++) {
		kir_kernel *kk = lx->kernels[k];
		char name[64];

		snprintf(name, sizeof(name), "c%d_%d_%s", id, k, kk->name);
		memcpy(kk->name, name, sizeof(name));
		for (int s = 0; s < kk->n_stages; s++) {
			mpcc_cuda_matrix m;
			matrix_fn *f = &matrix_fns[n_matrix_fns];

			if (!mpcc_cuda_matrix_plan(kk, s, variant, &m))
				continue;
			assert_true(n_matrix_fns < MAX_MATRIX);
			assert_true(mpcc_cuda_stage_name(f->name, sizeof(f->name), kk, s));
			mpcc_cuda_matrix_describe(&m, f->desc, sizeof(f->desc));
			snprintf(f->variant, sizeof(f->variant), "%s %s %dx%dx%d",
			         m.kind == MPCC_CUDA_MX_MMA ? "mma" : "simt", mpcc_dtype_name(m.dtype),
			         m.bm, m.bn, m.bk);
			n_matrix_fns++;
		}
	}
	for (int k = 0; variant < 0 && k < lx->n_kernels; k++) {
		const kir_kernel *kk = lx->kernels[k];

		for (int s = 0; s < kk->n_stages; s += mpcc_cuda_stage_span(kk, s)) {
			char desc[400];
			int i;

			mpcc_cuda_stage_describe(kk, s, desc, sizeof(desc));
			for (i = 0; i < N_PATHS - 1; i++)
				if (strncmp(desc, path_prefix[i], strlen(path_prefix[i])) == 0)
					break;
			n_path[i]++;
			n_launch_stages += mpcc_cuda_stage_span(kk, s);
		}
	}
	if (mpcc_cuda_emit_variant(lx->kernels, lx->n_kernels, false, variant, &src, &d) != MPCC_OK)
		fail_msg("%s: cuda emitter: %s", what, d.msg);
	size_t n = strlen(src);
	char *p = realloc(u->src, u->len + n + 1);
	assert_non_null(p);
	memcpy(p + u->len, src, n + 1);
	u->src = p;
	u->len += n;
	u->n_kernels += lx->n_kernels;
	free(src);
}

/*
 * Lowers and fuses graph g (taken over) in precision p as runtime/api.c
 * does and appends its kernels to u. Returns 1 when the case does not
 * compile on the CPU path (skipped), 0 on success.
 */
static int
emit_graph(mpcc_graph *g, mpcc_precision p, int id, int variant, unit *u, const char *what)
{
	mpcc_diag d;
	mpcc_lower lx;
	mpcc_status st;

	mpcc_diag_init(&d);
	st = mx_lower(g, p, &lx, &d);
	if (st == MPCC_OK)
		emit_kernels(&lx, id, variant, u, what);
	mpcc_lower_fini(&lx);
	mpcc_graph_destroy(g);
	return st == MPCC_OK ? 0 : 1;
}

/* The ONNX model at path, as emit_graph; 1 when it cannot be read. */
static int
emit_case(const char *path, mpcc_precision p, int id, int variant, unit *u)
{
	mpcc_diag d;
	mpcc_graph *g = NULL;

	mpcc_diag_init(&d);
	if (mpcc_onnx_read_file(path, &g, &d) != MPCC_OK)
		return 1;
	return emit_graph(g, p, id, variant, u, path);
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

/* One matrix variant's resources over every verbose unit of an architecture. */
typedef struct variant_stat {
	char variant[48];
	int n, max_regs;
	long spill;
} variant_stat;

static variant_stat vstats[64];
static int n_vstats;

static const matrix_fn *
find_matrix(const char *fn)
{
	for (int i = 0; i < n_matrix_fns; i++)
		if (strcmp(matrix_fns[i].name, fn) == 0)
			return &matrix_fns[i];
	return NULL;
}

static void
count_variant(const matrix_fn *f, int regs, long spill)
{
	int i = 0;

	while (i < n_vstats && strcmp(vstats[i].variant, f->variant) != 0)
		i++;
	if (i == n_vstats) {
		assert_true(n_vstats < 64);
		memset(&vstats[n_vstats], 0, sizeof(vstats[0]));
		snprintf(vstats[n_vstats++].variant, sizeof(vstats[0].variant), "%s", f->variant);
	}
	vstats[i].n++;
	vstats[i].max_regs = regs > vstats[i].max_regs ? regs : vstats[i].max_regs;
	vstats[i].spill += spill;
}

/*
 * Parses ptxas -v output: "Compiling entry function 'X' for 'sm_90'",
 * "N bytes stack frame, S bytes spill stores, L bytes spill loads",
 * "Used R registers". Returns the total spill bytes; writes one line per
 * function to report, with the matrix variant of matrix stages, which are
 * also counted in vstats.
 */
static long
report_resources(const char *log, const char *label, int sm, FILE *report, int *max_regs)
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
			const matrix_fn *f = find_matrix(fn);

			fprintf(report, "%s sm_%d %s: %d registers, %ld+%ld bytes spill%s%s\n", label,
			        sm, fn, regs, st, ld, f ? ", matrix " : "", f ? f->desc : "");
			if (f)
				count_variant(f, regs, st + ld);
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
	for (int m = 0; m < n_verbose; m++) {
		const unit *u = &verbose_units[m];
		char *src = with_prelude(u);
		mpcc_nvrtc_result r;
		mpcc_diag d;
		int max_regs = 0;
		mpcc_diag_init(&d);
		mpcc_status st = mpcc_nvrtc_compile(src, u->label, sm, false, true, &r, &d);
		if (st != MPCC_OK || !log_is_clean(r.log ? r.log : "", report)) {
			fprintf(report, "FAIL %s sm_%d: %s\n%s\n", u->label, sm,
			        st ? d.msg : "warnings", r.log ? r.log : "");
			failures++;
		} else {
			long spill = report_resources(r.log, u->label, sm, report, &max_regs);
			printf("sm_%d %s: %d kernels, max %d registers, %ld bytes spilled\n", sm,
			       u->label, u->n_kernels, max_regs, spill);
			if (spill > 0) {
				fprintf(report, "FAIL %s sm_%d: %ld bytes spilled\n", u->label, sm,
				        spill);
				failures++;
			}
		}
		mpcc_nvrtc_result_fini(&r);
		free(src);
	}
	fprintf(report, "matrix variants, sm_%d (stage functions, max registers, spill bytes):\n",
	        sm);
	for (int i = 0; i < n_vstats; i++) {
		fprintf(report, "  %-22s %4d functions, max %3d registers, %ld bytes spilled\n",
		        vstats[i].variant, vstats[i].n, vstats[i].max_regs, vstats[i].spill);
		printf("sm_%d matrix %-22s %4d functions, max %3d registers, %ld bytes spilled\n", sm,
		       vstats[i].variant, vstats[i].n, vstats[i].max_regs, vstats[i].spill);
	}
	printf("sm_%d: %d of %d units compiled clean, %d failures (details in %s)\n", sm, n_ok,
	       n_units, failures, path);
	fclose(report);
	return failures;
}

static unit *
new_verbose(const char *fmt, const char *a, const char *b, int v)
{
	unit *u = &verbose_units[n_verbose];

	assert_true(n_verbose < MAX_VERBOSE);
	n_verbose++;
	snprintf(u->label, sizeof(u->label), fmt, a, b, v);
	return u;
}

/*
 * The matrix cases in precision p into u with tile `variant`, checking
 * that the emitter took the matrix path of the kind the precision asks
 * for (tensor cores for f16 and bf16) in every case.
 */
static void
emit_matrix_cases(mpcc_precision p, int variant, unit *u, int *id)
{
	const char *want = p == MPCC_PRECISION_FP16   ? "mma f16"
	                   : p == MPCC_PRECISION_BF16 ? "mma bf16"
	                                              : "simt f32";

	for (int c = 0; c < MX_N_CASES; c++) {
		int before = n_matrix_fns, found = 0;

		assert_int_equal(emit_graph(mx_case_graph(&mx_cases[c]), p, (*id)++, variant, u,
		                            mx_cases[c].name),
		                 0);
		for (int i = before; i < n_matrix_fns; i++)
			found += strncmp(matrix_fns[i].variant, want, strlen(want)) == 0;
		if (!found)
			fail_msg("%s: no %s stage among its kernels", mx_cases[c].name, want);
	}
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
		n_skipped +=
		    emit_case(path, MPCC_PRECISION_FP32, id++, -1, &units[n_units - 1]);
	}
	fclose(f);
	for (int p = 0; p < 3; p++) {
		for (int m = 0; m < 4; m++) {
			unit *u = new_verbose("%s %s", models[m], precision_names[p], 0);
			snprintf(path, sizeof(path), "tests/models/%s/model.onnx", models[m]);
			assert_int_equal(emit_case(path, precisions[p], id++, -1, u), 0);
		}
		emit_matrix_cases(precisions[p],
		                  -1, new_verbose("matrix cases %s%s", precision_names[p], "", 0),
		                  &id);
		for (int v = 0; v < mpcc_cuda_matrix_variants(p == 0 ? MPCC_CUDA_MX_SIMT
		                                                     : MPCC_CUDA_MX_MMA);
		     v++)
			emit_matrix_cases(precisions[p], v,
			                  new_verbose("matrix cases %s%s tile %d", precision_names[p],
			                              "", v),
			                  &id);
	}
	for (int i = 0; i < n_units; i++)
		n_kernels += units[i].n_kernels;
	printf("%d conformance cases: %d emitted (%d kernels in %d units), %d skipped (need "
	       "frozen inputs); %d units with resource reports, %d matrix stages\n",
	       n_cases, n_cases - n_skipped, n_kernels, n_units, n_skipped, n_verbose,
	       n_matrix_fns);
	printf("launches (chosen tiles): %d matrix, %d row kernels, %d cooperative reductions, "
	       "%d vectorised, %d elementwise and %d sequential reductions a thread per point, %d "
	       "other; %d stages in all\n",
	       n_path[0], n_path[1], n_path[2], n_path[3], n_path[4], n_path[5], n_path[6],
	       n_launch_stages);
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
	for (int m = 0; m < n_verbose; m++)
		free(verbose_units[m].src);
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
