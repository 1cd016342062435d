/*
 * emit_vec.c - elementwise stages with 16-byte loads and stores.
 *
 * The generic kernel reads and writes one element per thread per buffer.
 * For an elementwise stage (no reduction, not serial) whose accesses walk
 * memory with the innermost parallel var, a thread can instead take W
 * consecutive points of that var and move each buffer's W elements with
 * one 16-byte access: W = 4 for 32-bit, 8 for 16-bit elements.
 *
 * Dispatch (mpcc_cuda_vec_width). Every store and every load the stores
 * need must have an affine index (in the sense of codegen/kir_matrix.h's
 * kir_affine, extended to the flat-index divisions and remainders that
 * fused broadcasts use, see affine() below) whose coefficient of the
 * innermost var is 1 (a vector access) or, for loads, 0 (a broadcast, read
 * as a scalar in each lane); every vector access has elements of 1, 2 or 4
 * bytes; the innermost extent is a multiple of W; the stage reads no
 * buffer it stores to and stores to each buffer once. Anything else
 * (gathers, transposed reads, 8-byte elements) keeps the generic body.
 *
 * Mixed widths are the common case in a reduced-precision plan: an f16
 * load cast to f32, an f32 master weight cast to bf16, a comparison that
 * stores bools. W is set by the narrowest vector access, W = 16 / its
 * size, so that access moves its W elements in one 16-byte word and a
 * wider one in W * size / 16 words (an f32 operand of an f16 stage: two).
 * Every access is then 16-byte wide and coalesced, and a thread's W points
 * are consecutive in every buffer.
 *
 * Per group of W points the thread decodes the first point, computes the
 * element index of each vector access there, and checks at run time that
 * every such address is 16-byte aligned (base pointer and offset both
 * count: an odd row length or a sliced view breaks it; the further words
 * of a wide access follow 16 bytes apart). Aligned: mpcc_ld16 per word of
 * each vector load, the W points' expressions in an unrolled loop reading
 * their lane of the loaded words, mpcc_st16 per word of each store.
 * Misaligned: the same W points with scalar accesses. Either way each
 * point's value is computed by the same expression text as the generic
 * body, so results are bit-identical to it. Groups are handed out
 * grid-stride, so any launch configuration is right.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/cuda/emit_impl.h"
#include "codegen/kir_matrix.h"

/* The accesses of a vectorisable stage. */
typedef struct vec_plan {
	int w;          /* points a thread, 1: not vectorisable */
	uint8_t *vload; /* vload[i]: load expression i is a vector access; malloc'd */
} vec_plan;

/*
 * Marks what stage st's stores need in need[0..n_exprs); false on a
 * malformed operand.
 */
static bool
mark_needed(const kir_kernel *k, const kir_stage *st, uint8_t *need)
{
	for (int s = 0; s < st->n_store; s++) {
		int32_t r[2] = {st->store[s].index, st->store[s].value};

		for (int j = 0; j < 2; j++) {
			if (r[j] < 0 || r[j] >= k->n_exprs)
				return false;
			need[r[j]] = 1;
		}
	}
	for (int32_t i = k->n_exprs - 1; i >= 0; i--) {
		const kir_expr *x = &k->exprs[i];
		int32_t ops[3] = {x->a, x->b, x->c};
		unsigned m = kir_operand_mask(x);

		if (!need[i])
			continue;
		for (int j = 0; j < 3; j++) {
			if (!(m & (1u << j)))
				continue;
			if (ops[j] < 0 || ops[j] >= i)
				return false;
			need[ops[j]] = 1;
		}
	}
	return true;
}

/* An index as c0 + sum coef[v] * var v over the parallel vars, plus, when
 * opaque, terms that are no affine function but do not depend on the
 * innermost var (a gathered row's offset). */
typedef struct aff {
	int64_t c0, coef[KIR_MAX_DIMS];
	bool opaque;
} aff;

static bool affine(const kir_kernel *k, const kir_stage *st, int32_t x, struct aff *out,
                   int *budget);

