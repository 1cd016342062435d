/*
 * test_autodiff.c - passes/autodiff*.c: the gradient rules of the
 * elementwise, matrix, movement, reduction, softmax and loss ops against
 * central finite differences, and the pass's contract. The rules of the
 * network layers (Gather, normalisation, Conv, pooling) are checked in
 * test_autodiff_nn.c; the harness both share is gradcheck.h.
 *
 * Gradient checks (the table `cases`, one cmocka test each): a case builds a
 * tiny graph whose float inputs are the values to differentiate and returns
 * y; mpcc_gc_check appends loss = ReduceSum(y * R), differentiates, and
 * compares every gradient element with the finite difference of the loss
 * (gradcheck.h gives the step and the tolerance). The one f32 input (the
 * Cast case) steps by 2^-10; its loss is quadratic in the input, so the
 * difference is exact up to rounding, and the f32 gradient (from a Cast of
 * the f64 one) is good to ~1e-7.
 *
 * Inputs stay 0.05 away from the kinks of Relu, LeakyRelu and Abs, and
 * positive ranges keep Log, Sqrt, Div and Pow away from their poles. The
 * contract tests: an op without a rule is an error naming the node, a value
 * not reaching the loss gets MPCC_NONE, a value read twice gets the Add of
 * both contributions, the seed scales the gradient, MaxPool ties go to the
 * first maximum, initializers differentiate through folded nodes, and in
 * an fp16 compile that Add of contributions stays f32 (precision policy)
 * while the gradient MatMuls go f16.
 */
#include "gradcheck.h"

#include <math.h>
#include <string.h>

#include "codegen/fuse.h"
#include "passes/autodiff.h"
#include "passes/passes.h"
#include "runtime/plan.h"

/* ---------------------------------------------------------------- the cases */

static int32_t
unary(mpcc_gc *c, mpcc_op o, mpcc_gc_range r)
{
	return mpcc_gc_op(c, o, "f", 1, mpcc_gc_wrt(c, "x", r, MPCC_GC_SHAPE(3, 4)));
}

/* -- matrix products */

static int32_t
b_matmul_2d(mpcc_gc *c)
{
	int32_t a = mpcc_gc_wrt(c, "a", MPCC_GC_SIGNED, MPCC_GC_SHAPE(3, 5)),
	        b = mpcc_gc_wrt(c, "b", MPCC_GC_SIGNED, MPCC_GC_SHAPE(5, 4));
	return mpcc_gc_op(c, MPCC_OP_MATMUL, "mm", 2, a, b);
}

static int32_t
b_matmul_batch_broadcast(mpcc_gc *c)
{
	int32_t a = mpcc_gc_wrt(c, "a", MPCC_GC_SIGNED, MPCC_GC_SHAPE(2, 1, 3, 5)),
	        b = mpcc_gc_wrt(c, "b", MPCC_GC_SIGNED, MPCC_GC_SHAPE(4, 5, 2));
	return mpcc_gc_op(c, MPCC_OP_MATMUL, "mm", 2, a, b);
}

static int32_t
b_matmul_vector_a(mpcc_gc *c)
{
	int32_t a = mpcc_gc_wrt(c, "a", MPCC_GC_SIGNED, MPCC_GC_SHAPE(5)),
	        b = mpcc_gc_wrt(c, "b", MPCC_GC_SIGNED, MPCC_GC_SHAPE(2, 5, 3));
	return mpcc_gc_op(c, MPCC_OP_MATMUL, "mm", 2, a, b);
}

static int32_t
b_matmul_vector_b(mpcc_gc *c)
{
	int32_t a = mpcc_gc_wrt(c, "a", MPCC_GC_SIGNED, MPCC_GC_SHAPE(2, 3, 5)),
	        b = mpcc_gc_wrt(c, "b", MPCC_GC_SIGNED, MPCC_GC_SHAPE(5));
	return mpcc_gc_op(c, MPCC_OP_MATMUL, "mm", 2, a, b);
}

static int32_t
b_matmul_constant_a(mpcc_gc *c)
{
	int32_t b = mpcc_gc_wrt(c, "b", MPCC_GC_SIGNED, MPCC_GC_SHAPE(5, 2));
	return mpcc_gc_op(c, MPCC_OP_MATMUL, "mm", 2,
	                  mpcc_gc_cfloat(c, MPCC_GC_SIGNED, MPCC_GC_SHAPE(3, 5)), b);
}

static int32_t
b_gemm_transposed_row_bias(mpcc_gc *c)
{
	int32_t a = mpcc_gc_wrt(c, "a", MPCC_GC_SIGNED, MPCC_GC_SHAPE(5, 3)),
	        b = mpcc_gc_wrt(c, "b", MPCC_GC_SIGNED, MPCC_GC_SHAPE(4, 5));
	int32_t y = mpcc_gc_op(c, MPCC_OP_GEMM, "gemm", 3, a, b,
	                       mpcc_gc_wrt(c, "c", MPCC_GC_SIGNED, MPCC_GC_SHAPE(4)));
	mpcc_gc_attr_i(c, "transA", 1);
	mpcc_gc_attr_i(c, "transB", 1);
	mpcc_gc_attr_f(c, "alpha", 0.75f);
	mpcc_gc_attr_f(c, "beta", 1.25f);
	return y;
}

static int32_t
b_gemm_column_bias(mpcc_gc *c)
{
	int32_t a = mpcc_gc_wrt(c, "a", MPCC_GC_SIGNED, MPCC_GC_SHAPE(3, 5)),
	        b = mpcc_gc_wrt(c, "b", MPCC_GC_SIGNED, MPCC_GC_SHAPE(5, 4));
	return mpcc_gc_op(c, MPCC_OP_GEMM, "gemm", 3, a, b,
	                  mpcc_gc_wrt(c, "c", MPCC_GC_SIGNED, MPCC_GC_SHAPE(3, 1)));
}

static int32_t
b_gemm_trans_a_scalar_bias(mpcc_gc *c)
{
	int32_t a = mpcc_gc_wrt(c, "a", MPCC_GC_SIGNED, MPCC_GC_SHAPE(4, 3)),
	        b = mpcc_gc_wrt(c, "b", MPCC_GC_SIGNED, MPCC_GC_SHAPE(4, 2));
	int32_t y = mpcc_gc_op(c, MPCC_OP_GEMM, "gemm", 3, a, b,
	                       mpcc_gc_wrt(c, "c", MPCC_GC_SIGNED, 0, NULL));
	mpcc_gc_attr_i(c, "transA", 1);
	mpcc_gc_attr_f(c, "beta", 0.5f);
	return y;
}

