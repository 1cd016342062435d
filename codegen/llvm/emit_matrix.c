/*
 * emit_matrix.c - matrix-product-shaped stages as register-blocked
 * micro-kernels, bit-identical to the interpreter.
 *
 * A stage qualifies when it is a float SUM whose value is P * Q (or
 * select(c, P * Q, +0), a padded convolution) and two of its parallel dims
 * separate the factors: P does not depend on dim S, Q does not depend on a
 * group V of consecutive dims (flattened). That is C[s, v] = sum_k Q[s, k] *
 * P[k, v] batched over the other parallel dims: MatMul and Gemm (either
 * operand transposed), and Conv as an implicit GEMM (V = the output pixels,
 * S = the output channels, P the im2col column of the input). The
 * recognition is shared with the CUDA emitter (codegen/kir_matrix.h); the
 * choice among its splits is this file's cost model.
 *
 * The approach is BLIS's. For one "unit" (a batch point, a panel of NR
 * consecutive V points, a block of S rows) P is packed once into a
 * contiguous stack panel [k][NR] (and the padding predicate, when it sits
 * on P's side, into a byte mask); then MR rows at a time keep an MR x NR
 * tile of sums in vector registers, and each reduction point broadcasts
 * Q[s, k] for every row and multiplies it by the panel's vectors. Every
 * output is still folded over its reduction points in row-major order, one
 * multiply then one add (no FMA, no reassociation), so the sums are the
 * interpreter's bit for bit; vector lanes only hold different outputs.
 * The tile then goes through a small buffer to the stage's own stores, the
 * fused epilogue (bias, activation, cast), point by point as the scalar path
 * does it. P, Q, the predicate and the stores are emitted by emit.c's
 * expression code, so index maps, f16/bf16 widening and rounding are shared.
 *
 * Work is split in units, not in the usual leading-dim rows: the function's
 * range [0, mpcc_jit_stage_range) is mapped onto the units proportionally,
 * so a thread packs a panel once for many rows. Every output belongs to
 * exactly one unit and is computed by the same code whatever the split.
 * The dims, panel width and tile height are chosen here, at emission, from
 * a small cost model (compute, packing, broadcast evaluation) and the
 * host's vector width.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/kir_matrix.h"
#include "codegen/llvm/emit_impl.h"
#include "codegen/llvm/jit.h"

/* Units a stage is cut into at least, when it has that many rows, so that
 * a pool of threads claiming a few chunks each finds work. */
#define MX_MIN_UNITS 8
/* The packed panel lives on the stack: at most this many floats (128 KiB). */
#define MX_PANEL_FLOATS 32768
/* Rows of S a unit covers at most, so a packed panel is reused from cache. */
#define MX_MAX_BLOCK 512

/* The plan for one stage. */
typedef struct mx {
	const kir_stage *st;
	int32_t p, q, cond;   /* packed factor, broadcast factor, predicate or -1 */
	bool q_first;         /* Q is the multiplication's first operand */
	bool cond_packed;     /* the predicate is per V point (mask), else per S row */
	bool pack_k_outer;    /* P is contiguous along V: pack a k row at a time */
	int vlo, vhi, s;      /* V dims [vlo, vhi], S dim */
	int n_batch, batch[KIR_MAX_DIMS];
	int64_t ext_v, ext_s, n_b, k_tot;
	int vl, nrv, nr, mr;  /* lanes, vectors per row, NR = vl * nrv, rows per tile */
	int64_t n_vp, n_sb, sb, units;
	double cost;
} mx;

/* What emission needs besides the plan. */
typedef struct mx_emit {
	LLVMTypeRef vty;
	LLVMValueRef panel, mask, tile, acc[64];
	LLVMValueRef v0, nvalid;
} mx_emit;

static LLVMValueRef
c64(emitter *e, int64_t v) {
	return LLVMConstInt(e->t_i64, (unsigned long long)v, 1);
}

/* Distinct expressions under root that cost an instruction per evaluation. */
static int
tree_size(emitter *e, int32_t root) {
	const kir_kernel *k = e->k;
	int n = 0;

	memset(e->mark, 0, (size_t)root + 1);
	e->mark[root] = 1;
	for (int32_t i = root; i >= 0; i--) {
		const kir_expr *x = &k->exprs[i];
		int32_t ops[3] = {x->a, x->b, x->c};
		unsigned msk = kir_operand_mask(x);

		if (!e->mark[i])
			continue;
		/* affine index arithmetic is strength-reduced by LLVM: free */
		n += x->op != KIR_CONST && x->op != KIR_VAR &&
		     !(x->dtype == MPCC_DTYPE_I64 &&
		       (x->op == KIR_ADD || x->op == KIR_SUB || x->op == KIR_MUL));
		for (int j = 0; j < 3; j++)
			if (msk & (1u << j))
				e->mark[ops[j]] = 1;
	}
	return n;
}

