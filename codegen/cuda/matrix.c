/*
 * matrix.c - planning matrix-product stages for the CUDA emitter.
 *
 * From a stage kir_matrix_match accepts, the plan picks the split (which
 * dim is S, which dims are V), the kind (tensor cores when both factors are
 * f16, or both bf16, under an f32 cast; f32 SIMT otherwise), how each
 * operand reaches shared memory (cp.async for a unit-stride 16-bit load,
 * registers for anything else) and the tile, from tables and a small model
 * of the GPU. Nothing here prints; emit_matrix.c prints what it decides.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/cuda/matrix.h"

/* The model's GPU: streaming multiprocessors (H100/H200 have 132, A100 108;
 * the choice only shifts where a smaller tile starts to pay). */
#define SMS 132
/* Register staging is kept for operands whose elements per thread times
 * operations per element stay under this (above it ptxas spills). */
#define STAGE_BUDGET 64

typedef struct tile_row {
	int bm, bn, bk;
	int wm, wn;   /* MMA: warps along M, N */
	int tm, tn;   /* SIMT: outputs per thread along M, N */
	int occ;      /* blocks one SM holds at once (registers, shared memory) */
	double eff;   /* relative throughput of one SM full of such blocks */
} tile_row;

/*
 * MMA tiles: BK 32 (two k16 steps); warp tiles 64x32, 32x64, 32x32, 16x16;
 * shared memory 2 x (BM + BN) x 40 halves at most, 40 KiB for 128x128.
 */
static const tile_row mma_tiles[] = {
    {128, 128, 32, 2, 4, 0, 0, 2, 1.00},
    {128, 64, 32, 2, 2, 0, 0, 4, 0.85},
    {64, 128, 32, 2, 2, 0, 0, 4, 0.85},
    {64, 64, 32, 2, 2, 0, 0, 4, 0.70},
    {32, 32, 32, 2, 2, 0, 0, 8, 0.45},
};

/* SIMT tiles: 16 x 16 threads, each TM x TN outputs strided by 16. */
static const tile_row simt_tiles[] = {
    {128, 128, 8, 0, 0, 8, 8, 2, 1.00},
    {64, 64, 16, 0, 0, 4, 4, 4, 0.80},
    {32, 32, 16, 0, 0, 2, 2, 6, 0.50},
};

#define N_MMA ((int)(sizeof(mma_tiles) / sizeof(mma_tiles[0])))
#define N_SIMT ((int)(sizeof(simt_tiles) / sizeof(simt_tiles[0])))

int
mpcc_cuda_matrix_variants(int kind)
{
	return kind == MPCC_CUDA_MX_MMA ? N_MMA : N_SIMT;
}

static int64_t
ceil_div(int64_t a, int64_t b)
{
	return (a + b - 1) / b;
}

/*
 * Why this model: a block's k loop is bound either by latency (global
 * loads, barriers: about one unit per k step whatever the tile) or by the
 * SM's arithmetic, shared by the blocks resident on it; the grid runs in
 * waves of SMS x occ blocks. Small problems thus favour small tiles (more
 * blocks in flight, the latency paid in parallel) and large ones favour
 * large tiles (fewer shared-memory reads per product). Among equal times
 * the tile that pads the problem least wins (a 16 x 16 attention score
 * needs no 128 x 128 block), then the larger.
 */
static double
tile_time(const tile_row *t, int64_t n_b, int64_t ext_s, int64_t ext_v, int64_t k_tot)
{
	double blocks = (double)n_b * (double)ceil_div(ext_s, t->bm) * (double)ceil_div(ext_v, t->bn);
	double waves = (double)ceil_div((int64_t)blocks, (int64_t)SMS * t->occ);
	double per_sm = (double)ceil_div((int64_t)blocks, SMS);
	double resident = per_sm < t->occ ? per_sm : t->occ;
	double k_steps = (double)ceil_div(k_tot, t->bk);
	double busy = (double)k_tot * t->bm * t->bn * resident / (8192.0 * 32.0 * t->eff);

	return waves * (busy > k_steps ? busy : k_steps);
}

