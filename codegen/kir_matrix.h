/*
 * kir_matrix.h - recognising matrix-product-shaped stages, for every emitter.
 *
 * A stage has the matrix shape when it is a float SUM, accumulated in f32,
 * whose value is P * Q (or select(c, P * Q, +0), a padded convolution) and
 * two of its parallel dims separate the factors: P does not depend on dim S,
 * Q does not depend on a group V of consecutive dims (flattened). That is
 *     C[s, v] = sum_k Q[s, k] * P[k, v]
 * batched over the other parallel dims: MatMul and Gemm (either operand
 * transposed), and Conv as an implicit GEMM (V the output pixels, S the
 * output channels, P the im2col column of the input). The predicate c must
 * not vary with both S and V; it goes with the factor whose dims it shares.
 *
 * This file decides only what is backend-neutral: whether the stage has the
 * shape, which dims and factors a split names, and the affine form of an
 * index. The CPU emitter (codegen/llvm/emit_matrix.c) and the CUDA emitter
 * (codegen/cuda/matrix.c) each rank the splits with their own cost model.
 *
 * "Depends on" is by value, not by syntax: an I64 expression whose value
 * range over the loop domain is one number depends on nothing (Conv's group
 * index m / (M / group) is always 0 with one group and must not tie the
 * input to the output channel). So a factor may still name a var it does
 * not depend on; an emitter evaluates it there at any in-domain value.
 *
 * Thread safety: pure functions of their arguments; the kernel is read only.
 */
#ifndef MPCC_KIR_MATRIX_H
#define MPCC_KIR_MATRIX_H

#include "codegen/kir.h"

/* A stage recognised as a matrix product. */
typedef struct kir_matrix {
	int32_t mul;    /* the P * Q expression */
	int32_t f[2];   /* its operands, in order */
	int32_t cond;   /* the padding predicate, or -1 */
	int64_t k_tot;  /* reduction points: every reduction dim, flattened */
	uint32_t *dep;  /* var-dependence mask (bit v: var v) of exprs 0..red_value; malloc'd */
} kir_matrix;

/* One way to read the stage as C[s, v] = sum_k Q[s, k] * P[k, v]. */
typedef struct kir_matrix_split {
	int s;                    /* the S dim: C's rows */
	int vlo, vhi;             /* the V dims [vlo, vhi], flattened row-major: C's columns */
	int32_t p, q;             /* P (no S dependence) and Q (no V dependence) */
	bool q_first;             /* Q is the product's first operand */
	bool cond_on_p;           /* the predicate does not vary with S: it goes with P */
	int n_batch;              /* the other parallel dims, in order */
	int batch[KIR_MAX_DIMS];
	int64_t ext_s, ext_v, n_b; /* |S|, |V| flattened, batch points */
} kir_matrix_split;

/*
 * Recognises stage st of k. On true, *out holds the product and the
 * dependence masks (free with kir_matrix_fini). False when the stage is not
 * a matrix product: not an f32 SUM over P * Q, serial, an empty or
 * non-positive extent, fewer than two parallel dims, ACC among its
 * expressions, a load of a buffer the stage stores to (the tiled forms
 * compute several points before storing any), or out of memory; then
 * out->dep is NULL and nothing needs freeing.
 */
bool kir_matrix_match(const kir_kernel *k, const kir_stage *st, kir_matrix *out);
void kir_matrix_fini(kir_matrix *m);

/*
 * The valid splits of a matched stage, one per call: *it starts at 0 and is
 * advanced past the split returned; false when there are no more. The order
 * is fixed (S dim, then V's first and last dim, then which factor is P), so
 * an emitter that keeps the first of equally good splits is deterministic.
 */
bool kir_matrix_next_split(const kir_matrix *m, const kir_stage *st, int *it,
                           kir_matrix_split *out);

/* Whether any expression stage st evaluates loads a buffer it stores to
 * (true, too, when a store names an expression out of range). */
bool kir_reads_own_stores(const kir_kernel *k, const kir_stage *st);

/* Operands of x that are expressions: bit 0 a, bit 1 b, bit 2 c. */
unsigned kir_operand_mask(const kir_expr *x);

/*
 * Index x as c0 + sum coef[v] * var v over vars 0..n_vars-1, when it is
 * built from I64 constants, vars, +, - and products with a constant
 * (coefficients may be negative); false otherwise or on overflow.
 */
bool kir_affine(const kir_kernel *k, int32_t x, int n_vars, int64_t *coef, int64_t *c0);

#endif