/* The first load under root, or -1. */
static int32_t
first_load(emitter *e, int32_t root) {
	const kir_kernel *k = e->k;

	memset(e->mark, 0, (size_t)root + 1);
	e->mark[root] = 1;
	for (int32_t i = root; i >= 0; i--) {
		const kir_expr *x = &k->exprs[i];
		int32_t ops[3] = {x->a, x->b, x->c};
		unsigned msk = kir_operand_mask(x);

		if (!e->mark[i])
			continue;
		if (x->op == KIR_LOAD)
			return i;
		for (int j = 0; j < 3; j++)
			if (msk & (1u << j))
				e->mark[ops[j]] = 1;
	}
	return -1;
}

/*
 * Fills the split of m (units, blocks) for the chosen dims and estimates
 * its cost in vector-op units: the tile arithmetic (tail rows count as a
 * whole tile's loads for one row's work), one scalar Q evaluation per row
 * and reduction point per panel, and the scalar packing of every panel.
 */
static void
plan_split(mx *m, int qn, int pn) {
	int64_t base, rows, full, tail;

	m->n_vp = (m->ext_v + m->nr - 1) / m->nr;
	base = m->n_b * m->n_vp;
	m->n_sb = base >= MX_MIN_UNITS ? 1 : (MX_MIN_UNITS + base - 1) / base;
	if ((m->ext_s + m->n_sb - 1) / m->n_sb > MX_MAX_BLOCK)
		m->n_sb = (m->ext_s + MX_MAX_BLOCK - 1) / MX_MAX_BLOCK;
	rows = (m->ext_s + m->n_sb - 1) / m->n_sb;
	m->sb = (rows + m->mr - 1) / m->mr * m->mr;
	m->n_sb = (m->ext_s + m->sb - 1) / m->sb;
	m->units = base * m->n_sb;
	full = m->ext_s / m->mr * m->mr;
	tail = m->ext_s - full;
	m->cost = (double)base * (double)m->k_tot *
	              ((double)full * (2.0 * m->nrv + qn) + (double)tail * (3.0 * m->nrv + qn)) +
	          (double)m->units * (double)m->nr * (double)m->k_tot * (1.0 + pn);
}

/*
 * Recognises the stage (codegen/kir_matrix.h) and picks the dims: of every
 * split kir_matrix_next_split offers, the cheapest by plan_split's model.
 */
static bool
plan(emitter *e, const kir_stage *st, mx *best) {
	const kir_kernel *k = e->k;
	int qn[2], pn[2], regs, budget, it = 0;
	bool found = false;
	kir_matrix km;
	kir_matrix_split sp;
	mx m;

	if (e->vec_bits < 128 || !kir_matrix_match(k, st, &km))
		return false;
	memset(&m, 0, sizeof(m));
	m.st = st;
	m.k_tot = km.k_tot;
	m.vl = e->vec_bits / 32;
	regs = e->vec_bits >= 512 ? 32 : 16;
	budget = regs / 2;
	m.nrv = 2;
	while (m.nrv > 1 && m.k_tot * m.vl * m.nrv > MX_PANEL_FLOATS)
		m.nrv--;
	if (m.k_tot * m.vl * m.nrv > MX_PANEL_FLOATS) {
		kir_matrix_fini(&km);
		return false;
	}
	m.nr = m.vl * m.nrv;
	m.mr = budget / m.nrv;
	for (int i = 0; i < 2; i++) {
		qn[i] = tree_size(e, km.f[i]);
		pn[i] = qn[i];
	}
	while (kir_matrix_next_split(&km, st, &it, &sp)) {
		int w = sp.q_first ? 1 : 0;

		m.p = sp.p;
		m.q = sp.q;
		m.cond = km.cond;
		m.q_first = sp.q_first;
		m.cond_packed = sp.cond_on_p;
		m.vlo = sp.vlo;
		m.vhi = sp.vhi;
		m.s = sp.s;
		m.ext_v = sp.ext_v;
		m.ext_s = sp.ext_s;
		m.n_b = sp.n_b;
		m.n_batch = sp.n_batch;
		memcpy(m.batch, sp.batch, sizeof(m.batch));
		plan_split(&m, qn[1 - w], pn[w]);
		if (!found || m.cost < best->cost)
			*best = m;
		found = true;
	}
	kir_matrix_fini(&km);
	if (found) {
		int32_t ld = first_load(e, best->p);
		int64_t r = mpcc_jit_stage_range(st), prod;

		best->pack_k_outer =
		    ld >= 0 && mpcc_llvm_coef_of(k, k->exprs[ld].b, best->vhi, 0) == 1;
		if (__builtin_mul_overflow(r, best->units, &prod) || prod > ((int64_t)1 << 52))
			found = false;
	}
	return found;
}

