/*
 * fuse.c - producer/consumer fusion on the kernel IR (see fuse.h for the
 * rule and its cost model).
 *
 * The pass walks the kernel list in schedule order. For each producer P that
 * qualifies it finds the single consumer C, rebuilds C as a new kernel whose
 * loads of P's output are replaced by P's expression tree (P's vars recovered
 * from C's load index by div/mod over P's extents, P's buffers re-bound as
 * C's params), validates the result and swaps it in. Anything unexpected
 * (an index that is not provably row-major, a rebuilt kernel that does not
 * validate) leaves the pair unfused, so the pass can only lose speed, never
 * correctness.
 */
#include <stdlib.h>
#include <string.h>

#include "codegen/fuse.h"
#include "codegen/kir_impl.h"

#define MAX_VARS (2 * KIR_MAX_DIMS)

/* An affine I64 index: sum(coef[v] * var v) + c. */
typedef struct affine {
	int64_t coef[MAX_VARS];
	int64_t c;
} affine;

/* Why a recursive walk is safe: operands precede users, so depth is bounded
 * by the expression count, and index trees built by lowering are shallow. */
static bool
affine_of(const kir_kernel *k, int32_t e, affine *out, int depth)
{
	affine a, b;
	const kir_expr *x;

	if (e < 0 || e >= k->n_exprs || depth > 64)
		return false;
	x = &k->exprs[e];
	memset(out, 0, sizeof(*out));
	switch (x->op) {
	case KIR_CONST:
		if (x->dtype == MPCC_DTYPE_F32 || x->dtype == MPCC_DTYPE_F64 || x->dtype == MPCC_DTYPE_F16 ||
		    x->dtype == MPCC_DTYPE_BF16)
			return false;
		out->c = x->imm.i;
		return true;
	case KIR_VAR:
		if (x->a < 0 || x->a >= MAX_VARS)
			return false;
		out->coef[x->a] = 1;
		return true;
	case KIR_ADD:
	case KIR_SUB:
		if (!affine_of(k, x->a, &a, depth + 1) || !affine_of(k, x->b, &b, depth + 1))
			return false;
		for (int v = 0; v < MAX_VARS; v++)
			out->coef[v] = x->op == KIR_ADD ? a.coef[v] + b.coef[v] : a.coef[v] - b.coef[v];
		out->c = x->op == KIR_ADD ? a.c + b.c : a.c - b.c;
		return true;
	case KIR_MUL: {
		if (!affine_of(k, x->a, &a, depth + 1) || !affine_of(k, x->b, &b, depth + 1))
			return false;
		bool a_const = true, b_const = true;
		for (int v = 0; v < MAX_VARS; v++) {
			a_const = a_const && a.coef[v] == 0;
			b_const = b_const && b.coef[v] == 0;
		}
		if (!a_const && !b_const)
			return false;
		const affine *s = a_const ? &b : &a;
		int64_t m = a_const ? a.c : b.c;
		for (int v = 0; v < MAX_VARS; v++)
			out->coef[v] = s->coef[v] * m;
		out->c = s->c * m;
		return true;
	}
	default:
		return false;
	}
}

/* True when idx maps the n vars (extents ext) to distinct elements: the
 * nonzero coefficients, sorted by magnitude, form a mixed radix. */
static bool
affine_injective(const affine *a, int n, const int64_t *ext)
{
	int64_t c[MAX_VARS], e[MAX_VARS];
	int m = 0;

	for (int v = 0; v < MAX_VARS; v++)
		if (v >= n && a->coef[v] != 0)
			return false; /* a var the stage does not define */
	for (int v = 0; v < n; v++) {
		if (ext[v] <= 1)
			continue;
		if (a->coef[v] == 0)
			return false;
		c[m] = a->coef[v] < 0 ? -a->coef[v] : a->coef[v];
		e[m++] = ext[v];
	}
	for (int i = 1; i < m; i++)
		for (int j = i; j > 0 && c[j] < c[j - 1]; j--) {
			int64_t t = c[j];
			c[j] = c[j - 1];
			c[j - 1] = t;
			t = e[j];
			e[j] = e[j - 1];
			e[j - 1] = t;
		}
	int64_t span = 0;
	for (int i = 0; i < m; i++) {
		if (c[i] <= span)
			return false;
		span += c[i] * (e[i] - 1);
	}
	return true;
}

