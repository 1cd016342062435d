/*
 * emit_reduce.c - cooperative reductions: a warp, or a whole block, folds
 * the reduction of one parallel point.
 *
 * The generic kernel gives each thread one point and folds its reduction
 * sequentially. When the reduction is long and the parallel domain small
 * (ReduceSum/Mean over a row, softmax's max and sum, LayerNorm's moments, a
 * loss, a global norm) that leaves most of the GPU idle and each thread
 * walking a long row alone. Here a group of lanes shares a point: lane l
 * folds the flattened reduction indices l, l + G, l + 2G, ... (G the group
 * size, so neighbouring lanes read neighbouring elements when the reduced
 * dim is innermost), then the lanes combine their partials with a
 * __shfl_xor_sync butterfly and, in block mode, the warps through static
 * shared memory; one thread runs the stage's stores.
 *
 * Dispatch (mpcc_cuda_reduce_mode). A stage goes here when it is not serial,
 * not a matrix product (emit_stage asks matrix.c first), does not read a
 * buffer it stores to, and its flattened reduction has at least RED_MIN
 * (64) points: with 32 lanes each lane then folds at least two elements, so
 * the five shuffle steps cost less than the fold they split; below that the
 * sequential fold of one thread is as fast and keeps 32x more points in
 * flight. Block mode (256 threads, 8 warps on one point) when the domain
 * has fewer than BLOCK_PAR (1024) points and the reduction at least
 * BLOCK_RED (2048): fewer than 1024 warps cannot give each SM of a large
 * GPU (132 on an H200) even one full block, and with 2048 elements each of
 * the 256 lanes still folds eight, enough to pay for the two barriers and
 * the cross-warp step. Otherwise warp mode: eight points a block.
 *
 * Exactness against the sequential fold of codegen/kir.h:
 *  - Integer SUM/PROD wrap modulo 2^n and integer MAX/MIN are associative
 *    and commutative: bit-identical.
 *  - Float MAX/MIN as folded by mpcc_fmax/mpcc_fmin (returns the first
 *    operand if NaN, else the second if NaN, else the strictly greater, else
 *    the second) give the first NaN of the sequence if there is one, else
 *    the LAST element equal to the maximum (that matters for +0 and -0). A
 *    partial is therefore a (value, index) pair ordered so: a NaN beats any
 *    number, of two NaNs the smaller index wins, of two numbers the greater
 *    (smaller for MIN), of equal numbers the larger index. That is a strict
 *    order on pairs with distinct indices, so any combination order picks
 *    the element the sequential fold picks: bit-identical, NaN payload
 *    included (f16/bf16 results are rounded once at the end, which is the
 *    identity on their values and what the fold does to a NaN).
 *  - ARG* (`if ((e OP best) || lin == 0)`): comparisons with NaN are false,
 *    so a NaN at index 0 fixes the result at 0, and any other NaN is never
 *    taken. Lanes skip NaNs, the thread that folds index 0 (the one that
 *    stores) remembers whether it was NaN, and partials (value, index)
 *    combine by value, ties to the smaller index (ARGMAX, ARGMIN) or the
 *    larger (the _LAST forms): bit-identical.
 *  - Float SUM/PROD (accumulator f32 or f64) are reassociated: each lane
 *    sums its strided subset in order, then a tree of 5 (warp) or 8 (block)
 *    levels adds the partials. The result differs from the sequential sum
 *    by rounding only (bounded by about (n/G + log2 G) eps sum |x_i|, under
 *    the sequential bound n eps sum |x_i|). f16/bf16 accumulators, whose
 *    every step rounds to 16 bits, stay on the generic body.
 *
 * Launch. The kernel checks blockDim.x == MPCC_CUDA_BLOCK first and runs
 * the generic body otherwise, so any launch of at most MPCC_CUDA_BLOCK
 * threads is right; groups loop over points, so any grid is.
 */
#include <stdio.h>
#include <string.h>

#include "codegen/cuda/emit_impl.h"
#include "codegen/kir_matrix.h"

enum { RED_MIN = 64, BLOCK_RED = 2048, BLOCK_PAR = 1024, WARPS = MPCC_CUDA_BLOCK / 32 };

/*
 * Shuffles go through the CUDA intrinsics (which NVRTC declares without a
 * header); the 16-byte vector type and its accessors serve emit_vec.c.
 * Host shims that run one thread (test_cuda_host.c) get shuffles that
 * trap: with one thread the reductions take their generic body. The emulator of
 * tests/unit/cuda_emu.c (MPCC_SHIM_MATRIX) brings its own shuffles and
 * 16-byte accesses, which check alignment.
 */
