/*
 * test_kir.c - the kernel IR: builders, the reference interpreter's
 * semantics (the contract the emitters must match), the checker, and the
 * serialised form's resistance to damage.
 *
 * Kernels are built by hand with the kir builders and the lowering helpers,
 * run through kir_interpret on small arrays, and compared exactly.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/kir.h"
#include "codegen/lower.h"

static void
run_ok(const kir_kernel *k, void **bufs)
{
	mpcc_diag d;
	mpcc_diag_init(&d);
	mpcc_status st = kir_interpret(k, bufs, &d);
	if (st != MPCC_OK)
		fail_msg("interpret failed: %s", d.msg);
}

static bool
valid(const kir_kernel *k)
{
	mpcc_diag d;
	mpcc_diag_init(&d);
	return kir_validate(k, &d) == MPCC_OK;
}

/* out[i][j] = in[j][i] for a 2x3 input. */
static kir_kernel *
make_transpose(void)
{
	kir_kernel *k = kir_kernel_create("transpose");
	int in = kir_buf_add(k, MPCC_DTYPE_F32, KIR_BUF_PARAM, 0, 6);
	int out = kir_buf_add(k, MPCC_DTYPE_F32, KIR_BUF_PARAM, 1, 6);
	int64_t ext[2] = {3, 2};
	int32_t i = kir_var(k, 0), j = kir_var(k, 1);
	int32_t src = kir_iadd(k, kir_imul(k, j, 3), i);
	int32_t dst = kir_iadd(k, kir_imul(k, i, 2), j);
	kir_stage *st = kir_stage_add(k, 2, ext, 0, NULL, KIR_RED_NONE, MPCC_DTYPE_UNDEF, MPCC_NONE);
	kir_stage_store(k, st, out, dst, kir_load(k, in, src));
	assert_true(kir_kernel_ok(k));
	return k;
}

static void
transpose_moves_elements(void **state)
{
	float in[6] = {0, 1, 2, 3, 4, 5}, out[6] = {0};
	float want[6] = {0, 3, 1, 4, 2, 5};
	void *bufs[2] = {in, out};
	kir_kernel *k = make_transpose();

	assert_true(valid(k));
	run_ok(k, bufs);
	assert_memory_equal(out, want, sizeof(want));
	kir_kernel_destroy(k);
}

static void
broadcast_add_aligns_right(void **state)
{
	mpcc_value a = {.dtype = MPCC_DTYPE_F32, .rank = 2, .dims = {2, 3}};
	mpcc_value b = {.dtype = MPCC_DTYPE_F32, .rank = 1, .dims = {3}};
	mpcc_value c = {.dtype = MPCC_DTYPE_F32, .rank = 2, .dims = {2, 1}};
	float av[6] = {1, 2, 3, 4, 5, 6}, bv[3] = {10, 20, 30}, cv[2] = {100, 200}, out[6];
	float want[6] = {111, 122, 133, 214, 225, 236};
	void *bufs[4] = {av, bv, cv, out};
	kir_kernel *k = kir_kernel_create("bcast");
	int ba = kir_buf_add(k, MPCC_DTYPE_F32, KIR_BUF_PARAM, 0, 6);
	int bb = kir_buf_add(k, MPCC_DTYPE_F32, KIR_BUF_PARAM, 1, 3);
	int bc = kir_buf_add(k, MPCC_DTYPE_F32, KIR_BUF_PARAM, 2, 2);
	int bo = kir_buf_add(k, MPCC_DTYPE_F32, KIR_BUF_PARAM, 3, 6);
	int32_t v[2];
	mpcc_lower_vars(k, 0, 2, v);
	int32_t x = kir_load(k, ba, mpcc_lower_bcast(k, &a, 2, v));
	int32_t y = kir_load(k, bb, mpcc_lower_bcast(k, &b, 2, v));
	int32_t z = kir_load(k, bc, mpcc_lower_bcast(k, &c, 2, v));
	int32_t sum = kir_binary(k, KIR_ADD, kir_binary(k, KIR_ADD, x, y), z);
	kir_stage *st = kir_stage_add(k, 2, a.dims, 0, NULL, KIR_RED_NONE, 0, MPCC_NONE);
	kir_stage_store(k, st, bo, mpcc_lower_linear(k, 2, a.dims, v), sum);

	run_ok(k, bufs);
	assert_memory_equal(out, want, sizeof(want));
	kir_kernel_destroy(k);
}

