/*
 * test_autodiff_nn.c - passes/autodiff*.c: the gradient rules of the
 * network layers (Gather, LayerNormalization, BatchNormalization in
 * inference form, Conv, MaxPool, AveragePool, GlobalAveragePool) against
 * central finite differences. The harness is gradcheck.h; the pass's
 * contract and the other ops' rules are in test_autodiff.c.
 *
 * Each case (the table `cases`, one cmocka test each) builds a tiny graph
 * whose f64 inputs are the values to differentiate and returns y;
 * mpcc_gc_check appends loss = ReduceSum(y * R), differentiates, and
 * compares every gradient element with the finite difference of the loss.
 * The shapes exercise strides, padding, dilation, SAME_UPPER, a stride that
 * leaves a tail, groups, ceil mode, padding counted or not, and repeated
 * and negative gather indices.
 */
#include "gradcheck.h"

/* ---------------------------------------------------------------- the cases */

/* -- gather */

static int32_t
b_gather_embedding_repeats(mpcc_gc *c)
{
	static const int64_t idx[] = {1, 4, 1, -1, 0, 5, 5, 2};
	int32_t e = mpcc_gc_wrt(c, "table", MPCC_GC_SIGNED, MPCC_GC_SHAPE(6, 3));
	return mpcc_gc_op(c, MPCC_OP_GATHER, "embed", 2, e,
	                  mpcc_gc_const_data(c, MPCC_DTYPE_I64, MPCC_GC_SHAPE(2, 4), idx));
}

static int32_t
b_gather_axis1(mpcc_gc *c)
{
	static const int64_t idx[] = {4, 0, 4, -2};
	int32_t x = mpcc_gc_wrt(c, "x", MPCC_GC_SIGNED, MPCC_GC_SHAPE(3, 5, 2));
	int32_t y = mpcc_gc_op(c, MPCC_OP_GATHER, "gather", 2, x,
	                       mpcc_gc_const_data(c, MPCC_DTYPE_I64, MPCC_GC_SHAPE(2, 2), idx));
	mpcc_gc_attr_i(c, "axis", 1);
	return y;
}

/* -- normalisation */

static int32_t
b_layernorm_last_axis(mpcc_gc *c)
{
	int32_t x = mpcc_gc_wrt(c, "x", MPCC_GC_SIGNED, MPCC_GC_SHAPE(3, 5)),
	        s = mpcc_gc_wrt(c, "scale", MPCC_GC_SIGNED, MPCC_GC_SHAPE(5));
	return mpcc_gc_op(c, MPCC_OP_LAYERNORMALIZATION, "ln", 3, x, s,
	                  mpcc_gc_wrt(c, "b", MPCC_GC_SIGNED, MPCC_GC_SHAPE(5)));
}

static int32_t
b_layernorm_axis1_broadcast(mpcc_gc *c)
{
	int32_t x = mpcc_gc_wrt(c, "x", MPCC_GC_SIGNED, MPCC_GC_SHAPE(2, 3, 4)),
	        s = mpcc_gc_wrt(c, "scale", MPCC_GC_SIGNED, MPCC_GC_SHAPE(3, 4));
	int32_t y = mpcc_gc_op(c, MPCC_OP_LAYERNORMALIZATION, "ln", 3, x, s,
	                       mpcc_gc_wrt(c, "b", MPCC_GC_SIGNED, MPCC_GC_SHAPE(4)));
	mpcc_gc_attr_i(c, "axis", 1);
	mpcc_gc_attr_f(c, "epsilon", 0.01f);
	return y;
}

/* inference-form BatchNormalization: the statistics are inputs too */
static int32_t
b_batchnorm_nchw(mpcc_gc *c)
{
	int32_t x = mpcc_gc_wrt(c, "x", MPCC_GC_SIGNED, MPCC_GC_SHAPE(2, 3, 4, 2)),
	        s = mpcc_gc_wrt(c, "scale", MPCC_GC_SIGNED, MPCC_GC_SHAPE(3)),
	        b = mpcc_gc_wrt(c, "b", MPCC_GC_SIGNED, MPCC_GC_SHAPE(3)),
	        v = mpcc_gc_wrt(c, "var", MPCC_GC_POSITIVE, MPCC_GC_SHAPE(3));
	return mpcc_gc_op(c, MPCC_OP_BATCHNORMALIZATION, "bn", 5, x, s, b,
	                  mpcc_gc_cfloat(c, MPCC_GC_SIGNED, MPCC_GC_SHAPE(3)), v);
}