/* ---------------------------------------------------------------- emission */

/* Sets the V vars from their flattened index v. */
static void
set_v(emitter *e, const mx *m, LLVMValueRef v) {
	for (int d = m->vhi; d >= m->vlo; d--) {
		LLVMValueRef ext = c64(e, m->st->par_ext[d]);

		e->vars[d] = d > m->vlo ? LLVMBuildURem(e->b, v, ext, "") : v;
		if (d > m->vlo)
			v = LLVMBuildUDiv(e->b, v, ext, "");
	}
}

/* Opens the reduction loops in row-major order and returns the linear
 * reduction index. */
static LLVMValueRef
open_red(emitter *e, const kir_stage *st, loop *lp) {
	LLVMValueRef lin = NULL;

	for (int r = 0; r < st->n_red; r++) {
		LLVMValueRef iv = mpcc_llvm_loop_open(e, &lp[r], c64(e, 0), c64(e, st->red_ext[r]));

		e->vars[st->n_par + r] = iv;
		lin = r == 0 ? iv
		             : LLVMBuildNSWAdd(e->b, LLVMBuildNSWMul(e->b, lin, c64(e, st->red_ext[r]), ""),
		                               iv, "");
	}
	return lin;
}

static void
close_red(emitter *e, const kir_stage *st, loop *lp) {
	for (int r = st->n_red - 1; r >= 0; r--) {
		mpcc_llvm_loop_close(e, &lp[r]);
		e->vars[st->n_par + r] = NULL;
	}
	mpcc_llvm_clear_cache(e);
}

static LLVMValueRef
elem_ptr(emitter *e, LLVMTypeRef t, LLVMValueRef base, LLVMValueRef idx) {
	return LLVMBuildInBoundsGEP2(e->b, t, base, &idx, 1, "");
}

/* Packs P (and the predicate) at reduction index kk, column j. */
static bool
pack_one(emitter *e, const mx *m, const mx_emit *x, LLVMValueRef kk, LLVMValueRef j) {
	LLVMValueRef at = LLVMBuildNSWAdd(e->b, LLVMBuildNSWMul(e->b, kk, c64(e, m->nr), ""), j, "");
	LLVMValueRef v = mpcc_llvm_expr(e, m->p);

	if (!v)
		return false;
	LLVMBuildStore(e->b, v, elem_ptr(e, e->t_f32, x->panel, at));
	if (m->cond_packed) {
		LLVMValueRef c = mpcc_llvm_expr(e, m->cond);

		if (!c)
			return false;
		LLVMBuildStore(e->b, LLVMBuildZExt(e->b, c, e->t_i8, ""),
		               elem_ptr(e, e->t_i8, x->mask, at));
	}
	return true;
}

/*
 * Packs the panel of V points [v0, v0 + nvalid) over all reduction points.
 * When P is contiguous along V the columns are the inner loop, which LLVM
 * vectorises into copies; otherwise (a transposed operand, an im2col
 * gather) each column walks the reduction points, reading P in its own
 * order. Columns past nvalid are zeroed, so the discarded lanes of the last
 * panel compute on zeros rather than on stale stack bits.
 */
