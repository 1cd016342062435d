/*
 * test_ir.c - the graph IR: arena, diagnostics, dtypes and the 16-bit float
 * conversions, graph building and lookup, the printer and the verifier.
 *
 * The f16 conversions are checked exhaustively where that is cheap (all
 * 65536 patterns) and against the compiler's _Float16 on millions of random
 * f32 patterns; bf16 against an independent reference that picks the
 * nearer neighbour in double arithmetic.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/ir.h"

static uint32_t
bits(float f)
{
	uint32_t x;
	memcpy(&x, &f, 4);
	return x;
}

static float
flt(uint32_t x)
{
	float f;
	memcpy(&f, &x, 4);
	return f;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t
rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint32_t)(rng_state >> 16);
}

/* ---------------------------------------------------------------- arena, diag */

static void
arena_returns_aligned_zeroed_memory(void **state)
{
	mpcc_arena a;
	mpcc_arena_init(&a);
	for (int i = 0; i < 2000; i++) {
		size_t n = (size_t)(i * 37 % 300) + 1;
		if (i % 100 == 0)
			n = 100000;
		unsigned char *p = mpcc_arena_alloc(&a, n);
		assert_non_null(p);
		assert_int_equal((uintptr_t)p % 16, 0);
		for (size_t k = 0; k < n; k++)
			assert_int_equal(p[k], 0);
		memset(p, 0xab, n);
	}
	char *s = mpcc_arena_strdup(&a, "hello");
	assert_string_equal(s, "hello");
	mpcc_arena_fini(&a);
}

static void
diag_keeps_first_error_on_one_line(void **state)
{
	mpcc_diag d;
	mpcc_diag_init(&d);
	assert_int_equal(d.status, MPCC_OK);
	assert_int_equal(mpcc_diag_error(&d, MPCC_ERR_INVALID, "bad %s\nthing\n", "x"),
	                 MPCC_ERR_INVALID);
	assert_int_equal(mpcc_diag_error(&d, MPCC_ERR_IO, "later"), MPCC_ERR_IO);
	assert_int_equal(d.status, MPCC_ERR_INVALID);
	assert_string_equal(d.msg, "bad x thing");
}

static void
node_error_names_node_op_and_opset(void **state)
{
	mpcc_diag d;
	mpcc_node n = {.name = "conv1", .op = MPCC_OP_CONV, .opset = 13};
	mpcc_diag_init(&d);
	mpcc_node_error(&d, &n, MPCC_ERR_UNSUPPORTED, "group %d", 3);
	assert_int_equal(d.status, MPCC_ERR_UNSUPPORTED);
	assert_string_equal(d.msg, "node 'conv1' (Conv, opset 13): group 3");
}

/* ---------------------------------------------------------------- dtypes */

static void
dtype_names_sizes_and_classes_are_right(void **state)
{
	static const char *names[] = {"f32", "f16", "bf16", "f64", "i8", "i16", "i32",
	                              "i64", "u8", "u16", "u32", "u64", "bool"};
	static const size_t sizes[] = {4, 2, 2, 8, 1, 2, 4, 8, 1, 2, 4, 8, 1};
	for (int t = MPCC_DTYPE_F32; t < MPCC_DTYPE_COUNT; t++) {
		assert_string_equal(mpcc_dtype_name(t), names[t - 1]);
		assert_int_equal(mpcc_dtype_size(t), sizes[t - 1]);
	}
	assert_int_equal(mpcc_dtype_size(MPCC_DTYPE_UNDEF), 0);
	assert_true(mpcc_dtype_is_float(MPCC_DTYPE_BF16));
	assert_false(mpcc_dtype_is_float(MPCC_DTYPE_I32));
	assert_true(mpcc_dtype_is_int(MPCC_DTYPE_U64));
	assert_false(mpcc_dtype_is_int(MPCC_DTYPE_BOOL));
	assert_true(mpcc_dtype_is_signed(MPCC_DTYPE_I8));
	assert_false(mpcc_dtype_is_signed(MPCC_DTYPE_U8));
	assert_string_equal(mpcc_status_name(MPCC_ERR_UNSUPPORTED), "unsupported");
}

