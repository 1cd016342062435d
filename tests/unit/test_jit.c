/*
 * test_jit.c - the LLVM JIT against the kernel IR interpreter, bit for bit.
 *
 * Each test builds a kernel with the kir builders, fills its PARAM buffers
 * with values chosen to hit edge cases (NaN, infinities, signed zeros,
 * subnormals, INT_MIN, -1, 0), runs it once through kir_interpret and once
 * through the JIT, and compares every written buffer. Floats compare by
 * bits, except that any two NaNs agree; transcendental functions may differ
 * by one ulp. The f16/bf16 conversions are also checked against the
 * library's mpcc_f32_to_f16 family over millions of f32 bit patterns.
 */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codegen/llvm/jit.h"
#include "runtime/backend.h"

#define MAX_BUFS 8

typedef struct run {
	kir_kernel *k;
	uint8_t *ref[MAX_BUFS];
	uint8_t *jit[MAX_BUFS];
	size_t bytes[MAX_BUFS];
} run;

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t
next(void) {
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static bool
is_float(mpcc_dtype t) {
	return t == MPCC_DTYPE_F32 || t == MPCC_DTYPE_F16 || t == MPCC_DTYPE_BF16 ||
	       t == MPCC_DTYPE_F64;
}

static float
rand_f32(void) {
	static const float special[] = {0.0f,    -0.0f,    INFINITY, -INFINITY, NAN,  1.0f,
	                                -1.0f,   0.5f,     2.5f,     -2.5f,     3.0f, 1e-40f,
	                                -1e-41f, 65504.0f, 65520.0f, 3.4e38f};
	uint64_t r = next();

	if (r % 8 == 0)
		return special[(r >> 8) % (sizeof(special) / sizeof(special[0]))];
	/* a random mantissa scaled over a moderate exponent range */
	return ((float)(r >> 40) / (float)(1 << 24) - 0.5f) *
	       ldexpf(1.0f, (int)((r >> 3) % 24) - 8);
}

static void
fill(uint8_t *p, mpcc_dtype t, int64_t n) {
	for (int64_t i = 0; i < n; i++) {
		uint64_t r = next();
		static const int64_t ispecial[] = {0, -1, 1,  INT64_MIN, INT64_MAX,
		                                   2, -2, 64, 7,         31};

		switch (t) {
		case MPCC_DTYPE_F32:
			((float *)p)[i] = rand_f32();
			break;
		case MPCC_DTYPE_F64:
			((double *)p)[i] = (double)rand_f32() * (1.0 + 1e-12 * (double)(r % 1000));
			break;
		case MPCC_DTYPE_F16:
		case MPCC_DTYPE_BF16:
		case MPCC_DTYPE_I16:
		case MPCC_DTYPE_U16:
			((uint16_t *)p)[i] = (uint16_t)r;
			break;
		case MPCC_DTYPE_BOOL:
			p[i] = r & 1;
			break;
		default: {
			int64_t v =
			    r % 4 == 0 ? ispecial[(r >> 8) % 10] : (int64_t)(r >> 2) >> (r % 50);
			size_t sz = mpcc_dtype_size(t);
			if (sz == 1)
				p[i] = (uint8_t)v;
			else if (sz == 4)
				((uint32_t *)p)[i] = (uint32_t)v;
			else
				((int64_t *)p)[i] = v;
		}
		}
	}
}

static void
run_init(run *r, kir_kernel *k) {
	assert_true(kir_kernel_ok(k));
	assert_true(k->n_bufs <= MAX_BUFS);
	memset(r, 0, sizeof(*r));
	r->k = k;
	for (int i = 0; i < k->n_bufs; i++) {
		r->bytes[i] = (size_t)k->bufs[i].n_elems * mpcc_dtype_size(k->bufs[i].dtype);
		r->ref[i] = calloc(1, r->bytes[i] + 1);
		r->jit[i] = calloc(1, r->bytes[i] + 1);
		assert_non_null(r->ref[i]);
		assert_non_null(r->jit[i]);
		if (k->bufs[i].kind == KIR_BUF_PARAM)
			fill(r->ref[i], k->bufs[i].dtype, k->bufs[i].n_elems);
	}
}

/* Runs the interpreter on ref and the JIT on a copy of ref's inputs. */
static void
run_exec(run *r) {
	mpcc_diag d;
	mpcc_jit *j = NULL;
	kir_kernel *ks[1] = {r->k};

	for (int i = 0; i < r->k->n_bufs; i++)
		memcpy(r->jit[i], r->ref[i], r->bytes[i]);
	mpcc_diag_init(&d);
	assert_int_equal(kir_validate(r->k, &d), MPCC_OK);
	if (kir_interpret(r->k, (void **)r->ref, &d) != MPCC_OK)
		fail_msg("interpreter: %s", d.msg);
	if (mpcc_jit_compile(ks, 1, &j, &d) != MPCC_OK)
		fail_msg("jit: %s", d.msg);
	for (int s = 0; s < r->k->n_stages; s++) {
		const kir_stage *st = &r->k->stages[s];
		mpcc_stage_fn fn = mpcc_jit_stage(j, 0, s);
		assert_non_null(fn);
		fn((void **)r->jit, 0, mpcc_jit_stage_range(st));
	}
	assert_null(mpcc_jit_stage(j, 0, r->k->n_stages));
	mpcc_jit_destroy(j);
}

/* Float bits mapped to a monotonic integer line, so ulps are a difference. */
static int64_t
ordered(mpcc_dtype t, const uint8_t *p, int64_t i, bool *nan) {
	int64_t v, sign;

	switch (t) {
	case MPCC_DTYPE_F32: {
		float f = ((const float *)p)[i];
		uint32_t u;
		memcpy(&u, &f, 4);
		*nan = isnan(f);
		v = u & 0x7fffffff;
		sign = u >> 31;
		break;
	}
	case MPCC_DTYPE_F64: {
		double f = ((const double *)p)[i];
		uint64_t u;
		memcpy(&u, &f, 8);
		*nan = isnan(f);
		v = (int64_t)(u & 0x7fffffffffffffffull);
		sign = (int64_t)(u >> 63);
		break;
	}
	case MPCC_DTYPE_F16: {
		uint16_t h = ((const uint16_t *)p)[i];
		*nan = (h & 0x7c00) == 0x7c00 && (h & 0x3ff);
		v = h & 0x7fff;
		sign = h >> 15;
		break;
	}
	default: {
		uint16_t h = ((const uint16_t *)p)[i];
		*nan = (h & 0x7f80) == 0x7f80 && (h & 0x7f);
		v = h & 0x7fff;
		sign = h >> 15;
		break;
	}
	}
	return sign ? -v - 1 : v; /* -0 sits one step below +0 */
}

static void
run_compare(run *r, int ulps) {
	for (int b = 0; b < r->k->n_bufs; b++) {
		const kir_buf *bf = &r->k->bufs[b];
		mpcc_dtype t = bf->dtype;
		size_t sz = mpcc_dtype_size(t);

		if (bf->kind != KIR_BUF_PARAM || !bf->written)
			continue;
		for (int64_t i = 0; i < bf->n_elems; i++) {
			if (is_float(t)) {
				bool na, nb;
				int64_t x = ordered(t, r->ref[b], i, &na),
				        y = ordered(t, r->jit[b], i, &nb);
				if (na && nb)
					continue;
				if (na == nb && llabs(x - y) <= ulps)
					continue;
				fail_msg("kernel %s buf %d (%s) elem %lld: interp %llx jit %llx",
				         r->k->name, b, mpcc_dtype_name(t), (long long)i,
				         (long long)x, (long long)y);
			} else if (memcmp(r->ref[b] + i * sz, r->jit[b] + i * sz, sz)) {
				int64_t x = 0, y = 0;
				memcpy(&x, r->ref[b] + i * sz, sz);
				memcpy(&y, r->jit[b] + i * sz, sz);
				fail_msg("kernel %s buf %d (%s) elem %lld: interp %llx jit %llx",
				         r->k->name, b, mpcc_dtype_name(t), (long long)i,
				         (long long)x, (long long)y);
			}
		}
	}
}

static void
run_fini(run *r) {
	for (int i = 0; i < MAX_BUFS; i++) {
		free(r->ref[i]);
		free(r->jit[i]);
	}
	kir_kernel_destroy(r->k);
}

static void
check(kir_kernel *k, int ulps) {
	run r;

	run_init(&r, k);
	run_exec(&r);
	run_compare(&r, ulps);
	run_fini(&r);
}

#define N 4096

/* out[i] = op(in[i]) computed in dtype t, stored in the result's dtype. */
static kir_kernel *
unary_kernel(kir_op op, mpcc_dtype t) {
	kir_kernel *k = kir_kernel_create("unary");
	int64_t ext = N;
	int in = kir_buf_add(k, t, KIR_BUF_PARAM, 0, N);
	mpcc_dtype rt = op == KIR_ISNAN ? MPCC_DTYPE_BOOL : t;
	int out = kir_buf_add(k, rt, KIR_BUF_PARAM, 1, N);
	int32_t i = kir_var(k, 0);
	int32_t v = kir_unary(k, op, kir_load(k, in, i));
	kir_stage *st = kir_stage_add(k, 1, &ext, 0, NULL, KIR_RED_NONE, MPCC_DTYPE_UNDEF, -1);

	kir_stage_store(k, st, out, i, v);
	return k;
}

static kir_kernel *
binary_kernel(kir_op op, mpcc_dtype t) {
	kir_kernel *k = kir_kernel_create("binary");
	int64_t ext = N;
	int a = kir_buf_add(k, t, KIR_BUF_PARAM, 0, N);
	int b = kir_buf_add(k, t, KIR_BUF_PARAM, 1, N);
	mpcc_dtype rt = op >= KIR_EQ && op <= KIR_GE ? MPCC_DTYPE_BOOL : t;
	int out = kir_buf_add(k, rt, KIR_BUF_PARAM, 2, N);
	int32_t i = kir_var(k, 0);
	int32_t v = kir_binary(k, op, kir_load(k, a, i), kir_load(k, b, i));
	kir_stage *st = kir_stage_add(k, 1, &ext, 0, NULL, KIR_RED_NONE, MPCC_DTYPE_UNDEF, -1);

	kir_stage_store(k, st, out, i, v);
	return k;
}

static const mpcc_dtype float_types[] = {MPCC_DTYPE_F32, MPCC_DTYPE_F64, MPCC_DTYPE_F16,
                                         MPCC_DTYPE_BF16};
static const mpcc_dtype int_types[] = {MPCC_DTYPE_I8,  MPCC_DTYPE_I16, MPCC_DTYPE_I32,
                                       MPCC_DTYPE_I64, MPCC_DTYPE_U8,  MPCC_DTYPE_U16,
                                       MPCC_DTYPE_U32, MPCC_DTYPE_U64};

static void
float_unary_ops_match_interpreter(void **state) {
	for (size_t ti = 0; ti < 4; ti++) {
		for (int op = KIR_NEG; op <= KIR_ISNAN; op++) {
			bool exact = op == KIR_NEG || op == KIR_ABS || op == KIR_SQRT ||
			             op == KIR_FLOOR || op == KIR_CEIL || op == KIR_RINT ||
			             op == KIR_TRUNC || op == KIR_ISNAN;
			if (op == KIR_NOT || op == KIR_BNOT)
				continue;
			check(unary_kernel((kir_op)op, float_types[ti]), exact ? 0 : 1);
		}
	}
}

static void
float_binary_ops_match_interpreter(void **state) {
	for (size_t ti = 0; ti < 4; ti++) {
		for (int op = KIR_ADD; op <= KIR_GE; op++) {
			if (op >= KIR_AND && op <= KIR_SHR)
				continue;
			check(binary_kernel((kir_op)op, float_types[ti]), op == KIR_POW ? 1 : 0);
		}
	}
}

static void
int_ops_wrap_and_never_trap(void **state) {
	for (size_t ti = 0; ti < 8; ti++) {
		mpcc_dtype t = int_types[ti];
		check(unary_kernel(KIR_NEG, t), 0);
		check(unary_kernel(KIR_ABS, t), 0);
		check(unary_kernel(KIR_BNOT, t), 0);
		for (int op = KIR_ADD; op <= KIR_GE; op++)
			if (op != KIR_POW)
				check(binary_kernel((kir_op)op, t), 0);
	}
	check(unary_kernel(KIR_NOT, MPCC_DTYPE_BOOL), 0);
	check(binary_kernel(KIR_AND, MPCC_DTYPE_BOOL), 0);
	check(binary_kernel(KIR_OR, MPCC_DTYPE_BOOL), 0);
	check(binary_kernel(KIR_XOR, MPCC_DTYPE_BOOL), 0);
	check(binary_kernel(KIR_EQ, MPCC_DTYPE_BOOL), 0);
	check(binary_kernel(KIR_NE, MPCC_DTYPE_BOOL), 0);
}

static void
int_min_divided_by_minus_one_wraps(void **state) {
	kir_kernel *k = binary_kernel(KIR_DIV, MPCC_DTYPE_I32);
	run r;

	run_init(&r, k);
	((int32_t *)r.ref[0])[0] = INT32_MIN;
	((int32_t *)r.ref[1])[0] = -1;
	((int32_t *)r.ref[0])[1] = 5;
	((int32_t *)r.ref[1])[1] = 0;
	run_exec(&r);
	run_compare(&r, 0);
	assert_int_equal(((int32_t *)r.jit[2])[0], INT32_MIN);
	assert_int_equal(((int32_t *)r.jit[2])[1], 0);
	run_fini(&r);
}

static void
casts_between_all_dtypes_match_interpreter(void **state) {
	for (int from = MPCC_DTYPE_F32; from < MPCC_DTYPE_COUNT; from++) {
		for (int to = MPCC_DTYPE_F32; to < MPCC_DTYPE_COUNT; to++) {
			kir_kernel *k = kir_kernel_create("cast");
			int64_t ext = N;
			int in = kir_buf_add(k, (mpcc_dtype)from, KIR_BUF_PARAM, 0, N);
			int out = kir_buf_add(k, (mpcc_dtype)to, KIR_BUF_PARAM, 1, N);
			int32_t i = kir_var(k, 0);
			int32_t v = kir_cast(k, (mpcc_dtype)to, kir_load(k, in, i));
			kir_stage *st =
			    kir_stage_add(k, 1, &ext, 0, NULL, KIR_RED_NONE, MPCC_DTYPE_UNDEF, -1);
			kir_stage_store(k, st, out, i, v);
			check(k, 0);
		}
	}
}

/* Every 97th f32 bit pattern (44 million) through the JIT's F16 and BF16
 * casts against the library, and every f16/bf16 pattern widened. */
static void
f16_bf16_rounding_matches_library(void **state) {
	const int64_t n = 1 << 20;
	kir_kernel *k = kir_kernel_create("round");
	int in = kir_buf_add(k, MPCC_DTYPE_F32, KIR_BUF_PARAM, 0, n);
	int h = kir_buf_add(k, MPCC_DTYPE_F16, KIR_BUF_PARAM, 1, n);
	int bh = kir_buf_add(k, MPCC_DTYPE_BF16, KIR_BUF_PARAM, 2, n);
	int32_t i = kir_var(k, 0);
	int32_t v = kir_load(k, in, i);
	kir_stage *st = kir_stage_add(k, 1, &n, 0, NULL, KIR_RED_NONE, MPCC_DTYPE_UNDEF, -1);
	mpcc_jit *j = NULL;
	mpcc_diag d;
	float *x = malloc(sizeof(float) * (size_t)n);
	uint16_t *a = malloc(2 * (size_t)n), *b = malloc(2 * (size_t)n);
	void *bufs[3] = {x, a, b};
	uint64_t pat = 0;

	kir_stage_store(k, st, h, i, kir_cast(k, MPCC_DTYPE_F16, v));
	kir_stage_store(k, st, bh, i, kir_cast(k, MPCC_DTYPE_BF16, v));
	assert_true(kir_kernel_ok(k));
	assert_non_null(x);
	assert_non_null(a);
	assert_non_null(b);
	mpcc_diag_init(&d);
	assert_int_equal(mpcc_jit_compile(&k, 1, &j, &d), MPCC_OK);
	while (pat < (1ull << 32)) {
		for (int64_t e = 0; e < n; e++, pat += 97) {
			uint32_t u = (uint32_t)pat;
			memcpy(&x[e], &u, 4);
		}
		mpcc_jit_stage(j, 0, 0)(bufs, 0, n);
		for (int64_t e = 0; e < n; e++) {
			if (a[e] != mpcc_f32_to_f16(x[e]) || b[e] != mpcc_f32_to_bf16(x[e]))
				fail_msg("f32 %a: jit f16 %04x bf16 %04x, library %04x %04x",
				         (double)x[e], a[e], b[e], mpcc_f32_to_f16(x[e]),
				         mpcc_f32_to_bf16(x[e]));
		}
	}
	mpcc_jit_destroy(j);
	kir_kernel_destroy(k);
	free(a);
	free(b);

	/* widening: every 16-bit pattern as f16 and as bf16 to f32 */
	k = kir_kernel_create("widen");
	{
		int64_t m = 65536;
		int hi = kir_buf_add(k, MPCC_DTYPE_F16, KIR_BUF_PARAM, 0, m);
		int bi = kir_buf_add(k, MPCC_DTYPE_BF16, KIR_BUF_PARAM, 1, m);
		int ho = kir_buf_add(k, MPCC_DTYPE_F32, KIR_BUF_PARAM, 2, m);
		int bo = kir_buf_add(k, MPCC_DTYPE_F32, KIR_BUF_PARAM, 3, m);
		uint16_t *p = malloc(2 * (size_t)m);
		float *y = malloc(4 * (size_t)m), *z = malloc(4 * (size_t)m);
		void *wb[4] = {p, p, y, z};

		i = kir_var(k, 0);
		st = kir_stage_add(k, 1, &m, 0, NULL, KIR_RED_NONE, MPCC_DTYPE_UNDEF, -1);
		kir_stage_store(k, st, ho, i, kir_cast(k, MPCC_DTYPE_F32, kir_load(k, hi, i)));
		kir_stage_store(k, st, bo, i, kir_cast(k, MPCC_DTYPE_F32, kir_load(k, bi, i)));
		assert_non_null(p);
		assert_non_null(y);
		assert_non_null(z);
		for (int64_t e = 0; e < m; e++)
			p[e] = (uint16_t)e;
		assert_int_equal(mpcc_jit_compile(&k, 1, &j, &d), MPCC_OK);
		mpcc_jit_stage(j, 0, 0)(wb, 0, m);
		for (int64_t e = 0; e < m; e++) {
			float f = mpcc_f16_to_f32((uint16_t)e), g = mpcc_bf16_to_f32((uint16_t)e);
			if (memcmp(&f, &y[e], 4) || memcmp(&g, &z[e], 4))
				fail_msg("pattern %04llx widened differently", (long long)e);
		}
		mpcc_jit_destroy(j);
		free(p);
		free(y);
		free(z);
	}
	kir_kernel_destroy(k);
	free(x);
}

static void
select_matches_interpreter(void **state) {
	kir_kernel *k = kir_kernel_create("sel");
	int64_t ext = N;
	int c = kir_buf_add(k, MPCC_DTYPE_BOOL, KIR_BUF_PARAM, 0, N);
	int a = kir_buf_add(k, MPCC_DTYPE_F16, KIR_BUF_PARAM, 1, N);
	int b = kir_buf_add(k, MPCC_DTYPE_F16, KIR_BUF_PARAM, 2, N);
	int out = kir_buf_add(k, MPCC_DTYPE_F16, KIR_BUF_PARAM, 3, N);
	int32_t i = kir_var(k, 0);
	int32_t v = kir_select(k, kir_load(k, c, i), kir_load(k, a, i), kir_load(k, b, i));
	kir_stage *st = kir_stage_add(k, 1, &ext, 0, NULL, KIR_RED_NONE, MPCC_DTYPE_UNDEF, -1);

	kir_stage_store(k, st, out, i, v);
	check(k, 0);
}

/* out[i][j] = in[j][i] over a 37 x 53 grid, and out2[i] = data[idx[i] clamped]. */
static void
transposed_and_gathered_loads_match_interpreter(void **state) {
	kir_kernel *k = kir_kernel_create("movement");
	int64_t ext[2] = {37, 53}, g = 300;
	int in = kir_buf_add(k, MPCC_DTYPE_F32, KIR_BUF_PARAM, 0, 37 * 53);
	int out = kir_buf_add(k, MPCC_DTYPE_F32, KIR_BUF_PARAM, 1, 37 * 53);
	int idx = kir_buf_add(k, MPCC_DTYPE_I64, KIR_BUF_PARAM, 2, g);
	int data = kir_buf_add(k, MPCC_DTYPE_BF16, KIR_BUF_PARAM, 3, 100);
	int out2 = kir_buf_add(k, MPCC_DTYPE_BF16, KIR_BUF_PARAM, 4, g);
	int32_t i = kir_var(k, 0), j = kir_var(k, 1);
	int32_t v = kir_load(k, in, kir_iadd(k, kir_imul(k, j, 37), i));
	kir_stage *st = kir_stage_add(k, 2, ext, 0, NULL, KIR_RED_NONE, MPCC_DTYPE_UNDEF, -1);
	int32_t ix, cl;

	kir_stage_store(k, st, out, kir_iadd(k, kir_imul(k, i, 53), j), v);
	i = kir_var(k, 0);
	ix = kir_load(k, idx, i);
	cl =
	    kir_binary(k, KIR_MIN, kir_binary(k, KIR_MAX, ix, kir_iconst(k, 0)), kir_iconst(k, 99));
	st = kir_stage_add(k, 1, &g, 0, NULL, KIR_RED_NONE, MPCC_DTYPE_UNDEF, -1);
	kir_stage_store(k, st, out2, i, kir_load(k, data, cl));
	check(k, 0);
}

/* A [7, 5 x 9] reduction of each kind over values with ties and NaNs. */
static kir_kernel *
reduce_kernel(kir_red red, mpcc_dtype t, int64_t r0) {
	kir_kernel *k = kir_kernel_create("reduce");
	int64_t pe = 7, re[2] = {r0, 9};
	int in = kir_buf_add(k, t, KIR_BUF_PARAM, 0, 7 * 5 * 9 + 1);
	bool arg = red >= KIR_RED_ARGMAX;
	mpcc_dtype at = arg ? MPCC_DTYPE_I64 : t;
	int out = kir_buf_add(k, at, KIR_BUF_PARAM, 1, 7);
	int32_t p = kir_var(k, 0), a = kir_var(k, 1), b = kir_var(k, 2);
	int32_t ix = kir_iadd(k, kir_imul(k, p, 45), kir_iadd(k, kir_imul(k, a, 9), b));
	int32_t v = kir_load(k, in, ix);
	kir_stage *st;

	if (t == MPCC_DTYPE_F32 && red != KIR_RED_PROD)
		v = kir_unary(k, KIR_FLOOR, v); /* creates ties */
	st = kir_stage_add(k, 1, &pe, 2, re, red, at, v);
	kir_stage_store(k, st, out, p, kir_acc(k, at));
	return k;
}

static void
every_reduction_kind_matches_interpreter(void **state) {
	static const mpcc_dtype types[] = {MPCC_DTYPE_F32, MPCC_DTYPE_F16, MPCC_DTYPE_BF16,
	                                   MPCC_DTYPE_F64, MPCC_DTYPE_I32, MPCC_DTYPE_U8,
	                                   MPCC_DTYPE_I64};
	for (int red = KIR_RED_SUM; red <= KIR_RED_ARGMIN_LAST; red++) {
		for (size_t ti = 0; ti < sizeof(types) / sizeof(types[0]); ti++) {
			check(reduce_kernel((kir_red)red, types[ti], 5), 0);
			check(reduce_kernel((kir_red)red, types[ti], 0), 0); /* empty domain */
		}
	}
}

static void
empty_extent_writes_nothing(void **state) {
	kir_kernel *k = kir_kernel_create("empty");
	int64_t ext[2] = {4, 0};
	int in = kir_buf_add(k, MPCC_DTYPE_F32, KIR_BUF_PARAM, 0, 4);
	int out = kir_buf_add(k, MPCC_DTYPE_F32, KIR_BUF_PARAM, 1, 4);
	int32_t i = kir_var(k, 0);
	kir_stage *st = kir_stage_add(k, 2, ext, 0, NULL, KIR_RED_NONE, MPCC_DTYPE_UNDEF, -1);

	kir_stage_store(k, st, out, i, kir_load(k, in, i));
	check(k, 0);
}

/* ---------------------------------------------------------------- matrix products */

/*
 * Matrix-product stages take the register-blocked path (emit_matrix.c);
 * these kernels have the shapes ops/nn.c lowers MatMul, Gemm and Conv to,
 * with sizes that are not multiples of any tile. Inputs are finite values
 * of mixed magnitudes (so sums round, and a wrong order shows), with a few
 * infinities and NaNs where special says, which also land on padded
 * positions of a convolution.
 */
static void
fill_matrix_operand(uint8_t *p, mpcc_dtype t, int64_t n, bool special) {
	for (int64_t i = 0; i < n; i++) {
		uint64_t r = next();
		uint16_t sign = (uint16_t)((r >> 20) & 1) << 15;

		switch (t) {
		case MPCC_DTYPE_F32:
			((float *)p)[i] = ((float)(r >> 40) / (float)(1 << 24) - 0.5f) *
			                  ldexpf(1.0f, (int)((r >> 3) % 12) - 4);
			if (special && r % 97 == 0)
				((float *)p)[i] = (r >> 8) % 2 ? INFINITY : NAN;
			break;
		case MPCC_DTYPE_F16:
			((uint16_t *)p)[i] =
			    sign | (uint16_t)((10 + (r >> 5) % 10) << 10) | (uint16_t)((r >> 30) & 0x3ff);
			if (special && r % 97 == 0)
				((uint16_t *)p)[i] = 0x7c00;
			break;
		default: /* BF16 */
			((uint16_t *)p)[i] =
			    sign | (uint16_t)((122 + (r >> 5) % 10) << 7) | (uint16_t)((r >> 30) & 0x7f);
			if (special && r % 97 == 0)
				((uint16_t *)p)[i] = 0xff80;
			break;
		}
	}
}

/* Runs k through both and compares bit for bit; PARAM buffers 0 and 1 are
 * the operands, and buffer 1 (weights) gets the specials when special. */
static void
check_matrix(kir_kernel *k, bool special) {
	run r;

	run_init(&r, k);
	for (int b = 0; b < k->n_bufs; b++)
		if (k->bufs[b].kind == KIR_BUF_PARAM && !k->bufs[b].written)
			fill_matrix_operand(r.ref[b], k->bufs[b].dtype, k->bufs[b].n_elems,
			                    special && b == 1);
	run_exec(&r);
	run_compare(&r, 0);
	run_fini(&r);
}

/* A batched product [nb, m, k] x [nb, k, n]: ta/tb store an operand
 * transposed, bcast_b gives B one matrix for the whole batch, bias adds a
 * bias and a ReLU in the epilogue; t is the operands' and result's dtype. */
typedef struct mm_shape {
	int64_t nb, m, k, n;
	bool ta, tb, bcast_b, bias;
	mpcc_dtype t;
} mm_shape;

/* C[b, m, n] = sum_k A[b, m, k] * B[b, k, n] (+ bias[n], then max(., 0)),
 * widened to f32 and stored in t, as MatMul and Gemm lower. */
static kir_kernel *
matmul_kernel(mm_shape s) {
	kir_kernel *k = kir_kernel_create("matmul");
	int64_t ext[3] = {s.nb, s.m, s.n};
	int a = kir_buf_add(k, s.t, KIR_BUF_PARAM, 0, s.nb * s.m * s.k + 1);
	int b = kir_buf_add(k, s.t, KIR_BUF_PARAM, 1, (s.bcast_b ? 1 : s.nb) * s.k * s.n + 1);
	int c = kir_buf_add(k, s.t, KIR_BUF_PARAM, 2, s.nb * s.m * s.n);
	int32_t vb = kir_var(k, 0), vm = kir_var(k, 1), vn = kir_var(k, 2), vk = kir_var(k, 3);
	int32_t ia = kir_iadd(k, kir_imul(k, vb, s.m * s.k),
	                      s.ta ? kir_iadd(k, kir_imul(k, vk, s.m), vm)
	                           : kir_iadd(k, kir_imul(k, vm, s.k), vk));
	int32_t ib = s.tb ? kir_iadd(k, kir_imul(k, vn, s.k), vk) : kir_iadd(k, kir_imul(k, vk, s.n), vn);
	int32_t prod, out;
	kir_stage *st;

	if (!s.bcast_b)
		ib = kir_iadd(k, kir_imul(k, vb, s.k * s.n), ib);
	prod = kir_binary(k, KIR_MUL, kir_cast(k, MPCC_DTYPE_F32, kir_load(k, a, ia)),
	                  kir_cast(k, MPCC_DTYPE_F32, kir_load(k, b, ib)));
	st = kir_stage_add(k, 3, ext, 1, &s.k, KIR_RED_SUM, MPCC_DTYPE_F32, prod);
	out = kir_acc(k, MPCC_DTYPE_F32);
	if (s.bias) {
		int bz = kir_buf_add(k, s.t, KIR_BUF_PARAM, 3, s.n);
		out = kir_binary(k, KIR_ADD, out, kir_cast(k, MPCC_DTYPE_F32, kir_load(k, bz, vn)));
		out = kir_binary(k, KIR_MAX, out, kir_const_f(k, MPCC_DTYPE_F32, 0.0));
	}
	kir_stage_store(k, st, c,
	                kir_iadd(k, kir_imul(k, vb, s.m * s.n), kir_iadd(k, kir_imul(k, vm, s.n), vn)),
	                kir_cast(k, s.t, out));
	return k;
}

static void
matrix_products_match_interpreter(void **state) {
	static const mm_shape shapes[] = {
	    {1, 64, 96, 80, false, false, false, true, MPCC_DTYPE_F32},
	    {1, 37, 53, 29, false, false, false, false, MPCC_DTYPE_F32}, /* nothing fits a tile */
	    {1, 70, 41, 33, false, true, false, true, MPCC_DTYPE_F32},   /* Gemm transB */
	    {1, 19, 23, 67, true, false, false, false, MPCC_DTYPE_F32},  /* transA */
	    {1, 45, 30, 17, true, true, false, true, MPCC_DTYPE_F32},
	    {3, 21, 18, 40, false, false, false, false, MPCC_DTYPE_F32}, /* batched */
	    {4, 9, 16, 35, false, true, true, false, MPCC_DTYPE_F32},    /* B broadcast */
	    {1, 33, 1, 50, false, false, false, true, MPCC_DTYPE_F32},   /* K = 1 */
	    {1, 12, 0, 20, false, false, false, true, MPCC_DTYPE_F32},   /* K = 0 */
	    {1, 1, 77, 300, false, false, false, false, MPCC_DTYPE_F32}, /* one row */
	    {1, 300, 77, 1, false, false, false, false, MPCC_DTYPE_F32}, /* one column */
	    {1, 2, 2100, 3, false, true, false, false, MPCC_DTYPE_F32},  /* long K */
	    {2, 27, 31, 45, false, false, false, true, MPCC_DTYPE_F16},
	    {2, 27, 31, 45, true, true, false, true, MPCC_DTYPE_BF16},
	};

	for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
		check_matrix(matmul_kernel(shapes[i]), false);
		check_matrix(matmul_kernel(shapes[i]), true);
	}
}

