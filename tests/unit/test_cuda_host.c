/*
 * test_cuda_host.c - the CUDA emitter's numerics, checked without a GPU:
 * the CUDA C it prints for a kernel that exercises the contract's corners
 * (f16 and bf16 rounding and overflow, integer division by zero and by -1,
 * floor modulo, saturating float->int casts with NaN, NaN-propagating
 * min/max, shifts past the width, ARGMAX, an f16 accumulator) is compiled
 * as host C++ with g++ behind a small shim (CUDA qualifiers as no-ops, one
 * thread, f16 through _Float16), run, and compared bit for bit with the
 * kernel IR interpreter. What it cannot see: NVRTC's own code generation
 * and device libm; test_cuda_compile and test_cuda_run cover those.
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
#include <unistd.h>

#include "codegen/cuda/emit.h"

#define N 64
#define MAX_ARGS 16

static const char shim[] =
    "#include <math.h>\n#include <string.h>\n#include <stdint.h>\n"
    "#define MPCC_HOST_SHIM 1\n#define __global__\n#define __device__\n"
    "#define __forceinline__ inline\n#define __launch_bounds__(n)\n"
    "struct mpcc_dim3 { unsigned x, y, z; };\n"
    "static const mpcc_dim3 blockIdx = {0, 0, 0}, threadIdx = {0, 0, 0};\n"
    "static const mpcc_dim3 blockDim = {1, 1, 1}, gridDim = {1, 1, 1};\n"
    "static inline float __int_as_float(int i) { float f; memcpy(&f, &i, 4); return f; }\n"
    "static inline double __longlong_as_double(long long i)"
    " { double f; memcpy(&f, &i, 8); return f; }\n"
    "static inline unsigned short mpcc_f2h(float x)"
    " { _Float16 h = (_Float16)x; unsigned short u; memcpy(&u, &h, 2); return u; }\n"
    "static inline float mpcc_h2f(unsigned short u)"
    " { _Float16 h; memcpy(&h, &u, 2); return (float)h; }\n"
    "static inline unsigned short mpcc_f2bf(float x) { uint32_t u; memcpy(&u, &x, 4);\n"
    "\tif ((u & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((u >> 16) | 0x40);\n"
    "\treturn (unsigned short)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16); }\n"
    "static inline float mpcc_bf2f(unsigned short h)"
    " { uint32_t u = (uint32_t)h << 16; float f; memcpy(&f, &u, 4); return f; }\n";

typedef void (*stage_fn)(void *, void *, void *, void *, void *, void *, void *, void *, void *,
                         void *, void *, void *, void *, void *, void *, void *);

/* The test kernel; buffer numbers are fixed so the test can fill inputs. */
enum { A, B, I, J, H, BF, Q, S, R, MN, MX, SH, AM, HS, NBUF };

static kir_kernel *
build_kernel(void)
{
	kir_kernel *k = kir_kernel_create("numerics");
	static const mpcc_dtype dt[NBUF] = {
	    MPCC_DTYPE_F32,  MPCC_DTYPE_F32, MPCC_DTYPE_I32, MPCC_DTYPE_I32, MPCC_DTYPE_F16,
	    MPCC_DTYPE_BF16, MPCC_DTYPE_I32, MPCC_DTYPE_I8,  MPCC_DTYPE_I32, MPCC_DTYPE_F32,
	    MPCC_DTYPE_F32,  MPCC_DTYPE_I32, MPCC_DTYPE_I64, MPCC_DTYPE_F16};
	int64_t n = N, rows = 8;
	kir_stage *st;

	for (int b = 0; b < NBUF; b++)
		kir_buf_add(k, dt[b], KIR_BUF_PARAM, b, b >= AM ? 8 : N);
	int32_t v = kir_var(k, 0);
	int32_t a = kir_load(k, A, v), bb = kir_load(k, B, v);
	int32_t i = kir_load(k, I, v), j = kir_load(k, J, v);
	int32_t a16 = kir_cast(k, MPCC_DTYPE_F16, a), b16 = kir_cast(k, MPCC_DTYPE_F16, bb);
	int32_t abf = kir_cast(k, MPCC_DTYPE_BF16, a), bbf = kir_cast(k, MPCC_DTYPE_BF16, bb);
	st = kir_stage_add(k, 1, &n, 0, NULL, KIR_RED_NONE, MPCC_DTYPE_UNDEF, -1);
	kir_stage_store(k, st, H, v, kir_binary(k, KIR_ADD, a16, b16));
	kir_stage_store(k, st, BF, v, kir_binary(k, KIR_MUL, abf, bbf));
	kir_stage_store(k, st, Q, v, kir_binary(k, KIR_DIV, i, j));
	kir_stage_store(
	    k, st, S, v,
	    kir_cast(k, MPCC_DTYPE_I8,
	             kir_binary(k, KIR_MUL, a, kir_const_f(k, MPCC_DTYPE_F32, 1000.0))));
	st = kir_stage_add(k, 1, &n, 0, NULL, KIR_RED_NONE, MPCC_DTYPE_UNDEF, -1);
	kir_stage_store(k, st, R, v, kir_binary(k, KIR_FLOORMOD, i, j));
	kir_stage_store(k, st, MN, v, kir_binary(k, KIR_MIN, a, bb));
	kir_stage_store(k, st, MX, v, kir_binary(k, KIR_MAX, a, bb));
	kir_stage_store(k, st, SH, v, kir_binary(k, KIR_SHL, i, j));
	/* per row of A viewed as 8x8: ARGMAX, and a sum folded in f16 */
	int32_t r = kir_var(k, 0), c = kir_var(k, 1);
	int32_t idx = kir_iadd(k, kir_imul(k, r, 8), c);
	int32_t x = kir_load(k, A, idx);
	st = kir_stage_add(k, 1, &rows, 1, &rows, KIR_RED_ARGMAX, MPCC_DTYPE_I64, x);
	kir_stage_store(k, st, AM, r, kir_acc(k, MPCC_DTYPE_I64));
	int32_t x16 = kir_cast(k, MPCC_DTYPE_F16, kir_load(k, B, idx));
	st = kir_stage_add(k, 1, &rows, 1, &rows, KIR_RED_SUM, MPCC_DTYPE_F16, x16);
	kir_stage_store(k, st, HS, r, kir_acc(k, MPCC_DTYPE_F16));
	return k;
}