/* The padded output area a tile covers. */
static double
tile_area(const tile_row *t, const kir_matrix_split *sp)
{
	return (double)ceil_div(sp->ext_s, t->bm) * t->bm * (double)ceil_div(sp->ext_v, t->bn) *
	       t->bn;
}

static int
choose_tile(const tile_row *rows, int n, const kir_matrix_split *sp, int64_t k_tot)
{
	int best = 0;
	double best_t = tile_time(&rows[0], sp->n_b, sp->ext_s, sp->ext_v, k_tot);

	for (int i = 1; i < n; i++) {
		double t = tile_time(&rows[i], sp->n_b, sp->ext_s, sp->ext_v, k_tot);

		if (t < best_t || (t == best_t && tile_area(&rows[i], sp) < tile_area(&rows[best], sp))) {
			best = i;
			best_t = t;
		}
	}
	return best;
}

/* The f16/bf16 expression under factor f's cast to f32, or -1. */
static int32_t
narrow_value(const kir_kernel *k, int32_t f)
{
	const kir_expr *x = &k->exprs[f];
	mpcc_dtype t;

	if (x->op != KIR_CAST || x->dtype != MPCC_DTYPE_F32 || x->a < 0 || x->a >= f)
		return -1;
	t = k->exprs[x->a].dtype;
	return t == MPCC_DTYPE_F16 || t == MPCC_DTYPE_BF16 ? x->a : -1;
}

/* Whether coef over dims [lo, hi] (extents ext) is a row-major unit-stride
 * walk: dims of extent 1 never move and are skipped. */
static bool
unit_chain(const int64_t *coef, const int64_t *ext, int lo, int hi)
{
	int64_t want = 1;

	for (int d = hi; d >= lo; d--) {
		if (ext[d] == 1)
			continue;
		if (coef[d] != want || __builtin_mul_overflow(want, ext[d], &want))
			return false;
	}
	return true;
}

/*
 * The largest chunk (8, 4, 2 elements) such that every copy starts aligned:
 * the constant and the coefficients of every dim that moves and is not the
 * contiguous group itself (marked in skip) are multiples of it. 0 if none.
 */
static int
chunk_of(const kir_stage *st, const int64_t *coef, int64_t c0, const bool *skip)
{
	for (int c = 8; c >= 2; c /= 2) {
		bool ok = c0 % c == 0;

		for (int v = 0; v < st->n_par + st->n_red && ok; v++) {
			int64_t ext = v < st->n_par ? st->par_ext[v] : st->red_ext[v - st->n_par];

			if (!skip[v] && ext > 1)
				ok = coef[v] % c == 0;
		}
		if (ok)
			return c;
	}
	return 0;
}

/*
 * The cp.async form of an MMA operand: its value must be a load of a 16-bit
 * buffer at an affine index with unit stride along the flattened k (tile
 * [row][k]) or along the flattened rows (tile [k][row]), aligned so every
 * chunk starts on a multiple of its size. Dims of the other operand are
 * evaluated at 0 and do not matter.
 */
