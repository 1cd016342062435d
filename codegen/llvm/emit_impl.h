/*
 * emit_impl.h - the stage emitter's state and the helpers that emit.c shares
 * with emit_matrix.c. Private to codegen/llvm/.
 *
 * emit.c owns expression emission (numerics, f16/bf16 rounding), loops,
 * reductions and stores; emit_matrix.c emits matrix-product-shaped stages
 * as register-blocked micro-kernels and reuses those helpers for everything
 * that is not the inner product itself (index maps, packing reads, the
 * fused epilogue), so both paths compute every value with the same code.
 */
#ifndef MPCC_LLVM_EMIT_IMPL_H
#define MPCC_LLVM_EMIT_IMPL_H

#include <llvm-c/Core.h>

#include "codegen/kir.h"

typedef struct loop {
	LLVMBasicBlockRef header, exit;
	LLVMValueRef iv;
} loop;

/* A value fix() rounded, and the storage bits it was widened from. */
typedef struct rounded {
	LLVMValueRef value, bits;
	mpcc_dtype dtype;
} rounded;

#define ROUNDED_MEMO 32

typedef struct emitter {
	LLVMContextRef cx;
	LLVMModuleRef mod;
	LLVMBuilderRef b;
	const kir_kernel *k;
	mpcc_diag *d;
	mpcc_status st;
	bool f16c;    /* f16 conversions by fptrunc/fpext (mpcc_llvm_target) */
	int vec_bits; /* widest vector register the matrix path may use */
	bool matrix;  /* emit_matrix.c may take matrix-product stages */
	LLVMTypeRef t_void, t_i1, t_i8, t_i16, t_i32, t_i64, t_f16, t_f32, t_f64, t_ptr;
	LLVMValueRef *bufs; /* typed element pointers, one per kernel buffer */
	LLVMValueRef vars[2 * KIR_MAX_DIMS];
	LLVMValueRef acc;  /* the reduction result, in the store region only */
	LLVMValueRef *val; /* per-expression cache for the current region */
	uint8_t *mark;
	rounded rounded[ROUNDED_MEMO]; /* the last fix() results, for stores */
	int n_rounded;
} emitter;

/* Emits expression root (and what it needs) at the builder's position;
 * values are cached until mpcc_llvm_clear_cache, which must be called
 * whenever the builder moves to a block the cached values do not dominate
 * or a var changes. NULL on error (e->st set). */
LLVMValueRef mpcc_llvm_expr(emitter *e, int32_t root);
void mpcc_llvm_clear_cache(emitter *e);

/* A counted loop over [lo, hi) with step 1 (loop_close) or step
 * (loop_close_by); the builder is left in the body, then after the exit. */
LLVMValueRef mpcc_llvm_loop_open(emitter *e, loop *l, LLVMValueRef lo, LLVMValueRef hi);
void mpcc_llvm_loop_close(emitter *e, loop *l);
void mpcc_llvm_loop_close_by(emitter *e, loop *l, int64_t step);

/* One store of a stage, reading e->acc for ACC. */
mpcc_status mpcc_llvm_store(emitter *e, const kir_store *s);

/* The coefficient of var v in index x when x is an affine sum of vars and
 * constants; -1 otherwise. */
int64_t mpcc_llvm_coef_of(const kir_kernel *k, int32_t x, int v, int depth);

/* Emits stage st as a blocked matrix product into the current function
 * (the builder at the end of its entry block, e->bufs set) when the stage
 * has that shape; returns false, having emitted nothing, when it does not.
 * On true the function is complete (e->st tells whether it succeeded). */
bool mpcc_llvm_emit_matrix(emitter *e, const kir_stage *st);

#endif