static void
fill(void **bufs)
{
	static const float specials[] = {NAN,      INFINITY, -INFINITY, -0.0f,         65519.0f,
	                                 65520.0f, 1e-7f,    3e-8f,     2.5f,          -2.5f,
	                                 1e30f,    -1e30f,   0.0001f,   1.00048828125f};
	static const int32_t ispecial[] = {0, -1, 1, INT32_MIN, INT32_MAX, 31, 32, 40, -7, 7};
	float *a = bufs[A], *b = bufs[B];
	int32_t *i = bufs[I], *j = bufs[J];

	srand(7);
	for (int n = 0; n < N; n++) {
		a[n] = n < 14 ? specials[n] : (float)(rand() % 20001 - 10000) / 37.0f;
		b[n] = n % 3 == 0 ? specials[(n / 3) % 14] : (float)(rand() % 2001 - 1000) / 7.0f;
		i[n] = n < 10 ? ispecial[n] : rand() % 2001 - 1000;
		j[n] = ispecial[(n * 7) % 10];
		if (n % 5 == 4)
			j[n] = rand() % 41 - 5;
	}
}

static bool
same_bits(mpcc_dtype t, const void *x, const void *y)
{
	if (t == MPCC_DTYPE_F32) {
		float a, b;
		memcpy(&a, x, 4);
		memcpy(&b, y, 4);
		return (isnan(a) && isnan(b)) || memcmp(x, y, 4) == 0;
	}
	if (t == MPCC_DTYPE_F16 || t == MPCC_DTYPE_BF16) {
		uint16_t a, b, exp = t == MPCC_DTYPE_F16 ? 0x7c00 : 0x7f80;
		memcpy(&a, x, 2);
		memcpy(&b, y, 2);
		bool na = (a & exp) == exp && (a & (uint16_t) ~(exp | 0x8000));
		bool nb = (b & exp) == exp && (b & (uint16_t) ~(exp | 0x8000));
		return (na && nb) || a == b;
	}
	return memcmp(x, y, mpcc_dtype_size(t)) == 0;
}

static void
cuda_source_matches_interpreter_bit_for_bit(void **state)
{
	kir_kernel *k = build_kernel();
	void *ref[NBUF], *got[NBUF];
	char dir[] = "/tmp/mpcc_cuda_host_XXXXXX", path[128], cmd[512], *src = NULL;
	mpcc_diag d;
	int mismatches = 0;

	(void)state;
	mpcc_diag_init(&d);
	assert_true(kir_kernel_ok(k));
	if (kir_validate(k, &d))
		fail_msg("kernel: %s", d.msg);
	for (int b = 0; b < NBUF; b++) {
		size_t bytes = (size_t)k->bufs[b].n_elems * mpcc_dtype_size(k->bufs[b].dtype);
		ref[b] = calloc(1, bytes);
		got[b] = calloc(1, bytes);
		assert_non_null(ref[b]);
		assert_non_null(got[b]);
	}
	fill(ref);
	fill(got);
	assert_int_equal(kir_interpret(k, ref, &d), MPCC_OK);
	assert_int_equal(mpcc_cuda_emit(&k, 1, true, &src, &d), MPCC_OK);

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/k.cpp", dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(shim, f);
	fputs(src, f);
	fclose(f);
	snprintf(cmd, sizeof(cmd),
	         "g++ -std=c++17 -O1 -ffp-contract=off -fno-fast-math -shared -fPIC -w "
	         "-o %s/k.so %s",
	         dir, path);
	if (system(cmd) != 0)
		fail_msg("g++ could not compile the emitted CUDA source (kept in %s)", path);
	snprintf(path, sizeof(path), "%s/k.so", dir);
	void *so = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	assert_non_null(so);
	for (int s = 0; s < k->n_stages; s += mpcc_cuda_stage_span(k, s)) {
		char name[96];
		void *a[MAX_ARGS] = {0};
		stage_fn fn;
		assert_true(mpcc_cuda_stage_name(name, sizeof(name), k, s));
		*(void **)&fn = dlsym(so, name);
		assert_non_null(fn);
		memcpy(a, got, sizeof(got));
		fn(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11], a[12],
		   a[13], a[14], a[15]);
	}
	for (int b = H; b < NBUF; b++) {
		mpcc_dtype t = k->bufs[b].dtype;
		size_t es = mpcc_dtype_size(t);
		for (int64_t n = 0; n < k->bufs[b].n_elems; n++) {
			const char *x = (const char *)ref[b] + n * es,
			           *y = (const char *)got[b] + n * es;
			if (!same_bits(t, x, y) && mismatches++ < 10)
				print_message("buffer %d element %lld differs\n", b, (long long)n);
		}
	}
	dlclose(so);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
	for (int b = 0; b < NBUF; b++) {
		free(ref[b]);
		free(got[b]);
	}
	free(src);
	kir_kernel_destroy(k);
	assert_int_equal(mismatches, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(cuda_source_matches_interpreter_bit_for_bit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