typedef struct conv_shape {
	int64_t n, c, h, w, m, kh, kw, stride, dil, pad, group;
	mpcc_dtype t;
} conv_shape;

/* A 2-D convolution with bias, lowered as ops/nn.c lowers Conv: the padded
 * positions are a select on the product, their index clamped. */
static kir_kernel *
conv_kernel(conv_shape s) {
	kir_kernel *k = kir_kernel_create("conv");
	int64_t oh = (s.h + 2 * s.pad - ((s.kh - 1) * s.dil + 1)) / s.stride + 1;
	int64_t ow = (s.w + 2 * s.pad - ((s.kw - 1) * s.dil + 1)) / s.stride + 1;
	int64_t cg = s.c / s.group, mg = s.m / s.group;
	int64_t par[4] = {s.n, s.m, oh, ow}, red[3] = {cg, s.kh, s.kw};
	int x = kir_buf_add(k, s.t, KIR_BUF_PARAM, 0, s.n * s.c * s.h * s.w);
	int w = kir_buf_add(k, s.t, KIR_BUF_PARAM, 1, s.m * cg * s.kh * s.kw);
	int y = kir_buf_add(k, s.t, KIR_BUF_PARAM, 2, s.n * s.m * oh * ow);
	int bias = kir_buf_add(k, s.t, KIR_BUF_PARAM, 3, s.m);
	int32_t v[7], p[2], ok = -1, xi, wi, prod, out;
	kir_stage *st;

	for (int i = 0; i < 7; i++)
		v[i] = kir_var(k, i);
	for (int i = 0; i < 2; i++) {
		int64_t ext = i ? s.w : s.h;
		p[i] = kir_iadd(k, kir_iadd(k, kir_imul(k, v[2 + i], s.stride), kir_imul(k, v[5 + i], s.dil)),
		                kir_iconst(k, -s.pad));
		if (s.pad || s.dil > 1) {
			int32_t in = kir_binary(k, KIR_AND, kir_binary(k, KIR_GE, p[i], kir_iconst(k, 0)),
			                        kir_binary(k, KIR_LT, p[i], kir_iconst(k, ext)));
			ok = ok < 0 ? in : kir_binary(k, KIR_AND, ok, in);
			p[i] = kir_binary(k, KIR_MIN, kir_binary(k, KIR_MAX, p[i], kir_iconst(k, 0)),
			                  kir_iconst(k, ext - 1));
		}
	}
	xi = kir_iadd(k, kir_imul(k, kir_binary(k, KIR_DIV, v[1], kir_iconst(k, mg)), cg), v[4]);
	xi = kir_iadd(k, kir_imul(k, v[0], s.c), xi);
	xi = kir_iadd(k, kir_imul(k, kir_iadd(k, kir_imul(k, xi, s.h), p[0]), s.w), p[1]);
	wi = kir_iadd(k, kir_imul(k, v[1], cg), v[4]);
	wi = kir_iadd(k, kir_imul(k, kir_iadd(k, kir_imul(k, wi, s.kh), v[5]), s.kw), v[6]);
	prod = kir_binary(k, KIR_MUL, kir_cast(k, MPCC_DTYPE_F32, kir_load(k, x, xi)),
	                  kir_cast(k, MPCC_DTYPE_F32, kir_load(k, w, wi)));
	if (ok >= 0)
		prod = kir_select(k, ok, prod, kir_const_f(k, MPCC_DTYPE_F32, 0.0));
	st = kir_stage_add(k, 4, par, 3, red, KIR_RED_SUM, MPCC_DTYPE_F32, prod);
	out = kir_binary(k, KIR_ADD, kir_acc(k, MPCC_DTYPE_F32),
	                 kir_cast(k, MPCC_DTYPE_F32, kir_load(k, bias, v[1])));
	xi = kir_iadd(k, kir_imul(k, v[0], s.m), v[1]);
	xi = kir_iadd(k, kir_imul(k, kir_iadd(k, kir_imul(k, xi, oh), v[2]), ow), v[3]);
	kir_stage_store(k, st, y, xi, kir_cast(k, s.t, out));
	return k;
}