static int
find_value_buf(const kir_kernel *k, int32_t value)
{
	for (int b = 0; b < k->n_bufs; b++)
		if (k->bufs[b].kind == KIR_BUF_PARAM && k->bufs[b].value == value)
			return b;
	return -1;
}

/* True when s writes every element of its buffer once, at the plain
 * row-major linear index of st's parallel vars. */
static bool
row_major_store(const kir_kernel *k, const kir_stage *st, const kir_store *s)
{
	affine a;
	int64_t stride = 1;

	if (!affine_of(k, s->index, &a, 0) || a.c != 0)
		return false;
	for (int v = st->n_par - 1; v >= 0; v--) {
		if (st->par_ext[v] > 1 && a.coef[v] != stride)
			return false;
		stride *= st->par_ext[v];
	}
	for (int v = st->n_par; v < MAX_VARS; v++)
		if (a.coef[v] != 0)
			return false;
	return stride == k->bufs[s->buf].n_elems;
}

/* The producer's store, when P qualifies structurally; else NULL. */
static const kir_store *
producer_store(const kir_kernel *p, const mpcc_graph *g)
{
	const kir_stage *st;
	const kir_store *s;

	if (p->n_stages != 1)
		return NULL;
	st = &p->stages[0];
	if (st->n_red != 0 || st->red_op != KIR_RED_NONE || st->serial || st->n_store != 1)
		return NULL;
	s = &st->store[0];
	for (int b = 0; b < p->n_bufs; b++)
		if (p->bufs[b].kind != KIR_BUF_PARAM || (b != s->buf && p->bufs[b].written))
			return NULL;
	const kir_buf *ob = &p->bufs[s->buf];
	if (ob->value < 0 || ob->value >= g->n_values ||
	    (g->values[ob->value].flags & (MPCC_VALUE_OUTPUT | MPCC_VALUE_INPUT)))
		return NULL;
	for (int i = 0; i < p->n_exprs; i++)
		if (p->exprs[i].op == KIR_LOAD && p->exprs[i].a == s->buf)
			return NULL;
	return row_major_store(p, st, s) ? s : NULL;
}

/* Cheap producers may be duplicated: at most one op besides casts and at
 * most two loads in the value tree (load index arithmetic not counted). */
static bool
producer_cheap(const kir_kernel *p, int32_t root)
{
	uint8_t *mark = calloc((size_t)p->n_exprs + 1, 1);
	int ops = 0, loads = 0;

	if (!mark)
		return false;
	mark[root] = 1;
	for (int i = root; i >= 0; i--) {
		if (!mark[i])
			continue;
		const kir_expr *e = &p->exprs[i];
		if (e->op == KIR_LOAD) {
			loads++;
			continue;
		}
		if (e->op != KIR_CONST && e->op != KIR_CAST && e->op != KIR_VAR)
			ops++;
		int32_t o[3];
		int n = kir_expr_operands(e, o);
		for (int j = 0; j < n; j++)
			mark[o[j]] = 1;
	}
	free(mark);
	return ops <= 1 && loads <= 2;
}

/* True when C evaluates each element of buffer cb at most once in all: one
 * load site over all stages, injective over the domain it runs under. */
