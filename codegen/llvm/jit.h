/*
 * jit.h - the LLVM emitter: kernel IR -> LLVM IR (LLVM-C API) -> ORC LLJIT.
 *
 * Every stage of every kernel becomes one function
 *     void <kernel>_s<i>(void **bufs, int64_t begin, int64_t end)
 * that runs the stage for parallel dim 0 in [begin, end) (for a stage with no
 * parallel dims the range is [0, 1)). bufs holds one pointer per kernel
 * buffer. All kernels of a plan go into one module, optimised at O2 for the
 * host CPU, so the executor may split [0, par_ext[0]) across threads.
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

#endif
