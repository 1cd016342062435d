/*
 * test_numerics.c - the JIT's f16 and bf16 storage rounding, native against
 * software against an independent reference, bit for bit.
 *
 * Each kernel is compiled twice: with the defaults (vcvtps2ph/vcvtph2ps
 * where the host has F16C) and with mpcc_jit_options.soft_f16 (integer
 * code). Every one of the 2^32 f32 bit patterns goes through both, as
 * f32 -> f16, f32 -> f16 -> f32, f32 -> bf16 and f32 -> bf16 -> f32, and the
 * outputs must be identical, NaN payloads included. A stratified sample
 * (every exponent with mantissas around every rounding position, plus the
 * named boundaries) is also checked against a reference written here with
 * double arithmetic and nearbyint, sharing nothing with the emitter or the
 * library's bit tricks. Widening is checked for all 65536 patterns of each
 * format, and f16 arithmetic on a sample of operand pairs. Where the host
 * has no F16C both compilations are software and the comparison says so.
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

#include "codegen/llvm/jit.h"

/* Points per call of a stage over the full f32 range: small enough that a
 * chunk's buffers for both builds stay in L2. */
#define CHUNK (1 << 14)

typedef struct pair {
	mpcc_jit *hw, *sw; /* default build, forced-software build */
} pair;

static uint32_t
f32_bits(float f) {
	uint32_t u;

	memcpy(&u, &f, 4);
	return u;
}

static float
bits_f32(uint32_t u) {
	float f;

	memcpy(&f, &u, 4);
	return f;
}

/* ---------------------------------------------------------------- reference */

/*
 * Nearest-even rounding of finite |f| to a binary format with `man` stored
 * mantissa bits and exponents down to emin (subnormals below), done in
 * double: the quantum at f's binade is a power of two, f / quantum is exact,
 * nearbyint rounds half to even. A carry into the next binade and overflow
 * past emax fall out of the re-encoding. Returns the format's bits without
 * the sign.
 */
static uint32_t
ref_round(double a, int man, int emin, int emax) {
	int e2, ue;
	double n;

	if (a == 0)
		return 0;
	(void)frexp(a, &e2);
	ue = e2 - 1 < emin ? emin : e2 - 1; /* a in [2^ue, 2^(ue+1)) or subnormal */
	n = nearbyint(ldexp(a, man - ue));
	if (n >= ldexp(1, man + 1)) { /* rounded up into the next binade */
		n /= 2;
		ue++;
	}
	if (ue > emax)
		return (uint32_t)(2 * emax + 1) << man; /* infinity */
	if (n < ldexp(1, man))
		return (uint32_t)n; /* subnormal (or the smallest normal by carry) */
	return ((uint32_t)(ue + emax) << man) | ((uint32_t)n - (1u << man));
}

static uint16_t
ref_f16(float f) {
	uint32_t u = f32_bits(f);
	uint16_t sign = (uint16_t)((u >> 16) & 0x8000);

	if (isnan(f)) /* quiet, sign and top payload bits kept (kir.h, ir/dtype.c) */
		return sign | 0x7e00 | (uint16_t)((u >> 13) & 0x3ff);
	if (isinf(f))
		return sign | 0x7c00;
	return sign | (uint16_t)ref_round(fabs((double)f), 10, -14, 15);
}

static uint16_t
ref_bf16(float f) {
	uint32_t u = f32_bits(f);
	uint16_t sign = (uint16_t)((u >> 16) & 0x8000);

	if (isnan(f))
		return (uint16_t)(u >> 16) | 0x40;
	if (isinf(f))
		return sign | 0x7f80;
	return sign | (uint16_t)ref_round(fabs((double)f), 7, -126, 127);
}

/* Decodes binary16 by its definition; NaNs come back quiet. */
static float
ref_f16_to_f32(uint16_t h) {
	int e = (h >> 10) & 0x1f, m = h & 0x3ff;
	float sign = h & 0x8000 ? -1.0f : 1.0f;

	if (e == 0x1f && m)
		return bits_f32((uint32_t)(h & 0x8000) << 16 | 0x7fc00000u | (uint32_t)m << 13);
	if (e == 0x1f)
		return sign * INFINITY;
	if (e == 0)
		return sign * (float)ldexp(m, -24);
	return sign * (float)ldexp(1024 + m, e - 25);
}

static float
ref_bf16_to_f32(uint16_t h) {
	uint32_t u = (uint32_t)h << 16;

	return bits_f32(isnan(bits_f32(u)) ? u | 0x00400000 : u);
}

/* ---------------------------------------------------------------- kernels */