static bool
consumer_reads_once(const kir_kernel *c, int cb)
{
	uint8_t *mark = malloc((size_t)c->n_exprs + 1);
	int sites = 0;
	bool ok = true;

	if (!mark)
		return false;
	for (int s = 0; s < c->n_stages && ok; s++) {
		const kir_stage *st = &c->stages[s];
		kir_stage_reach(c, st, mark);
		for (int i = 0; i < c->n_exprs && ok; i++) {
			const kir_expr *e = &c->exprs[i];
			if (e->op != KIR_LOAD || e->a != cb || !mark[i])
				continue;
			int64_t ext[MAX_VARS];
			affine a;
			int n = st->n_par;
			memcpy(ext, st->par_ext, sizeof(int64_t) * (size_t)st->n_par);
			if (mark[i] & KIR_REACH_RED) {
				memcpy(ext + n, st->red_ext, sizeof(int64_t) * (size_t)st->n_red);
				n += st->n_red;
			}
			sites += ((mark[i] & KIR_REACH_RED) != 0) + ((mark[i] & KIR_REACH_STORE) != 0);
			ok = sites == 1 && affine_of(c, e->b, &a, 0) && affine_injective(&a, n, ext);
		}
	}
	free(mark);
	return ok && sites == 1;
}

static int32_t
emit(kir_kernel *k, kir_expr e)
{
	if (k->n_exprs == k->cap_exprs) {
		int ncap = k->cap_exprs ? k->cap_exprs * 2 : 64;
		kir_expr *ne = realloc(k->exprs, sizeof(kir_expr) * (size_t)ncap);
		if (!ne) {
			k->failed = true;
			return 0;
		}
		k->exprs = ne;
		k->cap_exprs = ncap;
	}
	k->exprs[k->n_exprs] = e;
	return k->n_exprs++;
}

static int32_t
emit_op(kir_kernel *k, kir_op op, int32_t a, int64_t imm)
{
	kir_expr c = {.op = KIR_CONST, .dtype = MPCC_DTYPE_I64, .imm.i = imm};
	kir_expr x = {.op = (uint8_t)op, .dtype = MPCC_DTYPE_I64, .a = a};

	x.b = emit(k, c);
	return emit(k, x);
}

/* Copies expression e of src into dst with operands remapped through map. */
static int32_t
copy_expr(kir_kernel *dst, const kir_expr *e, const int32_t *map, const int *bufmap)
{
	kir_expr x = *e;

	if (e->op == KIR_LOAD) {
		x.a = bufmap[e->a];
		x.b = map[e->b];
		return emit(dst, x);
	}
	if (e->op == KIR_CONST || e->op == KIR_VAR || e->op == KIR_ACC)
		return emit(dst, x);
	if (e->op == KIR_SELECT) {
		x.a = map[e->a];
		x.b = map[e->b];
		x.c = map[e->c];
	} else if (kir_op_is_binary((kir_op)e->op)) {
		x.a = map[e->a];
		x.b = map[e->b];
	} else {
		x.a = map[e->a];
	}
	return emit(dst, x);
}

/*
 * Storage rounding that fusion makes moot. The precision pass stores some
 * f32 intermediates as f16/bf16 (MPCC_VALUE_LOWERED); their lowerings round
 * to the storage dtype at the store and widen again at the load. Once a
 * fusion keeps such a value in registers there is no store, and the numerics
 * contract rounds exactly where a value is stored, so the consumer's widening
 * CAST(F32, x) of the inlined CAST(low, y) becomes y. Casts the model itself
 * asks for are not LOWERED and keep their rounding. Nor do the operands of a
 * consumer that reduces: a matrix op said to compute in f16 reads f16
 * operands (as tensor cores do), fused or not; only elementwise consumers
 * (epilogues, chains) take the unrounded value.
 */
static int32_t
unrounded(const kir_kernel *k, int32_t v)
{
	const kir_expr *x = &k->exprs[v];
	if (x->op != KIR_CAST || (x->dtype != MPCC_DTYPE_F16 && x->dtype != MPCC_DTYPE_BF16))
		return -1;
	return k->exprs[x->a].dtype == MPCC_DTYPE_F32 ? x->a : -1;
}

/* True when e (of src) is CAST(F32, load of buf). */
static bool
widens_load(const kir_kernel *src, const kir_expr *e, int buf)
{
	return buf >= 0 && e->op == KIR_CAST && e->dtype == MPCC_DTYPE_F32 &&
	       src->exprs[e->a].op == KIR_LOAD && src->exprs[e->a].a == buf;
}

static bool
reduces(const kir_kernel *k)
{
	for (int i = 0; i < k->n_stages; i++)
		if (kir_stage_reduces(&k->stages[i]))
			return true;
	return false;
}

