/*
 * test_fuse.c - kernel fusion (codegen/fuse.c) on small graphs, end to end:
 * each graph is compiled twice, fused and with no_fuse, through the same
 * passes, lowering and plan builder as mpcc_compile_*, and both plans run on
 * the CPU backend. The tests check the kernel counts the rule promises, that
 * output bits are identical, that refused cases stay unfused, and that the
 * plan records which ONNX nodes each kernel covers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/fuse.h"
#include "passes/passes.h"
#include "runtime/plan.h"

#define R 4
#define C 5

typedef void (*build_fn)(mpcc_graph *g);

/* Precision mode of the next compile(); fp32 unless a test says otherwise. */
static mpcc_precision mode = MPCC_PRECISION_FP32;

static int32_t
add_input(mpcc_graph *g, const char *name, int rank, const int64_t *dims)
{
	int32_t v = mpcc_graph_add_value(g, name);
	assert_true(v >= 0);
	g->values[v].dtype = MPCC_DTYPE_F32;
	g->values[v].rank = rank;
	for (int i = 0; i < rank; i++)
		g->values[v].dims[i] = dims[i];
	assert_int_equal(mpcc_graph_add_input(g, v), MPCC_OK);
	return v;
}

static int32_t
node1(mpcc_graph *g, mpcc_op op, const char *name, int n_in, const int32_t *in)
{
	int32_t out = mpcc_graph_add_value(g, NULL);
	assert_true(out >= 0);
	assert_true(mpcc_graph_add_node(g, op, name, n_in, in, 1, &out) != MPCC_NONE);
	return out;
}

static int32_t
cast(mpcc_graph *g, const char *name, int32_t x, int onnx_to)
{
	int32_t out = node1(g, MPCC_OP_CAST, name, 1, &x);
	mpcc_attr *a = mpcc_node_add_attr(g, g->n_nodes - 1, "to", MPCC_ATTR_INT);
	assert_non_null(a);
	a->i = onnx_to;
	return out;
}

/* x[R,C] + y[C] -> Relu -> Cast(f16): one kernel when fused. */
static void
build_add_relu_cast(mpcc_graph *g)
{
	static const int64_t dx[] = {R, C}, dy[] = {C};
	int32_t in[2] = {add_input(g, "x", 2, dx), add_input(g, "y", 1, dy)};
	int32_t s = node1(g, MPCC_OP_ADD, "add", 2, in);
	int32_t r = node1(g, MPCC_OP_RELU, "relu", 1, &s);
	mpcc_graph_add_output(g, cast(g, "cast", r, 10));
}

/* t = Add(x, x) read by two kernels (Relu and Neg, both outputs). */
static void
build_read_by_two(mpcc_graph *g)
{
	static const int64_t dx[] = {R, C};
	int32_t x = add_input(g, "x", 2, dx);
	int32_t in[2] = {x, x};
	int32_t t = node1(g, MPCC_OP_ADD, "add", 2, in);
	mpcc_graph_add_output(g, node1(g, MPCC_OP_RELU, "relu", 1, &t));
	mpcc_graph_add_output(g, node1(g, MPCC_OP_NEG, "neg", 1, &t));
}

/* t = Sqrt(Exp(x)) (two ops: not cheap) read twice by one Mul. */
static void
build_expensive_read_twice(mpcc_graph *g)
{
	static const int64_t dx[] = {R, C};
	int32_t x = add_input(g, "x", 2, dx);
	int32_t e = node1(g, MPCC_OP_EXP, "exp", 1, &x);
	int32_t t = node1(g, MPCC_OP_SQRT, "sqrt", 1, &e);
	int32_t in[2] = {t, t};
	mpcc_graph_add_output(g, node1(g, MPCC_OP_MUL, "mul", 2, in));
}