static void
plan_async(const kir_kernel *k, const kir_stage *st, const kir_matrix_split *sp, bool is_a,
           mpcc_cuda_operand *x)
{
	const kir_expr *ld = &k->exprs[x->value];
	int n_vars = st->n_par + st->n_red, rlo = is_a ? sp->s : sp->vlo, rhi = is_a ? sp->s : sp->vhi;
	int64_t coef[2 * KIR_MAX_DIMS], c0;
	bool skip[2 * KIR_MAX_DIMS] = {false};
	int c;

	if (ld->op != KIR_LOAD || x->has_cond || !kir_affine(k, ld->b, n_vars, coef, &c0))
		return;
	/* the other operand's dims: evaluated at 0 */
	for (int d = 0; d < st->n_par; d++)
		skip[d] = is_a ? (d >= sp->vlo && d <= sp->vhi) : d == sp->s;
	if (unit_chain(coef + st->n_par, st->red_ext, 0, st->n_red - 1)) {
		for (int v = st->n_par; v < n_vars; v++)
			skip[v] = true;
		if ((c = chunk_of(st, coef, c0, skip)) > 0) {
			x->chunk = c;
			x->row_fast = false;
			return;
		}
		for (int v = st->n_par; v < n_vars; v++)
			skip[v] = false;
	}
	if (unit_chain(coef, st->par_ext, rlo, rhi)) {
		for (int d = rlo; d <= rhi; d++)
			skip[d] = true;
		if ((c = chunk_of(st, coef, c0, skip)) > 0) {
			x->chunk = c;
			x->row_fast = true;
		}
	}
}

/* An index's stride along var v looking through clamps (min/max with a
 * constant) and casts: only a hint for which way threads walk. */
static bool
stride_of(const kir_kernel *k, int32_t x, int v, int depth, int64_t *out)
{
	const kir_expr *e;
	int64_t a, b;

	if (x < 0 || x >= k->n_exprs || depth > 48)
		return false;
	e = &k->exprs[x];
	switch (e->op) {
	case KIR_CONST:
		*out = 0;
		return true;
	case KIR_VAR:
		*out = e->a == v;
		return true;
	case KIR_CAST:
		return e->a < x && stride_of(k, e->a, v, depth + 1, out);
	case KIR_ADD:
	case KIR_SUB:
		if (e->a >= x || e->b >= x || !stride_of(k, e->a, v, depth + 1, &a) ||
		    !stride_of(k, e->b, v, depth + 1, &b))
			return false;
		*out = e->op == KIR_ADD ? a + b : a - b;
		return true;
	case KIR_MUL:
	case KIR_MIN:
	case KIR_MAX:
		if (e->a >= x || e->b >= x)
			return false;
		for (int side = 0; side < 2; side++) {
			const kir_expr *c = &k->exprs[side ? e->a : e->b];

			if (c->op != KIR_CONST || !stride_of(k, side ? e->b : e->a, v, depth + 1, &a))
				continue;
			*out = e->op == KIR_MUL ? a * c->imm.i : a;
			return true;
		}
		return false;
	default:
		return false;
	}
}

/* The innermost dim of [lo, hi] that moves, or -1. */
static int
inner_dim(const int64_t *ext, int lo, int hi)
{
	for (int d = hi; d >= lo; d--)
		if (ext[d] > 1)
			return d;
	return -1;
}

/*
 * Which way the threads of a register-staged operand walk: along the rows
 * when the first load under its value moves less per row than per k (an
 * im2col gather walks pixels), else along k.
 */
static bool
rows_are_fast(const kir_kernel *k, const kir_stage *st, const kir_matrix_split *sp, bool is_a,
              int32_t value)
{
	int32_t ld = -1;
	int rv = is_a ? inner_dim(st->par_ext, sp->s, sp->s) : inner_dim(st->par_ext, sp->vlo, sp->vhi);
	int kv = inner_dim(st->red_ext, 0, st->n_red - 1);
	int64_t rs, ks;
	bool rk, kk;
	uint8_t *mark = calloc((size_t)value + 1, 1);

	if (!mark)
		return false;
	mark[value] = 1;
	for (int32_t i = value; i >= 0 && ld < 0; i--) {
		const kir_expr *x = &k->exprs[i];
		int32_t ops[3] = {x->a, x->b, x->c};
		unsigned msk = kir_operand_mask(x);

		if (!mark[i])
			continue;
		if (x->op == KIR_LOAD)
			ld = i;
		for (int j = 0; j < 3; j++)
			if ((msk & (1u << j)) && ops[j] >= 0 && ops[j] < i)
				mark[ops[j]] = 1;
	}
	free(mark);
	if (ld < 0 || rv < 0)
		return false;
	rk = stride_of(k, k->exprs[ld].b, rv, 0, &rs) && rs != 0;
	kk = kv >= 0 && stride_of(k, k->exprs[ld].b, st->n_par + kv, 0, &ks);
	if (rs < 0)
		rs = -rs;
	if (kk && ks < 0)
		ks = -ks;
	return rk && (!kk || ks == 0 || rs < ks);
}