static bool
pack(emitter *e, const mx *m, const mx_emit *x) {
	const kir_stage *st = m->st;
	loop lp[KIR_MAX_DIMS], lj;
	LLVMValueRef kk, j, short_panel, bytes;

	short_panel = LLVMBuildICmp(e->b, LLVMIntSLT, x->nvalid, c64(e, m->nr), "");
	bytes = LLVMBuildSelect(e->b, short_panel, c64(e, m->k_tot * m->nr * 4), c64(e, 0), "");
	LLVMBuildMemSet(e->b, x->panel, LLVMConstInt(e->t_i8, 0, 0), bytes, 64);
	if (m->cond_packed) {
		bytes = LLVMBuildSelect(e->b, short_panel, c64(e, m->k_tot * m->nr), c64(e, 0), "");
		LLVMBuildMemSet(e->b, x->mask, LLVMConstInt(e->t_i8, 0, 0), bytes, 64);
	}
	e->vars[m->s] = c64(e, 0); /* P does not vary with S; see tile() */
	mpcc_llvm_clear_cache(e);
	if (m->pack_k_outer) {
		kk = open_red(e, st, lp);
		j = mpcc_llvm_loop_open(e, &lj, c64(e, 0), x->nvalid);
		mpcc_llvm_clear_cache(e);
		set_v(e, m, LLVMBuildNSWAdd(e->b, x->v0, j, ""));
		if (!pack_one(e, m, x, kk, j))
			return false;
		mpcc_llvm_loop_close(e, &lj);
		close_red(e, st, lp);
	} else {
		j = mpcc_llvm_loop_open(e, &lj, c64(e, 0), x->nvalid);
		set_v(e, m, LLVMBuildNSWAdd(e->b, x->v0, j, ""));
		kk = open_red(e, st, lp);
		mpcc_llvm_clear_cache(e);
		if (!pack_one(e, m, x, kk, j))
			return false;
		close_red(e, st, lp);
		mpcc_llvm_loop_close(e, &lj);
	}
	mpcc_llvm_clear_cache(e);
	return true;
}

static LLVMValueRef
splat(emitter *e, const mx *m, LLVMValueRef s) {
	LLVMTypeRef vty = LLVMVectorType(e->t_f32, (unsigned)m->vl);
	LLVMValueRef v = LLVMBuildInsertElement(e->b, LLVMGetUndef(vty), s,
	                                        LLVMConstInt(e->t_i32, 0, 0), "");
	LLVMValueRef zeros = LLVMConstNull(LLVMVectorType(e->t_i32, (unsigned)m->vl));

	return LLVMBuildShuffleVector(e->b, v, LLVMGetUndef(vty), zeros, "");
}

/*
 * One tile: rows s0 .. s0 + mr - 1 of the current panel. The sums start at
 * +0 and take one product per reduction point, in order. A predicate on
 * P's side zeroes the masked lanes' products (select, as the stage says);
 * one on Q's side keeps the row's sums unchanged instead, which is the
 * same thing: the sum is never -0 (it starts at +0, and x + y is -0 only
 * when both are), so adding +0 leaves it as it is.
 */