/* beta 0: C does not contribute, its gradient is zeros */
static int32_t
b_gemm_zero_beta(mpcc_gc *c)
{
	int32_t a = mpcc_gc_wrt(c, "a", MPCC_GC_SIGNED, MPCC_GC_SHAPE(2, 3)),
	        b = mpcc_gc_wrt(c, "b", MPCC_GC_SIGNED, MPCC_GC_SHAPE(3, 4));
	int32_t y = mpcc_gc_op(c, MPCC_OP_GEMM, "gemm", 3, a, b,
	                       mpcc_gc_wrt(c, "c", MPCC_GC_SIGNED, MPCC_GC_SHAPE(2, 4)));
	mpcc_gc_attr_f(c, "beta", 0.0f);
	return y;
}

/* -- broadcasting arithmetic */

static int32_t
binary(mpcc_gc *c, mpcc_op o, int ra, const int64_t *da, int rb, const int64_t *db,
       mpcc_gc_range rng_b)
{
	int32_t a = mpcc_gc_wrt(c, "a", MPCC_GC_SIGNED, ra, da),
	        b = mpcc_gc_wrt(c, "b", rng_b, rb, db);
	return mpcc_gc_op(c, o, "f", 2, a, b);
}

static int32_t
b_add_broadcast(mpcc_gc *c)
{
	return binary(c, MPCC_OP_ADD, MPCC_GC_SHAPE(3, 1, 5), MPCC_GC_SHAPE(4, 1), MPCC_GC_SIGNED);
}

static int32_t
b_sub_broadcast(mpcc_gc *c)
{
	return binary(c, MPCC_OP_SUB, MPCC_GC_SHAPE(5), MPCC_GC_SHAPE(2, 3, 5), MPCC_GC_SIGNED);
}

static int32_t
b_mul_broadcast(mpcc_gc *c)
{
	return binary(c, MPCC_OP_MUL, MPCC_GC_SHAPE(2, 3, 4), MPCC_GC_SHAPE(3, 1), MPCC_GC_SIGNED);
}

static int32_t
b_div_broadcast(mpcc_gc *c)
{
	return binary(c, MPCC_OP_DIV, MPCC_GC_SHAPE(3, 4), MPCC_GC_SHAPE(4), MPCC_GC_POSITIVE);
}

static int32_t
b_mul_same_value_twice(mpcc_gc *c)
{
	int32_t x = mpcc_gc_wrt(c, "x", MPCC_GC_SIGNED, MPCC_GC_SHAPE(3, 2));
	return mpcc_gc_op(c, MPCC_OP_MUL, "square", 2, x, x);
}

static int32_t
b_pow_constant_exponent(mpcc_gc *c)
{
	int32_t x = mpcc_gc_wrt(c, "x", MPCC_GC_POSITIVE, MPCC_GC_SHAPE(3, 4));
	return mpcc_gc_op(c, MPCC_OP_POW, "cube", 2, x, mpcc_gc_cscalar(c, 3.0));
}

static int32_t
b_pow_both_operands(mpcc_gc *c)
{
	int32_t x = mpcc_gc_wrt(c, "x", MPCC_GC_POSITIVE, MPCC_GC_SHAPE(3, 4)),
	        e = mpcc_gc_wrt(c, "e", MPCC_GC_SIGNED, MPCC_GC_SHAPE(4));
	return mpcc_gc_op(c, MPCC_OP_POW, "pow", 2, x, e);
}

static int32_t
b_sum_three_broadcast(mpcc_gc *c)
{
	int32_t a = mpcc_gc_wrt(c, "a", MPCC_GC_SIGNED, MPCC_GC_SHAPE(3, 4)),
	        b = mpcc_gc_wrt(c, "b", MPCC_GC_SIGNED, MPCC_GC_SHAPE(4));
	return mpcc_gc_op(c, MPCC_OP_SUM, "sum", 3, a, b,
	                  mpcc_gc_wrt(c, "c", MPCC_GC_SIGNED, MPCC_GC_SHAPE(3, 1)));
}

static int32_t
b_mean_two(mpcc_gc *c)
{
	int32_t a = mpcc_gc_wrt(c, "a", MPCC_GC_SIGNED, MPCC_GC_SHAPE(2, 3)),
	        b = mpcc_gc_wrt(c, "b", MPCC_GC_SIGNED, MPCC_GC_SHAPE(2, 1));
	return mpcc_gc_op(c, MPCC_OP_MEAN, "mean", 2, a, b);
}

static int32_t
b_where_broadcast(mpcc_gc *c)
{
	static const uint8_t cond[3] = {1, 0, 1};
	int32_t m = mpcc_gc_const_data(c, MPCC_DTYPE_BOOL, MPCC_GC_SHAPE(3, 1), cond);
	int32_t x = mpcc_gc_wrt(c, "x", MPCC_GC_SIGNED, MPCC_GC_SHAPE(3, 4)),
	        y = mpcc_gc_wrt(c, "y", MPCC_GC_SIGNED, MPCC_GC_SHAPE(4));
	return mpcc_gc_op(c, MPCC_OP_WHERE, "where", 3, m, x, y);
}

static int32_t
b_two_consumers(mpcc_gc *c)
{
	int32_t x = mpcc_gc_wrt(c, "x", MPCC_GC_SIGNED, MPCC_GC_SHAPE(2, 3));
	int32_t n = mpcc_gc_op(c, MPCC_OP_NEG, "neg", 1, x),
	        t = mpcc_gc_op(c, MPCC_OP_TANH, "tanh", 1, x);
	return mpcc_gc_op(c, MPCC_OP_ADD, "add", 2, n, t);
}

/* -- pointwise */

