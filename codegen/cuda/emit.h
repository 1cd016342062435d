/*
 * emit.h - the CUDA emitter: kernel IR -> CUDA C source for NVRTC.
 *
 * Every stage of every kernel becomes one function
 *     extern "C" __global__ void <kernel>_s<i>(T0 *b0, T1 *b1, ...)
 * with one typed pointer per kernel buffer (f16 and bf16 as their bits in
 * unsigned short, bool as unsigned char). The generic form: each thread
 * handles points of the flattened parallel domain in a grid-stride loop and
 * folds its reduction sequentially, so results match the CPU backend's
 * (codegen/kir.h); stages marked serial run on one thread.
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

/* The launch configuration of stage s of k: 1x1 for serial stages; for a
 * tiled matrix stage its block size (128 or 256) and one block per tile;
 * else MPCC_CUDA_BLOCK threads and enough blocks (capped; the kernels loop).
 * A kernel launched with another configuration of at most MPCC_CUDA_BLOCK
 * threads still computes the right result (the tiled ones then run their
 * generic body), only slower. */
void mpcc_cuda_stage_launch(const kir_kernel *k, int stage, unsigned *grid, unsigned *block);

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