static void
onnx_dtypes_map_both_ways(void **state)
{
	static const struct { int onnx; mpcc_dtype t; } map[] = {
		{1, MPCC_DTYPE_F32}, {2, MPCC_DTYPE_U8}, {3, MPCC_DTYPE_I8}, {4, MPCC_DTYPE_U16},
		{5, MPCC_DTYPE_I16}, {6, MPCC_DTYPE_I32}, {7, MPCC_DTYPE_I64}, {9, MPCC_DTYPE_BOOL},
		{10, MPCC_DTYPE_F16}, {11, MPCC_DTYPE_F64}, {12, MPCC_DTYPE_U32},
		{13, MPCC_DTYPE_U64}, {16, MPCC_DTYPE_BF16},
	};
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		assert_int_equal(mpcc_dtype_from_onnx(map[i].onnx), map[i].t);
		assert_int_equal(mpcc_dtype_to_onnx(map[i].t), map[i].onnx);
	}
	assert_int_equal(mpcc_dtype_from_onnx(8), MPCC_DTYPE_UNDEF);
	assert_int_equal(mpcc_dtype_from_onnx(14), MPCC_DTYPE_UNDEF);
	assert_int_equal(mpcc_dtype_from_onnx(-1), MPCC_DTYPE_UNDEF);
	assert_int_equal(mpcc_dtype_from_onnx(1000), MPCC_DTYPE_UNDEF);
	assert_int_equal(mpcc_dtype_to_onnx(MPCC_DTYPE_UNDEF), 0);
}

static void
every_f16_pattern_round_trips_through_f32(void **state)
{
	for (uint32_t h = 0; h < 65536; h++) {
		float f = mpcc_f16_to_f32((uint16_t)h);
		uint16_t back = mpcc_f32_to_f16(f);
		bool nan = (h & 0x7c00) == 0x7c00 && (h & 0x3ff);
		if (nan) {
			assert_true(isnan(f));
			assert_int_equal(back, h | 0x200); /* quieted, payload and sign kept */
		} else {
			assert_int_equal(back, h);
			_Float16 ref;
			uint16_t hh = (uint16_t)h;
			memcpy(&ref, &hh, 2);
			assert_int_equal(bits(f), bits((float)ref));
		}
	}
}

static void
f16_rounds_ties_to_even_and_overflows_to_inf(void **state)
{
	assert_int_equal(mpcc_f32_to_f16(1.0f + 0x1p-11f), 0x3c00);     /* tie, down to even */
	assert_int_equal(mpcc_f32_to_f16(1.0f + 3 * 0x1p-11f), 0x3c02); /* tie, up to even */
	assert_int_equal(mpcc_f32_to_f16(1.0f + 0x1p-11f + 0x1p-20f), 0x3c01);
	assert_int_equal(mpcc_f32_to_f16(65504.0f), 0x7bff);
	assert_int_equal(mpcc_f32_to_f16(65519.99f), 0x7bff);
	assert_int_equal(mpcc_f32_to_f16(65520.0f), 0x7c00);
	assert_int_equal(mpcc_f32_to_f16(-65520.0f), 0xfc00);
	assert_int_equal(mpcc_f32_to_f16(1e30f), 0x7c00);
	assert_int_equal(mpcc_f32_to_f16(INFINITY), 0x7c00);
	assert_int_equal(mpcc_f32_to_f16(-INFINITY), 0xfc00);
	assert_int_equal(mpcc_f32_to_f16(-0.0f), 0x8000);
	/* subnormals: unit 2^-24 */
	assert_int_equal(mpcc_f32_to_f16(0x1p-24f), 0x0001);
	assert_int_equal(mpcc_f32_to_f16(0x1p-25f), 0x0000); /* tie to even zero */
	assert_int_equal(mpcc_f32_to_f16(0x1p-25f + 0x1p-40f), 0x0001);
	assert_int_equal(mpcc_f32_to_f16(3 * 0x1p-25f), 0x0002); /* tie to even 2 */
	assert_int_equal(mpcc_f32_to_f16(-0x1p-26f), 0x8000);
	assert_int_equal(mpcc_f32_to_f16(1023.5f * 0x1p-24f), 0x0400); /* into the normals */
	assert_int_equal(mpcc_f32_to_f16(0x1p-14f), 0x0400);
	uint16_t n = mpcc_f32_to_f16(flt(0x7f800001));
	assert_int_equal(n & 0x7c00, 0x7c00);
	assert_true(n & 0x3ff);
	assert_true(isnan(mpcc_f16_to_f32(0x7c01)));
	assert_true(isinf(mpcc_f16_to_f32(0x7c00)));
	assert_true(mpcc_f16_to_f32(0x0001) == 0x1p-24f);
}