static int32_t
b_neg(mpcc_gc *c)
{
	return unary(c, MPCC_OP_NEG, MPCC_GC_SIGNED);
}
static int32_t
b_relu(mpcc_gc *c)
{
	return unary(c, MPCC_OP_RELU, MPCC_GC_SIGNED);
}
static int32_t
b_sigmoid(mpcc_gc *c)
{
	return unary(c, MPCC_OP_SIGMOID, MPCC_GC_SIGNED);
}
static int32_t
b_tanh(mpcc_gc *c)
{
	return unary(c, MPCC_OP_TANH, MPCC_GC_SIGNED);
}
static int32_t
b_exp(mpcc_gc *c)
{
	return unary(c, MPCC_OP_EXP, MPCC_GC_SIGNED);
}
static int32_t
b_log(mpcc_gc *c)
{
	return unary(c, MPCC_OP_LOG, MPCC_GC_POSITIVE);
}
static int32_t
b_sqrt(mpcc_gc *c)
{
	return unary(c, MPCC_OP_SQRT, MPCC_GC_POSITIVE);
}
static int32_t
b_identity(mpcc_gc *c)
{
	return unary(c, MPCC_OP_IDENTITY, MPCC_GC_SIGNED);
}
static int32_t
b_reciprocal(mpcc_gc *c)
{
	return unary(c, MPCC_OP_RECIPROCAL, MPCC_GC_POSITIVE);
}
static int32_t
b_abs(mpcc_gc *c)
{
	return unary(c, MPCC_OP_ABS, MPCC_GC_SIGNED);
}
static int32_t
b_sin(mpcc_gc *c)
{
	return unary(c, MPCC_OP_SIN, MPCC_GC_SIGNED);
}
static int32_t
b_cos(mpcc_gc *c)
{
	return unary(c, MPCC_OP_COS, MPCC_GC_SIGNED);
}
static int32_t
b_erf(mpcc_gc *c)
{
	return unary(c, MPCC_OP_ERF, MPCC_GC_SIGNED);
}
static int32_t
b_softplus(mpcc_gc *c)
{
	return unary(c, MPCC_OP_SOFTPLUS, MPCC_GC_SIGNED);
}
static int32_t
b_dropout_inference(mpcc_gc *c)
{
	return unary(c, MPCC_OP_DROPOUT, MPCC_GC_SIGNED);
}
static int32_t
b_gelu_exact(mpcc_gc *c)
{
	return unary(c, MPCC_OP_GELU, MPCC_GC_SIGNED);
}

static int32_t
b_gelu_tanh(mpcc_gc *c)
{
	int32_t y = unary(c, MPCC_OP_GELU, MPCC_GC_SIGNED);
	mpcc_gc_attr_s(c, "approximate", "tanh");
	return y;
}

static int32_t
b_leakyrelu(mpcc_gc *c)
{
	int32_t y = unary(c, MPCC_OP_LEAKYRELU, MPCC_GC_SIGNED);
	mpcc_gc_attr_f(c, "alpha", 0.2f);
	return y;
}

/* The one f32 input: Cast to f64, squared so the gradient depends on x. */
static int32_t
b_cast_f32_to_f64(mpcc_gc *c)
{
	int32_t x = mpcc_gc_wrt_typed(c, "x", MPCC_DTYPE_F32, MPCC_GC_SIGNED, MPCC_GC_SHAPE(3, 4));
	int32_t y = mpcc_gc_op(c, MPCC_OP_CAST, "widen", 1, x);
	mpcc_gc_attr_i(c, "to", 11);
	return mpcc_gc_op(c, MPCC_OP_MUL, "square", 2, y, y);
}

/* -- movement */

static int32_t
b_reshape_inferred_dim(mpcc_gc *c)
{
	int32_t x = mpcc_gc_wrt(c, "x", MPCC_GC_SIGNED, MPCC_GC_SHAPE(2, 3, 4));
	return mpcc_gc_op(c, MPCC_OP_RESHAPE, "reshape", 2, x,
	                  mpcc_gc_ints(c, MPCC_GC_SHAPE(4, -1)));
}

static int32_t
b_flatten_axis2(mpcc_gc *c)
{
	int32_t y = mpcc_gc_op(c, MPCC_OP_FLATTEN, "flatten", 1,
	                       mpcc_gc_wrt(c, "x", MPCC_GC_SIGNED, MPCC_GC_SHAPE(2, 3, 4, 5)));
	mpcc_gc_attr_i(c, "axis", 2);
	return y;
}

static int32_t
b_transpose_perm(mpcc_gc *c)
{
	int32_t y = mpcc_gc_op(c, MPCC_OP_TRANSPOSE, "transpose", 1,
	                       mpcc_gc_wrt(c, "x", MPCC_GC_SIGNED, MPCC_GC_SHAPE(2, 3, 4)));
	mpcc_gc_attr_is(c, "perm", MPCC_GC_SHAPE(2, 0, 1));
	return y;
}

static int32_t
b_squeeze_axis(mpcc_gc *c)
{
	int32_t x = mpcc_gc_wrt(c, "x", MPCC_GC_SIGNED, MPCC_GC_SHAPE(3, 1, 4, 1));
	return mpcc_gc_op(c, MPCC_OP_SQUEEZE, "squeeze", 2, x, mpcc_gc_ints(c, MPCC_GC_SHAPE(1)));
}

static int32_t
b_unsqueeze_axes(mpcc_gc *c)
{
	int32_t x = mpcc_gc_wrt(c, "x", MPCC_GC_SIGNED, MPCC_GC_SHAPE(3, 4));
	return mpcc_gc_op(c, MPCC_OP_UNSQUEEZE, "unsqueeze", 2, x,
	                  mpcc_gc_ints(c, MPCC_GC_SHAPE(0, 3)));
}

static int32_t
b_expand(mpcc_gc *c)
{
	int32_t x = mpcc_gc_wrt(c, "x", MPCC_GC_SIGNED, MPCC_GC_SHAPE(3, 1));
	return mpcc_gc_op(c, MPCC_OP_EXPAND, "expand", 2, x,
	                  mpcc_gc_ints(c, MPCC_GC_SHAPE(2, 3, 4)));
}

static int32_t
b_concat_with_constant(mpcc_gc *c)
{
	int32_t a = mpcc_gc_wrt(c, "a", MPCC_GC_SIGNED, MPCC_GC_SHAPE(2, 3)),
	        b = mpcc_gc_wrt(c, "b", MPCC_GC_SIGNED, MPCC_GC_SHAPE(2, 4));
	int32_t y = mpcc_gc_op(c, MPCC_OP_CONCAT, "concat", 3, a,
	                       mpcc_gc_cfloat(c, MPCC_GC_SIGNED, MPCC_GC_SHAPE(2, 1)), b);
	mpcc_gc_attr_i(c, "axis", 1);
	return y;
}

static int32_t
split2(mpcc_gc *c, int32_t *out)
{
	int32_t in[2] = {mpcc_gc_wrt(c, "x", MPCC_GC_SIGNED, MPCC_GC_SHAPE(2, 7)),
	                 mpcc_gc_ints(c, MPCC_GC_SHAPE(2, 5))};
	mpcc_gc_opn(c, MPCC_OP_SPLIT, "split", 2, in, 2, out);
	mpcc_gc_attr_i(c, "axis", 1);
	return out[0];
}

static int32_t
b_split_one_part_unused(mpcc_gc *c)
{
	int32_t o[2];
	split2(c, o);
	return mpcc_gc_op(c, MPCC_OP_TANH, "tanh", 1, o[1]);
}

