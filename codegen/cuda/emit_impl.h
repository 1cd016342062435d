/*
 * emit_impl.h - the CUDA emitter's state and the helpers emit.c shares with
 * emit_matrix.c. Private to codegen/cuda/.
 *
 * emit.c owns the text of expressions (numerics, f16/bf16 rounding), the
 * generic stage body and the stores; emit_matrix.c prints the tiled matrix
 * kernels, emit_reduce.c the cooperative (warp or block per point)
 * reductions and emit_vec.c the elementwise stages with 16-byte accesses.
 * They reuse those helpers for everything that is not their own loop
 * structure (index maps, the reduced value, the fused stores), so every
 * path computes each value with the same text.
 */
#ifndef MPCC_CUDA_EMIT_IMPL_H
#define MPCC_CUDA_EMIT_IMPL_H

#include "codegen/cuda/emit.h"
#include "codegen/cuda/matrix.h"

typedef struct sbuf {
	char *p;
	size_t len, cap;
	bool failed;
} sbuf;

typedef struct emitter {
	sbuf *o;
	const kir_kernel *k;
	mpcc_diag *d;
	mpcc_status st;
	uint8_t *done; /* expression printed in the current region */
	uint8_t *mark;
	bool vars[2 * KIR_MAX_DIMS]; /* var v is in scope as `v<v>` */
	bool acc;                    /* ACC readable (store region of a reduction) */
	int variant;                 /* matrix tile variant forced (tests), -1: chosen per stage */
	/* Vectorised lanes (emit_vec.c): a load expression i with vec_load[i]
	 * prints as lane w of the 16-byte words `vl<i>[]` (its index is not
	 * printed), and with vec_store >= 0 a store sets lane w of the staging
	 * words `vs<vec_store>[]` instead of writing memory. */
	const uint8_t *vec_load;
	int vec_store;
} emitter;

/* Appends printf-style text; on out of memory sets o->failed. */
void mpcc_cuda_put(sbuf *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Records the first error (and reports it to e->d); returns st. */
mpcc_status mpcc_cuda_fail(emitter *e, mpcc_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prints `const T e<i> = ...;` for root and whatever it needs that the
 * current region has not printed; mpcc_cuda_clear_region starts a region
 * (a new C++ scope). */
mpcc_status mpcc_cuda_expr(emitter *e, int32_t root);
void mpcc_cuda_clear_region(emitter *e);

/* One store of a stage, reading `acc` for ACC. */
mpcc_status mpcc_cuda_store(emitter *e, const kir_store *s);

/* The C type of an element of dtype t in memory (f16/bf16 as their bits). */
const char *mpcc_cuda_mem_type(mpcc_dtype t);
/* The C type of a value of dtype t in a register (f16/bf16 as float). */
const char *mpcc_cuda_reg_type(mpcc_dtype t);
/* The rounding function applied to a float result of dtype t, "" if none. */
const char *mpcc_cuda_round_fn(mpcc_dtype t);
bool mpcc_cuda_is_float(mpcc_dtype t);
/* Prints the identity a SUM/PROD/MAX/MIN accumulator of dtype t starts at;
 * false for a dtype without a register type. */
bool mpcc_cuda_red_init(emitter *e, kir_red r, mpcc_dtype t);
/* Points of st's parallel domain, and of its reduction. */
int64_t mpcc_cuda_par_total(const kir_stage *st);
int64_t mpcc_cuda_red_total(const kir_stage *st);
/* Whether r is one of the ARG* reductions. */
bool mpcc_cuda_is_arg(kir_red r);

/* `extern "C" __global__ ... name(params)\n{\n` for stage si of e->k; with
 * one_block, launch bounds that let ptxas give a thread all the registers
 * one block per SM allows (the tiled kernels spill under its default
 * occupancy target). */
mpcc_status mpcc_cuda_signature(emitter *e, int si, bool one_block);

/* The generic body of a non-empty stage: the grid-stride loop over its
 * points, the sequential reduction and the stores, without the braces of
 * the function. */
mpcc_status mpcc_cuda_generic_body(emitter *e, const kir_stage *st);

/* `{ the stores of st }` (the accumulator readable if e->acc), then the
 * region and e->acc cleared. */
mpcc_status mpcc_cuda_stores(emitter *e, const kir_stage *st);

/* One point of st, its parallel vars decoded, in a `{ }` scope: the
 * sequential reduction if any, then the stores. */
mpcc_status mpcc_cuda_point_body(emitter *e, const kir_stage *st);

/* The device helpers of the matrix kernels (inline PTX), after the prelude. */
extern const char mpcc_cuda_matrix_prelude[];

/* Prints the matrix kernel of stage si as planned in m (emit_matrix.c). */
mpcc_status mpcc_cuda_emit_matrix(emitter *e, int si, const mpcc_cuda_matrix *m);

/* Prints `const long long v<first+i> = ...;` for n vars of extents ext,
 * decoded row-major from the flat index named `flat`; sets e->vars. */
void mpcc_cuda_decode_vars(emitter *e, int first, int n, const int64_t *ext, const char *flat);

/* emit_reduce.c: the cooperative reductions and their device helpers. */
extern const char mpcc_cuda_reduce_prelude[];
mpcc_status mpcc_cuda_emit_reduce(emitter *e, int si);
/* Whether st's reduction can be folded by a group of lanes (its operator
 * and dtypes shuffle, it reads none of its own stores), at any length. */
bool mpcc_cuda_coop_ok(const kir_kernel *k, const kir_stage *st);
/* One point's cooperative fold and stores, in a `{ }` scope: st's parallel
 * vars are decoded, `lane` (threadIdx.x & 31) is in scope, every lane of
 * the warp (blk: of the block) is here with the same point. */
mpcc_status mpcc_cuda_coop_point(emitter *e, const kir_stage *st, bool blk);

/* emit_row.c: the row kernel that starts at stage first. */
mpcc_status mpcc_cuda_emit_row(emitter *e, int first);

/* emit_vec.c: stage si with 16-byte loads and stores, W points a thread. */
mpcc_status mpcc_cuda_emit_vec(emitter *e, int si);

#endif
