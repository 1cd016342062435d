/*
 * emit_row.c - row kernels: the consecutive stages of a softmax, a
 * normalisation or a loss run by one launch, a group of threads per row.
 *
 * Lowering writes a multi-pass op as several stages over the same rows:
 * softmax is max[p] = MAX_r x[p, r]; sum[p] = SUM_r exp(x[p, r] - max[p]);
 * y[p, r] = exp(x[p, r] - max[p]) / sum[p], LayerNorm the same with its
 * moments. Printed stage by stage that is three launches, two round trips
 * of the row statistics through memory between them, and the row read
 * three times from DRAM. A row kernel runs the stages in order for one row
 * at a time on one group of threads, with a barrier between stages, so the
 * row stays in cache and the statistics in L1.
 *
 * Dispatch (mpcc_cuda_stage_span). Stages first..first+n-1 (n >= 2) form a
 * row kernel when
 *  - stage first reduces, over parallel dims P (its whole parallel domain,
 *    possibly empty: one row), and no stage is serial or a matrix product;
 *  - every later stage's parallel domain starts with P: a reducing stage's
 *    is exactly P, an elementwise stage's is P followed by dims of its own
 *    (the row's elements) or exactly P;
 *  - the stages depend on each other only through one row: a buffer stored
 *    in the span is stored by one stage of it, at an index that is an
 *    affine function of P's vars alone (so a per-row stage, reducing or
 *    not), read by later stages only at that same function of their P
 *    vars, never read by itself or by an earlier stage of the span. Then
 *    whatever a row's stages read from the span was written by the same
 *    group, and rows are independent.
 * Kernels stop at the first stage that breaks a rule, so a span may be
 * shorter than the op.
 *
 * Modes. L, the longest per-row loop (a reduction's length, or the row
 * elements an elementwise stage stores): when every reducing stage could be
 * folded cooperatively (mpcc_cuda_coop_ok) and L >= ROW_MIN (16), a warp
 * per row, or the whole block when there are fewer than 1024 rows and
 * L >= 2048 (the cooperative reductions' thresholds, emit_reduce.c); each
 * reduction is emit_reduce.c's fold of a point (lanes, shuffles, shared
 * memory), each elementwise stage has lane l store elements l, l + G, ...
 * and __syncwarp / __syncthreads separate the stages (they order the
 * global-memory writes of one stage before the reads of the next). Else,
 * when L < 64: a thread per row, running the stages' generic per-point
 * bodies in order. Else no row kernel; none either when there are fewer
 * than 128 rows longer than 8192 (a global softmax over a large tensor):
 * one block per row would leave most SMs idle through the elementwise
 * passes, which run apart on a full grid. The thread form is also the body a
 * warp or block kernel runs when launched with another block size, so any
 * launch of at most MPCC_CUDA_BLOCK threads is right.
 *
 * Numerics are the stages' own: the thread form is the generic body
 * (bit-identical to the CPU), the cooperative form is emit_reduce.c's
 * (bit-identical except float SUM/PROD, reassociated); elementwise points
 * evaluate the generic expression text.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/cuda/emit_impl.h"
#include "codegen/cuda/matrix.h"
#include "codegen/kir_impl.h"
#include "codegen/kir_matrix.h"

enum {
	ROW_MIN = 16,    /* shortest row loop a group of lanes shares */
	THREAD_MAX = 64, /* longest row loop one thread runs alone */
	BLOCK_RED = 2048,
	BLOCK_PAR = 1024,
	FEW_ROWS = 128,  /* fewer rows than a large GPU has SMs (132 on an H200) */
	LONG_ROW = 8192, /* ... each this long: the stages run apart */
	WARPS = MPCC_CUDA_BLOCK / 32,
	MAX_SPAN = 8,
};

typedef struct row_plan {
	int n;                   /* stages, 0: no row kernel */
	int np;                  /* the row dims P: the first np parallel dims */
	mpcc_cuda_red_mode mode; /* GENERIC: a thread per row */
	int64_t rows;
} row_plan;