static void
f16_matches_compiler_float16_on_random_f32(void **state)
{
	for (int i = 0; i < 4000000; i++) {
		uint32_t x = rng();
		if (i & 1) /* concentrate half the samples on the f16 range */
			x = (x & 0x807fffff) | ((uint32_t)(96 + (x >> 23) % 48) << 23);
		float f = flt(x);
		uint16_t ours = mpcc_f32_to_f16(f);
		_Float16 ref = (_Float16)f;
		uint16_t rb;
		memcpy(&rb, &ref, 2);
		if (isnan(f)) {
			assert_int_equal(ours & 0x7c00, 0x7c00);
			assert_true(ours & 0x3ff);
			continue;
		}
		if (ours != rb)
			fail_msg("f32 %08x: ours %04x, compiler %04x", x, ours, rb);
	}
}

/* Independent bf16 reference: the nearer of the two neighbours, in double. */
static uint16_t
bf16_ref(float f)
{
	uint32_t x = bits(f);
	if (isnan(f))
		return (uint16_t)((x >> 16) | 0x40);
	uint32_t lo = x & 0xffff0000u;
	uint32_t hi = lo + 0x10000u;
	double dlo = fabs((double)flt(lo));
	double dhi = (hi & 0x7fffffff) == 0x7f800000 ? ldexp(1, 128) : fabs((double)flt(hi));
	double a = fabs((double)f);
	if (isinf(f))
		return (uint16_t)(x >> 16);
	if (a - dlo < dhi - a)
		return (uint16_t)(lo >> 16);
	if (a - dlo > dhi - a)
		return (uint16_t)(hi >> 16);
	return (uint16_t)(((lo >> 16) & 1) ? hi >> 16 : lo >> 16);
}

static void
bf16_rounds_like_the_reference(void **state)
{
	assert_int_equal(mpcc_f32_to_bf16(flt(0x3f808000)), 0x3f80); /* tie down to even */
	assert_int_equal(mpcc_f32_to_bf16(flt(0x3f818000)), 0x3f82); /* tie up to even */
	assert_int_equal(mpcc_f32_to_bf16(flt(0x3f808001)), 0x3f81);
	assert_int_equal(mpcc_f32_to_bf16(flt(0x7f7fffff)), 0x7f80); /* FLT_MAX overflows */
	assert_int_equal(mpcc_f32_to_bf16(flt(0x7f7f7fff)), 0x7f7f);
	assert_int_equal(mpcc_f32_to_bf16(flt(0x00008000)), 0x0000); /* subnormal tie */
	assert_int_equal(mpcc_f32_to_bf16(flt(0x00018000)), 0x0002);
	assert_int_equal(mpcc_f32_to_bf16(flt(0x7f800001)), 0x7fc0); /* NaN stays NaN */
	assert_int_equal(mpcc_f32_to_bf16(-INFINITY), 0xff80);
	for (uint32_t h = 0; h < 65536; h++) {
		float f = mpcc_bf16_to_f32((uint16_t)h);
		bool nan = (h & 0x7f80) == 0x7f80 && (h & 0x7f);
		if (nan)
			assert_int_equal(mpcc_f32_to_bf16(f), h | 0x40);
		else
			assert_int_equal(mpcc_f32_to_bf16(f), h);
	}
	for (int i = 0; i < 4000000; i++) {
		uint32_t x = rng();
		uint16_t ours = mpcc_f32_to_bf16(flt(x)), ref = bf16_ref(flt(x));
		if (ours != ref)
			fail_msg("f32 %08x: ours %04x, reference %04x", x, ours, ref);
	}
}

/* ---------------------------------------------------------------- graph */