/* Reduces each row of a 2x4 f32 matrix with op into out (f32, or i64 for
 * ARG*). */
static void
reduce_rows(kir_red op, const float *in, void *out)
{
	bool arg = op >= KIR_RED_ARGMAX;
	kir_kernel *k = kir_kernel_create("reduce");
	int bi = kir_buf_add(k, MPCC_DTYPE_F32, KIR_BUF_PARAM, 0, 8);
	int bo = kir_buf_add(k, arg ? MPCC_DTYPE_I64 : MPCC_DTYPE_F32, KIR_BUF_PARAM, 1, 2);
	int64_t par[1] = {2}, red[1] = {4};
	int32_t i = kir_var(k, 0), j = kir_var(k, 1);
	int32_t val = kir_load(k, bi, kir_iadd(k, kir_imul(k, i, 4), j));
	kir_stage *st = kir_stage_add(k, 1, par, 1, red, op, MPCC_DTYPE_F32, val);
	kir_stage_store(k, st, bo, i, kir_acc(k, arg ? MPCC_DTYPE_I64 : MPCC_DTYPE_F32));
	void *bufs[2] = {(void *)in, out};

	assert_true(valid(k));
	run_ok(k, bufs);
	kir_kernel_destroy(k);
}

static void
reductions_fold_in_order(void **state)
{
	const float in[8] = {1, 5, 5, 2, -1, NAN, 7, 3};
	float f[2];
	int64_t ix[2];

	reduce_rows(KIR_RED_SUM, in, f);
	assert_true(f[0] == 13.0f);
	assert_true(isnan(f[1]));
	reduce_rows(KIR_RED_MAX, in, f);
	assert_true(f[0] == 5.0f);
	assert_true(isnan(f[1]));
	reduce_rows(KIR_RED_MIN, in, f);
	assert_true(f[0] == 1.0f);
	reduce_rows(KIR_RED_ARGMAX, in, ix);
	assert_int_equal(ix[0], 1);
	assert_int_equal(ix[1], 2);
	reduce_rows(KIR_RED_ARGMAX_LAST, in, ix);
	assert_int_equal(ix[0], 2);
	reduce_rows(KIR_RED_ARGMIN, in, ix);
	assert_int_equal(ix[0], 0);
	assert_int_equal(ix[1], 0);
}

static void
f16_add_rounds_after_the_op(void **state)
{
	uint16_t a[2] = {mpcc_f32_to_f16(1.0f), mpcc_f32_to_f16(1.0f)};
	uint16_t b[2] = {mpcc_f32_to_f16(0x1p-11f), mpcc_f32_to_f16(0x3p-11f)};
	float out[2];
	void *bufs[3] = {a, b, out};
	kir_kernel *k = kir_kernel_create("f16add");
	int ba = kir_buf_add(k, MPCC_DTYPE_F16, KIR_BUF_PARAM, 0, 2);
	int bb = kir_buf_add(k, MPCC_DTYPE_F16, KIR_BUF_PARAM, 1, 2);
	int bo = kir_buf_add(k, MPCC_DTYPE_F32, KIR_BUF_PARAM, 2, 2);
	int64_t ext[1] = {2};
	int32_t i = kir_var(k, 0);
	int32_t s = kir_binary(k, KIR_ADD, kir_load(k, ba, i), kir_load(k, bb, i));
	kir_stage *st = kir_stage_add(k, 1, ext, 0, NULL, KIR_RED_NONE, 0, MPCC_NONE);
	kir_stage_store(k, st, bo, i, kir_cast(k, MPCC_DTYPE_F32, s));

	run_ok(k, bufs);
	assert_true(out[0] == 1.0f);               /* tie goes to even */
	assert_true(out[1] == 1.0f + 0x1p-9f);     /* 1 + 3/2 ulp rounds up */
	kir_kernel_destroy(k);
}