/*
 * The split: the largest GEMM (fewest batch points), then V holding the
 * innermost parallel dim (the epilogue's neighbouring lanes write
 * neighbouring outputs), then the first.
 */
static bool
pick_split(const kir_matrix *km, const kir_stage *st, kir_matrix_split *best)
{
	kir_matrix_split sp;
	int it = 0;
	bool found = false;

	while (kir_matrix_next_split(km, st, &it, &sp)) {
		bool inner = sp.vhi == st->n_par - 1, best_inner = best->vhi == st->n_par - 1;

		if (!found || sp.n_b < best->n_b || (sp.n_b == best->n_b && inner && !best_inner))
			*best = sp;
		found = true;
	}
	return found;
}

/* Operations in the trees of roots[0..n-1] (shared subtrees once), not
 * counting constants and vars: the cost of evaluating one element. */
static int
tree_cost(const kir_kernel *k, const int32_t *roots, int n)
{
	int32_t top = -1;
	int cost = 0;
	uint8_t *mark;

	for (int i = 0; i < n; i++)
		top = roots[i] > top ? roots[i] : top;
	if (top < 0 || !(mark = calloc((size_t)top + 1, 1)))
		return 1 << 20;
	for (int i = 0; i < n; i++)
		if (roots[i] >= 0)
			mark[roots[i]] = 1;
	for (int32_t i = top; i >= 0; i--) {
		const kir_expr *x = &k->exprs[i];
		int32_t ops[3] = {x->a, x->b, x->c};
		unsigned msk = kir_operand_mask(x);

		if (!mark[i])
			continue;
		cost += x->op != KIR_CONST && x->op != KIR_VAR;
		for (int j = 0; j < 3; j++)
			if ((msk & (1u << j)) && ops[j] >= 0 && ops[j] < i)
				mark[ops[j]] = 1;
	}
	free(mark);
	return cost;
}

static void
plan_operand(const kir_kernel *k, const kir_stage *st, mpcc_cuda_matrix *m, bool is_a)
{
	mpcc_cuda_operand *x = is_a ? &m->a : &m->b;

	x->has_cond = m->cond >= 0 && (is_a ? !m->sp.cond_on_p : m->sp.cond_on_p);
	x->rows = is_a ? m->bm : m->bn;
	x->ext = is_a ? m->sp.ext_s : m->sp.ext_v;
	if (m->kind == MPCC_CUDA_MX_MMA)
		plan_async(k, st, &m->sp, is_a, x);
	if (x->chunk == 0) {
		int32_t roots[2] = {x->value, x->has_cond ? m->cond : -1};
		int items = x->rows * m->bk / m->threads;

		x->row_fast = rows_are_fast(k, st, &m->sp, is_a, x->value);
		x->cost = tree_cost(k, roots, 2);
		x->direct = (int64_t)x->cost * items > STAGE_BUDGET;
	}
	if (m->kind == MPCC_CUDA_MX_SIMT)
		x->ld = x->rows + 4;
	else
		x->ld = x->row_fast ? x->rows + 8 : m->bk + 8;
}

