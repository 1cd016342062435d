/*
 * emit.h - private interface between the kernel IR emitter (emit.c) and the
 * JIT driver (jit.c) of the LLVM backend.
 *
 * emit.c turns one kir_kernel into LLVM IR functions, one per stage, in a
 * module the caller owns; jit.c creates that module for the host target,
 * optimises it and hands it to ORC. Both agree on the stage symbol name
 * through mpcc_llvm_stage_name. Only codegen/llvm/ includes this header.
 */
#ifndef MPCC_LLVM_EMIT_H
#define MPCC_LLVM_EMIT_H

#include <llvm-c/Core.h>

#include "codegen/kir.h"

/* What the emitter may assume of the machine the code will run on. */
typedef struct mpcc_llvm_target {
	bool f16c; /* f32<->f16 as fptrunc/fpext (vcvtps2ph/vcvtph2ps), else integer code */
	int vec_bits; /* widest vector registers (512 with AVX-512, 256 with AVX); 0: 128 */
	bool matrix;  /* matrix-product stages as register-blocked micro-kernels */
} mpcc_llvm_target;

/* Writes "<kernel>_s<stage>" into buf (size n); false if it does not fit. */
bool mpcc_llvm_stage_name(char *buf, size_t n, const kir_kernel *k, int stage);

/* Adds one function per stage of k to mod; tgt NULL assumes nothing (all
 * integer code). The results are bit-identical for every tgt. Errors:
 * MPCC_ERR_INVALID (a malformed kernel, a duplicate kernel name),
 * MPCC_ERR_UNSUPPORTED (an op and dtype pair the emitter does not
 * implement), MPCC_ERR_NOMEM. */
mpcc_status mpcc_llvm_emit_kernel(LLVMModuleRef mod, const kir_kernel *k,
                                  const mpcc_llvm_target *tgt, mpcc_diag *d);

#endif