/* Runs out[i] = op(a[i], b[i]) over n elements of dtype t. */
static void
int_binary(mpcc_dtype t, kir_op op, void *a, void *b, void *out, int n)
{
	kir_kernel *k = kir_kernel_create("ibin");
	int ba = kir_buf_add(k, t, KIR_BUF_PARAM, 0, n);
	int bb = kir_buf_add(k, t, KIR_BUF_PARAM, 1, n);
	int bo = kir_buf_add(k, t, KIR_BUF_PARAM, 2, n);
	int64_t ext[1] = {n};
	int32_t i = kir_var(k, 0);
	int32_t v = kir_binary(k, op, kir_load(k, ba, i), kir_load(k, bb, i));
	kir_stage *st = kir_stage_add(k, 1, ext, 0, NULL, KIR_RED_NONE, 0, MPCC_NONE);
	kir_stage_store(k, st, bo, i, v);
	void *bufs[3] = {a, b, out};
	run_ok(k, bufs);
	kir_kernel_destroy(k);
}

static void
int8_add_wraps_around(void **state)
{
	int8_t a[2] = {100, -128}, b[2] = {100, -1}, out[2];

	int_binary(MPCC_DTYPE_I8, KIR_ADD, a, b, out, 2);
	assert_int_equal(out[0], -56);
	assert_int_equal(out[1], 127);
}

static void
division_by_zero_gives_zero(void **state)
{
	int32_t a[4] = {7, INT32_MIN, -7, 7}, b[4] = {0, -1, 2, -2}, out[4];
	int64_t la[2] = {INT64_MIN, 5}, lb[2] = {-1, 0}, lo[2];

	int_binary(MPCC_DTYPE_I32, KIR_DIV, a, b, out, 4);
	assert_int_equal(out[0], 0);
	assert_int_equal(out[1], INT32_MIN);
	assert_int_equal(out[2], -3);
	assert_int_equal(out[3], -3);
	int_binary(MPCC_DTYPE_I32, KIR_FLOORMOD, a, b, out, 4);
	assert_int_equal(out[0], 0);
	assert_int_equal(out[2], 1);
	assert_int_equal(out[3], -1);
	int_binary(MPCC_DTYPE_I32, KIR_REM, a, b, out, 4);
	assert_int_equal(out[2], -1);
	assert_int_equal(out[3], 1);
	int_binary(MPCC_DTYPE_I64, KIR_DIV, la, lb, lo, 2);
	assert_true(lo[0] == INT64_MIN);
	assert_int_equal(lo[1], 0);
}

static void
float_to_int_casts_saturate(void **state)
{
	float in[5] = {1e10f, -1e10f, NAN, -3.7f, 3.7f};
	int32_t o32[5];
	uint8_t o8[5];
	void *bufs[3] = {in, o32, o8};
	kir_kernel *k = kir_kernel_create("sat");
	int bi = kir_buf_add(k, MPCC_DTYPE_F32, KIR_BUF_PARAM, 0, 5);
	int b32 = kir_buf_add(k, MPCC_DTYPE_I32, KIR_BUF_PARAM, 1, 5);
	int b8 = kir_buf_add(k, MPCC_DTYPE_U8, KIR_BUF_PARAM, 2, 5);
	int64_t ext[1] = {5};
	int32_t i = kir_var(k, 0), x = kir_load(k, bi, i);
	kir_stage *st = kir_stage_add(k, 1, ext, 0, NULL, KIR_RED_NONE, 0, MPCC_NONE);
	kir_stage_store(k, st, b32, i, kir_cast(k, MPCC_DTYPE_I32, x));
	kir_stage_store(k, st, b8, i, kir_cast(k, MPCC_DTYPE_U8, x));

	run_ok(k, bufs);
	assert_int_equal(o32[0], INT32_MAX);
	assert_int_equal(o32[1], INT32_MIN);
	assert_int_equal(o32[2], 0);
	assert_int_equal(o32[3], -3);
	assert_int_equal(o32[4], 3);
	assert_int_equal(o8[0], 255);
	assert_int_equal(o8[1], 0);
	assert_int_equal(o8[2], 0);
	assert_int_equal(o8[4], 3);
	kir_kernel_destroy(k);
}