static int32_t
b_split_both_parts(mpcc_gc *c)
{
	int32_t o[2];
	split2(c, o);
	int32_t y = mpcc_gc_op(c, MPCC_OP_CONCAT, "concat", 2, o[1],
	                       mpcc_gc_op(c, MPCC_OP_MUL, "sq", 2, o[0], o[0]));
	mpcc_gc_attr_i(c, "axis", 1);
	return y;
}

static int32_t
b_slice_unit_steps(mpcc_gc *c)
{
	int32_t x = mpcc_gc_wrt(c, "x", MPCC_GC_SIGNED, MPCC_GC_SHAPE(5, 6));
	return mpcc_gc_op(c, MPCC_OP_SLICE, "slice", 4, x, mpcc_gc_ints(c, MPCC_GC_SHAPE(1, -4)),
	                  mpcc_gc_ints(c, MPCC_GC_SHAPE(4, 100)),
	                  mpcc_gc_ints(c, MPCC_GC_SHAPE(0, 1)));
}

static int32_t
b_slice_strided_negative(mpcc_gc *c)
{
	int32_t x = mpcc_gc_wrt(c, "x", MPCC_GC_SIGNED, MPCC_GC_SHAPE(6, 7));
	return mpcc_gc_op(c, MPCC_OP_SLICE, "slice", 5, x, mpcc_gc_ints(c, MPCC_GC_SHAPE(5, 1)),
	                  mpcc_gc_ints(c, MPCC_GC_SHAPE(0, 7)),
	                  mpcc_gc_ints(c, MPCC_GC_SHAPE(0, 1)),
	                  mpcc_gc_ints(c, MPCC_GC_SHAPE(-2, 3)));
}

/* -- reductions, softmax, losses */

static int32_t
b_softmax_last_axis(mpcc_gc *c)
{
	return mpcc_gc_op(c, MPCC_OP_SOFTMAX, "softmax", 1,
	                  mpcc_gc_wrt(c, "x", MPCC_GC_SIGNED, MPCC_GC_SHAPE(3, 5)));
}

static int32_t
b_softmax_middle_axis(mpcc_gc *c)
{
	int32_t y = mpcc_gc_op(c, MPCC_OP_SOFTMAX, "softmax", 1,
	                       mpcc_gc_wrt(c, "x", MPCC_GC_SIGNED, MPCC_GC_SHAPE(2, 3, 4)));
	mpcc_gc_attr_i(c, "axis", 1);
	return y;
}

/* Before opset 13, axis 1 of [2,3,4] normalises over the trailing 12. */
static int32_t
b_softmax_opset11_coerced(mpcc_gc *c)
{
	int32_t y = b_softmax_middle_axis(c);
	c->g->nodes[c->last].opset = 11;
	return y;
}

static int32_t
b_logsoftmax_axis0(mpcc_gc *c)
{
	int32_t y = mpcc_gc_op(c, MPCC_OP_LOGSOFTMAX, "logsoftmax", 1,
	                       mpcc_gc_wrt(c, "x", MPCC_GC_SIGNED, MPCC_GC_SHAPE(4, 3)));
	mpcc_gc_attr_i(c, "axis", 0);
	return y;
}

static int32_t
b_reduce_sum_axis_dropped(mpcc_gc *c)
{
	int32_t x = mpcc_gc_wrt(c, "x", MPCC_GC_SIGNED, MPCC_GC_SHAPE(3, 4, 5));
	int32_t y =
	    mpcc_gc_op(c, MPCC_OP_REDUCESUM, "sum", 2, x, mpcc_gc_ints(c, MPCC_GC_SHAPE(1)));
	mpcc_gc_attr_i(c, "keepdims", 0);
	return y;
}

static int32_t
b_reduce_sum_all_kept(mpcc_gc *c)
{
	return mpcc_gc_op(c, MPCC_OP_REDUCESUM, "sum", 1,
	                  mpcc_gc_wrt(c, "x", MPCC_GC_SIGNED, MPCC_GC_SHAPE(3, 4)));
}

static int32_t
b_reduce_sum_opset11_attr(mpcc_gc *c)
{
	int32_t y = mpcc_gc_op(c, MPCC_OP_REDUCESUM, "sum", 1,
	                       mpcc_gc_wrt(c, "x", MPCC_GC_SIGNED, MPCC_GC_SHAPE(2, 3)));
	mpcc_gc_attr_is(c, "axes", MPCC_GC_SHAPE(-1));
	mpcc_gc_attr_i(c, "keepdims", 0);
	c->g->nodes[c->last].opset = 11;
	return y;
}

static int32_t
b_reduce_mean_attr_axes(mpcc_gc *c)
{
	int32_t y = mpcc_gc_op(c, MPCC_OP_REDUCEMEAN, "mean", 1,
	                       mpcc_gc_wrt(c, "x", MPCC_GC_SIGNED, MPCC_GC_SHAPE(3, 4, 5)));
	mpcc_gc_attr_is(c, "axes", MPCC_GC_SHAPE(0, 2));
	return y;
}

static int32_t
b_reduce_mean_opset18_input_axes(mpcc_gc *c)
{
	int32_t x = mpcc_gc_wrt(c, "x", MPCC_GC_SIGNED, MPCC_GC_SHAPE(3, 4, 5));
	int32_t y =
	    mpcc_gc_op(c, MPCC_OP_REDUCEMEAN, "mean", 2, x, mpcc_gc_ints(c, MPCC_GC_SHAPE(-1, 0)));
	mpcc_gc_attr_i(c, "keepdims", 0);
	c->g->nodes[c->last].opset = 18;
	return y;
}

static int32_t
b_reduce_sum_noop_empty_axes(mpcc_gc *c)
{
	int32_t y = mpcc_gc_op(c, MPCC_OP_REDUCESUM, "sum", 1,
	                       mpcc_gc_wrt(c, "x", MPCC_GC_SIGNED, MPCC_GC_SHAPE(2, 3)));
	mpcc_gc_attr_i(c, "noop_with_empty_axes", 1);
	return y;
}

/* A loss node over scores x[shape] and labels; n_out 2 asks SCE for
 * log_prob too, and y adds it to the loss so both outputs matter. */
static int32_t
loss_node(mpcc_gc *c, mpcc_op o, const char *red, int rank, const int64_t *dims,
          const int64_t *labels, bool weights, bool ignore, int n_out)
{
	int64_t ld[MPCC_MAX_RANK] = {dims[0]}, cls[1] = {dims[1]};
	for (int i = 2; i < rank; i++)
		ld[i - 1] = dims[i];
	int32_t in[3] = {mpcc_gc_wrt(c, "scores", MPCC_GC_SIGNED, rank, dims),
	                 mpcc_gc_const_data(c, MPCC_DTYPE_I64, rank - 1, ld, labels), MPCC_NONE};
	if (weights)
		in[2] = mpcc_gc_cfloat(c, MPCC_GC_POSITIVE, 1, cls);
	int32_t out[2];
	mpcc_gc_opn(c, o, "loss_op", weights ? 3 : 2, in, n_out, out);
	mpcc_gc_attr_s(c, "reduction", red);
	if (ignore)
		mpcc_gc_attr_i(c, "ignore_index", -1);
	return n_out == 1 ? out[0] : mpcc_gc_op(c, MPCC_OP_ADD, "both", 2, out[1], out[0]);
}