static void
compile_pair(kir_kernel *k, pair *p) {
	mpcc_jit_options o;
	mpcc_diag d;

	assert_true(kir_kernel_ok(k));
	mpcc_diag_init(&d);
	mpcc_jit_options_init(&o);
	o.soft_f16 = false;
	if (mpcc_jit_compile_with(&k, 1, &o, &p->hw, &d) != MPCC_OK)
		fail_msg("jit: %s", d.msg);
	o.soft_f16 = true;
	if (mpcc_jit_compile_with(&k, 1, &o, &p->sw, &d) != MPCC_OK)
		fail_msg("jit: %s", d.msg);
	assert_false(mpcc_jit_has_native_f16(p->sw));
	if (!mpcc_jit_has_native_f16(p->hw))
		print_message("host has no F16C: comparing software with software\n");
}

static void
destroy_pair(pair *p) {
	mpcc_jit_destroy(p->hw);
	mpcc_jit_destroy(p->sw);
}

/*
 * x (F32) -> h = f16(x), hr = f32(f16(x)), b = bf16(x), br = f32(bf16(x)),
 * over n points; buffers 0..4 in that order. A stage per format: with all
 * five buffers in one loop the vectoriser's alias checks give up.
 */
static kir_kernel *
rounding_kernel(int64_t n) {
	kir_kernel *k = kir_kernel_create("roundings");
	int x = kir_buf_add(k, MPCC_DTYPE_F32, KIR_BUF_PARAM, 0, n);
	int h = kir_buf_add(k, MPCC_DTYPE_F16, KIR_BUF_PARAM, 1, n);
	int hr = kir_buf_add(k, MPCC_DTYPE_F32, KIR_BUF_PARAM, 2, n);
	int b = kir_buf_add(k, MPCC_DTYPE_BF16, KIR_BUF_PARAM, 3, n);
	int br = kir_buf_add(k, MPCC_DTYPE_F32, KIR_BUF_PARAM, 4, n);
	int32_t i = kir_var(k, 0);
	int32_t v = kir_load(k, x, i);
	int32_t vh = kir_cast(k, MPCC_DTYPE_F16, v);
	int32_t vb = kir_cast(k, MPCC_DTYPE_BF16, v);
	kir_stage *st = kir_stage_add(k, 1, &n, 0, NULL, KIR_RED_NONE, MPCC_DTYPE_UNDEF, -1);

	kir_stage_store(k, st, h, i, vh);
	kir_stage_store(k, st, hr, i, kir_cast(k, MPCC_DTYPE_F32, vh));
	st = kir_stage_add(k, 1, &n, 0, NULL, KIR_RED_NONE, MPCC_DTYPE_UNDEF, -1);
	kir_stage_store(k, st, b, i, vb);
	kir_stage_store(k, st, br, i, kir_cast(k, MPCC_DTYPE_F32, vb));
	return k;
}

/* The outputs of rounding_kernel for one input array. */
typedef struct outs {
	uint16_t *h, *b;
	float *hr, *br;
} outs;

static void
outs_init(outs *o, size_t n) {
	o->h = malloc(2 * n);
	o->b = malloc(2 * n);
	o->hr = malloc(4 * n);
	o->br = malloc(4 * n);
	assert_true(o->h && o->b && o->hr && o->br);
}

static void
outs_fini(outs *o) {
	free(o->h);
	free(o->b);
	free(o->hr);
	free(o->br);
}

static void
run_rounding(mpcc_jit *j, uint32_t *x, outs *o, int64_t n) {
	void *bufs[5] = {x, o->h, o->hr, o->b, o->br};

	mpcc_jit_stage(j, 0, 0)(bufs, 0, n);
	mpcc_jit_stage(j, 0, 1)(bufs, 0, n);
}

/* The first element where the two builds differ, reported with both. */
static void
expect_same(const uint32_t *x, const outs *a, const outs *b, int64_t n) {
	if (!memcmp(a->h, b->h, 2 * (size_t)n) && !memcmp(a->b, b->b, 2 * (size_t)n) &&
	    !memcmp(a->hr, b->hr, 4 * (size_t)n) && !memcmp(a->br, b->br, 4 * (size_t)n))
		return;
	for (int64_t i = 0; i < n; i++)
		if (a->h[i] != b->h[i] || a->b[i] != b->b[i] ||
		    f32_bits(a->hr[i]) != f32_bits(b->hr[i]) ||
		    f32_bits(a->br[i]) != f32_bits(b->br[i]))
			fail_msg("f32 %08x: native f16 %04x/%08x bf16 %04x/%08x, "
			         "software %04x/%08x %04x/%08x",
			         x[i], a->h[i], f32_bits(a->hr[i]), a->b[i], f32_bits(a->br[i]),
			         b->h[i], f32_bits(b->hr[i]), b->b[i], f32_bits(b->br[i]));
}