static void
out_of_bounds_load_is_reported(void **state)
{
	float in[2] = {1, 2}, out[3];
	void *bufs[2] = {in, out};
	kir_kernel *k = kir_kernel_create("oob");
	int bi = kir_buf_add(k, MPCC_DTYPE_F32, KIR_BUF_PARAM, 0, 2);
	int bo = kir_buf_add(k, MPCC_DTYPE_F32, KIR_BUF_PARAM, 1, 3);
	int64_t ext[1] = {3};
	int32_t i = kir_var(k, 0);
	kir_stage *st = kir_stage_add(k, 1, ext, 0, NULL, KIR_RED_NONE, 0, MPCC_NONE);
	kir_stage_store(k, st, bo, i, kir_load(k, bi, i));
	mpcc_diag d;
	mpcc_diag_init(&d);

	assert_int_equal(kir_interpret(k, bufs, &d), MPCC_ERR_INTERNAL);
	assert_non_null(strstr(d.msg, "outside"));
	kir_kernel_destroy(k);
}

/* A kernel using most features: TEMP buffer, two stages, a reduction. */
static kir_kernel *
make_rich(void)
{
	kir_kernel *k = make_transpose();
	int t = kir_buf_add(k, MPCC_DTYPE_F64, KIR_BUF_TEMP, MPCC_NONE, 3);
	int32_t i = kir_var(k, 0), j = kir_var(k, 1);
	int32_t x = kir_cast(k, MPCC_DTYPE_F64, kir_load(k, 1, kir_iadd(k, kir_imul(k, i, 2), j)));
	int64_t par[1] = {3}, red[1] = {2};
	kir_stage *st = kir_stage_add(k, 1, par, 1, red, KIR_RED_SUM, MPCC_DTYPE_F64,
	                              kir_unary(k, KIR_EXP, x));
	st->serial = true;
	int32_t acc = kir_acc(k, MPCC_DTYPE_F64);
	int32_t half = kir_const_f(k, MPCC_DTYPE_F64, 0.5);
	kir_stage_store(k, st, t, i, kir_binary(k, KIR_MUL, acc, half));
	return k;
}

static uint8_t *
serialize(const kir_kernel *k, size_t *size)
{
	kir_writer w = {0};
	kir_serialize(&w, k);
	assert_false(w.failed);
	*size = w.size;
	return w.data;
}

static void
serialize_round_trip_is_identity(void **state)
{
	kir_kernel *k = make_rich(), *k2 = NULL;
	size_t n, n2, used;
	uint8_t *a = serialize(k, &n), *b;
	mpcc_diag d;
	mpcc_diag_init(&d);

	assert_true(valid(k));
	assert_int_equal(kir_deserialize(a, n, &used, &k2, &d), MPCC_OK);
	assert_int_equal(used, n);
	b = serialize(k2, &n2);
	assert_int_equal(n, n2);
	assert_memory_equal(a, b, n);
	char *p1 = kir_print(k), *p2 = kir_print(k2);
	assert_string_equal(p1, p2);
	assert_non_null(strstr(p1, "red sum.f64"));
	free(p1);
	free(p2);
	free(a);
	free(b);
	kir_kernel_destroy(k);
	kir_kernel_destroy(k2);
}