const char mpcc_cuda_reduce_prelude[] =
    "struct alignas(16) mpcc_v16 { unsigned w[4]; };\n"
    "__device__ __forceinline__ unsigned short mpcc_vget16(const mpcc_v16 &v, int i)"
    " { return (unsigned short)(v.w[i >> 1] >> ((i & 1) * 16)); }\n"
    "__device__ __forceinline__ void mpcc_vset16(mpcc_v16 &v, int i, unsigned short h)"
    " { v.w[i >> 1] = (v.w[i >> 1] & (0xffff0000u >> ((i & 1) * 16)))"
    " | ((unsigned)h << ((i & 1) * 16)); }\n"
    "__device__ __forceinline__ unsigned char mpcc_vget8(const mpcc_v16 &v, int i)"
    " { return (unsigned char)(v.w[i >> 2] >> ((i & 3) * 8)); }\n"
    "__device__ __forceinline__ void mpcc_vset8(mpcc_v16 &v, int i, unsigned char c)"
    " { v.w[i >> 2] = (v.w[i >> 2] & ~(0xffu << ((i & 3) * 8)))"
    " | ((unsigned)c << ((i & 3) * 8)); }\n"
    "#ifndef MPCC_HOST_SHIM\n"
    "__device__ __forceinline__ mpcc_v16 mpcc_ld16(const void *p)"
    " { return *(const mpcc_v16 *)p; }\n"
    "__device__ __forceinline__ void mpcc_st16(void *p, const mpcc_v16 &v)"
    " { *(mpcc_v16 *)p = v; }\n"
    "#elif !defined(MPCC_SHIM_MATRIX)\n"
    "static inline int __float_as_int(float f) { int i; memcpy(&i, &f, 4); return i; }\n"
    "template <typename T> static T __shfl_xor_sync(unsigned, T, int) { __builtin_trap(); }\n"
    "static inline mpcc_v16 mpcc_ld16(const void *p) { mpcc_v16 v; memcpy(&v, p, 16); return v; }\n"
    "static inline void mpcc_st16(void *p, const mpcc_v16 &v) { memcpy(p, &v, 16); }\n"
    "#endif\n"
    "\n";


/* The type a value of dtype t is shuffled as; NULL when it cannot be. */
static const char *
shfl_type(mpcc_dtype t)
{
	switch (t) {
	case MPCC_DTYPE_F32:
	case MPCC_DTYPE_F16:
	case MPCC_DTYPE_BF16:
		return "float";
	case MPCC_DTYPE_F64:
		return "double";
	case MPCC_DTYPE_I8:
	case MPCC_DTYPE_I16:
	case MPCC_DTYPE_I32:
	case MPCC_DTYPE_U8:
	case MPCC_DTYPE_U16:
		return "int";
	case MPCC_DTYPE_U32:
		return "unsigned";
	case MPCC_DTYPE_I64:
		return "long long";
	case MPCC_DTYPE_U64:
		return "unsigned long long";
	default:
		return NULL;
	}
}

bool
mpcc_cuda_coop_ok(const kir_kernel *k, const kir_stage *st)
{
	kir_red r = st->red_op;
	mpcc_dtype vt, at = st->acc_dtype;

	if (st->serial || r == KIR_RED_NONE || r > KIR_RED_ARGMIN_LAST || st->n_red < 1 ||
	    st->n_red > KIR_MAX_DIMS || st->n_par < 0 || st->n_par > KIR_MAX_DIMS ||
	    st->red_value < 0 || st->red_value >= k->n_exprs)
		return false;
	if (mpcc_cuda_par_total(st) < 1 || mpcc_cuda_red_total(st) < 1 || kir_reads_own_stores(k, st))
		return false;
	vt = k->exprs[st->red_value].dtype;
	if (mpcc_cuda_is_arg(r))
		return shfl_type(vt) != NULL;
	return shfl_type(at) && vt == at &&
	       !((r == KIR_RED_SUM || r == KIR_RED_PROD) &&
	         (at == MPCC_DTYPE_F16 || at == MPCC_DTYPE_BF16));
}

/*
 * Which form stage st takes (see the file comment). Matrix stages are
 * decided before this is asked.
 */