/* ---------------------------------------------------------------- tests */

static void
native_and_software_roundings_agree_on_every_f32(void **state) {
	kir_kernel *k = rounding_kernel(CHUNK);
	uint32_t *x = malloc(4 * CHUNK);
	outs a, b;
	pair p;

	assert_non_null(x);
	outs_init(&a, CHUNK);
	outs_init(&b, CHUNK);
	compile_pair(k, &p);
	for (uint64_t base = 0; base < (1ull << 32); base += CHUNK) {
		for (uint32_t i = 0; i < CHUNK; i++)
			x[i] = (uint32_t)base + i;
		run_rounding(p.hw, x, &a, CHUNK);
		run_rounding(p.sw, x, &b, CHUNK);
		expect_same(x, &a, &b, CHUNK);
	}
	destroy_pair(&p);
	outs_fini(&a);
	outs_fini(&b);
	free(x);
	kir_kernel_destroy(k);
}

/* A few f32s every rounding test should see, by bits. */
static const uint32_t named[] = {
    0x00000000, 0x80000000, 0x7f800000, 0xff800000, /* +-0, +-inf */
    0x7fc00000, 0xffc00000, 0x7f800001, 0xff800001, /* quiet and signalling NaNs */
    0x7fbfffff, 0x7fffffff, 0x7fa00000, 0xffffe000, /* NaN payloads */
    0x7f802000, 0x7f801fff,                         /* sNaN whose f16 payload is 1 / 0 */
    0x477fe000, 0x477fefff, 0x477ff000, 0x477ff001, /* 65504, below/at/above 65520 */
    0x477fffff, 0x47800000, 0x7f7fffff, 0x7f7f8000, /* 65535.99, 65536, f32 max, */
    0x7f7f7fff, 0x7f7fc000,                         /* bf16 overflow tie, either side */
    0x33800000, 0x33000000, 0x33000001, 0x33400000, /* 2^-24, 2^-25 (tie), just above */
    0x337fffff, 0x38800000, 0x387fc000, 0x387fe000, /* f16 smallest normal, ties */
    0x387fffff, 0x00000001, 0x80000001, 0x007fffff, /* f32 subnormals */
    0x00008000, 0x00018000, 0x00010000, 0x0000ffff, /* bf16 subnormal ties */
    0x00800000, 0x3f800000, 0x3f801000, 0x3f803000, /* 1, f16 ties at 1 */
    0x3f808000, 0x3f818000, 0x3f807fff, 0x3f808001, /* bf16 ties at 1 */
};

/*
 * The sample the reference sees: the named values, then every sign and
 * exponent with mantissas that sit just below, at and above the halfway
 * point of every possible number of dropped bits (1..23, which covers f16
 * normals (13), its subnormals (14..24) and bf16 (16)) under several
 * prefixes, plus random mantissas.
 */
static uint32_t *
stratified_sample(size_t *out_n) {
	static const uint32_t prefix[] = {0, 1, 2, 3, 0x155555, 0x2aaaaa, 0x3fffff, 0x7fffff};
	size_t cap = 1 << 22, n = 0;
	uint32_t *s = malloc(cap * sizeof(*s));
	uint64_t rng = 0x2545f4914f6cdd1dull;

	assert_non_null(s);
	for (size_t i = 0; i < sizeof(named) / sizeof(named[0]); i++)
		s[n++] = named[i];
	for (uint32_t se = 0; se < 512; se++) {
		uint32_t hi = (se >> 8) << 31 | (se & 0xff) << 23;

		for (int p = 1; p <= 23; p++) {
			uint32_t half = 1u << (p - 1);
			uint32_t tails[] = {0, 1, half - 1, half, half + 1, 2 * half - 1};

			for (size_t q = 0; q < sizeof(prefix) / sizeof(prefix[0]); q++)
				for (size_t t = 0; t < sizeof(tails) / sizeof(tails[0]); t++)
					s[n++] = hi | (((prefix[q] << p) | tails[t]) & 0x7fffff);
		}
		for (int r = 0; r < 1024; r++) {
			rng ^= rng << 13;
			rng ^= rng >> 7;
			rng ^= rng << 17;
			s[n++] = hi | ((uint32_t)rng & 0x7fffff);
		}
	}
	assert_true(n <= cap);
	*out_n = n;
	return s;
}