/* Whether expression x has one value along the innermost parallel var:
 * an I64 index affine with innermost coefficient 0 (opaque terms
 * included), or any other expression whose operands all are. */
static bool
inner_free(const kir_kernel *k, const kir_stage *st, int32_t x, int *budget)
{
	const kir_expr *e;
	int32_t ops[3];
	unsigned m;
	aff a;

	if (x < 0 || x >= k->n_exprs || --*budget < 0)
		return false;
	e = &k->exprs[x];
	if (e->dtype == MPCC_DTYPE_I64)
		return affine(k, st, x, &a, budget) && a.coef[st->n_par - 1] == 0;
	if (e->op == KIR_VAR || e->op == KIR_ACC)
		return false;
	ops[0] = e->a;
	ops[1] = e->b;
	ops[2] = e->c;
	m = kir_operand_mask(e);
	for (int j = 0; j < 3; j++)
		if ((m & (1u << j)) && (ops[j] >= x || !inner_free(k, st, ops[j], budget)))
			return false;
	return true;
}

/*
 * Index x of stage st in affine form, when it is built from I64 constants,
 * parallel vars, +, -, products with a constant, and division or
 * remainder by a positive constant c of an affine x that splits exactly:
 * every coefficient and c0 non-negative and, writing coef_v = c q_v + r_v,
 * (c0 mod c) + sum_v r_v (ext_v - 1) < c. Then x mod c = (c0 mod c) +
 * sum_v r_v v and x / c = c0 / c + sum_v q_v v, exactly (all terms are
 * non-negative, so truncation is floor). That is how fusion's flat-index
 * broadcasts and reshapes read (flat % n, flat / n % m), and kir_affine
 * alone rejects them. Any other I64 expression that does not read the
 * innermost var (a loaded index, a clamp) is an opaque term, allowed under
 * + and - and a constant factor but not under / or %: the innermost
 * coefficient stays exact, which is all a vector access needs (a row
 * gather, table[idx[i] * n + j], reads j contiguously). budget bounds the
 * walk over shared subtrees.
 */