static void
convolutions_match_interpreter(void **state) {
	static const conv_shape shapes[] = {
	    {1, 3, 30, 30, 16, 3, 3, 2, 1, 1, 1, MPCC_DTYPE_F32},  /* a stem */
	    {1, 16, 14, 14, 16, 3, 3, 1, 1, 1, 1, MPCC_DTYPE_F32}, /* same padding */
	    {2, 5, 11, 13, 7, 3, 2, 1, 1, 0, 1, MPCC_DTYPE_F32},   /* no padding, odd */
	    {1, 8, 17, 15, 12, 3, 3, 2, 2, 2, 1, MPCC_DTYPE_F32},  /* dilated, strided */
	    {1, 12, 9, 10, 18, 3, 3, 1, 1, 1, 3, MPCC_DTYPE_F32},  /* grouped */
	    {1, 8, 9, 9, 8, 3, 3, 1, 1, 1, 8, MPCC_DTYPE_F32},     /* depthwise */
	    {1, 20, 6, 7, 40, 1, 1, 1, 1, 0, 1, MPCC_DTYPE_F32},   /* 1x1 */
	    {1, 6, 12, 12, 10, 3, 3, 1, 1, 1, 1, MPCC_DTYPE_F16},
	    {1, 6, 12, 12, 10, 3, 3, 2, 1, 1, 2, MPCC_DTYPE_BF16},
	};

	for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
		check_matrix(conv_kernel(shapes[i]), false);
		check_matrix(conv_kernel(shapes[i]), true);
	}
}