/* x -> Cast(f16) -> Cast(f32): the f16 intermediate must keep its rounding. */
static void
build_f16_round_trip(mpcc_graph *g)
{
	static const int64_t dx[] = {R, C};
	int32_t x = add_input(g, "x", 2, dx);
	int32_t h = cast(g, "to_f16", x, 10);
	mpcc_graph_add_output(g, cast(g, "to_f32", h, 1));
}

/* MatMul(x^T[C,R], x[R,C]) -> Add(y[C]) -> Relu: a reduction with its
 * elementwise epilogue. */
static void
build_matmul_bias_relu(mpcc_graph *g)
{
	static const int64_t dx[] = {R, C}, dy[] = {C};
	int32_t x = add_input(g, "x", 2, dx);
	int32_t y = add_input(g, "y", 1, dy);
	int32_t xx[2] = {node1(g, MPCC_OP_TRANSPOSE, "tr", 1, &x), x};
	int32_t m = node1(g, MPCC_OP_MATMUL, "mm", 2, xx);
	int32_t in[2] = {m, y};
	int32_t a = node1(g, MPCC_OP_ADD, "bias", 2, in);
	mpcc_graph_add_output(g, node1(g, MPCC_OP_RELU, "relu", 1, &a));
}

/* Compiles like mpcc_compile_buffer, with or without fusion; the plan goes
 * through serialise and load so the KNOD section is exercised too. */
static mpcc_plan *
compile(build_fn build, bool fuse, mpcc_fuse_stats *stats)
{
	mpcc_graph *g = NULL;
	mpcc_compile_options o;
	mpcc_diag d;
	mpcc_lower lx;
	mpcc_plan *p = NULL, *q = NULL;
	void *buf = NULL;
	size_t size = 0;

	assert_int_equal(mpcc_graph_create(&g), MPCC_OK);
	g->opset = 17;
	build(g);
	mpcc_compile_options_init(&o);
	o.precision = mode; /* fp32 (exact results) unless a test sets it */
	o.no_fuse = !fuse;
	mpcc_diag_init(&d);
	mpcc_pass_ctx pcx = {.d = &d, .opts = &o};
	assert_int_equal(mpcc_run_pipeline(g, &pcx), MPCC_OK);
	mpcc_lower_init(&lx, g, &d);
	assert_int_equal(mpcc_lower_graph(&lx), MPCC_OK);
	if (fuse)
		assert_int_equal(mpcc_fuse_kernels(&lx, stats), MPCC_OK);
	assert_int_equal(mpcc_plan_build(g, &lx, mode, &p, &d), MPCC_OK);
	mpcc_lower_fini(&lx);
	mpcc_graph_destroy(g);
	assert_int_equal(mpcc_plan_serialize(p, &buf, &size, &d), MPCC_OK);
	mpcc_plan_free(p);
	assert_int_equal(mpcc_plan_deserialize(buf, size, &q, &d), MPCC_OK);
	free(buf);
	return q;
}

/* Runs plan on the CPU with x (and y where the plan has it); copies output
 * i's bytes into out (cap bytes) and returns its size. */
static size_t
run(const mpcc_plan *p, const float *x, const float *y, int i, void *out, size_t cap)
{
	mpcc_context *cx;
	mpcc_session *s;
	mpcc_tensor t;
	static const int64_t dx[] = {R, C}, dy[] = {C};

	assert_int_equal(mpcc_context_create(&cx), MPCC_OK);
	assert_int_equal(mpcc_session_create(cx, p, "cpu", &s), MPCC_OK);
	assert_int_equal(mpcc_session_set_input(s, "x", MPCC_DTYPE_F32, 2, dx, x, sizeof(float) * R * C),
	                 MPCC_OK);
	if (mpcc_plan_n_inputs(p) > 1)
		assert_int_equal(mpcc_session_set_input(s, "y", MPCC_DTYPE_F32, 1, dy, y,
		                                        sizeof(float) * C), MPCC_OK);
	assert_int_equal(mpcc_session_run(s), MPCC_OK);
	assert_int_equal(mpcc_session_output(s, i, &t), MPCC_OK);
	assert_true(t.nbytes <= cap);
	memcpy(out, t.data, t.nbytes);
	mpcc_session_destroy(s);
	mpcc_context_destroy(cx);
	return t.nbytes;
}