static const int64_t labels_4[] = {0, 3, 4, 1};
static const int64_t labels_3x2[] = {1, 0, 3, 3, 2, 0};
static const int64_t labels_ignore_5[] = {1, -1, 3, 0, 1};

#define SCE MPCC_OP_SOFTMAXCROSSENTROPYLOSS
#define NLL MPCC_OP_NEGATIVELOGLIKELIHOODLOSS

static int32_t
b_sce_mean(mpcc_gc *c)
{
	return loss_node(c, SCE, "mean", MPCC_GC_SHAPE(4, 5), labels_4, false, false, 1);
}

static int32_t
b_sce_sum_spatial(mpcc_gc *c)
{
	return loss_node(c, SCE, "sum", MPCC_GC_SHAPE(3, 4, 2), labels_3x2, false, false, 1);
}

static int32_t
b_sce_none(mpcc_gc *c)
{
	return loss_node(c, SCE, "none", MPCC_GC_SHAPE(4, 5), labels_4, false, false, 1);
}

static int32_t
b_sce_weights_ignore_mean(mpcc_gc *c)
{
	return loss_node(c, SCE, "mean", MPCC_GC_SHAPE(5, 4), labels_ignore_5, true, true, 1);
}

static int32_t
b_sce_log_prob_output(mpcc_gc *c)
{
	return loss_node(c, SCE, "sum", MPCC_GC_SHAPE(4, 5), labels_4, false, false, 2);
}

static int32_t
b_nll_mean(mpcc_gc *c)
{
	return loss_node(c, NLL, "mean", MPCC_GC_SHAPE(4, 5), labels_4, false, false, 1);
}

static int32_t
b_nll_sum_spatial(mpcc_gc *c)
{
	return loss_node(c, NLL, "sum", MPCC_GC_SHAPE(3, 4, 2), labels_3x2, false, false, 1);
}

static int32_t
b_nll_none(mpcc_gc *c)
{
	return loss_node(c, NLL, "none", MPCC_GC_SHAPE(4, 5), labels_4, false, false, 1);
}

static int32_t
b_nll_weights_ignore_mean(mpcc_gc *c)
{
	return loss_node(c, NLL, "mean", MPCC_GC_SHAPE(5, 4), labels_ignore_5, true, true, 1);
}

static const mpcc_gc_case cases[] = {
    /* matrix products */
    {"matmul_2d", b_matmul_2d},
    {"matmul_batch_dims_broadcast", b_matmul_batch_broadcast},
    {"matmul_vector_a", b_matmul_vector_a},
    {"matmul_vector_b", b_matmul_vector_b},
    {"matmul_constant_a_only_b_differentiated", b_matmul_constant_a},
    {"gemm_transposed_scaled_row_bias", b_gemm_transposed_row_bias},
    {"gemm_column_bias", b_gemm_column_bias},
    {"gemm_trans_a_scalar_bias", b_gemm_trans_a_scalar_bias},
    {"gemm_zero_beta", b_gemm_zero_beta},
    /* broadcasting arithmetic */
    {"add_broadcast", b_add_broadcast},
    {"sub_broadcast", b_sub_broadcast},
    {"mul_broadcast", b_mul_broadcast},
    {"div_broadcast", b_div_broadcast},
    {"mul_same_value_twice", b_mul_same_value_twice},
    {"pow_constant_exponent", b_pow_constant_exponent},
    {"pow_both_operands", b_pow_both_operands},
    {"sum_three_broadcast", b_sum_three_broadcast},
    {"mean_two_broadcast", b_mean_two},
    {"where_broadcast", b_where_broadcast},
    {"two_consumers", b_two_consumers},
    /* pointwise */
    {"neg", b_neg},
    {"relu", b_relu},
    {"leakyrelu", b_leakyrelu},
    {"sigmoid", b_sigmoid},
    {"tanh", b_tanh},
    {"exp", b_exp},
    {"log", b_log},
    {"sqrt", b_sqrt},
    {"identity", b_identity},
    {"reciprocal", b_reciprocal},
    {"abs", b_abs},
    {"sin", b_sin},
    {"cos", b_cos},
    {"erf", b_erf},
    {"softplus", b_softplus},
    {"gelu_exact", b_gelu_exact},
    {"gelu_tanh", b_gelu_tanh},
    {"dropout_inference", b_dropout_inference},
    {"cast_f32_to_f64", b_cast_f32_to_f64},
    /* movement */
    {"reshape_inferred_dim", b_reshape_inferred_dim},
    {"flatten_axis2", b_flatten_axis2},
    {"transpose_perm", b_transpose_perm},
    {"squeeze_axis", b_squeeze_axis},
    {"unsqueeze_axes", b_unsqueeze_axes},
    {"expand", b_expand},
    {"concat_with_constant", b_concat_with_constant},
    {"split_one_part_unused", b_split_one_part_unused},
    {"split_both_parts", b_split_both_parts},
    {"slice_unit_steps", b_slice_unit_steps},
    {"slice_strided_negative_step", b_slice_strided_negative},
    /* reductions, softmax, losses */
    {"softmax_last_axis", b_softmax_last_axis},
    {"softmax_middle_axis", b_softmax_middle_axis},
    {"softmax_opset11_coerced", b_softmax_opset11_coerced},
    {"logsoftmax_axis0", b_logsoftmax_axis0},
    {"reduce_sum_axis_dropped", b_reduce_sum_axis_dropped},
    {"reduce_sum_all_kept", b_reduce_sum_all_kept},
    {"reduce_sum_opset11_attr", b_reduce_sum_opset11_attr},
    {"reduce_mean_attr_axes", b_reduce_mean_attr_axes},
    {"reduce_mean_opset18_input_axes", b_reduce_mean_opset18_input_axes},
    {"reduce_sum_noop_empty_axes", b_reduce_sum_noop_empty_axes},
    {"sce_mean", b_sce_mean},
    {"sce_sum_spatial", b_sce_sum_spatial},
    {"sce_none", b_sce_none},
    {"sce_weights_ignore_index_mean", b_sce_weights_ignore_mean},
    {"sce_log_prob_output", b_sce_log_prob_output},
    {"nll_mean", b_nll_mean},
    {"nll_sum_spatial", b_nll_sum_spatial},
    {"nll_none", b_nll_none},
    {"nll_weights_ignore_index_mean", b_nll_weights_ignore_mean},
};

