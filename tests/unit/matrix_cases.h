/*
 * matrix_cases.h - small graphs whose kernels are matrix products (MatMul,
 * batched MatMul, Gemm with transposes, bias and Relu, padded strided
 * Conv), lowered and fused exactly as runtime/api.c does, for the CUDA
 * tests: test_cuda_compile.c compiles their kernels, test_cuda_matrix.c
 * runs them on the CPU through the emulated tensor-core kernels.
 *
 * Header-only (static functions) so each test executable carries its own
 * copy; include after <cmocka.h>. Graph inputs are the activations, so
 * constant folding leaves the products alone; weights are initializers
 * with seeded uniform data in [-1, 1).
 */
#ifndef MPCC_TEST_MATRIX_CASES_H
#define MPCC_TEST_MATRIX_CASES_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/fuse.h"
#include "codegen/lower.h"
#include "passes/passes.h"

typedef enum mx_case_op {
	MX_MATMUL,  /* x[a] @ w[b] (w an input too when b_input) */
	MX_GEMM,    /* Gemm(x, w, bias) with transA/transB, then Relu when relu */
	MX_CONV,    /* Conv(x, w, bias) with pads and strides */
} mx_case_op;

typedef struct mx_case {
	const char *name;
	mx_case_op op;
	int rank_a, rank_b;
	int64_t a[4], b[4]; /* shapes of the two operands */
	bool b_input;       /* the second operand is a graph input, not a weight */
	int trans_a, trans_b;
	int64_t bias;       /* Gemm/Conv bias length, 0 for none */
	bool relu;
	int64_t pad, stride; /* Conv: the same on every side and axis */
} mx_case;

/* The cases: the first four are the issue's, the rest are small and
 * ragged (K not a multiple of the tile or of the copy size, a transposed
 * A that copies along rows, a batch folded into the columns). */
static const mx_case mx_cases[] = {
    {"matmul_256x512x384", MX_MATMUL, 2, 2, {256, 384}, {384, 512}, false, 0, 0, 0, false, 0, 0},
    {"bmm_8x64x96x80", MX_MATMUL, 3, 3, {8, 64, 96}, {8, 96, 80}, true, 0, 0, 0, false, 0, 0},
    {"gemm_transb_bias_relu", MX_GEMM, 2, 2, {100, 72}, {136, 72}, false, 0, 1, 136, true, 0, 0},
    {"conv_pad1_stride2", MX_CONV, 4, 4, {2, 8, 17, 19}, {24, 8, 3, 3}, false, 0, 0, 24, false, 1,
     2},
    {"gemm_ragged", MX_GEMM, 2, 2, {37, 45}, {45, 70}, false, 0, 0, 70, false, 0, 0},
    {"gemm_transa", MX_GEMM, 2, 2, {64, 40}, {64, 48}, false, 1, 0, 0, true, 0, 0},
    {"matmul_batch_in_cols", MX_MATMUL, 3, 2, {3, 20, 64}, {64, 24}, false, 0, 0, 0, false, 0, 0},
    {"conv_small", MX_CONV, 4, 4, {1, 3, 9, 7}, {5, 3, 3, 3}, false, 0, 0, 5, false, 1, 1},
};
#define MX_N_CASES ((int)(sizeof(mx_cases) / sizeof(mx_cases[0])))
#define MX_N_BIG 4 /* the first cases, too large to emulate thread by thread */

static int32_t
mx_value(mpcc_graph *g, const char *name, int rank, const int64_t *dims)
{
	int32_t v = mpcc_graph_add_value(g, name);

	assert_int_not_equal(v, MPCC_NONE);
	g->values[v].dtype = MPCC_DTYPE_F32;
	g->values[v].rank = rank;
	for (int i = 0; i < rank; i++)
		g->values[v].dims[i] = dims[i];
	return v;
}

static int32_t
mx_weight(mpcc_graph *g, const char *name, int rank, const int64_t *dims, unsigned seed)
{
	int32_t v = mx_value(g, name, rank, dims);
	int64_t n = mpcc_value_numel(&g->values[v]);
	float *data = malloc(sizeof(float) * (size_t)n);

	assert_non_null(data);
	for (int64_t i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		data[i] = (float)((seed >> 8) & 0xffff) / 32768.0f - 1.0f;
	}
	mpcc_value_set_data(&g->values[v], data, sizeof(float) * (size_t)n);
	g->values[v].flags |= MPCC_VALUE_CONST | MPCC_VALUE_WEIGHT;
	return v;
}

