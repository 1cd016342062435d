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
 *
 * f32<->f16 conversions use the host's instructions where it has F16C and
 * integer code elsewhere, with identical results (codegen/llvm/emit.c);
 * mpcc_jit_options can force the integer code, so tests compare the two.
 */
#ifndef MPCC_JIT_H
#define MPCC_JIT_H

#include "codegen/kir.h"

typedef struct mpcc_jit mpcc_jit;
typedef void (*mpcc_stage_fn)(void **bufs, int64_t begin, int64_t end);

/* How to compile; mpcc_jit_options_init gives the defaults. */
typedef struct mpcc_jit_options {
	bool soft_f16; /* f32<->f16 in integer code even on an F16C host */
	bool no_matrix; /* matrix products through the generic blocked path (emit_matrix.c off) */
} mpcc_jit_options;

/* The defaults: native f16 conversions where the host has them, unless the
 * environment variable MPCC_SOFT_F16 is set and not "0" (read here, once per
 * call, so a whole run can be switched without an API); register-blocked
 * matrix products unless MPCC_NO_MATRIX is set and not "0" (the same way,
 * to compare the two paths). */
void mpcc_jit_options_init(mpcc_jit_options *o);

/* mpcc_jit_compile_with the defaults of mpcc_jit_options_init. */
mpcc_status mpcc_jit_compile(kir_kernel *const *kernels, int n_kernels, mpcc_jit **out,
                             mpcc_diag *d);
/* opt NULL means the defaults. */
mpcc_status mpcc_jit_compile_with(kir_kernel *const *kernels, int n_kernels,
                                  const mpcc_jit_options *opt, mpcc_jit **out, mpcc_diag *d);
/* Whether j's f16 conversions are the host's instructions (F16C). */
bool mpcc_jit_has_native_f16(const mpcc_jit *j);
/* The compiled function of stage s of kernel k; NULL if out of range. */
mpcc_stage_fn mpcc_jit_stage(const mpcc_jit *j, int k, int s);
void mpcc_jit_destroy(mpcc_jit *j);
/* Leading parallel dims a stage function's range covers, and that range's
 * extent (their product; 1 without parallel dims). */
int mpcc_jit_split_dims(const kir_stage *st);
int64_t mpcc_jit_stage_range(const kir_stage *st);

#endif