static bool
tile(emitter *e, const mx *m, mx_emit *x, int mr, LLVMValueRef s0) {
	const kir_stage *st = m->st;
	LLVMValueRef zero = LLVMConstNull(x->vty), kk, row, pv[4], mk[4] = {0}, ptr;
	LLVMTypeRef mvt = LLVMVectorType(e->t_i8, (unsigned)m->vl);
	loop lp[KIR_MAX_DIMS], li, lj;
	unsigned align = (unsigned)m->vl * 4;

	for (int i = 0; i < mr * m->nrv; i++)
		LLVMBuildStore(e->b, zero, x->acc[i]);
	/* Q and a row predicate take the same value at every V point (plan()
	 * checked), but may still name V vars: give them point 0 */
	for (int d = m->vlo; d <= m->vhi; d++)
		e->vars[d] = c64(e, 0);
	kk = open_red(e, st, lp);
	mpcc_llvm_clear_cache(e);
	row = LLVMBuildNSWMul(e->b, kk, c64(e, m->nr), "");
	for (int v = 0; v < m->nrv; v++) {
		LLVMValueRef at = LLVMBuildNSWAdd(e->b, row, c64(e, (int64_t)v * m->vl), "");

		ptr = LLVMBuildBitCast(e->b, elem_ptr(e, e->t_f32, x->panel, at),
		                       LLVMPointerType(x->vty, 0), "");
		pv[v] = LLVMBuildLoad2(e->b, x->vty, ptr, "");
		LLVMSetAlignment(pv[v], align);
		if (m->cond_packed) {
			ptr = LLVMBuildBitCast(e->b, elem_ptr(e, e->t_i8, x->mask, at),
			                       LLVMPointerType(mvt, 0), "");
			mk[v] = LLVMBuildLoad2(e->b, mvt, ptr, "");
			LLVMSetAlignment(mk[v], 1);
			mk[v] = LLVMBuildICmp(e->b, LLVMIntNE, mk[v], LLVMConstNull(mvt), "");
		}
	}
	for (int i = 0; i < mr; i++) {
		LLVMValueRef q, qb, qc = NULL;

		mpcc_llvm_clear_cache(e);
		e->vars[m->s] = LLVMBuildNSWAdd(e->b, s0, c64(e, i), "");
		if (!(q = mpcc_llvm_expr(e, m->q)))
			return false;
		if (m->cond >= 0 && !m->cond_packed && !(qc = mpcc_llvm_expr(e, m->cond)))
			return false;
		qb = splat(e, m, q);
		for (int v = 0; v < m->nrv; v++) {
			LLVMValueRef prod = m->q_first ? LLVMBuildFMul(e->b, qb, pv[v], "")
			                               : LLVMBuildFMul(e->b, pv[v], qb, "");
			LLVMValueRef a = LLVMBuildLoad2(e->b, x->vty, x->acc[i * m->nrv + v], "");
			LLVMValueRef sum;

			if (mk[v])
				prod = LLVMBuildSelect(e->b, mk[v], prod, zero, "");
			sum = LLVMBuildFAdd(e->b, a, prod, "");
			if (qc)
				sum = LLVMBuildSelect(e->b, qc, sum, a, "");
			LLVMBuildStore(e->b, sum, x->acc[i * m->nrv + v]);
		}
	}
	close_red(e, st, lp);

	/* the epilogue: the stage's stores, point by point, row-major in the tile */
	for (int i = 0; i < mr; i++) {
		for (int v = 0; v < m->nrv; v++) {
			LLVMValueRef a = LLVMBuildLoad2(e->b, x->vty, x->acc[i * m->nrv + v], "");
			LLVMValueRef at = c64(e, (int64_t)i * m->nr + (int64_t)v * m->vl);

			ptr = LLVMBuildBitCast(e->b, elem_ptr(e, e->t_f32, x->tile, at),
			                       LLVMPointerType(x->vty, 0), "");
			LLVMSetAlignment(LLVMBuildStore(e->b, a, ptr), align);
		}
	}
	mpcc_llvm_loop_open(e, &li, c64(e, 0), c64(e, mr));
	mpcc_llvm_loop_open(e, &lj, c64(e, 0), x->nvalid);
	mpcc_llvm_clear_cache(e);
	e->vars[m->s] = LLVMBuildNSWAdd(e->b, s0, li.iv, "");
	set_v(e, m, LLVMBuildNSWAdd(e->b, x->v0, lj.iv, ""));
	ptr = elem_ptr(e, e->t_f32, x->tile,
	               LLVMBuildNSWAdd(e->b, LLVMBuildNSWMul(e->b, li.iv, c64(e, m->nr), ""),
	                               lj.iv, ""));
	e->acc = LLVMBuildLoad2(e->b, e->t_f32, ptr, "");
	for (int s = 0; s < st->n_store; s++)
		if (mpcc_llvm_store(e, &st->store[s]))
			return false;
	mpcc_llvm_loop_close(e, &lj);
	mpcc_llvm_loop_close(e, &li);
	mpcc_llvm_clear_cache(e);
	e->acc = NULL;
	return true;
}

static LLVMValueRef
stack_array(emitter *e, LLVMTypeRef t, int64_t n, const char *name) {
	LLVMValueRef a = LLVMBuildArrayAlloca(e->b, t, c64(e, n), name);

	LLVMSetAlignment(a, 64);
	return a;
}

/*
 * The function body: the units [begin * U / R, end * U / R) of the range;
 * for each, the batch vars, the panel, then the S block in tiles of mr rows
 * and single rows for the rest.
 */