static int32_t
b_batchnorm_nc_mean(mpcc_gc *c)
{
	int32_t x = mpcc_gc_wrt(c, "x", MPCC_GC_SIGNED, MPCC_GC_SHAPE(5, 3)),
	        m = mpcc_gc_wrt(c, "mean", MPCC_GC_SIGNED, MPCC_GC_SHAPE(3));
	int32_t y = mpcc_gc_op(c, MPCC_OP_BATCHNORMALIZATION, "bn", 5, x,
	                       mpcc_gc_cfloat(c, MPCC_GC_SIGNED, MPCC_GC_SHAPE(3)),
	                       mpcc_gc_cfloat(c, MPCC_GC_SIGNED, MPCC_GC_SHAPE(3)), m,
	                       mpcc_gc_cfloat(c, MPCC_GC_POSITIVE, MPCC_GC_SHAPE(3)));
	mpcc_gc_attr_f(c, "epsilon", 0.01f);
	return y;
}

/* -- convolution and pooling */

static int32_t
b_conv_strided_padded_dilated(mpcc_gc *c)
{
	int32_t x = mpcc_gc_wrt(c, "x", MPCC_GC_SIGNED, MPCC_GC_SHAPE(2, 3, 7, 6)),
	        w = mpcc_gc_wrt(c, "w", MPCC_GC_SIGNED, MPCC_GC_SHAPE(4, 3, 3, 2));
	int32_t y = mpcc_gc_op(c, MPCC_OP_CONV, "conv", 3, x, w,
	                       mpcc_gc_wrt(c, "b", MPCC_GC_SIGNED, MPCC_GC_SHAPE(4)));
	mpcc_gc_attr_is(c, "strides", MPCC_GC_SHAPE(2, 1));
	mpcc_gc_attr_is(c, "pads", MPCC_GC_SHAPE(1, 0, 0, 1));
	mpcc_gc_attr_is(c, "dilations", MPCC_GC_SHAPE(1, 2));
	return y;
}

static int32_t
b_conv_same_upper_strided(mpcc_gc *c)
{
	int32_t x = mpcc_gc_wrt(c, "x", MPCC_GC_SIGNED, MPCC_GC_SHAPE(1, 2, 5, 6)),
	        w = mpcc_gc_wrt(c, "w", MPCC_GC_SIGNED, MPCC_GC_SHAPE(3, 2, 3, 3));
	int32_t y = mpcc_gc_op(c, MPCC_OP_CONV, "conv", 2, x, w);
	mpcc_gc_attr_s(c, "auto_pad", "SAME_UPPER");
	mpcc_gc_attr_is(c, "strides", MPCC_GC_SHAPE(2, 2));
	return y;
}

static int32_t
b_conv_1d_stride_leaves_tail(mpcc_gc *c)
{
	int32_t x = mpcc_gc_wrt(c, "x", MPCC_GC_SIGNED, MPCC_GC_SHAPE(2, 3, 9)),
	        w = mpcc_gc_wrt(c, "w", MPCC_GC_SIGNED, MPCC_GC_SHAPE(2, 3, 4));
	int32_t y = mpcc_gc_op(c, MPCC_OP_CONV, "conv", 2, x, w);
	mpcc_gc_attr_is(c, "strides", MPCC_GC_SHAPE(3));
	return y;
}

static int32_t
b_conv_grouped(mpcc_gc *c)
{
	int32_t x = mpcc_gc_wrt(c, "x", MPCC_GC_SIGNED, MPCC_GC_SHAPE(2, 4, 5, 4)),
	        w = mpcc_gc_wrt(c, "w", MPCC_GC_SIGNED, MPCC_GC_SHAPE(6, 2, 3, 3));
	int32_t y = mpcc_gc_op(c, MPCC_OP_CONV, "conv", 2, x, w);
	mpcc_gc_attr_i(c, "group", 2);
	mpcc_gc_attr_is(c, "pads", MPCC_GC_SHAPE(1, 1, 1, 1));
	return y;
}

/* Depthwise (group = channels), strided and dilated, a bias, 1-D. */
static int32_t
b_conv_depthwise_strided_dilated(mpcc_gc *c)
{
	int32_t x = mpcc_gc_wrt(c, "x", MPCC_GC_SIGNED, MPCC_GC_SHAPE(2, 3, 11)),
	        w = mpcc_gc_wrt(c, "w", MPCC_GC_SIGNED, MPCC_GC_SHAPE(3, 1, 3)),
	        b = mpcc_gc_wrt(c, "b", MPCC_GC_SIGNED, MPCC_GC_SHAPE(3));
	int32_t y = mpcc_gc_op(c, MPCC_OP_CONV, "conv", 3, x, w, b);
	mpcc_gc_attr_i(c, "group", 3);
	mpcc_gc_attr_is(c, "strides", MPCC_GC_SHAPE(2));
	mpcc_gc_attr_is(c, "dilations", MPCC_GC_SHAPE(2));
	mpcc_gc_attr_is(c, "pads", MPCC_GC_SHAPE(1, 0));
	return y;
}