static void
op_registry_finds_ops_by_domain(void **state)
{
	assert_int_equal(mpcc_op_lookup("", "Conv"), MPCC_OP_CONV);
	assert_int_equal(mpcc_op_lookup("ai.onnx", "MatMul"), MPCC_OP_MATMUL);
	assert_int_equal(mpcc_op_lookup(NULL, "Add"), MPCC_OP_ADD);
	assert_int_equal(mpcc_op_lookup("ai.onnx.preview.training", "Adam"), MPCC_OP_ADAM);
	assert_int_equal(mpcc_op_lookup("", "Adam"), MPCC_OP_INVALID);
	assert_int_equal(mpcc_op_lookup("ai.onnx.preview.training", "Conv"), MPCC_OP_INVALID);
	assert_int_equal(mpcc_op_lookup("com.microsoft", "Conv"), MPCC_OP_INVALID);
	assert_int_equal(mpcc_op_lookup("", "conv"), MPCC_OP_INVALID);
	assert_string_equal(mpcc_op_name(MPCC_OP_LAYERNORMALIZATION), "LayerNormalization");
	assert_int_equal(mpcc_op_prec_class(MPCC_OP_GEMM), MPCC_PREC_LOW);
	assert_int_equal(mpcc_op_prec_class(MPCC_OP_SOFTMAX), MPCC_PREC_F32);
	assert_int_equal(mpcc_op_prec_class(MPCC_OP_SHAPE), MPCC_PREC_NONE);
	assert_null(mpcc_op_rule_get(MPCC_OP_INVALID));
	for (int op = 1; op < MPCC_OP_COUNT; op++) {
		const mpcc_op_rule *r = mpcc_op_rule_get(op);
		if (r)
			assert_int_equal(r->op, op);
	}
}

static void
graph_finds_values_by_name_among_many(void **state)
{
	mpcc_graph *g;
	char name[32];
	assert_int_equal(mpcc_graph_create(&g), MPCC_OK);
	for (int i = 0; i < 20000; i++) {
		snprintf(name, sizeof(name), "t%d", i);
		assert_int_equal(mpcc_graph_add_value(g, name), i);
	}
	for (int i = 0; i < 20000; i += 7) {
		snprintf(name, sizeof(name), "t%d", i);
		assert_int_equal(mpcc_graph_find_value(g, name), i);
	}
	assert_int_equal(mpcc_graph_find_value(g, "nope"), MPCC_NONE);
	int32_t a = mpcc_graph_add_value(g, NULL), b = mpcc_graph_add_value(g, NULL);
	assert_true(a >= 0 && b >= 0);
	assert_string_not_equal(g->values[a].name, g->values[b].name);
	assert_int_equal(mpcc_graph_find_value(g, g->values[b].name), b);
	assert_int_equal(g->values[a].rank, -1);
	assert_int_equal(g->values[a].producer, MPCC_NONE);
	mpcc_graph_destroy(g);
}

static void
generated_names_avoid_existing_ones(void **state)
{
	mpcc_graph *g;
	assert_int_equal(mpcc_graph_create(&g), MPCC_OK);
	int32_t u = mpcc_graph_add_value(g, "_v0");
	int32_t v = mpcc_graph_add_value(g, NULL);
	assert_string_not_equal(g->values[v].name, g->values[u].name);
	int32_t n = mpcc_graph_add_node(g, MPCC_OP_RELU, NULL, 1, &u, 1, &v);
	assert_string_equal(g->nodes[n].name, "Relu_0");
	assert_int_equal(g->values[v].producer, n);
	mpcc_graph_destroy(g);
}

static void
attributes_are_typed_and_found_by_name(void **state)
{
	mpcc_graph *g;
	assert_int_equal(mpcc_graph_create(&g), MPCC_OK);
	int32_t x = mpcc_graph_add_value(g, "x"), y = mpcc_graph_add_value(g, "y");
	int32_t n = mpcc_graph_add_node(g, MPCC_OP_LEAKYRELU, "lr", 1, &x, 1, &y);
	for (int i = 0; i < 9; i++) {
		char nm[16];
		snprintf(nm, sizeof(nm), "a%d", i);
		mpcc_attr *a = mpcc_node_add_attr(g, n, nm, MPCC_ATTR_INT);
		assert_non_null(a);
		a->i = i * 10;
	}
	mpcc_node_add_attr(g, n, "alpha", MPCC_ATTR_FLOAT)->f = 0.25f;
	mpcc_node_add_attr(g, n, "mode", MPCC_ATTR_STRING)->s = "edge";
	const mpcc_node *nd = &g->nodes[n];
	assert_int_equal(nd->n_attr, 11);
	assert_int_equal(mpcc_node_attr_int(nd, "a7", -1), 70);
	assert_int_equal(mpcc_node_attr_int(nd, "zz", -1), -1);
	assert_int_equal(mpcc_node_attr_int(nd, "alpha", -1), -1);
	assert_true(mpcc_node_attr_float(nd, "alpha", 0) == 0.25f);
	assert_string_equal(mpcc_node_attr_string(nd, "mode", "x"), "edge");
	assert_string_equal(mpcc_node_attr_string(nd, "a1", "dflt"), "dflt");
	assert_null(mpcc_node_attr(nd, "none"));
	mpcc_graph_destroy(g);
}