/* The elements stage st handles per row: its reduction, or its own dims. */
static int64_t
row_len(const kir_stage *st, int np)
{
	int64_t n = 1;

	if (kir_stage_reduces(st))
		return mpcc_cuda_red_total(st);
	for (int v = np; v < st->n_par; v++)
		n *= st->par_ext[v];
	return n;
}

static bool
stores_to(const kir_stage *st, int b, int *which)
{
	for (int s = 0; s < st->n_store; s++)
		if (st->store[s].buf == b) {
			if (which)
				*which = s;
			return true;
		}
	return false;
}

/* Whether stage st reads buffer b (mark: scratch of n_exprs bytes). */
static bool
reads(const kir_kernel *k, const kir_stage *st, int b, uint8_t *mark)
{
	kir_stage_reach(k, st, mark);
	for (int32_t i = 0; i < k->n_exprs; i++)
		if (mark[i] && k->exprs[i].op == KIR_LOAD && k->exprs[i].a == b)
			return true;
	return false;
}

/* Index x of stage st as an affine function of the row vars alone. */
static bool
row_index(const kir_kernel *k, const kir_stage *st, int np, int32_t x, int64_t *coef, int64_t *c0)
{
	int nv = st->n_par + st->n_red;

	if (!kir_affine(k, x, nv, coef, c0))
		return false;
	for (int v = np; v < nv; v++)
		if (coef[v] != 0)
			return false;
	return true;
}

/*
 * Whether stage t may join the span first..t-1 (the rules of the file
 * comment). mark: scratch of n_exprs bytes.
 */
static bool
joins(const kir_kernel *k, int first, int t, int np, uint8_t *mark)
{
	const kir_stage *st = &k->stages[t];

	/* what it reads from the span was stored per row, and is read the same way */
	kir_stage_reach(k, st, mark);
	for (int32_t i = 0; i < k->n_exprs; i++) {
		const kir_expr *x = &k->exprs[i];
		int64_t wc[2 * KIR_MAX_DIMS], rc[2 * KIR_MAX_DIMS], w0, r0;
		int s, which = 0;

		if (!mark[i] || x->op != KIR_LOAD)
			continue;
		if (stores_to(st, x->a, NULL))
			return false;
		for (s = first; s < t && !stores_to(&k->stages[s], x->a, &which); s++)
			;
		if (s == t)
			continue; /* not the span's: written before the launch */
		for (int u = which + 1; u < k->stages[s].n_store; u++)
			if (k->stages[s].store[u].buf == x->a)
				return false; /* stored twice: the other index is unchecked */
		if (k->stages[s].n_par != np ||
		    !row_index(k, &k->stages[s], np, k->stages[s].store[which].index, wc, &w0) ||
		    !row_index(k, st, np, x->b, rc, &r0) || w0 != r0)
			return false;
		for (int v = 0; v < np; v++)
			if (wc[v] != rc[v])
				return false;
	}
	/* what it stores, nobody in the span stored or read before */
	for (int s = 0; s < st->n_store; s++) {
		int b = st->store[s].buf;

		for (int u = 0; u < s; u++)
			if (st->store[u].buf == b)
				return false;
		for (int u = first; u < t; u++)
			if (stores_to(&k->stages[u], b, NULL) || reads(k, &k->stages[u], b, mark))
				return false;
	}
	return true;
}

/* A stage no row kernel takes: malformed, serial or a matrix product. */
static bool
plain(const kir_kernel *k, int si)
{
	const kir_stage *st = &k->stages[si];
	mpcc_cuda_matrix m;

	if (st->serial || st->n_par < 0 || st->n_par > KIR_MAX_DIMS || st->n_red < 0 ||
	    st->n_red > KIR_MAX_DIMS || st->n_store < 1 || st->n_store > KIR_MAX_STORES ||
	    (st->n_red > 0) != (st->red_op != KIR_RED_NONE) || st->red_op > KIR_RED_ARGMIN_LAST ||
	    (st->red_op != KIR_RED_NONE && (st->red_value < 0 || st->red_value >= k->n_exprs)))
		return false;
	for (int s = 0; s < st->n_store; s++)
		if (st->store[s].buf < 0 || st->store[s].buf >= k->n_bufs)
			return false;
	return !mpcc_cuda_matrix_plan(k, si, -1, &m);
}