static bool
affine(const kir_kernel *k, const kir_stage *st, int32_t x, aff *out, int *budget)
{
	const kir_expr *e;
	aff a, b;
	int n = st->n_par;

	if (x < 0 || x >= k->n_exprs || --*budget < 0)
		return false;
	e = &k->exprs[x];
	memset(out, 0, sizeof(*out));
	if (e->dtype != MPCC_DTYPE_I64)
		return false;
	switch (e->op) {
	case KIR_CONST:
		out->c0 = e->imm.i;
		return true;
	case KIR_VAR:
		if (e->a < 0 || e->a >= n)
			return false;
		out->coef[e->a] = 1;
		return true;
	case KIR_ADD:
	case KIR_SUB:
		if (!affine(k, st, e->a, &a, budget) || !affine(k, st, e->b, &b, budget))
			return false;
		for (int v = 0; v < n; v++)
			if (e->op == KIR_ADD
			        ? __builtin_add_overflow(a.coef[v], b.coef[v], &out->coef[v])
			        : __builtin_sub_overflow(a.coef[v], b.coef[v], &out->coef[v]))
				return false;
		out->opaque = a.opaque || b.opaque;
		return e->op == KIR_ADD ? !__builtin_add_overflow(a.c0, b.c0, &out->c0)
		                        : !__builtin_sub_overflow(a.c0, b.c0, &out->c0);
	case KIR_MUL: {
		bool ka = true, kb = true;
		int64_t c;

		if (!affine(k, st, e->a, &a, budget) || !affine(k, st, e->b, &b, budget))
			return false;
		ka = !a.opaque;
		kb = !b.opaque;
		for (int v = 0; v < n; v++) {
			ka = ka && a.coef[v] == 0;
			kb = kb && b.coef[v] == 0;
		}
		if (ka) { /* a constant times b */
			c = a.c0;
			a = b;
		} else if (kb) {
			c = b.c0;
		} else {
			return false;
		}
		for (int v = 0; v < n; v++)
			if (__builtin_mul_overflow(a.coef[v], c, &out->coef[v]))
				return false;
		out->opaque = a.opaque;
		return !__builtin_mul_overflow(a.c0, c, &out->c0);
	}
	case KIR_DIV:
	case KIR_REM: {
		int64_t c, lo = 0, t;

		if (!affine(k, st, e->a, &a, budget) || !affine(k, st, e->b, &b, budget) ||
		    a.opaque || b.opaque)
			return false;
		for (int v = 0; v < n; v++)
			if (b.coef[v])
				return false;
		c = b.c0;
		if (c <= 0 || a.c0 < 0)
			return false;
		/* coef_v = c q_v + r_v: the r_v v terms must stay below c together */
		for (int v = 0; v < n; v++) {
			if (a.coef[v] < 0 ||
			    __builtin_mul_overflow(a.coef[v] % c, st->par_ext[v] - 1, &t) ||
			    __builtin_add_overflow(lo, t, &lo))
				return false;
		}
		if (__builtin_add_overflow(lo, a.c0 % c, &lo) || lo >= c)
			return false;
		for (int v = 0; v < n; v++)
			out->coef[v] = e->op == KIR_REM ? a.coef[v] % c : a.coef[v] / c;
		out->c0 = e->op == KIR_REM ? a.c0 % c : a.c0 / c;
		return true;
	}
	default: {
		/* zero coefficients: exact for the innermost var when the operands
		 * do not move along it */
		int32_t ops[3] = {e->a, e->b, e->c};
		unsigned m = kir_operand_mask(e);

		if (e->op == KIR_ACC)
			return false;
		for (int j = 0; j < 3; j++)
			if ((m & (1u << j)) && (ops[j] >= x || !inner_free(k, st, ops[j], budget)))
				return false;
		out->opaque = true;
		return true;
	}
	}
}

/* The coefficient of the innermost var in index x, or -1 if x is not
 * affine (or the coefficient is neither 0 nor 1). */
static int
inner_coef(const kir_kernel *k, const kir_stage *st, int32_t x)
{
	int budget = 4096;
	aff a;

	if (!affine(k, st, x, &a, &budget))
		return -1;
	return a.coef[st->n_par - 1] == 0 ? 0 : a.coef[st->n_par - 1] == 1 ? 1 : -1;
}

/* Folds a vector access of dtype t into *min, the narrowest element size
 * so far (0: none yet); false for a size a 16-byte word can't hold as
 * lanes (8 bytes and up). */
static bool
vec_size(mpcc_dtype t, size_t *min)
{
	size_t z = mpcc_dtype_size(t);

	if (z != 1 && z != 2 && z != 4)
		return false;
	if (*min == 0 || z < *min)
		*min = z;
	return true;
}

static bool
plan(const kir_kernel *k, const kir_stage *st, vec_plan *out)
{
	uint8_t *need;
	size_t size = 0;
	bool ok = true;

	out->w = 1;
	out->vload = NULL;
	if (st->serial || st->red_op != KIR_RED_NONE || st->n_red != 0 || st->n_par < 1 ||
	    st->n_par > KIR_MAX_DIMS || st->n_store < 1 || st->n_store > KIR_MAX_STORES ||
	    k->n_exprs < 1 || mpcc_cuda_par_total(st) < 1 || kir_reads_own_stores(k, st))
		return false;
	need = calloc((size_t)k->n_exprs, 1);
	if (!need)
		return false;
	ok = mark_needed(k, st, need);
	for (int s = 0; ok && s < st->n_store; s++) {
		const kir_store *a = &st->store[s];

		if (a->buf < 0 || a->buf >= k->n_bufs || inner_coef(k, st, a->index) != 1) {
			ok = false;
			break;
		}
		for (int t = 0; t < s; t++)
			ok = ok && st->store[t].buf != a->buf;
		ok = ok && vec_size(k->bufs[a->buf].dtype, &size);
	}
	for (int32_t i = 0; ok && i < k->n_exprs; i++) {
		const kir_expr *x = &k->exprs[i];
		int c;

		if (!need[i])
			continue;
		if (x->op == KIR_ACC) {
			ok = false;
			break;
		}
		if (x->op != KIR_LOAD)
			continue;
		if (x->a < 0 || x->a >= k->n_bufs || (c = inner_coef(k, st, x->b)) < 0) {
			ok = false;
			break;
		}
		if (c == 1) {
			ok = vec_size(k->bufs[x->a].dtype, &size);
			need[i] = 2;
		}
	}
	if (ok && size >= 1 && st->par_ext[st->n_par - 1] % (int64_t)(16 / size) == 0) {
		for (int32_t i = 0; i < k->n_exprs; i++)
			need[i] = need[i] == 2;
		out->w = (int)(16 / size);
		out->vload = need;
		return true;
	}
	free(need);
	return false;
}