static void
value_numel_is_overflow_safe(void **state)
{
	mpcc_value v = {.rank = -1};
	assert_int_equal(mpcc_value_numel(&v), -1);
	v.rank = 0;
	assert_int_equal(mpcc_value_numel(&v), 1);
	v.rank = 3;
	v.dims[0] = 2, v.dims[1] = 3, v.dims[2] = 4;
	assert_int_equal(mpcc_value_numel(&v), 24);
	v.dims[1] = -1;
	assert_int_equal(mpcc_value_numel(&v), -1);
	v.dims[0] = INT64_MAX / 2, v.dims[1] = 3, v.dims[2] = 1;
	assert_int_equal(mpcc_value_numel(&v), -1);
	v.dims[2] = 0;
	assert_int_equal(mpcc_value_numel(&v), -1);
	v.dims[0] = 0;
	assert_int_equal(mpcc_value_numel(&v), 0);
}

static void
constant_elements_read_back_in_every_dtype(void **state)
{
	mpcc_graph *g;
	assert_int_equal(mpcc_graph_create(&g), MPCC_OK);
	int32_t i = mpcc_graph_add_value(g, "c");
	mpcc_value *v = &g->values[i];
	v->rank = 1;
	v->dims[0] = 2;
	struct { mpcc_dtype t; double a, b; } cases[] = {
		{MPCC_DTYPE_I8, -5, 7},     {MPCC_DTYPE_I16, -300, 4},  {MPCC_DTYPE_I32, -70000, 1},
		{MPCC_DTYPE_I64, -5e12, 3}, {MPCC_DTYPE_U8, 200, 0},    {MPCC_DTYPE_U16, 60000, 1},
		{MPCC_DTYPE_U32, 4e9, 2},   {MPCC_DTYPE_U64, 5e12, 9},  {MPCC_DTYPE_F32, -1.5, 2.25},
		{MPCC_DTYPE_F64, 1e-300, 3}, {MPCC_DTYPE_F16, -2.5, 0.125},
		{MPCC_DTYPE_BF16, 3.5, -256}, {MPCC_DTYPE_BOOL, 1, 0},
	};
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		size_t es = mpcc_dtype_size(cases[k].t);
		unsigned char *p = malloc(2 * es);
		assert_non_null(p);
		for (int e = 0; e < 2; e++) {
			double x = e ? cases[k].b : cases[k].a;
			unsigned char *q = p + e * es;
			switch (cases[k].t) {
			case MPCC_DTYPE_I8: { int8_t y = (int8_t)x; memcpy(q, &y, es); break; }
			case MPCC_DTYPE_I16: { int16_t y = (int16_t)x; memcpy(q, &y, es); break; }
			case MPCC_DTYPE_I32: { int32_t y = (int32_t)x; memcpy(q, &y, es); break; }
			case MPCC_DTYPE_I64: { int64_t y = (int64_t)x; memcpy(q, &y, es); break; }
			case MPCC_DTYPE_U8: case MPCC_DTYPE_BOOL: { uint8_t y = (uint8_t)x; memcpy(q, &y, es); break; }
			case MPCC_DTYPE_U16: { uint16_t y = (uint16_t)x; memcpy(q, &y, es); break; }
			case MPCC_DTYPE_U32: { uint32_t y = (uint32_t)x; memcpy(q, &y, es); break; }
			case MPCC_DTYPE_U64: { uint64_t y = (uint64_t)x; memcpy(q, &y, es); break; }
			case MPCC_DTYPE_F32: { float y = (float)x; memcpy(q, &y, es); break; }
			case MPCC_DTYPE_F64: memcpy(q, &x, es); break;
			case MPCC_DTYPE_F16: { uint16_t y = mpcc_f32_to_f16((float)x); memcpy(q, &y, es); break; }
			case MPCC_DTYPE_BF16: { uint16_t y = mpcc_f32_to_bf16((float)x); memcpy(q, &y, es); break; }
			default: break;
			}
		}
		v->dtype = cases[k].t;
		mpcc_value_set_data(v, p, 2 * es);
		assert_true(v->flags & MPCC_VALUE_CONST);
		assert_true(mpcc_value_get_double(v, 0) == cases[k].a);
		assert_true(mpcc_value_get_double(v, 1) == cases[k].b);
		assert_int_equal(mpcc_value_get_int(v, 0), (int64_t)cases[k].a);
		assert_int_equal(mpcc_value_get_int(v, 2), 0); /* out of range */
	}
	mpcc_graph_destroy(g);
}