static int32_t
b_maxpool_overlapping_padded(mpcc_gc *c)
{
	int32_t y = mpcc_gc_op(c, MPCC_OP_MAXPOOL, "pool", 1,
	                       mpcc_gc_wrt(c, "x", MPCC_GC_SIGNED, MPCC_GC_SHAPE(2, 2, 5, 6)));
	mpcc_gc_attr_is(c, "kernel_shape", MPCC_GC_SHAPE(3, 2));
	mpcc_gc_attr_is(c, "strides", MPCC_GC_SHAPE(2, 1));
	mpcc_gc_attr_is(c, "pads", MPCC_GC_SHAPE(1, 0, 1, 1));
	return y;
}

static int32_t
b_maxpool_indices_output(mpcc_gc *c)
{
	int32_t x = mpcc_gc_wrt(c, "x", MPCC_GC_SIGNED, MPCC_GC_SHAPE(1, 2, 4, 6)), out[2];
	mpcc_gc_opn(c, MPCC_OP_MAXPOOL, "pool", 1, &x, 2, out);
	mpcc_gc_attr_is(c, "kernel_shape", MPCC_GC_SHAPE(2, 2));
	mpcc_gc_attr_is(c, "strides", MPCC_GC_SHAPE(2, 2));
	return out[0];
}

static int32_t
b_avgpool_exclude_pad(mpcc_gc *c)
{
	int32_t y = mpcc_gc_op(c, MPCC_OP_AVERAGEPOOL, "pool", 1,
	                       mpcc_gc_wrt(c, "x", MPCC_GC_SIGNED, MPCC_GC_SHAPE(1, 2, 5, 5)));
	mpcc_gc_attr_is(c, "kernel_shape", MPCC_GC_SHAPE(3, 3));
	mpcc_gc_attr_is(c, "strides", MPCC_GC_SHAPE(2, 2));
	mpcc_gc_attr_is(c, "pads", MPCC_GC_SHAPE(1, 1, 1, 1));
	return y;
}

static int32_t
b_avgpool_ceil_include_pad(mpcc_gc *c)
{
	int32_t y = mpcc_gc_op(c, MPCC_OP_AVERAGEPOOL, "pool", 1,
	                       mpcc_gc_wrt(c, "x", MPCC_GC_SIGNED, MPCC_GC_SHAPE(2, 1, 6, 5)));
	mpcc_gc_attr_is(c, "kernel_shape", MPCC_GC_SHAPE(2, 3));
	mpcc_gc_attr_is(c, "strides", MPCC_GC_SHAPE(2, 2));
	mpcc_gc_attr_is(c, "pads", MPCC_GC_SHAPE(0, 1, 0, 1));
	mpcc_gc_attr_i(c, "ceil_mode", 1);
	mpcc_gc_attr_i(c, "count_include_pad", 1);
	return y;
}

static int32_t
b_global_avgpool(mpcc_gc *c)
{
	return mpcc_gc_op(c, MPCC_OP_GLOBALAVERAGEPOOL, "gap", 1,
	                  mpcc_gc_wrt(c, "x", MPCC_GC_SIGNED, MPCC_GC_SHAPE(2, 3, 4, 5)));
}

static const mpcc_gc_case cases[] = {
    /* gather */
    {"gather_embedding_repeated_negative_indices", b_gather_embedding_repeats},
    {"gather_axis1", b_gather_axis1},
    /* normalisation */
    {"layernorm_last_axis", b_layernorm_last_axis},
    {"layernorm_axis1_broadcast_scale", b_layernorm_axis1_broadcast},
    {"batchnorm_nchw_x_scale_b_var", b_batchnorm_nchw},
    {"batchnorm_nc_x_mean_epsilon", b_batchnorm_nc_mean},
    /* convolution and pooling */
    {"conv_strided_padded_dilated", b_conv_strided_padded_dilated},
    {"conv_same_upper_strided", b_conv_same_upper_strided},
    {"conv_1d_stride_leaves_tail", b_conv_1d_stride_leaves_tail},
    {"conv_grouped", b_conv_grouped},
    {"conv_depthwise_strided_dilated", b_conv_depthwise_strided_dilated},
    {"maxpool_overlapping_padded", b_maxpool_overlapping_padded},
    {"maxpool_indices_output", b_maxpool_indices_output},
    {"avgpool_exclude_pad", b_avgpool_exclude_pad},
    {"avgpool_ceil_include_pad", b_avgpool_ceil_include_pad},
    {"global_avgpool", b_global_avgpool},
};

int
main(void)
{
	return mpcc_gc_run_group("autodiff_nn", cases, sizeof cases / sizeof cases[0], NULL, 0);
}