mpcc_cuda_red_mode
mpcc_cuda_reduce_mode(const kir_kernel *k, const kir_stage *st)
{
	int64_t np, nr;

	if (!mpcc_cuda_coop_ok(k, st))
		return MPCC_CUDA_RED_GENERIC;
	np = mpcc_cuda_par_total(st);
	nr = mpcc_cuda_red_total(st);
	if (nr < RED_MIN)
		return MPCC_CUDA_RED_GENERIC;
	return np < BLOCK_PAR && nr >= BLOCK_RED ? MPCC_CUDA_RED_BLOCK : MPCC_CUDA_RED_WARP;
}

bool
mpcc_cuda_reduce_launch(const kir_kernel *k, const kir_stage *st, unsigned *grid, unsigned *block)
{
	mpcc_cuda_red_mode m = mpcc_cuda_reduce_mode(k, st);
	int64_t np = mpcc_cuda_par_total(st), blocks;

	if (m == MPCC_CUDA_RED_GENERIC)
		return false;
	blocks = m == MPCC_CUDA_RED_BLOCK ? np : (np + WARPS - 1) / WARPS;
	*block = MPCC_CUDA_BLOCK;
	*grid = blocks > 65535 ? 65535 : (unsigned)blocks;
	return true;
}

/* The partials of a stage: a plain accumulator, or a (value, index) pair. */
typedef struct red_form {
	kir_red r;
	mpcc_dtype t;    /* the value's dtype */
	bool pair;       /* float MAX/MIN or ARG*: an index travels with the value */
	const char *val; /* the value's variable */
	const char *idx; /* the index's variable (pair) */
} red_form;

/* x = shuffle of x from lane ^ off, into a new local `o` (and `oi`). */
static void
put_shfl(emitter *e, const red_form *f, const char *off)
{
	const char *ty = mpcc_cuda_reg_type(f->t), *sh = shfl_type(f->t);

	mpcc_cuda_put(e->o, "\t\tconst %s o = (%s)__shfl_xor_sync(0xffffffffu, (%s)%s, %s);\n", ty,
	              ty, sh, f->val, off);
	if (f->pair)
		mpcc_cuda_put(e->o,
		              "\t\tconst long long oi = __shfl_xor_sync(0xffffffffu, %s, %s);\n",
		              f->idx, off);
}

/* Combines the partial (o, oi) into (val, idx); see the file comment. */
static void
put_combine(emitter *e, const red_form *f)
{
	const char *ty = mpcc_cuda_reg_type(f->t), *rf = mpcc_cuda_round_fn(f->t);
	kir_red r = f->r;

	if (mpcc_cuda_is_arg(r)) {
		bool mx = r == KIR_RED_ARGMAX || r == KIR_RED_ARGMAX_LAST;
		bool last = r == KIR_RED_ARGMAX_LAST || r == KIR_RED_ARGMIN_LAST;
		mpcc_cuda_put(
		    e->o,
		    "\t\tif (oi >= 0 && (acc < 0 || o %c best || (o == best && oi %c acc)))"
		    " { best = o; acc = oi; }\n",
		    mx ? '>' : '<', last ? '>' : '<');
	} else if (f->pair) {
		mpcc_cuda_put(
		    e->o,
		    "\t\tif (acc != acc ? (o != o && oi < ai)"
		    " : (o != o || o %c acc || (o == acc && oi > ai))) { acc = o; ai = oi; }\n",
		    r == KIR_RED_MAX ? '>' : '<');
	} else if (mpcc_cuda_is_float(f->t)) {
		mpcc_cuda_put(e->o, "\t\tacc = %s(acc %c o);\n", rf, r == KIR_RED_SUM ? '+' : '*');
	} else if (r == KIR_RED_SUM || r == KIR_RED_PROD) {
		mpcc_cuda_put(e->o, "\t\tacc = (%s)((mpcc_u64)acc %c (mpcc_u64)o);\n", ty,
		              r == KIR_RED_SUM ? '+' : '*');
	} else {
		mpcc_cuda_put(e->o, "\t\tacc = o %c acc ? o : acc;\n",
		              r == KIR_RED_MAX ? '>' : '<');
	}
}

/* The butterfly over the 32 lanes of a warp; every lane ends with the whole. */
static void
put_butterfly(emitter *e, const red_form *f)
{
	mpcc_cuda_put(e->o, "\tfor (int off = 16; off > 0; off >>= 1) {\n");
	put_shfl(e, f, "off");
	put_combine(e, f);
	mpcc_cuda_put(e->o, "\t}\n");
}