static void
roundings_match_an_independent_reference(void **state) {
	size_t n;
	uint32_t *s = stratified_sample(&n);
	kir_kernel *k = rounding_kernel((int64_t)n);
	outs o[2];
	pair p;

	outs_init(&o[0], n);
	outs_init(&o[1], n);
	compile_pair(k, &p);
	run_rounding(p.hw, s, &o[0], (int64_t)n);
	run_rounding(p.sw, s, &o[1], (int64_t)n);
	for (int w = 0; w < 2; w++) {
		for (size_t i = 0; i < n; i++) {
			float x = bits_f32(s[i]);
			uint16_t h = ref_f16(x), b = ref_bf16(x);
			uint32_t hr = f32_bits(ref_f16_to_f32(h)),
			         br = f32_bits(ref_bf16_to_f32(b));

			if (o[w].h[i] != h || o[w].b[i] != b || f32_bits(o[w].hr[i]) != hr ||
			    f32_bits(o[w].br[i]) != br)
				fail_msg("%s: f32 %08x: f16 %04x/%08x bf16 %04x/%08x, reference "
				         "%04x/%08x %04x/%08x",
				         w ? "software" : "native", s[i], o[w].h[i],
				         f32_bits(o[w].hr[i]), o[w].b[i], f32_bits(o[w].br[i]), h,
				         hr, b, br);
		}
	}
	destroy_pair(&p);
	outs_fini(&o[0]);
	outs_fini(&o[1]);
	free(s);
	kir_kernel_destroy(k);
}

/* Every 16-bit pattern as f16 and as bf16: widened to f32, and copied
 * (load then store, which quiets a signalling NaN). */
static void
every_f16_and_bf16_pattern_widens_as_the_reference(void **state) {
	const int64_t m = 65536;
	kir_kernel *k = kir_kernel_create("widen");
	int hi = kir_buf_add(k, MPCC_DTYPE_F16, KIR_BUF_PARAM, 0, m);
	int bi = kir_buf_add(k, MPCC_DTYPE_BF16, KIR_BUF_PARAM, 1, m);
	int ho = kir_buf_add(k, MPCC_DTYPE_F32, KIR_BUF_PARAM, 2, m);
	int bo = kir_buf_add(k, MPCC_DTYPE_F32, KIR_BUF_PARAM, 3, m);
	int hc = kir_buf_add(k, MPCC_DTYPE_F16, KIR_BUF_PARAM, 4, m);
	int bc = kir_buf_add(k, MPCC_DTYPE_BF16, KIR_BUF_PARAM, 5, m);
	int32_t i = kir_var(k, 0);
	int32_t lh = kir_load(k, hi, i), lb = kir_load(k, bi, i);
	kir_stage *st = kir_stage_add(k, 1, &m, 0, NULL, KIR_RED_NONE, MPCC_DTYPE_UNDEF, -1);
	uint16_t *in = malloc(2 * (size_t)m), *hcopy = malloc(2 * (size_t)m),
	         *bcopy = malloc(2 * (size_t)m);
	float *hf = malloc(4 * (size_t)m), *bf = malloc(4 * (size_t)m);
	void *bufs[6] = {in, in, hf, bf, hcopy, bcopy};
	pair p;

	kir_stage_store(k, st, ho, i, kir_cast(k, MPCC_DTYPE_F32, lh));
	kir_stage_store(k, st, bo, i, kir_cast(k, MPCC_DTYPE_F32, lb));
	kir_stage_store(k, st, hc, i, lh);
	kir_stage_store(k, st, bc, i, lb);
	assert_true(in && hcopy && bcopy && hf && bf);
	for (int64_t e = 0; e < m; e++)
		in[e] = (uint16_t)e;
	compile_pair(k, &p);
	for (int w = 0; w < 2; w++) {
		mpcc_jit_stage(w ? p.sw : p.hw, 0, 0)(bufs, 0, m);
		for (int64_t e = 0; e < m; e++) {
			uint16_t h = (uint16_t)e;
			uint32_t rh = f32_bits(ref_f16_to_f32(h)),
			         rb = f32_bits(ref_bf16_to_f32(h));

			if (f32_bits(hf[e]) != rh || f32_bits(bf[e]) != rb)
				fail_msg("%s: %04x widened to %08x (f16) %08x (bf16), reference "
				         "%08x %08x",
				         w ? "software" : "native", h, f32_bits(hf[e]),
				         f32_bits(bf[e]), rh, rb);
			if (hcopy[e] != ref_f16(bits_f32(rh)) || bcopy[e] != ref_bf16(bits_f32(rb)))
				fail_msg("%s: %04x copied to %04x (f16) %04x (bf16)",
				         w ? "software" : "native", h, hcopy[e], bcopy[e]);
		}
	}
	destroy_pair(&p);
	free(in);
	free(hcopy);
	free(bcopy);
	free(hf);
	free(bf);
	kir_kernel_destroy(k);
}