static bool
plan(const kir_kernel *k, int first, row_plan *out)
{
	const kir_stage *s0;
	uint8_t *mark;
	int64_t len = 0;
	bool coop = true;
	int t;

	memset(out, 0, sizeof(*out));
	if (first < 0 || first >= k->n_stages - 1 || k->n_exprs < 1 || !plain(k, first))
		return false;
	s0 = &k->stages[first];
	if (!kir_stage_reduces(s0) || kir_reads_own_stores(k, s0))
		return false;
	out->np = s0->n_par;
	out->rows = mpcc_cuda_par_total(s0);
	if (out->rows < 1)
		return false;
	mark = malloc((size_t)k->n_exprs);
	if (!mark)
		return false;
	for (t = first + 1; t < k->n_stages && t - first < MAX_SPAN; t++) {
		const kir_stage *st = &k->stages[t];

		if (!plain(k, t) || st->n_par < out->np ||
		    (kir_stage_reduces(st) && st->n_par != out->np) ||
		    memcmp(st->par_ext, s0->par_ext, sizeof(int64_t) * (size_t)out->np) != 0 ||
		    !joins(k, first, t, out->np, mark))
			break;
	}
	free(mark);
	out->n = t - first;
	if (out->n < 2) {
		out->n = 0;
		return false;
	}
	for (int s = first; s < first + out->n; s++) {
		const kir_stage *st = &k->stages[s];
		int64_t l = row_len(st, out->np);

		len = l > len ? l : len;
		if (kir_stage_reduces(st) && !mpcc_cuda_coop_ok(k, st))
			coop = false;
	}
	if (out->rows < FEW_ROWS && len > LONG_ROW)
		out->n = 0; /* a block a row would leave most SMs idle in the
		             * elementwise passes, which alone get a full grid */
	else if (coop && len >= ROW_MIN)
		out->mode = out->rows < BLOCK_PAR && len >= BLOCK_RED ? MPCC_CUDA_RED_BLOCK
		                                                      : MPCC_CUDA_RED_WARP;
	else if (len < THREAD_MAX)
		out->mode = MPCC_CUDA_RED_GENERIC;
	else
		out->n = 0;
	return out->n > 0;
}

int
mpcc_cuda_stage_span(const kir_kernel *k, int stage)
{
	row_plan p;

	return plan(k, stage, &p) ? p.n : 1;
}

int
mpcc_cuda_row_mode(const kir_kernel *k, int stage)
{
	row_plan p;

	return plan(k, stage, &p) ? (int)p.mode : -1;
}

bool
mpcc_cuda_row_launch(const kir_kernel *k, int stage, unsigned *grid, unsigned *block)
{
	row_plan p;
	int64_t blocks;

	if (!plan(k, stage, &p))
		return false;
	blocks = p.mode == MPCC_CUDA_RED_BLOCK  ? p.rows
	         : p.mode == MPCC_CUDA_RED_WARP ? (p.rows + WARPS - 1) / WARPS
	                                        : (p.rows + MPCC_CUDA_BLOCK - 1) / MPCC_CUDA_BLOCK;
	*block = MPCC_CUDA_BLOCK;
	*grid = blocks > 65535 ? 65535 : (unsigned)blocks;
	return true;
}

/* Forgets the vars past the row's and the printed expressions. */
static void
end_stage(emitter *e, int np)
{
	for (int v = np; v < 2 * KIR_MAX_DIMS; v++)
		e->vars[v] = false;
	e->acc = false;
	mpcc_cuda_clear_region(e);
}

/*
 * The rows loop of one form: GENERIC a thread per row running each stage's
 * generic point body, WARP or BLOCK a group per row (reductions folded
 * cooperatively, elementwise points lane-strided, a barrier after each
 * stage).
 */