/* ---------------------------------------------------------------- the contract */

static bool
starts_with(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

static void
op_without_rule_is_an_error_naming_the_node(void **state)
{
	(void)state;
	mpcc_gc c;
	int32_t grad;
	mpcc_diag d;
	mpcc_gc_init(&c, "norule");
	int32_t x = mpcc_gc_wrt(&c, "x", MPCC_GC_SIGNED, MPCC_GC_SHAPE(3, 4));
	int32_t loss = mpcc_gc_append_loss(&c, mpcc_gc_op(&c, MPCC_OP_REDUCEMAX, "peak", 1, x));
	mpcc_diag_init(&d);
	assert_int_equal(mpcc_autodiff(c.g, loss, MPCC_NONE, &x, 1, &grad, &d),
	                 MPCC_ERR_UNSUPPORTED);
	assert_non_null(strstr(d.msg, "node 'peak' (ReduceMax, opset 17): no gradient rule"));
	assert_int_equal(grad, MPCC_NONE);
	mpcc_graph_destroy(c.g);
	mpcc_gc_free_data(&c);
}

/* A rule that refuses part of a node (a gradient through LayerNormalization's
 * Mean output) names the node and the part. */
static void
a_part_without_a_rule_is_an_error_naming_it(void **state)
{
	(void)state;
	mpcc_gc c;
	int32_t grad, out[2];
	mpcc_diag d;
	mpcc_gc_init(&c, "partial");
	int32_t x = mpcc_gc_wrt(&c, "x", MPCC_GC_SIGNED, MPCC_GC_SHAPE(2, 4));
	int32_t in[2] = {x, mpcc_gc_cfloat(&c, MPCC_GC_SIGNED, MPCC_GC_SHAPE(4))};
	mpcc_gc_opn(&c, MPCC_OP_LAYERNORMALIZATION, "ln", 2, in, 2, out);
	int32_t loss = mpcc_gc_append_loss(&c, mpcc_gc_op(&c, MPCC_OP_ADD, "both", 2, out[0],
	                                                  out[1]));
	mpcc_diag_init(&d);
	assert_int_equal(mpcc_autodiff(c.g, loss, MPCC_NONE, &x, 1, &grad, &d),
	                 MPCC_ERR_UNSUPPORTED);
	assert_non_null(strstr(d.msg, "node 'ln' (LayerNormalization, opset 17): no gradient rule "
	                              "for a gradient through Mean or InvStdDev"));
	mpcc_graph_destroy(c.g);
	mpcc_gc_free_data(&c);
}

/* z is not read at all; w reaches the loss only through an integer value. */
static void
a_value_not_reaching_the_loss_gets_none(void **state)
{
	(void)state;
	mpcc_gc c;
	int32_t grads[3];
	mpcc_diag d;
	mpcc_gc_init(&c, "unreached");
	int32_t x = mpcc_gc_wrt(&c, "x", MPCC_GC_SIGNED, MPCC_GC_SHAPE(2, 3));
	int32_t z = mpcc_gc_wrt(&c, "z", MPCC_GC_SIGNED, MPCC_GC_SHAPE(2, 3));
	int32_t w = mpcc_gc_wrt(&c, "w", MPCC_GC_SIGNED, MPCC_GC_SHAPE(2, 3));
	int32_t wi = mpcc_gc_op(&c, MPCC_OP_CAST, "to_int", 1, w);
	mpcc_gc_attr_i(&c, "to", 7);
	int32_t wf = mpcc_gc_op(&c, MPCC_OP_CAST, "to_float", 1, wi);
	mpcc_gc_attr_i(&c, "to", 11);
	int32_t loss = mpcc_gc_append_loss(
	    &c, mpcc_gc_op(&c, MPCC_OP_ADD, "add", 2, mpcc_gc_op(&c, MPCC_OP_EXP, "e", 1, x), wf));
	int32_t wrts[3] = {x, z, w};
	mpcc_diag_init(&d);
	assert_int_equal(mpcc_autodiff(c.g, loss, MPCC_NONE, wrts, 3, grads, &d), MPCC_OK);
	assert_true(grads[0] != MPCC_NONE);
	assert_int_equal(grads[1], MPCC_NONE);
	assert_int_equal(grads[2], MPCC_NONE);
	mpcc_graph_destroy(c.g);
	mpcc_gc_free_data(&c);
}

/* x feeds Neg and Tanh: its gradient is an Add of both contributions, named
 * after the consumer visited second; forward names are untouched. */
static void
a_value_read_twice_sums_both_contributions(void **state)
{
	(void)state;
	mpcc_gc c;
	int32_t grad;
	mpcc_diag d;
	mpcc_gc_init(&c, "twice");
	int32_t x = mpcc_gc_wrt(&c, "x", MPCC_GC_SIGNED, MPCC_GC_SHAPE(2, 3));
	int32_t n = mpcc_gc_op(&c, MPCC_OP_NEG, "neg", 1, x),
	        t = mpcc_gc_op(&c, MPCC_OP_TANH, "tanh", 1, x);
	int32_t loss = mpcc_gc_append_loss(&c, mpcc_gc_op(&c, MPCC_OP_ADD, "add", 2, n, t));
	int n_nodes = c.g->n_nodes;
	mpcc_diag_init(&d);
	assert_int_equal(mpcc_autodiff(c.g, loss, MPCC_NONE, &x, 1, &grad, &d), MPCC_OK);
	const mpcc_node *p = &c.g->nodes[c.g->values[grad].producer];
	assert_int_equal(p->op, MPCC_OP_ADD);
	assert_string_equal(p->name, "grad/neg/acc0");
	assert_string_equal(c.g->nodes[1].name, "tanh");
	for (int i = n_nodes; i < c.g->n_nodes; i++)
		assert_true(starts_with(c.g->nodes[i].name, "grad/"));
	mpcc_graph_destroy(c.g);
	mpcc_gc_free_data(&c);
}

/* loss = sum(x * x) in f64, seeded by an f32 graph input "scale" = 4:
 * the gradient is 8 x. */
static void
the_seed_scales_the_gradient(void **state)
{
	(void)state;
	mpcc_gc c;
	int32_t grad;
	mpcc_diag d;
	mpcc_gc_runner r;
	mpcc_gc_init(&c, "seed");
	int32_t x = mpcc_gc_wrt(&c, "x", MPCC_GC_SIGNED, MPCC_GC_SHAPE(2, 3));
	int32_t scale = mpcc_gc_wrt_typed(&c, "scale", MPCC_DTYPE_F32, MPCC_GC_SIGNED, 0, NULL);
	c.data[1][0] = 4.0;
	int32_t loss = mpcc_gc_op(&c, MPCC_OP_REDUCESUM, "loss", 1,
	                          mpcc_gc_op(&c, MPCC_OP_MUL, "sq", 2, x, x));
	mpcc_gc_attr_i(&c, "keepdims", 0);
	mpcc_gc_infer(c.g);
	mpcc_diag_init(&d);
	assert_int_equal(mpcc_autodiff(c.g, loss, scale, &x, 1, &grad, &d), MPCC_OK);
	assert_int_equal(mpcc_graph_add_output(c.g, grad), MPCC_OK);
	mpcc_gc_runner_open(&r, mpcc_gc_compile(c.g));
	mpcc_gc_runner_run(&r, &c);
	for (int e = 0; e < 6; e++)
		assert_true(fabs(mpcc_gc_runner_out(&r, 0, e) - 8 * c.data[0][e]) <= 1e-12);
	mpcc_gc_runner_close(&r);
	mpcc_gc_free_data(&c);
}

/* All four inputs equal: each 2x2 window's gradient goes to its first
 * element in window order, whatever the order of the others. */
static void
maxpool_ties_go_to_the_first_maximum(void **state)
{
	(void)state;
	static const double rw[2] = {2, 3};
	mpcc_gc c;
	int32_t grad;
	mpcc_diag d;
	mpcc_gc_runner r;
	mpcc_gc_init(&c, "ties");
	int32_t x = mpcc_gc_wrt(&c, "x", MPCC_GC_SIGNED, MPCC_GC_SHAPE(1, 1, 2, 3));
	for (int e = 0; e < 6; e++)
		c.data[0][e] = 0.5;
	int32_t y = mpcc_gc_op(&c, MPCC_OP_MAXPOOL, "pool", 1, x);
	mpcc_gc_attr_is(&c, "kernel_shape", MPCC_GC_SHAPE(2, 2));
	int32_t rv = mpcc_gc_const_data(&c, MPCC_DTYPE_F64, MPCC_GC_SHAPE(1, 1, 1, 2), rw);
	int32_t loss = mpcc_gc_op(&c, MPCC_OP_REDUCESUM, "loss", 1,
	                          mpcc_gc_op(&c, MPCC_OP_MUL, "w", 2, y, rv));
	mpcc_gc_attr_i(&c, "keepdims", 0);
	mpcc_gc_infer(c.g);
	mpcc_diag_init(&d);
	assert_int_equal(mpcc_autodiff(c.g, loss, MPCC_NONE, &x, 1, &grad, &d), MPCC_OK);
	assert_int_equal(mpcc_graph_add_output(c.g, grad), MPCC_OK);
	mpcc_gc_runner_open(&r, mpcc_gc_compile(c.g));
	mpcc_gc_runner_run(&r, &c);
	static const double want[6] = {2, 3, 0, 0, 0, 0};
	for (int e = 0; e < 6; e++)
		assert_true(mpcc_gc_runner_out(&r, 0, e) == want[e]);
	mpcc_gc_runner_close(&r);
	mpcc_gc_free_data(&c);
}

/*
 * W is an initializer, so Transpose(W) is folded, and dead-code elimination
 * has run with no outputs, so every forward node is dead: the gradient still
 * flows through the folded Transpose, and the Tanh it needs comes back to
 * life. y = tanh(x W^T), loss = sum(y R): dW = ((1 - y^2) R)^T x.
 */
static void
initializers_differentiate_through_folded_and_dead_nodes(void **state)
{
	(void)state;
	mpcc_gc c;
	int32_t grad;
	mpcc_diag d;
	mpcc_gc_runner r;
	double wv[6], rv[12];
	mpcc_gc_init(&c, "initializer");
	int32_t x = mpcc_gc_wrt(&c, "x", MPCC_GC_SIGNED, MPCC_GC_SHAPE(4, 2));
	for (int e = 0; e < 6; e++)
		wv[e] = mpcc_gc_sample(&c, MPCC_GC_SIGNED);
	for (int e = 0; e < 12; e++)
		rv[e] = mpcc_gc_sample(&c, MPCC_GC_SIGNED);
	int32_t w = mpcc_gc_const_data(&c, MPCC_DTYPE_F64, MPCC_GC_SHAPE(3, 2), wv);
	c.g->values[w].flags |= MPCC_VALUE_WEIGHT;
	int32_t y = mpcc_gc_op(&c, MPCC_OP_TANH, "tanh", 1,
	                       mpcc_gc_op(&c, MPCC_OP_MATMUL, "mm", 2, x,
	                                  mpcc_gc_op(&c, MPCC_OP_TRANSPOSE, "wt", 1, w)));
	int32_t rc = mpcc_gc_const_data(&c, MPCC_DTYPE_F64, MPCC_GC_SHAPE(4, 3), rv);
	int32_t loss = mpcc_gc_op(&c, MPCC_OP_REDUCESUM, "loss", 1,
	                          mpcc_gc_op(&c, MPCC_OP_MUL, "weigh", 2, y, rc));
	mpcc_gc_attr_i(&c, "keepdims", 0);
	mpcc_gc_infer(c.g);
	mpcc_pass_ctx cx = {.d = &d, .opts = mpcc_gc_options()};
	mpcc_diag_init(&d);
	assert_int_equal(mpcc_eliminate_dead(c.g, &cx), MPCC_OK);
	assert_true(c.g->nodes[c.g->values[y].producer].dead);
	assert_int_equal(mpcc_autodiff(c.g, loss, MPCC_NONE, &w, 1, &grad, &d), MPCC_OK);
	assert_false(c.g->nodes[c.g->values[y].producer].dead);
	assert_int_equal(mpcc_graph_add_output(c.g, grad), MPCC_OK);
	mpcc_gc_runner_open(&r, mpcc_gc_compile(c.g));
	mpcc_gc_runner_run(&r, &c);
	for (int j = 0; j < 3; j++) {
		for (int k = 0; k < 2; k++) {
			double want = 0;
			for (int i = 0; i < 4; i++) {
				double z = c.data[0][i * 2] * wv[j * 2] +
				           c.data[0][i * 2 + 1] * wv[j * 2 + 1];
				double t = tanh(z);
				want += (1 - t * t) * rv[i * 3 + j] * c.data[0][i * 2 + k];
			}
			assert_true(fabs(mpcc_gc_runner_out(&r, 0, j * 2 + k) - want) <= 1e-12);
		}
	}
	mpcc_gc_runner_close(&r);
	mpcc_gc_free_data(&c);
}

static void
a_non_float_loss_is_invalid(void **state)
{
	(void)state;
	mpcc_gc c;
	int32_t grad;
	mpcc_diag d;
	mpcc_gc_init(&c, "intloss");
	int32_t x = mpcc_gc_wrt(&c, "x", MPCC_GC_SIGNED, MPCC_GC_SHAPE(3));
	int32_t l = mpcc_gc_op(&c, MPCC_OP_CAST, "to_int", 1, x);
	mpcc_gc_attr_i(&c, "to", 7);
	mpcc_gc_infer(c.g);
	mpcc_diag_init(&d);
	assert_int_equal(mpcc_autodiff(c.g, l, MPCC_NONE, &x, 1, &grad, &d), MPCC_ERR_INVALID);
	assert_int_equal(grad, MPCC_NONE);
	mpcc_graph_destroy(c.g);
	mpcc_gc_free_data(&c);
}

/* The node of g named name (NULL when none). */
static const mpcc_node *
node_named(const mpcc_graph *g, const char *name)
{
	for (int i = 0; i < g->n_nodes; i++)
		if (g->nodes[i].name && strcmp(g->nodes[i].name, name) == 0)
			return &g->nodes[i];
	return NULL;
}

/*
 * w (f32) feeds two MatMuls, h = x w and y = h w, so its gradient is the
 * Add of both contributions. Compiled in fp16, that Add computes and
 * accumulates in f32 by policy and reads f32 inputs (the casts pass widens
 * the f16 products), while the gradient MatMuls compute in f16 with f32
 * accumulation; the whole step still lowers to an fp16 plan.
 */
static void
gradient_accumulation_is_f32_in_fp16(void **state)
{
	(void)state;
	mpcc_gc c;
	int32_t grad;
	mpcc_diag d;
	mpcc_lower lx;
	mpcc_plan *p = NULL;
	mpcc_compile_options o = *mpcc_gc_options();
	o.precision = MPCC_PRECISION_FP16;
	mpcc_gc_init(&c, "accumulate");
	int32_t x = mpcc_gc_wrt_typed(&c, "x", MPCC_DTYPE_F32, MPCC_GC_SIGNED, MPCC_GC_SHAPE(2, 3));
	int32_t w = mpcc_gc_wrt_typed(&c, "w", MPCC_DTYPE_F32, MPCC_GC_SIGNED, MPCC_GC_SHAPE(3, 3));
	int32_t h = mpcc_gc_op(&c, MPCC_OP_MATMUL, "mm1", 2, x, w);
	int32_t loss = mpcc_gc_op(&c, MPCC_OP_REDUCESUM, "loss", 1,
	                          mpcc_gc_op(&c, MPCC_OP_MATMUL, "mm2", 2, h, w));
	mpcc_gc_attr_i(&c, "keepdims", 0);
	mpcc_gc_infer(c.g);
	mpcc_diag_init(&d);
	assert_int_equal(mpcc_autodiff(c.g, loss, MPCC_NONE, &w, 1, &grad, &d), MPCC_OK);
	assert_int_equal(mpcc_graph_add_output(c.g, grad), MPCC_OK);
	mpcc_pass_ctx cx = {.d = &d, .opts = &o};
	if (mpcc_run_pipeline(c.g, &cx))
		fail_msg("pipeline: %s", d.msg);

	const mpcc_node *acc = node_named(c.g, "grad/mm1/acc1");
	assert_non_null(acc);
	assert_false(acc->dead);
	assert_true(mpcc_autodiff_is_accumulation(acc));
	assert_int_equal(acc->compute, MPCC_DTYPE_F32);
	assert_int_equal(acc->accum, MPCC_DTYPE_F32);
	assert_string_equal(acc->reason, "policy: gradient accumulation (Add)");
	for (int j = 0; j < acc->n_in; j++)
		assert_int_equal(c.g->values[acc->in[j]].dtype, MPCC_DTYPE_F32);
	int n_mm = 0;
	for (int i = 0; i < c.g->n_nodes; i++) {
		const mpcc_node *n = &c.g->nodes[i];
		if (n->dead || n->op != MPCC_OP_MATMUL || !starts_with(n->name, "grad/"))
			continue;
		n_mm++;
		assert_false(mpcc_autodiff_is_accumulation(n));
		assert_int_equal(n->compute, MPCC_DTYPE_F16);
		assert_int_equal(n->accum, MPCC_DTYPE_F32);
		assert_string_equal(n->reason, "policy: matrix op (MatMul)");
	}
	assert_int_equal(n_mm, 3); /* mm2's dA and dB, mm1's dB */

	/* The mark is the name autodiff gives an inserted Add. */
	static const struct {
		const char *name;
		int32_t src_index;
		bool is_acc;
	} names[] = {
	    {"grad/x/acc0", -1, true},    {"grad/x/acc12_3", -1, true}, {"grad/x/acc0", 4, false},
	    {"grad/x/acc", -1, false},    {"grad/acc0/add", -1, false}, {"grad/x/acc0_", -1, false},
	    {"x/grad/y/acc0", -1, false},
	};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		mpcc_node n = {
		    .name = names[i].name, .op = MPCC_OP_ADD, .src_index = names[i].src_index};
		assert_int_equal(mpcc_autodiff_is_accumulation(&n), names[i].is_acc);
	}

	mpcc_lower_init(&lx, c.g, &d);
	if (mpcc_lower_graph(&lx) || mpcc_fuse_kernels(&lx, NULL) ||
	    mpcc_plan_build(c.g, &lx, MPCC_PRECISION_FP16, &p, &d))
		fail_msg("lowering: %s", d.msg);
	mpcc_lower_fini(&lx);
	mpcc_plan_free(p);
	mpcc_graph_destroy(c.g);
	mpcc_gc_free_data(&c);
}

static const struct CMUnitTest contract[] = {
    cmocka_unit_test(op_without_rule_is_an_error_naming_the_node),
    cmocka_unit_test(a_part_without_a_rule_is_an_error_naming_it),
    cmocka_unit_test(a_value_not_reaching_the_loss_gets_none),
    cmocka_unit_test(a_value_read_twice_sums_both_contributions),
    cmocka_unit_test(the_seed_scales_the_gradient),
    cmocka_unit_test(maxpool_ties_go_to_the_first_maximum),
    cmocka_unit_test(initializers_differentiate_through_folded_and_dead_nodes),
    cmocka_unit_test(a_non_float_loss_is_invalid),
    cmocka_unit_test(gradient_accumulation_is_f32_in_fp16),
};

int
main(void)
{
	return mpcc_gc_run_group("autodiff", cases, sizeof cases / sizeof cases[0], contract,
	                         sizeof contract / sizeof contract[0]);
}