static void
deserialize_rejects_truncation_and_survives_bit_flips(void **state)
{
	kir_kernel *k = make_rich();
	size_t n;
	uint8_t *a = serialize(k, &n);
	uint8_t *copy = malloc(n);
	uint32_t seed = 12345;

	assert_non_null(copy);
	for (size_t len = 0; len < n; len++) {
		kir_kernel *out = NULL;
		mpcc_diag d;
		mpcc_diag_init(&d);
		memcpy(copy, a, len);
		assert_int_not_equal(kir_deserialize(copy, len, NULL, &out, &d), MPCC_OK);
		assert_null(out);
		assert_true(d.msg[0] != '\0');
	}
	for (int t = 0; t < 2000; t++) {
		kir_kernel *out = NULL;
		mpcc_diag d;
		mpcc_diag_init(&d);
		memcpy(copy, a, n);
		for (int f = 0; f < 1 + t % 3; f++) {
			seed = seed * 1103515245u + 12345u;
			size_t bit = (seed >> 8) % (n * 8);
			copy[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		}
		if (kir_deserialize(copy, n, NULL, &out, &d) == MPCC_OK) {
			char *p = kir_print(out);
			free(p);
			kir_kernel_destroy(out);
		} else {
			assert_null(out);
		}
	}
	free(copy);
	free(a);
	kir_kernel_destroy(k);
}

static void
validate_rejects_forward_operand(void **state)
{
	kir_kernel *k = make_transpose();
	k->exprs[k->n_exprs - 1].b = k->n_exprs - 1;
	assert_false(valid(k));
	kir_kernel_destroy(k);
}

static void
validate_rejects_mixed_dtypes(void **state)
{
	kir_kernel *k = kir_kernel_create("mixed");
	int bo = kir_buf_add(k, MPCC_DTYPE_F32, KIR_BUF_PARAM, 0, 1);
	int32_t x = kir_const_f(k, MPCC_DTYPE_F32, 1), y = kir_iconst(k, 2);
	int32_t s = kir_binary(k, KIR_ADD, x, y);
	kir_stage *st = kir_stage_add(k, 0, NULL, 0, NULL, KIR_RED_NONE, 0, MPCC_NONE);
	kir_stage_store(k, st, bo, kir_iconst(k, 0), s);
	assert_false(valid(k));
	kir_kernel_destroy(k);

	k = kir_kernel_create("storetype");
	bo = kir_buf_add(k, MPCC_DTYPE_F16, KIR_BUF_PARAM, 0, 1);
	st = kir_stage_add(k, 0, NULL, 0, NULL, KIR_RED_NONE, 0, MPCC_NONE);
	kir_stage_store(k, st, bo, kir_iconst(k, 0), kir_const_f(k, MPCC_DTYPE_F32, 1));
	assert_false(valid(k));
	kir_kernel_destroy(k);
}

static void
validate_rejects_acc_outside_a_reduction(void **state)
{
	kir_kernel *k = kir_kernel_create("acc");
	int bo = kir_buf_add(k, MPCC_DTYPE_F32, KIR_BUF_PARAM, 0, 1);
	kir_stage *st = kir_stage_add(k, 0, NULL, 0, NULL, KIR_RED_NONE, 0, MPCC_NONE);
	kir_stage_store(k, st, bo, kir_iconst(k, 0), kir_acc(k, MPCC_DTYPE_F32));
	assert_true(kir_kernel_ok(k));
	assert_false(valid(k));
	kir_kernel_destroy(k);
}

static void
validate_rejects_reduction_var_in_a_store(void **state)
{
	kir_kernel *k = kir_kernel_create("redvar");
	int bi = kir_buf_add(k, MPCC_DTYPE_F32, KIR_BUF_PARAM, 0, 4);
	int bo = kir_buf_add(k, MPCC_DTYPE_F32, KIR_BUF_PARAM, 1, 4);
	int64_t red[1] = {4};
	int32_t j = kir_var(k, 0);
	kir_stage *st = kir_stage_add(k, 0, NULL, 1, red, KIR_RED_SUM, MPCC_DTYPE_F32,
	                              kir_load(k, bi, j));
	kir_stage_store(k, st, bo, j, kir_acc(k, MPCC_DTYPE_F32));
	assert_false(valid(k));
	kir_kernel_destroy(k);
}

static void
index_helpers_fold_constants(void **state)
{
	kir_kernel *k = kir_kernel_create("fold");
	int32_t v = kir_var(k, 0);
	int n = k->n_exprs;

	assert_int_equal(kir_imul(k, v, 1), v);
	assert_int_equal(k->n_exprs, n);
	int32_t c = kir_iadd(k, kir_iconst(k, 2), kir_iconst(k, 3));
	assert_int_equal(k->exprs[c].op, KIR_CONST);
	assert_int_equal(k->exprs[c].imm.i, 5);
	assert_int_equal(kir_iadd(k, v, kir_iconst(k, 0)), v);
	assert_int_equal(kir_cast(k, MPCC_DTYPE_I64, v), v);
	int64_t dims[3] = {1, 1, 1};
	int32_t idx[3] = {v, v, v};
	int32_t z = mpcc_lower_linear(k, 3, dims, idx);
	assert_int_equal(k->exprs[z].op, KIR_CONST);
	assert_int_equal(k->exprs[z].imm.i, 0);
	assert_int_equal(mpcc_axis(-1, 3), 2);
	assert_int_equal(mpcc_axis(3, 3), -1);
	kir_kernel_destroy(k);
}

static void
kernel_names_become_identifiers(void **state)
{
	kir_kernel *k = kir_kernel_create("9 bad-name/x");
	assert_string_equal(k->name, "_9_bad_name_x");
	kir_kernel_destroy(k);
}

static int32_t
add_as_f32(kir_kernel *k, const int32_t *in, int n_in, const mpcc_node *node, void *ctx)
{
	return kir_binary(k, KIR_ADD, kir_cast(k, MPCC_DTYPE_F32, in[0]),
	                  kir_cast(k, MPCC_DTYPE_F32, in[1]));
}

static int32_t
new_value(mpcc_graph *g, const char *name, int rank, const int64_t *dims)
{
	int32_t v = mpcc_graph_add_value(g, name);
	assert_true(v != MPCC_NONE);
	g->values[v].dtype = MPCC_DTYPE_F32;
	g->values[v].rank = rank;
	for (int i = 0; i < rank; i++)
		g->values[v].dims[i] = dims[i];
	return v;
}

static void
elementwise_lowering_broadcasts_and_stores_in_storage_dtype(void **state)
{
	mpcc_graph *g = NULL;
	mpcc_diag d;
	mpcc_lower lx;
	int64_t d23[2] = {2, 3}, d3[1] = {3};
	float av[6] = {1, 2, 3, 4, 5, 6}, bv[3] = {0.5f, 0.25f, 1e6f};
	uint16_t out[6];

	mpcc_diag_init(&d);
	assert_int_equal(mpcc_graph_create(&g), MPCC_OK);
	int32_t in[2] = {new_value(g, "a", 2, d23), new_value(g, "b", 1, d3)};
	int32_t o = new_value(g, "c", 2, d23);
	g->values[o].storage = MPCC_DTYPE_F16;
	int32_t n = mpcc_graph_add_node(g, MPCC_OP_ADD, "add/0", 2, in, 1, &o);
	assert_true(n != MPCC_NONE);
	mpcc_lower_init(&lx, g, &d);
	assert_int_equal(mpcc_lower_elementwise(&lx, n, add_as_f32, NULL), MPCC_OK);
	assert_int_equal(lx.n_kernels, 1);
	kir_kernel *k = lx.kernels[0];
	assert_string_equal(k->name, "k0_add_0");
	assert_int_equal(k->node, n);
	assert_true(valid(k));
	assert_int_equal(mpcc_lower_param(k, g, o), 2);
	assert_int_equal(k->bufs[2].dtype, MPCC_DTYPE_F16);
	void *bufs[3] = {av, bv, out};
	run_ok(k, bufs);
	assert_true(mpcc_f16_to_f32(out[0]) == 1.5f);
	assert_true(mpcc_f16_to_f32(out[4]) == 5.25f);
	assert_true(isinf(mpcc_f16_to_f32(out[5])));
	mpcc_lower_fini(&lx);
	mpcc_graph_destroy(g);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(transpose_moves_elements),
		cmocka_unit_test(broadcast_add_aligns_right),
		cmocka_unit_test(reductions_fold_in_order),
		cmocka_unit_test(f16_add_rounds_after_the_op),
		cmocka_unit_test(int8_add_wraps_around),
		cmocka_unit_test(division_by_zero_gives_zero),
		cmocka_unit_test(float_to_int_casts_saturate),
		cmocka_unit_test(out_of_bounds_load_is_reported),
		cmocka_unit_test(serialize_round_trip_is_identity),
		cmocka_unit_test(deserialize_rejects_truncation_and_survives_bit_flips),
		cmocka_unit_test(validate_rejects_forward_operand),
		cmocka_unit_test(validate_rejects_mixed_dtypes),
		cmocka_unit_test(validate_rejects_acc_outside_a_reduction),
		cmocka_unit_test(validate_rejects_reduction_var_in_a_store),
		cmocka_unit_test(index_helpers_fold_constants),
		cmocka_unit_test(kernel_names_become_identifiers),
		cmocka_unit_test(elementwise_lowering_broadcasts_and_stores_in_storage_dtype),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
