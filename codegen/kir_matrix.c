/*
 * kir_matrix.c - matrix-product recognition shared by the emitters.
 *
 * Recognition is a walk over the expression pool in index order (operands
 * come first): each expression gets the bit mask of the loop vars its value
 * depends on and, for I64 index arithmetic, its value range over the loop
 * domain, so an index that is one number everywhere depends on nothing.
 * The splits are then every S dim and every run V of consecutive other dims
 * whose masks separate the factors, with either factor as P.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/kir_matrix.h"

unsigned
kir_operand_mask(const kir_expr *x)
{
	switch (x->op) {
	case KIR_CONST:
	case KIR_VAR:
	case KIR_ACC:
		return 0;
	case KIR_LOAD:
		return 2;
	case KIR_CAST:
		return 1;
	case KIR_SELECT:
		return 7;
	default:
		return x->op < KIR_ADD ? 1 : 3;
	}
}

/* An integer expression's value range over the loop domain, when known. */
typedef struct span {
	bool known;
	int64_t lo, hi;
} span;

/* The range of a binary integer op from its operands' ranges, where it is
 * simple to bound (vars, constants, +, -, * and / by constants, min, max). */
static span
span_of(const kir_expr *x, span a, span b)
{
	span r = {false, 0, 0};
	int64_t c[4];

	if (!a.known || !b.known)
		return r;
	switch (x->op) {
	case KIR_ADD:
		r.known = !__builtin_add_overflow(a.lo, b.lo, &r.lo) &&
		          !__builtin_add_overflow(a.hi, b.hi, &r.hi);
		return r;
	case KIR_SUB:
		r.known = !__builtin_sub_overflow(a.lo, b.hi, &r.lo) &&
		          !__builtin_sub_overflow(a.hi, b.lo, &r.hi);
		return r;
	case KIR_MUL:
		if (__builtin_mul_overflow(a.lo, b.lo, &c[0]) ||
		    __builtin_mul_overflow(a.lo, b.hi, &c[1]) ||
		    __builtin_mul_overflow(a.hi, b.lo, &c[2]) ||
		    __builtin_mul_overflow(a.hi, b.hi, &c[3]))
			return r;
		r.lo = r.hi = c[0];
		for (int i = 1; i < 4; i++) {
			r.lo = c[i] < r.lo ? c[i] : r.lo;
			r.hi = c[i] > r.hi ? c[i] : r.hi;
		}
		r.known = true;
		return r;
	case KIR_DIV:
		if (b.lo != b.hi || b.lo <= 0 || a.lo < 0)
			return r;
		return (span){true, a.lo / b.lo, a.hi / b.lo};
	case KIR_MIN:
		return (span){true, a.lo < b.lo ? a.lo : b.lo, a.hi < b.hi ? a.hi : b.hi};
	case KIR_MAX:
		return (span){true, a.lo > b.lo ? a.lo : b.lo, a.hi > b.hi ? a.hi : b.hi};
	default:
		return r;
	}
}

/*
 * Var-dependence bit masks of expressions 0..top; false when one of them
 * cannot be classified (ACC, a bad operand, a var outside the stage).
 */
static bool
var_deps(const kir_kernel *k, const kir_stage *st, int32_t top, uint32_t *dep, span *sp)
{
	for (int32_t i = 0; i <= top; i++) {
		const kir_expr *x = &k->exprs[i];
		int32_t ops[3] = {x->a, x->b, x->c};
		unsigned msk = kir_operand_mask(x);
		uint32_t d = 0;

		sp[i].known = false;
		if (x->op == KIR_ACC)
			return false;
		if (x->op == KIR_VAR) {
			int v = x->a;

			if (v < 0 || v >= st->n_par + st->n_red)
				return false;
			d = 1u << v;
			sp[i] = (span){
			    true, 0,
			    (v < st->n_par ? st->par_ext[v] : st->red_ext[v - st->n_par]) - 1};
		}
		for (int j = 0; j < 3; j++) {
			if (!(msk & (1u << j)))
				continue;
			if (ops[j] < 0 || ops[j] >= i)
				return false;
			d |= dep[ops[j]];
		}
		if (x->dtype == MPCC_DTYPE_I64) {
			if (x->op == KIR_CONST)
				sp[i] = (span){true, x->imm.i, x->imm.i};
			else if (x->op >= KIR_ADD && x->op <= KIR_MAX)
				sp[i] = span_of(x, sp[x->a], sp[x->b]);
			if (sp[i].known && sp[i].lo == sp[i].hi)
				d = 0;
		}
		dep[i] = d;
	}
	return true;
}