/* The graph of the printer's golden test, also used by the verifier tests. */
static mpcc_graph *
conv_graph(void)
{
	mpcc_graph *g;
	assert_int_equal(mpcc_graph_create(&g), MPCC_OK);
	g->opset = 17;
	int32_t x = mpcc_graph_add_value(g, "x");
	int32_t w = mpcc_graph_add_value(g, "w");
	int32_t y = mpcc_graph_add_value(g, "y");
	int32_t s = mpcc_graph_add_value(g, "s");
	int32_t z = mpcc_graph_add_value(g, "z");
	int32_t unused = mpcc_graph_add_value(g, "unused");
	static const int64_t xd[] = {1, 3, 224, 224}, wd[] = {64, 3, 7, 7}, yd[] = {1, 64, 112, 112};
	mpcc_value *v = &g->values[x];
	v->dtype = MPCC_DTYPE_F32, v->rank = 4, memcpy(v->dims, xd, sizeof(xd));
	v->sym[0] = "N", v->dims[0] = -1;
	v = &g->values[w];
	v->dtype = MPCC_DTYPE_F32, v->rank = 4, memcpy(v->dims, wd, sizeof(wd));
	mpcc_value_set_data(v, calloc(64 * 3 * 7 * 7, 4), 64 * 3 * 7 * 7 * 4);
	v->flags |= MPCC_VALUE_WEIGHT;
	v = &g->values[y];
	v->dtype = MPCC_DTYPE_F32, v->rank = 4, memcpy(v->dims, yd, sizeof(yd));
	v = &g->values[s];
	v->dtype = MPCC_DTYPE_I64, v->rank = 1, v->dims[0] = 2;
	int64_t *sd = malloc(16);
	sd[0] = 1, sd[1] = -1;
	mpcc_value_set_data(v, sd, 16);
	v = &g->values[unused];
	v->dtype = MPCC_DTYPE_F32, v->rank = 0;
	mpcc_value_set_data(v, calloc(1, 4), 4);
	assert_int_equal(mpcc_graph_add_input(g, x), MPCC_OK);
	int32_t cin[] = {x, w, MPCC_NONE};
	int32_t c = mpcc_graph_add_node(g, MPCC_OP_CONV, "conv1", 3, cin, 1, &y);
	mpcc_attr *a = mpcc_node_add_attr(g, c, "strides", MPCC_ATTR_INTS);
	static int64_t strides[] = {2, 2}, pads[] = {3, 3, 3, 3};
	a->n = 2, a->ints = strides;
	a = mpcc_node_add_attr(g, c, "pads", MPCC_ATTR_INTS);
	a->n = 4, a->ints = pads;
	int32_t rin[] = {y, s};
	mpcc_graph_add_node(g, MPCC_OP_RESHAPE, NULL, 2, rin, 1, &z);
	assert_int_equal(mpcc_graph_add_output(g, z), MPCC_OK);
	return g;
}

static void
printer_output_matches_golden_text(void **state)
{
	mpcc_graph *g = conv_graph();
	char *t = mpcc_graph_print(g);
	assert_non_null(t);
	assert_string_equal(t,
		"graph opset=17\n"
		"  input %x : f32[N,3,224,224]\n"
		"  const %w : f32[64,3,7,7]\n"
		"  const %s : i64[2] = [1, -1]\n"
		"  %y : f32[1,64,112,112] = Conv(%x, %w, _) {strides=[2,2], pads=[3,3,3,3]}  # conv1\n"
		"  %z : ?[?] = Reshape(%y, %s)  # Reshape_1\n"
		"  output %z\n");
	free(t);
	g->nodes[1].dead = true;
	t = mpcc_graph_print(g);
	assert_null(strstr(t, "Reshape"));
	assert_null(strstr(t, "const %s"));
	free(t);
	mpcc_graph_destroy(g);
}