static mpcc_status
row_body(emitter *e, const row_plan *p, int first, mpcc_cuda_red_mode form)
{
	const kir_kernel *k = e->k;
	bool blk = form == MPCC_CUDA_RED_BLOCK, coop = form != MPCC_CUDA_RED_GENERIC;
	const char *me = blk ? "threadIdx.x" : coop ? "lane" : "0";
	const char *step = blk ? "blockDim.x" : coop ? "32" : "1";

	memset(e->vars, 0, sizeof(e->vars));
	if (coop)
		mpcc_cuda_put(e->o, "\tconst unsigned lane = threadIdx.x & 31u;\n");
	if (blk)
		mpcc_cuda_put(e->o,
		              "\tfor (long long p = blockIdx.x; p < %lldLL; p += gridDim.x) {\n",
		              (long long)p->rows);
	else if (coop)
		mpcc_cuda_put(
		    e->o,
		    "\tfor (long long p = (long long)blockIdx.x * %d + (threadIdx.x >> 5);"
		    " p < %lldLL;\n\t     p += (long long)gridDim.x * %d) {\n",
		    WARPS, (long long)p->rows, WARPS);
	else
		mpcc_cuda_put(
		    e->o,
		    "\tfor (long long p = (long long)blockIdx.x * blockDim.x + threadIdx.x; "
		    "p < %lldLL;\n\t     p += (long long)gridDim.x * blockDim.x) {\n",
		    (long long)p->rows);
	mpcc_cuda_decode_vars(e, 0, p->np, k->stages[first].par_ext, "p");
	for (int s = first; s < first + p->n; s++) {
		const kir_stage *st = &k->stages[s];
		int own = st->n_par - p->np;

		end_stage(e, p->np);
		mpcc_cuda_put(e->o, "\t/* stage %d */\n", s);
		if (coop && kir_stage_reduces(st)) {
			if (mpcc_cuda_coop_point(e, st, blk))
				return e->st;
		} else if (own > 0) {
			mpcc_cuda_put(e->o, "\tfor (long long q = %s; q < %lldLL; q += %s) {\n", me,
			              (long long)row_len(st, p->np), step);
			mpcc_cuda_decode_vars(e, p->np, own, st->par_ext + p->np, "q");
			if (mpcc_cuda_point_body(e, st))
				return e->st;
			mpcc_cuda_put(e->o, "\t}\n");
		} else {
			if (coop)
				mpcc_cuda_put(e->o, "\tif (%s == 0u) {\n", me);
			if (mpcc_cuda_point_body(e, st))
				return e->st;
			if (coop)
				mpcc_cuda_put(e->o, "\t}\n");
		}
		/* this stage's writes before the next stage's reads (and, in a
		 * block, before the next row reuses the shared partials) */
		if (coop)
			mpcc_cuda_put(e->o, "\t%s;\n", blk ? "__syncthreads()" : "__syncwarp()");
	}
	end_stage(e, 0);
	mpcc_cuda_put(e->o, "\t}\n");
	memset(e->vars, 0, sizeof(e->vars));
	return MPCC_OK;
}

mpcc_status
mpcc_cuda_emit_row(emitter *e, int first)
{
	row_plan p;

	if (!plan(e->k, first, &p))
		return mpcc_cuda_fail(e, MPCC_ERR_INVALID,
		                      "kernel %s: stage %d starts no row kernel", e->k->name,
		                      first);
	if (mpcc_cuda_signature(e, first, false))
		return e->st;
	mpcc_cuda_put(e->o, "\t/* row kernel: stages %d..%d, %s per row */\n", first,
	              first + p.n - 1,
	              p.mode == MPCC_CUDA_RED_BLOCK  ? "a block"
	              : p.mode == MPCC_CUDA_RED_WARP ? "a warp"
	                                             : "a thread");
	if (p.mode != MPCC_CUDA_RED_GENERIC)
		mpcc_cuda_put(e->o, "\tif (blockDim.x != %uu) {\n", (unsigned)MPCC_CUDA_BLOCK);
	if (row_body(e, &p, first, MPCC_CUDA_RED_GENERIC))
		return e->st;
	if (p.mode != MPCC_CUDA_RED_GENERIC) {
		mpcc_cuda_put(e->o, "\treturn;\n\t}\n");
		if (row_body(e, &p, first, p.mode))
			return e->st;
	}
	mpcc_cuda_put(e->o, "}\n\n");
	return MPCC_OK;
}