/*
 * Why blocked forms refuse a stage that reads what it stores: they compute
 * several points' reductions before any point's stores, so a stage whose
 * point reads a neighbour's output (an in-place update) would see old data.
 */
bool
kir_reads_own_stores(const kir_kernel *k, const kir_stage *st)
{
	int32_t top = st->red_value;
	uint8_t *mark;
	bool hit = false;

	for (int s = 0; s < st->n_store; s++) {
		top = st->store[s].index > top ? st->store[s].index : top;
		top = st->store[s].value > top ? st->store[s].value : top;
	}
	if (top < 0 || top >= k->n_exprs)
		return true;
	for (int s = 0; s < st->n_store; s++)
		if (st->store[s].index < 0 || st->store[s].value < 0)
			return true;
	mark = calloc((size_t)top + 1, 1);
	if (!mark)
		return true;
	if (st->red_value >= 0)
		mark[st->red_value] = 1;
	for (int s = 0; s < st->n_store; s++)
		mark[st->store[s].index] = mark[st->store[s].value] = 1;
	for (int32_t i = top; i >= 0 && !hit; i--) {
		const kir_expr *x = &k->exprs[i];
		int32_t ops[3] = {x->a, x->b, x->c};
		unsigned m = kir_operand_mask(x);

		if (!mark[i])
			continue;
		for (int s = 0; x->op == KIR_LOAD && s < st->n_store; s++)
			hit |= x->a == st->store[s].buf;
		for (int j = 0; j < 3; j++)
			if ((m & (1u << j)) && ops[j] >= 0 && ops[j] < i)
				mark[ops[j]] = 1;
	}
	free(mark);
	return hit;
}

bool
kir_matrix_match(const kir_kernel *k, const kir_stage *st, kir_matrix *out)
{
	int32_t rv = st->red_value, mul = rv, cond = -1;
	span *sp;

	memset(out, 0, sizeof(*out));
	if (st->red_op != KIR_RED_SUM || st->acc_dtype != MPCC_DTYPE_F32 || st->n_par < 2 ||
	    st->n_par > KIR_MAX_DIMS || st->n_red < 1 || st->n_red > KIR_MAX_DIMS || st->serial ||
	    rv < 0 || rv >= k->n_exprs)
		return false;
	if (k->exprs[rv].op == KIR_SELECT) {
		const kir_expr *z;

		if (k->exprs[rv].c < 0 || k->exprs[rv].c >= rv || k->exprs[rv].a < 0 ||
		    k->exprs[rv].a >= rv)
			return false;
		z = &k->exprs[k->exprs[rv].c];
		if (z->op != KIR_CONST || z->dtype != MPCC_DTYPE_F32 || z->imm.f != 0.0 ||
		    signbit(z->imm.f))
			return false;
		cond = k->exprs[rv].a;
		mul = k->exprs[rv].b;
	}
	if (mul < 0 || mul > rv || k->exprs[mul].op != KIR_MUL ||
	    k->exprs[mul].dtype != MPCC_DTYPE_F32)
		return false;
	out->k_tot = 1;
	for (int r = 0; r < st->n_red; r++) {
		if (st->red_ext[r] <= 0 || __builtin_mul_overflow(out->k_tot, st->red_ext[r],
		                                                  &out->k_tot))
			return false;
	}
	for (int p = 0; p < st->n_par; p++)
		if (st->par_ext[p] <= 0)
			return false;
	if (kir_reads_own_stores(k, st))
		return false;
	out->dep = calloc((size_t)rv + 1, sizeof(*out->dep));
	sp = calloc((size_t)rv + 1, sizeof(*sp));
	if (!out->dep || !sp || !var_deps(k, st, rv, out->dep, sp)) {
		free(sp);
		kir_matrix_fini(out);
		return false;
	}
	free(sp);
	out->mul = mul;
	out->f[0] = k->exprs[mul].a;
	out->f[1] = k->exprs[mul].b;
	out->cond = cond;
	return true;
}