int
mpcc_cuda_vec_width(const kir_kernel *k, const kir_stage *st)
{
	vec_plan p;

	if (!plan(k, st, &p))
		return 1;
	free(p.vload);
	return p.w;
}

bool
mpcc_cuda_vec_launch(const kir_kernel *k, const kir_stage *st, unsigned *grid, unsigned *block)
{
	int w = mpcc_cuda_vec_width(k, st);
	int64_t groups, blocks;

	if (w <= 1)
		return false;
	groups = mpcc_cuda_par_total(st) / w;
	blocks = (groups + MPCC_CUDA_BLOCK - 1) / MPCC_CUDA_BLOCK;
	*block = MPCC_CUDA_BLOCK;
	*grid = blocks < 1 ? 1 : blocks > 65535 ? 65535 : (unsigned)blocks;
	return true;
}

/* The 16-byte words a vector access of buffer b moves per group of w points. */
static int
words(const kir_kernel *k, int b, int w)
{
	return (int)((size_t)w * mpcc_dtype_size(k->bufs[b].dtype) / 16);
}

/* The address of word j of access (buffer b, index expression x). */
static void
put_addr(emitter *e, int b, int32_t x, int j)
{
	size_t per = 16 / mpcc_dtype_size(e->k->bufs[b].dtype);

	if (j == 0)
		mpcc_cuda_put(e->o, "b%d + e%d", b, x);
	else
		mpcc_cuda_put(e->o, "b%d + e%d + %zu", b, x, (size_t)j * per);
}

/* Stores with a 16-byte staging word: element w of the store's value. */
static mpcc_status
put_lane_stores(emitter *e, const kir_stage *st, int inner)
{
	mpcc_cuda_put(e->o, "\t\tconst long long v%d = vb + w;\n\t\t(void)v%d;\n", inner, inner);
	e->vars[inner] = true;
	mpcc_cuda_clear_region(e);
	for (int s = 0; s < st->n_store; s++)
		if (mpcc_cuda_store(e, &st->store[s]))
			return e->st;
	return MPCC_OK;
}