static bool
emit_body(emitter *e, const mx *m) {
	const kir_stage *st = m->st;
	LLVMValueRef fn = LLVMGetBasicBlockParent(LLVMGetInsertBlock(e->b));
	LLVMValueRef begin = LLVMGetParam(fn, 1), end = LLVMGetParam(fn, 2);
	LLVMValueRef range = c64(e, mpcc_jit_stage_range(st)), units = c64(e, m->units);
	LLVMValueRef u, t, vp, sbi, slo, shi, last;
	loop lu, lt, lr;
	mx_emit x;

	memset(&x, 0, sizeof(x));
	x.vty = LLVMVectorType(e->t_f32, (unsigned)m->vl);
	x.panel = stack_array(e, e->t_f32, m->k_tot * m->nr, "panel");
	if (m->cond_packed)
		x.mask = stack_array(e, e->t_i8, m->k_tot * m->nr, "mask");
	x.tile = stack_array(e, e->t_f32, (int64_t)m->mr * m->nr, "tile");
	for (int i = 0; i < m->mr * m->nrv; i++)
		x.acc[i] = LLVMBuildAlloca(e->b, x.vty, "sum");

	end = LLVMBuildSelect(e->b, LLVMBuildICmp(e->b, LLVMIntSLT, end, range, ""), end, range,
	                      "");
	begin = LLVMBuildSDiv(e->b, LLVMBuildNSWMul(e->b, begin, units, ""), range, "");
	end = LLVMBuildSDiv(e->b, LLVMBuildNSWMul(e->b, end, units, ""), range, "");
	u = mpcc_llvm_loop_open(e, &lu, begin, end);
	sbi = LLVMBuildURem(e->b, u, c64(e, m->n_sb), "");
	t = LLVMBuildUDiv(e->b, u, c64(e, m->n_sb), "");
	vp = LLVMBuildURem(e->b, t, c64(e, m->n_vp), "");
	t = LLVMBuildUDiv(e->b, t, c64(e, m->n_vp), "");
	for (int i = m->n_batch - 1; i >= 0; i--) {
		LLVMValueRef ext = c64(e, st->par_ext[m->batch[i]]);

		e->vars[m->batch[i]] = i > 0 ? LLVMBuildURem(e->b, t, ext, "") : t;
		if (i > 0)
			t = LLVMBuildUDiv(e->b, t, ext, "");
	}
	x.v0 = LLVMBuildNSWMul(e->b, vp, c64(e, m->nr), "");
	x.nvalid = LLVMBuildNSWSub(e->b, c64(e, m->ext_v), x.v0, "");
	x.nvalid = LLVMBuildSelect(e->b, LLVMBuildICmp(e->b, LLVMIntSLT, x.nvalid, c64(e, m->nr), ""),
	                           x.nvalid, c64(e, m->nr), "");
	if (!pack(e, m, &x))
		return false;
	slo = LLVMBuildNSWMul(e->b, sbi, c64(e, m->sb), "");
	shi = LLVMBuildNSWAdd(e->b, slo, c64(e, m->sb), "");
	shi = LLVMBuildSelect(e->b, LLVMBuildICmp(e->b, LLVMIntSLT, shi, c64(e, m->ext_s), ""), shi,
	                      c64(e, m->ext_s), "");
	last = LLVMBuildNSWSub(e->b, shi, c64(e, m->mr - 1), "");
	mpcc_llvm_loop_open(e, &lt, slo, last);
	if (!tile(e, m, &x, m->mr, lt.iv))
		return false;
	mpcc_llvm_loop_close_by(e, &lt, m->mr);
	mpcc_llvm_loop_open(e, &lr, lt.iv, shi);
	if (!tile(e, m, &x, 1, lr.iv))
		return false;
	mpcc_llvm_loop_close(e, &lr);
	mpcc_llvm_loop_close(e, &lu);
	LLVMBuildRetVoid(e->b);
	return true;
}

bool
mpcc_llvm_emit_matrix(emitter *e, const kir_stage *st) {
	LLVMValueRef fn;
	char width[16];
	mx m;

	if (!e->matrix || !plan(e, st, &m))
		return false;
	fn = LLVMGetBasicBlockParent(LLVMGetInsertBlock(e->b));
	snprintf(width, sizeof(width), "%d", m.vl * 32);
	LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex,
	                        LLVMCreateStringAttribute(e->cx, "min-legal-vector-width", 22, width,
	                                                  (unsigned)strlen(width)));
	memset(e->vars, 0, sizeof(e->vars));
	e->acc = NULL;
	e->n_rounded = 0;
	mpcc_llvm_clear_cache(e);
	if (!emit_body(e, &m) && e->st == MPCC_OK)
		e->st = mpcc_diag_error(e->d, MPCC_ERR_INTERNAL, "kernel %s: matrix stage not emitted",
		                        e->k->name);
	return true;
}
