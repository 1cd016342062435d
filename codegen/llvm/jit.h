/*
 * jit.h - the LLVM emitter: kernel IR -> LLVM IR (LLVM-C API) -> ORC LLJIT.
 *
 * Every stage of every kernel becomes one function
 *     void <kernel>_s<i>(void **bufs, int64_t begin, int64_t end)
 * that runs the stage for the points [begin, end) of its split range: the
 * row-major flattening of its first mpcc_jit_split_dims() parallel dims
 * (dim 0 alone unless it is small, as a batch of 1 is; for a stage with no
 * parallel dims the range is [0, 1)). bufs holds one pointer per kernel
 * buffer. All kernels of a plan go into one module, optimised at O2 for the
 * host CPU, so the executor may split [0, mpcc_jit_stage_range()) across
 * threads.
 */
#ifndef MPCC_JIT_H
#define MPCC_JIT_H

#include "codegen/kir.h"

typedef struct mpcc_jit mpcc_jit;
typedef void (*mpcc_stage_fn)(void **bufs, int64_t begin, int64_t end);

mpcc_status mpcc_jit_compile(kir_kernel *const *kernels, int n_kernels, mpcc_jit **out,
                             mpcc_diag *d);
/* The compiled function of stage s of kernel k; NULL if out of range. */
mpcc_stage_fn mpcc_jit_stage(const mpcc_jit *j, int k, int s);
void mpcc_jit_destroy(mpcc_jit *j);
/* Leading parallel dims a stage function's range covers, and that range's
 * extent (their product; 1 without parallel dims). */
int mpcc_jit_split_dims(const kir_stage *st);
int64_t mpcc_jit_stage_range(const kir_stage *st);

#endif