/* A zero-rank stage sums a TEMP buffer written by stage 0; stage 2 scales
 * the input by the sum. */
static void
stages_share_a_temp_buffer(void **state) {
	kir_kernel *k = kir_kernel_create("multi");
	int64_t n = 1000;
	int in = kir_buf_add(k, MPCC_DTYPE_F32, KIR_BUF_PARAM, 0, n);
	int tmp = kir_buf_add(k, MPCC_DTYPE_F16, KIR_BUF_TEMP, MPCC_NONE, n);
	int sum = kir_buf_add(k, MPCC_DTYPE_F32, KIR_BUF_TEMP, MPCC_NONE, 1);
	int out = kir_buf_add(k, MPCC_DTYPE_F32, KIR_BUF_PARAM, 1, n);
	int32_t i = kir_var(k, 0), r, v;
	kir_stage *st = kir_stage_add(k, 1, &n, 0, NULL, KIR_RED_NONE, MPCC_DTYPE_UNDEF, -1);
	run rr;

	kir_stage_store(
	    k, st, tmp, i,
	    kir_cast(k, MPCC_DTYPE_F16,
	             kir_unary(k, KIR_EXP, kir_unary(k, KIR_FLOOR, kir_load(k, in, i)))));
	r = kir_var(k, 0);
	v = kir_cast(k, MPCC_DTYPE_F32, kir_load(k, tmp, r));
	st = kir_stage_add(k, 0, NULL, 1, &n, KIR_RED_SUM, MPCC_DTYPE_F32, v);
	kir_stage_store(k, st, sum, kir_iconst(k, 0), kir_acc(k, MPCC_DTYPE_F32));
	i = kir_var(k, 0);
	st = kir_stage_add(k, 1, &n, 0, NULL, KIR_RED_NONE, MPCC_DTYPE_UNDEF, -1);
	kir_stage_store(
	    k, st, out, i,
	    kir_binary(k, KIR_DIV, kir_load(k, in, i), kir_load(k, sum, kir_iconst(k, 0))));
	run_init(&rr, k);
	for (int64_t e = 0; e < n; e++)
		((float *)rr.ref[0])[e] = (float)(e % 13) - 6.0f;
	run_exec(&rr);
	run_compare(&rr, 0);
	run_fini(&rr);
}