bool
mpcc_cuda_matrix_plan(const kir_kernel *k, int stage, int variant, mpcc_cuda_matrix *out)
{
	const kir_stage *st;
	kir_matrix km;
	const tile_row *t;
	int32_t na, nb;
	int64_t tiles;

	memset(out, 0, sizeof(*out));
	if (stage < 0 || stage >= k->n_stages)
		return false;
	st = &k->stages[stage];
	if (!kir_matrix_match(k, st, &km))
		return false;
	if (!pick_split(&km, st, &out->sp)) {
		kir_matrix_fini(&km);
		return false;
	}
	out->cond = km.cond;
	out->k_tot = km.k_tot;
	kir_matrix_fini(&km);
	na = narrow_value(k, out->sp.q);
	nb = narrow_value(k, out->sp.p);
	if (na >= 0 && nb >= 0 && k->exprs[na].dtype == k->exprs[nb].dtype) {
		out->kind = MPCC_CUDA_MX_MMA;
		out->dtype = k->exprs[na].dtype;
		out->a.value = na;
		out->b.value = nb;
	} else {
		out->kind = MPCC_CUDA_MX_SIMT;
		out->dtype = MPCC_DTYPE_F32;
		out->a.value = out->sp.q;
		out->b.value = out->sp.p;
	}
	if (variant < 0)
		variant = out->kind == MPCC_CUDA_MX_MMA
		              ? choose_tile(mma_tiles, N_MMA, &out->sp, out->k_tot)
		              : choose_tile(simt_tiles, N_SIMT, &out->sp, out->k_tot);
	if (variant >= mpcc_cuda_matrix_variants(out->kind))
		variant = mpcc_cuda_matrix_variants(out->kind) - 1;
	t = out->kind == MPCC_CUDA_MX_MMA ? &mma_tiles[variant] : &simt_tiles[variant];
	out->variant = variant;
	out->bm = t->bm;
	out->bn = t->bn;
	out->bk = t->bk;
	out->wm = t->wm;
	out->wn = t->wn;
	out->tm = t->tm;
	out->tn = t->tn;
	out->threads = out->kind == MPCC_CUDA_MX_MMA ? 32 * t->wm * t->wn : 256;
	out->tiles_m = ceil_div(out->sp.ext_s, t->bm);
	out->tiles_n = ceil_div(out->sp.ext_v, t->bn);
	out->k_tiles = ceil_div(out->k_tot, t->bk);
	if (__builtin_mul_overflow(out->tiles_m, out->tiles_n, &tiles) ||
	    __builtin_mul_overflow(tiles, out->sp.n_b, &out->n_tiles) ||
	    out->n_tiles > ((int64_t)1 << 52) || out->k_tiles > ((int64_t)1 << 30))
		return false;
	plan_operand(k, st, out, true);
	plan_operand(k, st, out, false);
	return true;
}

void
mpcc_cuda_matrix_launch(const mpcc_cuda_matrix *m, unsigned *grid, unsigned *block)
{
	int64_t cap = 0x7fffffff;

	*block = (unsigned)m->threads;
	*grid = (unsigned)(m->n_tiles < cap ? m->n_tiles : cap);
}

static const char *
operand_form(const mpcc_cuda_operand *x, char *buf, size_t n)
{
	if (x->chunk)
		snprintf(buf, n, "cp.async%d %s", x->chunk * 2, x->row_fast ? "[k][row]" : "[row][k]");
	else
		snprintf(buf, n, "%s%d %s", x->direct ? "direct" : "regs", x->cost,
		         x->row_fast ? "[k][row]" : "[row][k]");
	return buf;
}

void
mpcc_cuda_matrix_describe(const mpcc_cuda_matrix *m, char *buf, size_t n)
{
	char a[32], b[32];

	snprintf(buf, n, "%s %s %dx%dx%d (A %s, B %s)",
	         m->kind == MPCC_CUDA_MX_MMA ? "mma" : "simt", mpcc_dtype_name(m->dtype), m->bm,
	         m->bn, m->bk, operand_form(&m->a, a, sizeof(a)), operand_form(&m->b, b, sizeof(b)));
}