static bool
lowered(const mpcc_graph *g, int32_t value)
{
	return value >= 0 && value < g->n_values && (g->values[value].flags & MPCC_VALUE_LOWERED);
}

/* Emits src's tree at root into dst, its stage's vars recovered from the
 * linear element index idx (an expr of dst) by div/mod over st's parallel
 * extents. Loads of subst_buf (or none when -1) become subst_val; with
 * elide, their widening casts become subst_val's unrounded operand. */
static int32_t
emit_tree(kir_kernel *dst, const kir_kernel *src, const kir_stage *st, int32_t root, int32_t idx,
          const int *bufmap, int subst_buf, int32_t subst_val, bool elide, int32_t *map,
          uint8_t *mark)
{
	int32_t vars[KIR_MAX_DIMS];
	int64_t stride = 1;

	for (int v = st->n_par - 1; v >= 0; v--) {
		if (st->par_ext[v] <= 1) {
			kir_expr z = {.op = KIR_CONST, .dtype = MPCC_DTYPE_I64, .imm.i = 0};
			vars[v] = emit(dst, z);
			continue;
		}
		int32_t x = idx;
		if (stride != 1)
			x = emit_op(dst, KIR_DIV, x, stride);
		bool outer = true;
		for (int u = 0; u < v; u++)
			outer = outer && st->par_ext[u] <= 1;
		if (!outer)
			x = emit_op(dst, KIR_REM, x, st->par_ext[v]);
		vars[v] = x;
		stride *= st->par_ext[v];
	}
	memset(mark, 0, (size_t)src->n_exprs);
	mark[root] = 1;
	for (int i = root; i >= 0; i--) {
		if (!mark[i])
			continue;
		const kir_expr *e = &src->exprs[i];
		if (e->op == KIR_LOAD && e->a == subst_buf)
			continue;
		int32_t o[3];
		int n = kir_expr_operands(e, o);
		for (int j = 0; j < n; j++)
			mark[o[j]] = 1;
	}
	for (int i = 0; i <= root; i++) {
		if (!mark[i])
			continue;
		const kir_expr *e = &src->exprs[i];
		if (e->op == KIR_VAR)
			map[i] = vars[e->a];
		else if (e->op == KIR_LOAD && e->a == subst_buf)
			map[i] = subst_val;
		else if (elide && widens_load(src, e, subst_buf) && unrounded(dst, subst_val) >= 0)
			map[i] = unrounded(dst, subst_val);
		else
			map[i] = copy_expr(dst, e, map, bufmap);
	}
	return map[root];
}

/*
 * Why a fresh kernel rather than editing C in place: inlining grows the
 * expression pool in the middle, and every index after it would shift;
 * copying C in order, with P's tree emitted in place of each load, keeps
 * the operands-before-users invariant with no renumbering pass.
 */
