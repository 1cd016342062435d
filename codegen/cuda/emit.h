/*
 * emit.h - the CUDA emitter: kernel IR -> CUDA C source for NVRTC.
 *
 * Every stage of every kernel becomes one function
 *     extern "C" __global__ void <kernel>_s<i>(T0 *b0, T1 *b1, ...)
 * with one typed pointer per kernel buffer (f16 and bf16 as their bits in
 * unsigned short, bool as unsigned char). The generic form: each thread
 * handles points of the flattened parallel domain in a grid-stride loop and
 * folds its reduction sequentially, so results are bit-identical to the CPU
 * backend's (codegen/kir.h); stages marked serial run on one thread.
 *
 * Long reductions (at least 64 points; not serial, not matrix products, not
 * reading their own outputs) are folded cooperatively instead, by a warp or
 * a whole block per point (emit_reduce.c; mpcc_cuda_reduce_mode). Still
 * bit-identical to the CPU: integer SUM/PROD/MAX/MIN, float MAX/MIN (NaN
 * payload and the sign of a zero maximum included) and every ARG* form
 * (ties, and NaN at index 0 or elsewhere). Not bit-identical: float
 * SUM/PROD, whose partials are added in another order (f32/f64
 * accumulators; agreement within rounding, error of the order of the
 * sequential fold's own bound); f16/bf16 accumulators keep the generic
 * fold. Elementwise stages with unit-stride innermost accesses of 1-, 2-
 * or 4-byte elements give a thread W = 16 / (the narrowest size) points,
 * moved in 16-byte accesses when the addresses are aligned at run time
 * (emit_vec.c; mpcc_cuda_vec_width); each point evaluates the generic
 * text, so they are bit-identical.
 * Consecutive stages over the same rows that depend on each other only
 * row by row (softmax, normalisations, losses) are printed as one row
 * kernel (emit_row.c; mpcc_cuda_stage_span) with the same numerics.
 *
 * Matrix products (MatMul, Gemm, batched MatMul, Conv as implicit GEMM: the
 * stages codegen/kir_matrix.h recognises) get tiled kernels instead
 * (codegen/cuda/matrix.h): a block per output tile, k steps double-buffered
 * through static shared memory (at most 40 KiB, so launches need no
 * dynamic size), the stage's own stores as the fused epilogue. With f16 or
 * bf16 factors they run on tensor cores (mma.sync m16n8k16, f32
 * accumulation) with cp.async copies on sm_80+: the sums are the exact
 * products added in f32 in another order than the CPU's, so f16/bf16 plans
 * agree with the CPU backend within the usual per-dtype tolerance, not bit
 * for bit. f32 factors use a SIMT tiled kernel that folds each output over
 * k in order with a separate multiply and add, as the generic kernel does,
 * so f32 plans stay bit-identical, with one exception shared by both
 * kinds: a padded convolution's padding zeroes the input element rather
 * than the product, so an inf or NaN weight meeting a padded tap gives NaN
 * where the CPU skips the tap. TF32 is not used (no option exists yet).
 *
 * The source includes no header (f16/bf16 conversions, ldmatrix, mma.sync
 * and cp.async are inline PTX), so any NVRTC compiles it for sm_80 and
 * newer. This header is plain C: the emitter prints text and includes no
 * CUDA header.
 */
#ifndef MPCC_CUDA_EMIT_H
#define MPCC_CUDA_EMIT_H

#include "codegen/kir.h"

/* Threads per block of the generic (one point per thread) stage kernels. */
#define MPCC_CUDA_BLOCK 256

/* Writes "<kernel>_s<stage>" into buf (size n); false if it does not fit. */
bool mpcc_cuda_stage_name(char *buf, size_t n, const kir_kernel *k, int stage);

/*
 * How many stages the function of stage s runs: 1, or n >= 2 for a row
 * kernel (emit_row.c: a softmax's or a normalisation's stages, one launch
 * with a group of threads per row). Stages s+1..s+n-1 then have no function
 * and no launch of their own: callers walk stages with
 * `for (s = 0; s < n_stages; s += mpcc_cuda_stage_span(k, s))`.
 */
int mpcc_cuda_stage_span(const kir_kernel *k, int stage);
/* For tests: the group a row kernel starting at stage s gives a row
 * (MPCC_CUDA_RED_GENERIC: a thread), or -1 when s starts none. */
int mpcc_cuda_row_mode(const kir_kernel *k, int stage);
bool mpcc_cuda_row_launch(const kir_kernel *k, int stage, unsigned *grid, unsigned *block);

/* The launch configuration of stage s of k: 1x1 for serial stages; for a
 * row kernel MPCC_CUDA_BLOCK threads and a block per 8 rows (warp form),
 * per row (block form) or per 256 rows (thread form); for a
 * tiled matrix stage its block size (128 or 256) and one block per tile;
 * for a cooperative reduction MPCC_CUDA_BLOCK threads and a block per 8
 * points (warp mode) or per point (block mode); for a vectorised stage
 * MPCC_CUDA_BLOCK threads and a thread per W points; else MPCC_CUDA_BLOCK
 * threads and a thread per point. Grids are capped at 65535; the kernels
 * loop. A kernel launched with another configuration of at most
 * MPCC_CUDA_BLOCK threads still computes the right result (the tiled and
 * cooperative ones then run their generic body), only slower. */
void mpcc_cuda_stage_launch(const kir_kernel *k, int stage, unsigned *grid, unsigned *block);

/* One line on how the launch of stage s runs (its path and grid), for
 * `mpcc inspect --cuda`; s starts a launch (see mpcc_cuda_stage_span). */
void mpcc_cuda_stage_describe(const kir_kernel *k, int stage, char *buf, size_t n);

/* How a non-matrix stage is printed (emit_reduce.c and emit_vec.c state the
 * rules): one point per thread, a warp per point, a block per point. */
typedef enum mpcc_cuda_red_mode {
	MPCC_CUDA_RED_GENERIC = 0,
	MPCC_CUDA_RED_WARP,
	MPCC_CUDA_RED_BLOCK,
} mpcc_cuda_red_mode;
mpcc_cuda_red_mode mpcc_cuda_reduce_mode(const kir_kernel *k, const kir_stage *st);
/* Points an elementwise stage's thread handles with 16-byte accesses (16 /
 * the narrowest vector access's element size: 4, 8 or 16), or 1 when the
 * stage is not vectorised. */
int mpcc_cuda_vec_width(const kir_kernel *k, const kir_stage *st);
/* The launches the two paths want; false for a stage they do not take. */
bool mpcc_cuda_reduce_launch(const kir_kernel *k, const kir_stage *st, unsigned *grid,
                             unsigned *block);
bool mpcc_cuda_vec_launch(const kir_kernel *k, const kir_stage *st, unsigned *grid,
                          unsigned *block);

/*
 * The CUDA C source of all kernels, malloc'd into *out (the caller frees);
 * with `prelude` it starts with the includes and device helpers and is a
 * whole translation unit, without it several outputs can share one prelude
 * (their kernel names must differ). Errors: MPCC_ERR_INVALID (malformed
 * kernel, duplicate name), MPCC_ERR_UNSUPPORTED (an op and dtype pair the
 * emitter does not implement), MPCC_ERR_NOMEM.
 */
mpcc_status mpcc_cuda_emit(kir_kernel *const *kernels, int n_kernels, bool prelude, char **out,
                           mpcc_diag *d);

#endif