static void
inputs(float *x, float *y)
{
	for (int i = 0; i < R * C; i++)
		x[i] = (float)(i - 9) * 0.3337f + 1e-4f * (float)i;
	for (int i = 0; i < C; i++)
		y[i] = 0.25f * (float)i - 0.6f;
}

/* Both plans must give the same bytes for every output. */
static void
same_bits(const mpcc_plan *a, const mpcc_plan *b)
{
	float x[R * C], y[C];
	uint8_t oa[256], ob[256];

	inputs(x, y);
	assert_int_equal(mpcc_plan_n_outputs(a), mpcc_plan_n_outputs(b));
	for (int i = 0; i < mpcc_plan_n_outputs(a); i++) {
		size_t na = run(a, x, y, i, oa, sizeof(oa));
		size_t nb = run(b, x, y, i, ob, sizeof(ob));
		assert_int_equal(na, nb);
		assert_memory_equal(oa, ob, na);
	}
}

static void
add_relu_cast_chain_fuses_into_one_kernel(void **state)
{
	(void)state;
	mpcc_fuse_stats st;
	mpcc_plan *f = compile(build_add_relu_cast, true, &st);
	mpcc_plan *u = compile(build_add_relu_cast, false, NULL);

	assert_int_equal(u->n_kernels, 3);
	assert_int_equal(f->n_kernels, 1);
	assert_int_equal(st.kernels_before, 3);
	assert_int_equal(st.kernels_after, 1);
	assert_int_equal(st.fused, 2);
	/* The intermediates are gone from the plan: x, y and the output only. */
	assert_int_equal(f->n_tensors, 3);
	assert_non_null(f->kernel_nodes);
	assert_string_equal(f->kernel_nodes[0], "add, relu, cast");
	assert_string_equal(u->kernel_nodes[1], "relu");
	same_bits(f, u);
	mpcc_plan_free(f);
	mpcc_plan_free(u);
}

static void
a_producer_read_by_two_kernels_does_not_fuse(void **state)
{
	(void)state;
	mpcc_fuse_stats st;
	mpcc_plan *f = compile(build_read_by_two, true, &st);
	mpcc_plan *u = compile(build_read_by_two, false, NULL);

	assert_int_equal(f->n_kernels, 3);
	assert_int_equal(st.fused, 0);
	same_bits(f, u);
	mpcc_plan_free(f);
	mpcc_plan_free(u);
}

static void
an_expensive_producer_read_twice_does_not_fuse(void **state)
{
	(void)state;
	mpcc_fuse_stats st;
	mpcc_plan *f = compile(build_expensive_read_twice, true, &st);
	mpcc_plan *u = compile(build_expensive_read_twice, false, NULL);

	/* Exp fuses into Sqrt (read once); Exp+Sqrt is then not cheap and Mul
	 * loads it twice, so it stays a kernel of its own. */
	assert_int_equal(u->n_kernels, 3);
	assert_int_equal(f->n_kernels, 2);
	assert_int_equal(st.fused, 1);
	assert_string_equal(f->kernel_nodes[0], "exp, sqrt");
	assert_string_equal(f->kernel_nodes[1], "mul");
	same_bits(f, u);
	mpcc_plan_free(f);
	mpcc_plan_free(u);
}