static kir_kernel *
fuse_pair(const kir_kernel *p, const kir_store *s, const kir_kernel *c, int cb, bool elide)
{
	kir_kernel *k = kir_kernel_create(c->name);
	int *cbufmap = NULL, *pbufmap = NULL;
	int32_t *cmap = NULL, *pmap = NULL;
	uint8_t *pmark = NULL;

	if (!k)
		return NULL;
	cbufmap = malloc(sizeof(int) * (size_t)(c->n_bufs + 1));
	pbufmap = malloc(sizeof(int) * (size_t)(p->n_bufs + 1));
	cmap = malloc(sizeof(int32_t) * (size_t)(c->n_exprs + 1));
	pmap = malloc(sizeof(int32_t) * (size_t)(p->n_exprs + 1));
	pmark = malloc((size_t)p->n_exprs + 1);
	if (!cbufmap || !pbufmap || !cmap || !pmap || !pmark)
		goto fail;
	k->node = c->node == p->node ? c->node : MPCC_NONE;
	for (int b = 0; b < c->n_bufs; b++) {
		const kir_buf *cb_ = &c->bufs[b];
		cbufmap[b] = -1;
		if (b == cb)
			continue;
		cbufmap[b] = kir_buf_add(k, cb_->dtype, cb_->kind, cb_->value, cb_->n_elems);
		k->bufs[cbufmap[b]].written = cb_->written;
	}
	for (int b = 0; b < p->n_bufs; b++) {
		const kir_buf *pb = &p->bufs[b];
		pbufmap[b] = -1;
		if (b == s->buf)
			continue;
		int f = find_value_buf(k, pb->value);
		pbufmap[b] = f >= 0 ? f : kir_buf_add(k, pb->dtype, pb->kind, pb->value, pb->n_elems);
	}
	if (!kir_kernel_ok(k))
		goto fail;
	for (int i = 0; i < c->n_exprs; i++) {
		const kir_expr *e = &c->exprs[i];
		if (e->op == KIR_LOAD && e->a == cb) {
			int32_t v = emit_tree(k, p, &p->stages[0], s->value, cmap[e->b], pbufmap, -1, 0,
			                      false, pmap, pmark);
			/* The store wrote a value of the buffer's dtype; keep that type. */
			if (!k->failed && k->exprs[v].dtype != c->bufs[cb].dtype)
				goto fail;
			cmap[i] = v;
		} else if (elide && widens_load(c, e, cb) && unrounded(k, cmap[e->a]) >= 0) {
			cmap[i] = unrounded(k, cmap[e->a]);
		} else {
			cmap[i] = copy_expr(k, e, cmap, cbufmap);
		}
		if (k->failed)
			goto fail;
	}
	k->stages = malloc(sizeof(kir_stage) * (size_t)(c->n_stages + 1));
	if (!k->stages)
		goto fail;
	k->cap_stages = c->n_stages + 1;
	for (int si = 0; si < c->n_stages; si++) {
		kir_stage st = c->stages[si];
		if (st.n_red > 0 || st.red_op != KIR_RED_NONE)
			st.red_value = st.red_value >= 0 ? cmap[st.red_value] : st.red_value;
		for (int j = 0; j < st.n_store; j++) {
			st.store[j].buf = cbufmap[st.store[j].buf];
			st.store[j].index = cmap[st.store[j].index];
			st.store[j].value = cmap[st.store[j].value];
		}
		k->stages[k->n_stages++] = st;
	}
	free(cbufmap);
	free(pbufmap);
	free(cmap);
	free(pmap);
	free(pmark);
	return k;
fail:
	free(cbufmap);
	free(pbufmap);
	free(cmap);
	free(pmap);
	free(pmark);
	kir_kernel_destroy(k);
	return NULL;
}

/* Appends the nodes k covers (its cover list, or its node) to out. */
static bool
cover_append(kir_kernel *dst, const kir_kernel *k)
{
	int n = k->cover ? k->n_cover : (k->node != MPCC_NONE ? 1 : 0);
	int32_t *nc;

	if (n == 0)
		return true;
	nc = realloc(dst->cover, sizeof(int32_t) * (size_t)(dst->n_cover + n));
	if (!nc)
		return false;
	dst->cover = nc;
	for (int i = 0; i < n; i++) {
		int32_t node = k->cover ? k->cover[i] : k->node;
		bool dup = false;
		for (int j = 0; j < dst->n_cover; j++)
			dup = dup || dst->cover[j] == node;
		if (!dup)
			dst->cover[dst->n_cover++] = node;
	}
	return true;
}

static bool
writes_value(const kir_kernel *k, int32_t value)
{
	for (int b = 0; b < k->n_bufs; b++)
		if (k->bufs[b].kind == KIR_BUF_PARAM && k->bufs[b].written && k->bufs[b].value == value)
			return true;
	return false;
}

/* The single later kernel that reads P's output, or -1 when fusion into it
 * would be wrong: other readers, other writers, or a kernel at or before
 * the consumer that overwrites one of P's inputs. */