/* The backend runs every stage over its full range; compile time is
 * measured here for the report. */
static void
cpu_backend_runs_a_plan(void **state) {
	mpcc_plan plan;
	kir_kernel *ks[2] = {unary_kernel(KIR_SQRT, MPCC_DTYPE_F32),
	                     reduce_kernel(KIR_RED_SUM, MPCC_DTYPE_F32, 5)};
	void *st = NULL;
	mpcc_diag d;
	float in[N], out[N], rin[7 * 45 + 1], rout[7];
	void *b0[2] = {in, out}, *b1[2] = {rin, rout};
	struct timespec t0, t1;

	memset(&plan, 0, sizeof(plan));
	plan.n_kernels = 2;
	plan.kernels = ks;
	for (int i = 0; i < N; i++)
		in[i] = (float)i;
	for (int i = 0; i < 7 * 45 + 1; i++)
		rin[i] = 1.0f;
	mpcc_diag_init(&d);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(mpcc_backend_cpu.prepare(&plan, &st, &d), MPCC_OK);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	fprintf(stderr, "jit: 2 kernels compiled in %.1f ms\n",
	        (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
	assert_int_equal(mpcc_backend_cpu.run_kernel(st, 0, b0, &d), MPCC_OK);
	assert_int_equal(mpcc_backend_cpu.run_kernel(st, 1, b1, &d), MPCC_OK);
	assert_true(out[16] == 4.0f);
	assert_true(rout[6] == 45.0f);
	assert_int_not_equal(mpcc_backend_cpu.run_kernel(st, 2, b1, &d), MPCC_OK);
	mpcc_backend_cpu.release(st);
	kir_kernel_destroy(ks[0]);
	kir_kernel_destroy(ks[1]);
}

static void
duplicate_kernel_names_are_refused(void **state) {
	kir_kernel *ks[2] = {unary_kernel(KIR_NEG, MPCC_DTYPE_F32),
	                     unary_kernel(KIR_NEG, MPCC_DTYPE_F32)};
	mpcc_jit *j = (mpcc_jit *)ks;
	mpcc_diag d;

	mpcc_diag_init(&d);
	assert_int_equal(mpcc_jit_compile(ks, 2, &j, &d), MPCC_ERR_INVALID);
	assert_null(j);
	kir_kernel_destroy(ks[0]);
	kir_kernel_destroy(ks[1]);
}

int
main(void) {
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(f16_bf16_rounding_matches_library),
	    cmocka_unit_test(float_unary_ops_match_interpreter),
	    cmocka_unit_test(float_binary_ops_match_interpreter),
	    cmocka_unit_test(int_ops_wrap_and_never_trap),
	    cmocka_unit_test(int_min_divided_by_minus_one_wraps),
	    cmocka_unit_test(casts_between_all_dtypes_match_interpreter),
	    cmocka_unit_test(select_matches_interpreter),
	    cmocka_unit_test(transposed_and_gathered_loads_match_interpreter),
	    cmocka_unit_test(every_reduction_kind_matches_interpreter),
	    cmocka_unit_test(empty_extent_writes_nothing),
	    cmocka_unit_test(stages_share_a_temp_buffer),
	    cmocka_unit_test(matrix_products_match_interpreter),
	    cmocka_unit_test(convolutions_match_interpreter),
	    cmocka_unit_test(cpu_backend_runs_a_plan),
	    cmocka_unit_test(duplicate_kernel_names_are_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