mpcc_status
mpcc_cuda_emit_vec(emitter *e, int si)
{
	const kir_kernel *k = e->k;
	const kir_stage *st = &k->stages[si];
	int inner = st->n_par - 1;
	vec_plan p;
	long long groups;
	bool first;

	if (!plan(k, st, &p))
		return mpcc_cuda_fail(e, MPCC_ERR_INVALID,
		                      "kernel %s: stage %d is not vectorisable", k->name, si);
	groups = (long long)(mpcc_cuda_par_total(st) / p.w);
	if (mpcc_cuda_signature(e, si, false))
		goto out;
	memset(e->vars, 0, sizeof(e->vars));
	e->acc = false;
	mpcc_cuda_clear_region(e);
	mpcc_cuda_put(e->o,
	              "\tfor (long long g = (long long)blockIdx.x * blockDim.x + threadIdx.x; "
	              "g < %lldLL;\n\t     g += (long long)gridDim.x * blockDim.x) {\n"
	              "\tconst long long p0 = g * %d;\n",
	              groups, p.w);
	mpcc_cuda_decode_vars(e, 0, st->n_par, st->par_ext, "p0");
	mpcc_cuda_put(e->o, "\tconst long long vb = v%d;\n", inner);
	/* the first point's index of every vector access, and their alignment */
	for (int32_t i = 0; i < k->n_exprs; i++)
		if (p.vload[i] && mpcc_cuda_expr(e, k->exprs[i].b))
			goto out;
	for (int s = 0; s < st->n_store; s++)
		if (mpcc_cuda_expr(e, st->store[s].index))
			goto out;
	/* the first word of each access aligned: the others follow 16 bytes on */
	mpcc_cuda_put(e->o, "\tconst bool al = ");
	first = true;
	for (int32_t i = 0; i < k->n_exprs; i++) {
		if (!p.vload[i])
			continue;
		mpcc_cuda_put(e->o, "%s((unsigned long long)(", first ? "" : " &&\n\t\t");
		put_addr(e, k->exprs[i].a, k->exprs[i].b, 0);
		mpcc_cuda_put(e->o, ") & 15ULL) == 0");
		first = false;
	}
	for (int s = 0; s < st->n_store; s++) {
		mpcc_cuda_put(e->o, "%s((unsigned long long)(", first ? "" : " &&\n\t\t");
		put_addr(e, st->store[s].buf, st->store[s].index, 0);
		mpcc_cuda_put(e->o, ") & 15ULL) == 0");
		first = false;
	}
	mpcc_cuda_put(e->o, ";\n\tif (al) {\n");
	for (int32_t i = 0; i < k->n_exprs; i++) {
		int n;

		if (!p.vload[i])
			continue;
		n = words(k, k->exprs[i].a, p.w);
		mpcc_cuda_put(e->o, "\tmpcc_v16 vl%d[%d];\n", i, n);
		for (int j = 0; j < n; j++) {
			mpcc_cuda_put(e->o, "\tvl%d[%d] = mpcc_ld16(", i, j);
			put_addr(e, k->exprs[i].a, k->exprs[i].b, j);
			mpcc_cuda_put(e->o, ");\n");
		}
	}
	for (int s = 0; s < st->n_store; s++)
		mpcc_cuda_put(e->o, "\tmpcc_v16 vs%d[%d] = {};\n", s,
		              words(k, st->store[s].buf, p.w));
	mpcc_cuda_put(e->o, "\t#pragma unroll\n\tfor (int w = 0; w < %d; w++) {\n", p.w);
	e->vec_load = p.vload;
	for (int s = 0; s < st->n_store && e->st == MPCC_OK; s++) {
		if (s == 0) {
			mpcc_cuda_put(e->o, "\t\tconst long long v%d = vb + w;\n\t\t(void)v%d;\n",
			              inner, inner);
			mpcc_cuda_clear_region(e);
		}
		e->vec_store = s;
		mpcc_cuda_store(e, &st->store[s]);
		e->vec_store = -1;
	}
	e->vec_load = NULL;
	if (e->st)
		goto out;
	mpcc_cuda_put(e->o, "\t}\n");
	for (int s = 0; s < st->n_store; s++) {
		for (int j = 0; j < words(k, st->store[s].buf, p.w); j++) {
			mpcc_cuda_put(e->o, "\tmpcc_st16(");
			put_addr(e, st->store[s].buf, st->store[s].index, j);
			mpcc_cuda_put(e->o, ", vs%d[%d]);\n", s, j);
		}
	}
	mpcc_cuda_put(e->o, "\t} else {\n\tfor (int w = 0; w < %d; w++) {\n", p.w);
	if (put_lane_stores(e, st, inner))
		goto out;
	mpcc_cuda_put(e->o, "\t}\n\t}\n\t}\n}\n\n");
	memset(e->vars, 0, sizeof(e->vars));
	mpcc_cuda_clear_region(e);
out:
	free(p.vload);
	return e->st;
}