static int
find_consumer(const mpcc_lower *lx, int pi, const kir_store *s)
{
	const kir_kernel *p = lx->kernels[pi];
	int32_t v = p->bufs[s->buf].value;
	int ci = -1;

	for (int k = 0; k < lx->n_kernels; k++) {
		if (k == pi)
			continue;
		int b = find_value_buf(lx->kernels[k], v);
		if (b < 0)
			continue;
		if (ci >= 0 || k < pi || lx->kernels[k]->bufs[b].written)
			return -1;
		ci = k;
	}
	if (ci < 0)
		return -1;
	for (int k = pi + 1; k <= ci; k++)
		for (int b = 0; b < p->n_bufs; b++)
			if (b != s->buf && writes_value(lx->kernels[k], p->bufs[b].value))
				return -1;
	return ci;
}

static bool
affine_equal(const affine *a, const affine *b)
{
	return memcmp(a, b, sizeof(*a)) == 0;
}

/* C qualifies as an epilogue reading buffer cb: one stage, no reduction, one
 * row-major store, and cb loaded at one site at exactly the store's index. */
static bool
epilogue_consumer(const kir_kernel *c, int cb, const mpcc_graph *g)
{
	const kir_stage *st = &c->stages[0];
	affine ai, as;
	int sites = 0, site = -1;

	if (c->n_stages != 1 || st->n_red != 0 || st->red_op != KIR_RED_NONE || st->serial ||
	    st->n_store != 1)
		return false;
	const kir_store *s = &st->store[0];
	for (int b = 0; b < c->n_bufs; b++)
		if (c->bufs[b].kind != KIR_BUF_PARAM || (b != s->buf && c->bufs[b].written))
			return false;
	int32_t ov = c->bufs[s->buf].value;
	if (ov < 0 || ov >= g->n_values || (g->values[ov].flags & MPCC_VALUE_INPUT))
		return false;
	for (int i = 0; i < c->n_exprs; i++) {
		if (c->exprs[i].op != KIR_LOAD)
			continue;
		if (c->exprs[i].a == s->buf)
			return false;
		if (c->exprs[i].a == cb) {
			sites++;
			site = i;
		}
	}
	if (sites != 1 || !row_major_store(c, st, s))
		return false;
	return affine_of(c, c->exprs[site].b, &ai, 0) && affine_of(c, s->index, &as, 0) &&
	       affine_equal(&ai, &as);
}

/* P's one store of an intermediate (stage *si, store *sj) that writes each
 * element once; the first such store with a single later reader. */
static int
epilogue_producer(const mpcc_lower *lx, int pi, int *si, int *sj)
{
	const kir_kernel *p = lx->kernels[pi];

	for (int a = 0; a < p->n_stages; a++) {
		const kir_stage *st = &p->stages[a];
		for (int j = 0; j < st->n_store; j++) {
			const kir_store *s = &st->store[j];
			const kir_buf *ob = &p->bufs[s->buf];
			int n_st = 0;
			affine af;
			int64_t n = 1;
			if (ob->kind != KIR_BUF_PARAM || ob->value < 0 || ob->value >= lx->g->n_values ||
			    (lx->g->values[ob->value].flags & (MPCC_VALUE_OUTPUT | MPCC_VALUE_INPUT)))
				continue;
			for (int b = 0; b < p->n_stages; b++)
				for (int q = 0; q < p->stages[b].n_store; q++)
					n_st += p->stages[b].store[q].buf == s->buf;
			bool loaded = false;
			for (int i = 0; i < p->n_exprs; i++)
				loaded = loaded || (p->exprs[i].op == KIR_LOAD && p->exprs[i].a == s->buf);
			for (int v = 0; v < st->n_par; v++)
				n *= st->par_ext[v];
			if (n_st != 1 || loaded || n != ob->n_elems || !affine_of(p, s->index, &af, 0) ||
			    !affine_injective(&af, st->n_par, st->par_ext))
				continue;
			int ci = find_consumer(lx, pi, s);
			if (ci < 0)
				continue;
			*si = a;
			*sj = j;
			return ci;
		}
	}
	return -1;
}

/* Nothing between P and C (nor P itself) may write what C reads or touch
 * what C writes, since C's work moves up to P's place in the schedule. */