/*
 * F16 arithmetic both ways on random operand pairs (a fifth of them NaN,
 * inf, zero or subnormal): ops on F16 values, which round after each op,
 * and the lowering's usual F32 compute cast back to F16. The two builds
 * must agree on every bit, NaNs included, since both round the same f32.
 */
static void
f16_arithmetic_matches_between_native_and_software(void **state) {
	const int64_t n = 1 << 20;
	static const kir_op ops[] = {KIR_ADD, KIR_SUB, KIR_MUL, KIR_DIV};
	kir_kernel *k = kir_kernel_create("arith");
	int a = kir_buf_add(k, MPCC_DTYPE_F16, KIR_BUF_PARAM, 0, n);
	int b = kir_buf_add(k, MPCC_DTYPE_F16, KIR_BUF_PARAM, 1, n);
	int out[4];
	int32_t i = kir_var(k, 0);
	int32_t la = kir_load(k, a, i), lb = kir_load(k, b, i);
	int32_t fa = kir_cast(k, MPCC_DTYPE_F32, la), fb = kir_cast(k, MPCC_DTYPE_F32, lb);
	kir_stage *st;
	uint16_t *buf[2][6];
	void *bufs[2][6];
	uint64_t rng = 0x9e3779b97f4a7c15ull;
	pair p;

	for (int o = 0; o < 4; o++)
		out[o] = kir_buf_add(k, MPCC_DTYPE_F16, KIR_BUF_PARAM, 2 + o, n);
	st = kir_stage_add(k, 1, &n, 0, NULL, KIR_RED_NONE, MPCC_DTYPE_UNDEF, -1);
	/* two in F16 dtype, two as F32 compute; then x*y+x in F32, rounded once */
	kir_stage_store(k, st, out[0], i, kir_binary(k, ops[0], la, lb));
	kir_stage_store(k, st, out[1], i, kir_binary(k, ops[2], la, lb));
	kir_stage_store(k, st, out[2], i,
	                kir_cast(k, MPCC_DTYPE_F16, kir_binary(k, ops[3], fa, fb)));
	kir_stage_store(
	    k, st, out[3], i,
	    kir_cast(k, MPCC_DTYPE_F16, kir_binary(k, KIR_ADD, kir_binary(k, ops[1], fa, fb), fa)));
	for (int w = 0; w < 2; w++)
		for (int j = 0; j < 6; j++) {
			bufs[w][j] = buf[w][j] = malloc(2 * (size_t)n);
			assert_non_null(buf[w][j]);
		}
	for (int64_t e = 0; e < 2 * n; e++) {
		static const uint16_t special[] = {0x0000, 0x8000, 0x7c00, 0xfc00, 0x7e00,
		                                   0x7c01, 0xfe3f, 0x0001, 0x83ff, 0x7bff};
		uint16_t v;

		rng ^= rng << 13;
		rng ^= rng >> 7;
		rng ^= rng << 17;
		v = rng % 5 == 0 ? special[(rng >> 8) % 10] : (uint16_t)(rng >> 32);
		buf[0][e / n][e % n] = buf[1][e / n][e % n] = v;
	}
	compile_pair(k, &p);
	mpcc_jit_stage(p.hw, 0, 0)(bufs[0], 0, n);
	mpcc_jit_stage(p.sw, 0, 0)(bufs[1], 0, n);
	for (int o = 2; o < 6; o++)
		for (int64_t e = 0; e < n; e++)
			if (buf[0][o][e] != buf[1][o][e])
				fail_msg(
				    "output %d, operands %04x %04x: native %04x, software %04x",
				    o - 2, buf[0][0][e], buf[0][1][e], buf[0][o][e], buf[1][o][e]);
	destroy_pair(&p);
	for (int w = 0; w < 2; w++)
		for (int j = 0; j < 6; j++)
			free(buf[w][j]);
	kir_kernel_destroy(k);
}

int
main(void) {
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(roundings_match_an_independent_reference),
	    cmocka_unit_test(every_f16_and_bf16_pattern_widens_as_the_reference),
	    cmocka_unit_test(f16_arithmetic_matches_between_native_and_software),
	    cmocka_unit_test(native_and_software_roundings_agree_on_every_f32),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