static void
verifier_accepts_a_well_formed_graph(void **state)
{
	mpcc_graph *g = conv_graph();
	mpcc_diag d;
	mpcc_diag_init(&d);
	assert_int_equal(mpcc_graph_verify(g, &d), MPCC_OK);
	mpcc_graph_destroy(g);
}

static void
verifier_catches_use_before_definition(void **state)
{
	mpcc_graph *g;
	mpcc_diag d;
	assert_int_equal(mpcc_graph_create(&g), MPCC_OK);
	int32_t x = mpcc_graph_add_value(g, "x"), a = mpcc_graph_add_value(g, "a");
	int32_t b = mpcc_graph_add_value(g, "b");
	mpcc_graph_add_input(g, x);
	mpcc_graph_add_node(g, MPCC_OP_RELU, "second", 1, &a, 1, &b);
	mpcc_graph_add_node(g, MPCC_OP_RELU, "first", 1, &x, 1, &a);
	mpcc_graph_add_output(g, b);
	mpcc_diag_init(&d);
	assert_int_equal(mpcc_graph_verify(g, &d), MPCC_ERR_INVALID);
	assert_non_null(strstr(d.msg, "node 'second'"));
	assert_non_null(strstr(d.msg, "'a' is used before it is defined"));
	mpcc_graph_destroy(g);
}

static void
verifier_catches_a_value_defined_twice(void **state)
{
	mpcc_graph *g;
	mpcc_diag d;
	assert_int_equal(mpcc_graph_create(&g), MPCC_OK);
	int32_t x = mpcc_graph_add_value(g, "x"), a = mpcc_graph_add_value(g, "a");
	mpcc_graph_add_input(g, x);
	mpcc_graph_add_node(g, MPCC_OP_RELU, "one", 1, &x, 1, &a);
	mpcc_graph_add_node(g, MPCC_OP_NEG, "two", 1, &x, 1, &a);
	mpcc_graph_add_output(g, a);
	mpcc_diag_init(&d);
	assert_int_equal(mpcc_graph_verify(g, &d), MPCC_ERR_INVALID);
	assert_non_null(strstr(d.msg, "node 'two'"));
	assert_non_null(strstr(d.msg, "'a' is defined twice"));
	mpcc_graph_destroy(g);
}

static void
verifier_catches_an_undefined_output(void **state)
{
	mpcc_graph *g;
	mpcc_diag d;
	assert_int_equal(mpcc_graph_create(&g), MPCC_OK);
	int32_t x = mpcc_graph_add_value(g, "x"), a = mpcc_graph_add_value(g, "a");
	mpcc_graph_add_input(g, x);
	int32_t n = mpcc_graph_add_node(g, MPCC_OP_RELU, "r", 1, &x, 1, &a);
	mpcc_graph_add_output(g, a);
	g->nodes[n].dead = true;
	mpcc_diag_init(&d);
	assert_int_equal(mpcc_graph_verify(g, &d), MPCC_ERR_INVALID);
	assert_string_equal(d.msg, "graph output 'a' is never defined");
	mpcc_graph_destroy(g);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(arena_returns_aligned_zeroed_memory),
		cmocka_unit_test(diag_keeps_first_error_on_one_line),
		cmocka_unit_test(node_error_names_node_op_and_opset),
		cmocka_unit_test(dtype_names_sizes_and_classes_are_right),
		cmocka_unit_test(onnx_dtypes_map_both_ways),
		cmocka_unit_test(every_f16_pattern_round_trips_through_f32),
		cmocka_unit_test(f16_rounds_ties_to_even_and_overflows_to_inf),
		cmocka_unit_test(f16_matches_compiler_float16_on_random_f32),
		cmocka_unit_test(bf16_rounds_like_the_reference),
		cmocka_unit_test(op_registry_finds_ops_by_domain),
		cmocka_unit_test(graph_finds_values_by_name_among_many),
		cmocka_unit_test(generated_names_avoid_existing_ones),
		cmocka_unit_test(attributes_are_typed_and_found_by_name),
		cmocka_unit_test(value_numel_is_overflow_safe),
		cmocka_unit_test(constant_elements_read_back_in_every_dtype),
		cmocka_unit_test(printer_output_matches_golden_text),
		cmocka_unit_test(verifier_accepts_a_well_formed_graph),
		cmocka_unit_test(verifier_catches_use_before_definition),
		cmocka_unit_test(verifier_catches_a_value_defined_twice),
		cmocka_unit_test(verifier_catches_an_undefined_output),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