static bool
epilogue_can_move(const mpcc_lower *lx, int pi, int ci, int cb)
{
	const kir_kernel *c = lx->kernels[ci];
	int32_t ov = c->bufs[c->stages[0].store[0].buf].value;

	for (int k = pi; k < ci; k++) {
		const kir_kernel *x = lx->kernels[k];
		if (find_value_buf(x, ov) >= 0)
			return false;
		for (int b = 0; b < c->n_bufs; b++)
			if (b != cb && !c->bufs[b].written && writes_value(x, c->bufs[b].value))
				return false;
	}
	return true;
}

/*
 * Why P is copied whole and only one store changes: P's stages (GEMM or
 * convolution loops, multi-stage reductions) stay exactly as lowered, and
 * C's tree, with its load of P's output replaced by the value P was storing,
 * becomes that store's value, aimed at C's output at the same element.
 */
static kir_kernel *
fuse_epilogue(const kir_kernel *p, int si, int sj, const kir_kernel *c, int cb, bool elide)
{
	const kir_store *ps = &p->stages[si].store[sj];
	const kir_store *cs = &c->stages[0].store[0];
	kir_kernel *k = kir_kernel_create(p->name);
	int *pbufmap = NULL, *cbufmap = NULL;
	int32_t *pmap = NULL, *cmap = NULL;
	uint8_t *cmark = NULL;

	if (!k)
		return NULL;
	pbufmap = malloc(sizeof(int) * (size_t)(p->n_bufs + 1));
	cbufmap = malloc(sizeof(int) * (size_t)(c->n_bufs + 1));
	pmap = malloc(sizeof(int32_t) * (size_t)(p->n_exprs + 1));
	cmap = malloc(sizeof(int32_t) * (size_t)(c->n_exprs + 1));
	cmark = malloc((size_t)c->n_exprs + 1);
	k->stages = malloc(sizeof(kir_stage) * (size_t)(p->n_stages + 1));
	if (!pbufmap || !cbufmap || !pmap || !cmap || !cmark || !k->stages)
		goto fail;
	k->cap_stages = p->n_stages + 1;
	k->node = c->node == p->node ? c->node : MPCC_NONE;
	for (int b = 0; b < p->n_bufs; b++) {
		const kir_buf *pb = &p->bufs[b];
		pbufmap[b] = -1;
		if (b == ps->buf)
			continue;
		pbufmap[b] = kir_buf_add(k, pb->dtype, pb->kind, pb->value, pb->n_elems);
		k->bufs[pbufmap[b]].written = pb->written;
	}
	for (int b = 0; b < c->n_bufs; b++) {
		const kir_buf *x = &c->bufs[b];
		cbufmap[b] = -1;
		if (b == cb)
			continue;
		int f = b == cs->buf ? -1 : find_value_buf(k, x->value);
		cbufmap[b] = f >= 0 ? f : kir_buf_add(k, x->dtype, x->kind, x->value, x->n_elems);
		if (b == cs->buf)
			k->bufs[cbufmap[b]].written = true;
	}
	if (!kir_kernel_ok(k))
		goto fail;
	for (int i = 0; i < p->n_exprs; i++)
		pmap[i] = copy_expr(k, &p->exprs[i], pmap, pbufmap);
	int32_t idx = pmap[ps->index];
	int32_t val = emit_tree(k, c, &c->stages[0], cs->value, idx, cbufmap, cb, pmap[ps->value],
	                        elide, cmap, cmark);
	if (k->failed)
		goto fail;
	for (int a = 0; a < p->n_stages; a++) {
		kir_stage st = p->stages[a];
		if (kir_stage_reduces(&st))
			st.red_value = pmap[st.red_value];
		for (int j = 0; j < st.n_store; j++) {
			kir_store *x = &st.store[j];
			if (a == si && j == sj) {
				x->buf = cbufmap[cs->buf];
				x->index = idx;
				x->value = val;
				continue;
			}
			x->buf = pbufmap[x->buf];
			x->index = pmap[x->index];
			x->value = pmap[x->value];
		}
		k->stages[k->n_stages++] = st;
	}
	free(pbufmap);
	free(cbufmap);
	free(pmap);
	free(cmap);
	free(cmark);
	return k;
fail:
	free(pbufmap);
	free(cbufmap);
	free(pmap);
	free(cmap);
	free(cmark);
	kir_kernel_destroy(k);
	return NULL;
}