void
kir_matrix_fini(kir_matrix *m)
{
	free(m->dep);
	m->dep = NULL;
}

bool
kir_matrix_next_split(const kir_matrix *m, const kir_stage *st, int *it, kir_matrix_split *out)
{
	int n = st->n_par, end = n * n * n * 2;

	for (; *it < end; ++*it) {
		int w = *it % 2, hi = *it / 2 % n, lo = *it / 2 / n % n, s = *it / 2 / n / n;
		int32_t p = m->f[w], q = m->f[1 - w];
		uint32_t vm = 0, sm = 1u << s;

		if (hi < lo || (s >= lo && s <= hi))
			continue;
		for (int d = lo; d <= hi; d++)
			vm |= 1u << d;
		if ((m->dep[p] & sm) || (m->dep[q] & vm))
			continue;
		if (m->cond >= 0 && (m->dep[m->cond] & sm) && (m->dep[m->cond] & vm))
			continue;
		memset(out, 0, sizeof(*out));
		out->s = s;
		out->vlo = lo;
		out->vhi = hi;
		out->p = p;
		out->q = q;
		out->q_first = w == 1;
		out->cond_on_p = m->cond >= 0 && !(m->dep[m->cond] & sm);
		out->ext_s = st->par_ext[s];
		out->ext_v = 1;
		for (int d = lo; d <= hi; d++)
			out->ext_v *= st->par_ext[d];
		out->n_b = 1;
		for (int d = 0; d < n; d++) {
			if (d == s || (d >= lo && d <= hi))
				continue;
			out->batch[out->n_batch++] = d;
			out->n_b *= st->par_ext[d];
		}
		++*it;
		return true;
	}
	return false;
}

/* Adds mult * x to coef/c0; depth bounds the recursion on deep trees. */
static bool
affine_add(const kir_kernel *k, int32_t x, int64_t mult, int n_vars, int64_t *coef, int64_t *c0,
           int depth)
{
	const kir_expr *e;
	int64_t t;

	if (x < 0 || x >= k->n_exprs || depth > 64)
		return false;
	e = &k->exprs[x];
	if (e->dtype != MPCC_DTYPE_I64)
		return false;
	switch (e->op) {
	case KIR_CONST:
		return !__builtin_mul_overflow(e->imm.i, mult, &t) &&
		       !__builtin_add_overflow(*c0, t, c0);
	case KIR_VAR:
		return e->a >= 0 && e->a < n_vars &&
		       !__builtin_add_overflow(coef[e->a], mult, &coef[e->a]);
	case KIR_ADD:
	case KIR_SUB:
		if (e->a >= x || e->b >= x)
			return false;
		if (!affine_add(k, e->a, mult, n_vars, coef, c0, depth + 1))
			return false;
		if (e->op == KIR_SUB && __builtin_sub_overflow((int64_t)0, mult, &mult))
			return false;
		return affine_add(k, e->b, mult, n_vars, coef, c0, depth + 1);
	case KIR_MUL:
		if (e->a < 0 || e->a >= x || e->b < 0 || e->b >= x)
			return false;
		for (int side = 0; side < 2; side++) {
			const kir_expr *c = &k->exprs[side ? e->a : e->b];

			if (c->op == KIR_CONST && c->dtype == MPCC_DTYPE_I64)
				return !__builtin_mul_overflow(mult, c->imm.i, &t) &&
				       affine_add(k, side ? e->b : e->a, t, n_vars, coef, c0,
				                  depth + 1);
		}
		return false;
	default:
		return false;
	}
}

bool
kir_affine(const kir_kernel *k, int32_t x, int n_vars, int64_t *coef, int64_t *c0)
{
	memset(coef, 0, sizeof(*coef) * (size_t)n_vars);
	*c0 = 0;
	return affine_add(k, x, 1, n_vars, coef, c0, 0);
}