static void
mx_ints(mpcc_graph *g, int32_t n, const char *name, int count, int64_t v)
{
	mpcc_attr *a = mpcc_node_add_attr(g, n, name, MPCC_ATTR_INTS);

	assert_non_null(a);
	a->ints = mpcc_arena_alloc(&g->arena, sizeof(int64_t) * (size_t)count);
	assert_non_null(a->ints);
	for (int i = 0; i < count; i++)
		a->ints[i] = v;
	a->n = count;
}

static void
mx_int(mpcc_graph *g, int32_t n, const char *name, int64_t v)
{
	mpcc_attr *a = mpcc_node_add_attr(g, n, name, MPCC_ATTR_INT);

	assert_non_null(a);
	a->i = v;
}

/* The graph of case c: input "x" (and "w" when b_input), output "y". */
static mpcc_graph *
mx_case_graph(const mx_case *c)
{
	mpcc_graph *g = NULL;
	int32_t in[3], y, n, out;

	assert_int_equal(mpcc_graph_create(&g), MPCC_OK);
	g->opset = 17;
	in[0] = mx_value(g, "x", c->rank_a, c->a);
	assert_int_equal(mpcc_graph_add_input(g, in[0]), MPCC_OK);
	if (c->b_input) {
		in[1] = mx_value(g, "w", c->rank_b, c->b);
		assert_int_equal(mpcc_graph_add_input(g, in[1]), MPCC_OK);
	} else {
		in[1] = mx_weight(g, "w", c->rank_b, c->b, 7);
	}
	in[2] = c->bias ? mx_weight(g, "bias", 1, &c->bias, 11) : MPCC_NONE;
	y = mpcc_graph_add_value(g, c->relu ? "t" : "y");
	assert_int_not_equal(y, MPCC_NONE);
	n = mpcc_graph_add_node(g,
	                        c->op == MX_MATMUL ? MPCC_OP_MATMUL
	                        : c->op == MX_GEMM ? MPCC_OP_GEMM
	                                           : MPCC_OP_CONV,
	                        "mx", c->op == MX_MATMUL ? 2 : c->bias ? 3 : 2, in, 1, &y);
	assert_int_not_equal(n, MPCC_NONE);
	g->nodes[n].opset = 17;
	if (c->op == MX_GEMM) {
		mx_int(g, n, "transA", c->trans_a);
		mx_int(g, n, "transB", c->trans_b);
	} else if (c->op == MX_CONV) {
		mx_ints(g, n, "pads", 4, c->pad);
		mx_ints(g, n, "strides", 2, c->stride);
		mx_ints(g, n, "kernel_shape", 2, c->b[2]);
	}
	out = y;
	if (c->relu) {
		out = mpcc_graph_add_value(g, "y");
		assert_int_not_equal(out, MPCC_NONE);
		n = mpcc_graph_add_node(g, MPCC_OP_RELU, "relu", 1, &y, 1, &out);
		assert_int_not_equal(n, MPCC_NONE);
		g->nodes[n].opset = 17;
	}
	assert_int_equal(mpcc_graph_add_output(g, out), MPCC_OK);
	return g;
}

/*
 * Runs the pass pipeline on g in precision p, lowers and fuses it into lx
 * (as runtime/api.c does). Returns the pipeline's status; on failure the
 * message is in d.
 */
static mpcc_status
mx_lower(mpcc_graph *g, mpcc_precision p, mpcc_lower *lx, mpcc_diag *d)
{
	mpcc_compile_options opts;
	mpcc_pass_ctx pcx = {.d = d, .opts = &opts};
	mpcc_status st;

	mpcc_compile_options_init(&opts);
	opts.precision = p;
	st = mpcc_run_pipeline(g, &pcx);
	mpcc_lower_init(lx, g, d);
	if (st == MPCC_OK)
		st = mpcc_lower_graph(lx);
	if (st == MPCC_OK)
		st = mpcc_fuse_kernels(lx, NULL);
	return st;
}

#endif