/* Tries P as the main kernel with an elementwise epilogue; 1 when fused,
 * 0 when not, -1 out of memory. */
static int
try_epilogue(mpcc_lower *lx, int pi)
{
	kir_kernel *p = lx->kernels[pi];
	int si, sj, ci = epilogue_producer(lx, pi, &si, &sj);
	mpcc_diag vd;

	if (ci < 0)
		return 0;
	kir_kernel *c = lx->kernels[ci];
	const kir_buf *pb = &p->bufs[p->stages[si].store[sj].buf];
	int cb = find_value_buf(c, pb->value);
	if (c->bufs[cb].dtype != pb->dtype || c->bufs[cb].n_elems != pb->n_elems ||
	    !epilogue_consumer(c, cb, lx->g) || !epilogue_can_move(lx, pi, ci, cb))
		return 0;
	kir_kernel *k = fuse_epilogue(p, si, sj, c, cb, lowered(lx->g, pb->value));
	if (!k)
		return 0;
	mpcc_diag_init(&vd);
	if (kir_validate(k, &vd) != MPCC_OK) {
		kir_kernel_destroy(k);
		return 0;
	}
	if (!cover_append(k, p) || !cover_append(k, c)) {
		kir_kernel_destroy(k);
		return -1;
	}
	kir_kernel_destroy(c);
	kir_kernel_destroy(p);
	lx->kernels[pi] = k;
	memmove(&lx->kernels[ci], &lx->kernels[ci + 1],
	        sizeof(kir_kernel *) * (size_t)(lx->n_kernels - ci - 1));
	lx->n_kernels--;
	return 1;
}

mpcc_status
mpcc_fuse_kernels(mpcc_lower *lx, mpcc_fuse_stats *stats)
{
	mpcc_diag vd;

	if (stats) {
		stats->kernels_before = lx->n_kernels;
		stats->fused = 0;
	}
	for (int pi = 0; pi < lx->n_kernels;) {
		kir_kernel *p = lx->kernels[pi];
		const kir_store *s = producer_store(p, lx->g);
		int ci = s ? find_consumer(lx, pi, s) : -1;
		if (ci < 0) {
			int r = try_epilogue(lx, pi);
			if (r < 0)
				return mpcc_diag_error(lx->d, MPCC_ERR_NOMEM, "out of memory fusing kernels");
			if (stats)
				stats->fused += r;
			pi += r == 0;
			continue;
		}
		kir_kernel *c = lx->kernels[ci];
		int cb = find_value_buf(c, p->bufs[s->buf].value);
		if (c->bufs[cb].dtype != p->bufs[s->buf].dtype ||
		    c->bufs[cb].n_elems != p->bufs[s->buf].n_elems ||
		    (!consumer_reads_once(c, cb) && !producer_cheap(p, s->value))) {
			pi++;
			continue;
		}
		kir_kernel *k = fuse_pair(p, s, c, cb,
		                          lowered(lx->g, p->bufs[s->buf].value) && !reduces(c));
		if (!k) {
			pi++;
			continue;
		}
		mpcc_diag_init(&vd);
		if (kir_validate(k, &vd) != MPCC_OK) {
			kir_kernel_destroy(k);
			pi++;
			continue;
		}
		if (!cover_append(k, p) || !cover_append(k, c)) {
			kir_kernel_destroy(k);
			return mpcc_diag_error(lx->d, MPCC_ERR_NOMEM, "out of memory fusing kernels");
		}
		kir_kernel_destroy(c);
		kir_kernel_destroy(p);
		lx->kernels[ci] = k;
		memmove(&lx->kernels[pi], &lx->kernels[pi + 1],
		        sizeof(kir_kernel *) * (size_t)(lx->n_kernels - pi - 1));
		lx->n_kernels--;
		if (stats)
			stats->fused++;
	}
	if (stats)
		stats->kernels_after = lx->n_kernels;
	return MPCC_OK;
}
