/*
 * matrix.h - how the CUDA emitter runs a matrix-product stage: the plan.
 * Private to codegen/cuda/ and its tests.
 *
 * A stage that codegen/kir_matrix.h recognises, C[s, v] = sum_k Q[s, k] *
 * P[k, v] batched over the other parallel dims, becomes one tiled kernel:
 * a thread block computes a BM x BN tile of C (rows S, columns V flattened)
 * for one batch point, looping over the flattened reduction in BK steps,
 * with the A tile (Q, BM x BK) and the B tile (P, BK x BN) staged through
 * double-buffered shared memory. Two kinds:
 *
 * - MMA, when both factors are f32 casts of f16 (or both of bf16)
 *   expressions, as the precision pass makes them: tensor cores through
 *   inline PTX (ldmatrix, mma.sync m16n8k16, f32 accumulation). A factor
 *   that is a plain load of a 16-bit buffer whose index is affine with unit
 *   stride along k or along the rows is copied with cp.async (sm_80), in
 *   chunks of 8, 4 or 2 elements as its alignment allows; any other factor
 *   (an im2col gather, a fused cast, a padding predicate) is evaluated from
 *   its kernel IR: into registers while the previous tile is multiplied
 *   when it is cheap, else straight into shared memory one element at a
 *   time (the unrolled register form of a large expression would spill).
 * - SIMT, otherwise (f32 plans): the same tiling in f32 shared memory,
 *   each thread folding its outputs over k in order with a multiply then an
 *   add, so the sums are the generic kernel's bit for bit.
 *
 * The tile shape is chosen from the stage's extents (mpcc_cuda_matrix_plan);
 * the tables are in matrix.c. Everything is decided here, at emission, from
 * the kernel IR alone, so emission and launch agree without shared state.
 */
#ifndef MPCC_CUDA_MATRIX_H
#define MPCC_CUDA_MATRIX_H

#include "codegen/kir_matrix.h"

typedef enum mpcc_cuda_mx_kind {
	MPCC_CUDA_MX_MMA = 1, /* tensor cores, f16 or bf16 factors */
	MPCC_CUDA_MX_SIMT,    /* f32 factors, one FMA-free fold per output */
} mpcc_cuda_mx_kind;

/* One side of the product in shared memory: A = Q (rows S), B = P (rows V). */
typedef struct mpcc_cuda_operand {
	int32_t value;   /* what the tile holds: MMA the f16/bf16 expression under the
	                    factor's cast, SIMT the f32 factor */
	bool has_cond;   /* the padding predicate zeroes this operand's elements */
	bool row_fast;   /* tile stored [k][row] (rows contiguous), else [row][k] */
	int chunk;       /* cp.async elements per copy (8, 4 or 2); 0: evaluated */
	bool direct;     /* evaluated: straight into shared memory after the step's
	                    products (an expensive expression), else into registers
	                    before them and stored after (latency hidden) */
	int cost;        /* evaluated: operations per element (the expression tree) */
	int rows;        /* tile rows: BM for A, BN for B */
	int ld;          /* elements between consecutive k (row_fast) or rows in the tile */
	int64_t ext;     /* extent of the rows: |S| for A, |V| for B */
} mpcc_cuda_operand;

typedef struct mpcc_cuda_matrix {
	kir_matrix_split sp;
	int32_t cond;         /* the padding predicate or -1 */
	int64_t k_tot;        /* the flattened reduction's extent */
	int kind;             /* mpcc_cuda_mx_kind */
	mpcc_dtype dtype;     /* MMA: F16 or BF16; SIMT: F32 */
	int variant;          /* row of the kind's tile table */
	int bm, bn, bk;       /* block tile */
	int wm, wn;           /* MMA: warps along M and N (warp tile bm/wm x bn/wn) */
	int tm, tn;           /* SIMT: outputs per thread along M and N (16 x 16 threads) */
	int threads;
	int64_t tiles_m, tiles_n, k_tiles, n_tiles;
	mpcc_cuda_operand a, b;
} mpcc_cuda_matrix;

/* Rows in the tile table of kind (variants 0..n-1, largest tile first). */
int mpcc_cuda_matrix_variants(int kind);

/*
 * Plans stage `stage` of k as a tiled matrix kernel; false when it is not a
 * matrix product (it then gets the generic kernel). variant -1 chooses the
 * tile from the extents; 0..n-1 forces a row of the kind's table (tests).
 * Deterministic: the same kernel gives the same plan.
 */
bool mpcc_cuda_matrix_plan(const kir_kernel *k, int stage, int variant, mpcc_cuda_matrix *out);

/* The launch of a planned stage: `threads` threads, one block per tile
 * (capped; the kernel loops over tiles). */
void mpcc_cuda_matrix_launch(const mpcc_cuda_matrix *m, unsigned *grid, unsigned *block);

/* "mma bf16 128x128x32" style description of the plan, for reports. */
void mpcc_cuda_matrix_describe(const mpcc_cuda_matrix *m, char *buf, size_t n);

/* mpcc_cuda_emit with every matrix stage forced to tile `variant` of its
 * kind (clamped to the table), for tests; -1 is mpcc_cuda_emit. */
mpcc_status mpcc_cuda_emit_variant(kir_kernel *const *kernels, int n_kernels, bool prelude,
                                   int variant, char **out, mpcc_diag *d);

#endif