static void
an_f16_intermediate_keeps_its_rounding(void **state)
{
	(void)state;
	mpcc_plan *f = compile(build_f16_round_trip, true, NULL);
	mpcc_plan *u = compile(build_f16_round_trip, false, NULL);
	float x[R * C], y[C], out[R * C];

	assert_int_equal(u->n_kernels, 2);
	assert_int_equal(f->n_kernels, 1);
	same_bits(f, u);
	inputs(x, y);
	x[0] = 1.0001f;  /* nearest f16 is 1 */
	x[1] = 65520.0f; /* rounds past f16's maximum: inf */
	x[2] = 2049.0f;  /* tie between 2048 and 2050: even gives 2048 */
	run(f, x, y, 0, out, sizeof(out));
	assert_true(out[0] == 1.0f);
	assert_true(isinf(out[1]) && out[1] > 0);
	assert_true(out[2] == 2048.0f);
	mpcc_plan_free(f);
	mpcc_plan_free(u);
}

static void
a_reduction_takes_its_elementwise_epilogue(void **state)
{
	(void)state;
	mpcc_fuse_stats st;
	mpcc_plan *f = compile(build_matmul_bias_relu, true, &st);
	mpcc_plan *u = compile(build_matmul_bias_relu, false, NULL);

	/* MatMul, Add and Relu become one kernel; the Transpose may be inlined
	 * too (a copy is cheap), so the count is at most 2. */
	assert_int_equal(u->n_kernels, 4);
	assert_true(f->n_kernels <= 2);
	assert_non_null(strstr(f->kernel_nodes[f->n_kernels - 1], "mm, bias, relu"));
	same_bits(f, u);
	mpcc_plan_free(f);
	mpcc_plan_free(u);
}

static float
f16(float v)
{
	return mpcc_f16_to_f32(mpcc_f32_to_f16(v));
}

/*
 * In fp16 the MatMul computes low; the bias Add reads the f32 graph input y,
 * so it and Relu stay f32, and unfused the MatMul's result is stored (so
 * rounded) as f16 between the kernels. Fused, that store is gone: the MatMul
 * still reads f16-rounded operands and sums in f32, and the epilogue adds
 * the bias to the unrounded sum, as a tensor-core GEMM with an f32 epilogue
 * does. Checked bit for bit against that reference, and against the unfused
 * plan to see that the dropped rounding did change bits.
 */
static void
fusion_drops_only_the_storage_roundings_it_removes(void **state)
{
	(void)state;
	mode = MPCC_PRECISION_FP16;
	mpcc_plan *f = compile(build_matmul_bias_relu, true, NULL);
	mpcc_plan *u = compile(build_matmul_bias_relu, false, NULL);
	mode = MPCC_PRECISION_FP32;
	float x[R * C], y[C], got[C * C], unf[C * C], want[C * C];
	int differ = 0;

	inputs(x, y);
	for (int i = 0; i < R * C; i++)
		x[i] *= 1.37f; /* values with more bits than f16 keeps */
	assert_int_equal(run(f, x, y, 0, got, sizeof(got)), sizeof(float) * C * C);
	run(u, x, y, 0, unf, sizeof(unf));
	for (int i = 0; i < C; i++)
		for (int j = 0; j < C; j++) {
			float acc = 0.0f;
			for (int k = 0; k < R; k++)
				acc = acc + f16(x[k * C + i]) * f16(x[k * C + j]);
			float v = acc + y[j];
			want[i * C + j] = v > 0.0f ? v : 0.0f;
		}
	assert_memory_equal(got, want, sizeof(want));
	for (int i = 0; i < C * C; i++)
		differ += got[i] != unf[i];
	assert_true(differ > 0);
	mpcc_plan_free(f);
	mpcc_plan_free(u);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(add_relu_cast_chain_fuses_into_one_kernel),
		cmocka_unit_test(a_producer_read_by_two_kernels_does_not_fuse),
		cmocka_unit_test(an_expensive_producer_read_twice_does_not_fuse),
		cmocka_unit_test(an_f16_intermediate_keeps_its_rounding),
		cmocka_unit_test(a_reduction_takes_its_elementwise_epilogue),
		cmocka_unit_test(fusion_drops_only_the_storage_roundings_it_removes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