/* Sets the partial to the identity (index -1: no element). */
static bool
put_identity(emitter *e, const red_form *f)
{
	if (mpcc_cuda_is_arg(f->r)) {
		mpcc_cuda_put(e->o, "\t\tbest = (%s)0;\n\t\tacc = -1;\n", mpcc_cuda_reg_type(f->t));
		return true;
	}
	mpcc_cuda_put(e->o, "\t\tacc = ");
	if (!mpcc_cuda_red_init(e, f->r, f->t))
		return false;
	mpcc_cuda_put(e->o, ";\n");
	if (f->pair)
		mpcc_cuda_put(e->o, "\t\tai = -1;\n");
	return true;
}

/* One lane's sequential step over its element e<v> at flat index q. */
static void
put_fold(emitter *e, const red_form *f, int v)
{
	const char *ty = mpcc_cuda_reg_type(f->t), *rf = mpcc_cuda_round_fn(f->t);
	bool fl = mpcc_cuda_is_float(f->t);
	kir_red r = f->r;

	if (mpcc_cuda_is_arg(r)) {
		const char *op = r == KIR_RED_ARGMAX        ? ">"
		                 : r == KIR_RED_ARGMAX_LAST ? ">="
		                 : r == KIR_RED_ARGMIN      ? "<"
		                                            : "<=";
		if (fl)
			mpcc_cuda_put(e->o,
			              "\t\tif (q == 0) nan0 = e%d != e%d;\n"
			              "\t\tif (!(e%d != e%d) && (acc < 0 || e%d %s best))"
			              " { best = e%d; acc = q; }\n",
			              v, v, v, v, v, op, v);
		else
			mpcc_cuda_put(e->o,
			              "\t\tif (acc < 0 || e%d %s best) { best = e%d; acc = q; }\n",
			              v, op, v);
	} else if (f->pair) {
		mpcc_cuda_put(
		    e->o,
		    "\t\tif (!(acc != acc) && (e%d != e%d || e%d %s acc)) { acc = e%d; ai = q; }\n",
		    v, v, v, r == KIR_RED_MAX ? ">=" : "<=", v);
	} else if (fl) {
		mpcc_cuda_put(e->o, "\t\tacc = %s(acc %c e%d);\n", rf, r == KIR_RED_SUM ? '+' : '*',
		              v);
	} else if (r == KIR_RED_SUM || r == KIR_RED_PROD) {
		mpcc_cuda_put(e->o, "\t\tacc = (%s)((mpcc_u64)acc %c (mpcc_u64)e%d);\n", ty,
		              r == KIR_RED_SUM ? '+' : '*', v);
	} else {
		mpcc_cuda_put(e->o, "\t\tacc = e%d %c acc ? e%d : acc;\n", v,
		              r == KIR_RED_MAX ? '>' : '<', v);
	}
}

mpcc_status
mpcc_cuda_coop_point(emitter *e, const kir_stage *st, bool blk)
{
	const kir_kernel *k = e->k;
	long long nr = (long long)mpcc_cuda_red_total(st);
	red_form f;
	const char *ty;

	f.r = st->red_op;
	f.t = mpcc_cuda_is_arg(f.r) ? k->exprs[st->red_value].dtype : st->acc_dtype;
	f.pair = mpcc_cuda_is_arg(f.r) ||
	         ((f.r == KIR_RED_MAX || f.r == KIR_RED_MIN) && mpcc_cuda_is_float(f.t));
	f.val = mpcc_cuda_is_arg(f.r) ? "best" : "acc";
	f.idx = mpcc_cuda_is_arg(f.r) ? "acc" : "ai";
	ty = mpcc_cuda_reg_type(f.t);
	e->acc = false;
	mpcc_cuda_clear_region(e);
	mpcc_cuda_put(e->o, "\t{\n");
	if (blk) {
		mpcc_cuda_put(e->o, "\t__shared__ %s sv[%d];\n", ty, WARPS);
		if (f.pair)
			mpcc_cuda_put(e->o, "\t__shared__ long long si[%d];\n", WARPS);
	}
	/* the partial */
	if (mpcc_cuda_is_arg(f.r))
		mpcc_cuda_put(e->o, "\tlong long acc = -1;\n\t%s best = (%s)0;\n", ty, ty);
	else
		mpcc_cuda_put(e->o, "\t%s acc;\n", ty);
	if (f.pair && !mpcc_cuda_is_arg(f.r))
		mpcc_cuda_put(e->o, "\tlong long ai;\n");
	if (mpcc_cuda_is_arg(f.r) && mpcc_cuda_is_float(f.t))
		mpcc_cuda_put(e->o, "\tbool nan0 = false;\n");
	mpcc_cuda_put(e->o, "\t{\n");
	if (!put_identity(e, &f))
		return mpcc_cuda_fail(e, MPCC_ERR_UNSUPPORTED, "kernel %s: reduction on dtype %d",
		                      k->name, f.t);
	mpcc_cuda_put(e->o, "\t}\n");
	/* each lane's share, in increasing index order */
	mpcc_cuda_put(e->o, "\tfor (long long q = %s; q < %lldLL; q += %s) {\n",
	              blk ? "threadIdx.x" : "lane", nr, blk ? "blockDim.x" : "32");
	mpcc_cuda_decode_vars(e, st->n_par, st->n_red, st->red_ext, "q");
	if (mpcc_cuda_expr(e, st->red_value))
		return e->st;
	put_fold(e, &f, st->red_value);
	mpcc_cuda_put(e->o, "\t}\n");
	for (int r = 0; r < st->n_red; r++)
		e->vars[st->n_par + r] = false;
	mpcc_cuda_clear_region(e);
	put_butterfly(e, &f);
	if (blk) {
		mpcc_cuda_put(e->o, "\tif (lane == 0u) {\n\t\tsv[threadIdx.x >> 5] = %s;\n", f.val);
		if (f.pair)
			mpcc_cuda_put(e->o, "\t\tsi[threadIdx.x >> 5] = %s;\n", f.idx);
		mpcc_cuda_put(e->o,
		              "\t}\n\t__syncthreads();\n\tif (threadIdx.x < 32u) {\n"
		              "\tif (lane < %du) {\n\t\t%s = sv[lane];\n",
		              WARPS, f.val);
		if (f.pair)
			mpcc_cuda_put(e->o, "\t\t%s = si[lane];\n", f.idx);
		mpcc_cuda_put(e->o, "\t} else {\n");
		put_identity(e, &f);
		mpcc_cuda_put(e->o, "\t}\n");
		put_butterfly(e, &f);
		mpcc_cuda_put(e->o, "\t}\n");
	}
	mpcc_cuda_put(e->o, "\tif (%s == 0u) {\n", blk ? "threadIdx.x" : "lane");
	if (mpcc_cuda_is_arg(f.r))
		mpcc_cuda_put(e->o, "\tif (acc < 0%s) acc = 0;\n",
		              mpcc_cuda_is_float(f.t) ? " || nan0" : "");
	else if (f.pair && *mpcc_cuda_round_fn(f.t))
		mpcc_cuda_put(e->o, "\tacc = %s(acc);\n", mpcc_cuda_round_fn(f.t));
	e->acc = true;
	if (mpcc_cuda_stores(e, st))
		return e->st;
	mpcc_cuda_put(e->o, "\t}\n\t}\n");
	return MPCC_OK;
}

/*
 * The kernel: the generic body for a launch of another block size, then
 * groups (warps or the block) looping over points; per point each lane
 * folds its strided share, the group combines, one thread stores.
 */
mpcc_status
mpcc_cuda_emit_reduce(emitter *e, int si)
{
	const kir_kernel *k = e->k;
	const kir_stage *st = &k->stages[si];
	bool blk = mpcc_cuda_reduce_mode(k, st) == MPCC_CUDA_RED_BLOCK;
	long long np = (long long)mpcc_cuda_par_total(st);

	if (mpcc_cuda_signature(e, si, false))
		return e->st;
	mpcc_cuda_put(e->o, "\tif (blockDim.x != %uu) {\n", (unsigned)MPCC_CUDA_BLOCK);
	if (mpcc_cuda_generic_body(e, st))
		return e->st;
	mpcc_cuda_put(e->o, "\treturn;\n\t}\n\tconst unsigned lane = threadIdx.x & 31u;\n");
	if (blk)
		mpcc_cuda_put(e->o, "\tfor (long long p = blockIdx.x; p < %lldLL; p += gridDim.x) {\n",
		              np);
	else
		mpcc_cuda_put(e->o,
		              "\tfor (long long p = (long long)blockIdx.x * %d + (threadIdx.x >> 5);"
		              " p < %lldLL;\n\t     p += (long long)gridDim.x * %d) {\n",
		              WARPS, np, WARPS);
	memset(e->vars, 0, sizeof(e->vars));
	mpcc_cuda_decode_vars(e, 0, st->n_par, st->par_ext, "p");
	if (mpcc_cuda_coop_point(e, st, blk))
		return e->st;
	if (blk)
		mpcc_cuda_put(e->o, "\t__syncthreads();\n");
	mpcc_cuda_put(e->o, "\t}\n}\n\n");
	memset(e->vars, 0, sizeof(e->vars));
	return MPCC_OK;
}
