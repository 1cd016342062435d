/*
 * ops/rnn.c - RNN, GRU and LSTM, unrolled over time into one kernel.
 *
 * Each time step of each direction is a handful of stages over TEMP state
 * buffers: two small matrix products (the input part X_t W^T + Wb and the
 * recurrent part H R^T + Rb, kept apart because GRU needs them apart), an
 * optional third for GRU without linear_before_reset ((r * H) Rh^T + Rbh),
 * and an update stage that applies the gate activations, advances the state
 * and writes Y. sequence_lens are honoured per batch row: past a row's
 * length its state is held and its Y rows are zero, and the reverse direction
 * starts at the row's own last step. Unrolling keeps every stage a plain loop
 * nest the emitters already handle; sequences are short in the models that
 * use these ops, and a later issue can replace this with a loop stage.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ops/ops.h"

enum { RNN_PLAIN, RNN_GRU, RNN_LSTM };

typedef struct act {
	char name[24];
	double alpha, beta;
} act;

typedef struct rnn_desc {
	int kind, n_gates, n_acts;
	int dirs;
	int64_t seq, batch, in, hid;
	int layout;
	double clip; /* 0: none */
	bool input_forget, lbr;
	act acts[6]; /* per direction: n_acts each */
} rnn_desc;

static mpcc_value *
in_val(mpcc_graph *g, const mpcc_node *n, int i)
{
	return i < n->n_in && n->in[i] != MPCC_NONE ? &g->values[n->in[i]] : NULL;
}

static int
kind_of(const mpcc_node *n)
{
	return n->op == MPCC_OP_LSTM ? RNN_LSTM : n->op == MPCC_OP_GRU ? RNN_GRU : RNN_PLAIN;
}

/* Default activation pairs, and how many alpha/beta values each takes. */
static void
act_defaults(const char *name, double *alpha, double *beta, int *n_params)
{
	*alpha = *beta = 0;
	*n_params = 0;
	if (!strcmp(name, "LeakyRelu")) {
		*alpha = 0.01;
		*n_params = 1;
	} else if (!strcmp(name, "ThresholdedRelu") || !strcmp(name, "Elu")) {
		*alpha = 1.0;
		*n_params = 1;
	} else if (!strcmp(name, "HardSigmoid")) {
		*alpha = 0.2;
		*beta = 0.5;
		*n_params = 2;
	} else if (!strcmp(name, "Affine") || !strcmp(name, "ScaledTanh")) {
		*alpha = 1.0;
		*n_params = 2;
	}
}

static mpcc_status
rnn_describe(mpcc_graph *g, const mpcc_node *n, rnn_desc *r, mpcc_diag *d)
{
	memset(r, 0, sizeof(*r));
	r->kind = kind_of(n);
	r->n_gates = r->kind == RNN_LSTM ? 4 : r->kind == RNN_GRU ? 3 : 1;
	r->n_acts = r->kind == RNN_LSTM ? 3 : r->kind == RNN_GRU ? 2 : 1;
	mpcc_value *x = in_val(g, n, 0), *w = in_val(g, n, 1), *rr = in_val(g, n, 2);
	if (!x || !w || !rr || x->rank != 3 || w->rank != 3 || rr->rank != 3)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "X, W and R must be 3-D");
	if (!mpcc_dtype_is_float(x->dtype) || w->dtype != x->dtype || rr->dtype != x->dtype)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "X, W, R need one float dtype");
	r->layout = (int)mpcc_node_attr_int(n, "layout", 0);
	r->seq = r->layout ? x->dims[1] : x->dims[0];
	r->batch = r->layout ? x->dims[0] : x->dims[1];
	r->in = x->dims[2];
	r->dirs = (int)w->dims[0];
	r->hid = rr->dims[2];
	const char *dir = mpcc_node_attr_string(n, "direction", "forward");
	int want_dirs = !strcmp(dir, "bidirectional") ? 2 : 1;
	if (strcmp(dir, "forward") && strcmp(dir, "reverse") && want_dirs != 2)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "unknown direction '%s'", dir);
	int64_t hs = mpcc_node_attr_int(n, "hidden_size", r->hid);
	if (r->dirs != want_dirs || hs != r->hid || w->dims[1] != r->n_gates * r->hid ||
	    w->dims[2] != r->in || rr->dims[0] != r->dirs || rr->dims[1] != r->n_gates * r->hid)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID,
		                       "W/R shapes disagree with direction and hidden_size");
	r->clip = mpcc_node_attr_float(n, "clip", 0.0f);
	r->input_forget = mpcc_node_attr_int(n, "input_forget", 0) != 0;
	r->lbr = mpcc_node_attr_int(n, "linear_before_reset", 0) != 0;
	const mpcc_attr *names = mpcc_node_attr(n, "activations");
	const mpcc_attr *alphas = mpcc_node_attr(n, "activation_alpha");
	const mpcc_attr *betas = mpcc_node_attr(n, "activation_beta");
	int total = r->n_acts * r->dirs, ia = 0, ib = 0;
	if (names && names->n != total)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "activations needs %d names", total);
	for (int i = 0; i < total; i++) {
		const char *nm = names ? names->strings[i]
		                       : (r->kind == RNN_PLAIN || i % r->n_acts) ? "Tanh" : "Sigmoid";
		act *a = &r->acts[i];
		snprintf(a->name, sizeof(a->name), "%s", nm);
		int np;
		act_defaults(nm, &a->alpha, &a->beta, &np);
		if (np >= 1 && alphas && ia < alphas->n)
			a->alpha = alphas->floats[ia++];
		if (np >= 2 && betas && ib < betas->n)
			a->beta = betas->floats[ib++];
	}
	return MPCC_OK;
}

mpcc_status
mpcc_infer_rnn(mpcc_graph *g, int32_t ni, mpcc_diag *d)
{
	mpcc_node *n = &g->nodes[ni];
	rnn_desc r;
	mpcc_status st = rnn_describe(g, n, &r, d);
	if (st)
		return st;
	mpcc_dtype t = g->values[n->in[0]].dtype;
	for (int o = 0; o < n->n_out; o++) {
		if (n->out[o] == MPCC_NONE)
			continue;
		mpcc_value *v = &g->values[n->out[o]];
		v->dtype = t;
		if (o == 0) {
			v->rank = 4;
			int64_t y[4] = {r.seq, r.dirs, r.batch, r.hid};
			int64_t yb[4] = {r.batch, r.seq, r.dirs, r.hid};
			memcpy(v->dims, r.layout ? yb : y, sizeof(y));
		} else {
			v->rank = 3;
			int64_t h[3] = {r.dirs, r.batch, r.hid}, hb[3] = {r.batch, r.dirs, r.hid};
			memcpy(v->dims, r.layout ? hb : h, sizeof(h));
		}
	}
	return MPCC_OK;
}

/* ---------------------------------------------------------------- lowering */

typedef struct rnn_lower {
	kir_kernel *k;
	mpcc_graph *g;
	const mpcc_node *n;
	rnn_desc r;
	mpcc_dtype acc;
	int bx, bw, br, bb, bl, bp;  /* params (-1 when absent) */
	int hs, cs, gx, gh, rh;      /* TEMP buffers */
	int by, byh, byc;            /* outputs (-1 when absent) */
} rnn_lower;

static int32_t
fconst(rnn_lower *L, double v)
{
	return kir_const_f(L->k, L->acc, v);
}

static int32_t
apply_act(rnn_lower *L, const act *a, int32_t x)
{
	kir_kernel *k = L->k;
	const char *nm = a->name;
	if (!strcmp(nm, "Sigmoid"))
		return kir_binary(k, KIR_DIV, fconst(L, 1),
		                  kir_binary(k, KIR_ADD, fconst(L, 1),
		                             kir_unary(k, KIR_EXP, kir_unary(k, KIR_NEG, x))));
	if (!strcmp(nm, "Tanh"))
		return kir_unary(k, KIR_TANH, x);
	if (!strcmp(nm, "Relu"))
		return kir_binary(k, KIR_MAX, x, fconst(L, 0));
	if (!strcmp(nm, "LeakyRelu"))
		return kir_select(k, kir_binary(k, KIR_GE, x, fconst(L, 0)), x,
		                  kir_binary(k, KIR_MUL, x, fconst(L, a->alpha)));
	if (!strcmp(nm, "ThresholdedRelu"))
		return kir_select(k, kir_binary(k, KIR_GT, x, fconst(L, a->alpha)), x, fconst(L, 0));
	if (!strcmp(nm, "HardSigmoid")) {
		int32_t y = kir_binary(k, KIR_ADD, kir_binary(k, KIR_MUL, x, fconst(L, a->alpha)),
		                       fconst(L, a->beta));
		return kir_binary(k, KIR_MIN, kir_binary(k, KIR_MAX, y, fconst(L, 0)), fconst(L, 1));
	}
	if (!strcmp(nm, "Affine"))
		return kir_binary(k, KIR_ADD, kir_binary(k, KIR_MUL, x, fconst(L, a->alpha)),
		                  fconst(L, a->beta));
	if (!strcmp(nm, "ScaledTanh"))
		return kir_binary(k, KIR_MUL, fconst(L, a->alpha),
		                  kir_unary(k, KIR_TANH, kir_binary(k, KIR_MUL, x, fconst(L, a->beta))));
	if (!strcmp(nm, "Elu"))
		return kir_select(k, kir_binary(k, KIR_GE, x, fconst(L, 0)), x,
		                  kir_binary(k, KIR_MUL, fconst(L, a->alpha),
		                             kir_binary(k, KIR_SUB, kir_unary(k, KIR_EXP, x),
		                                        fconst(L, 1))));
	if (!strcmp(nm, "Softsign"))
		return kir_binary(k, KIR_DIV, x,
		                  kir_binary(k, KIR_ADD, fconst(L, 1), kir_unary(k, KIR_ABS, x)));
	if (!strcmp(nm, "Softplus"))
		return kir_unary(k, KIR_LOG, kir_binary(k, KIR_ADD, fconst(L, 1), kir_unary(k, KIR_EXP, x)));
	return -1;
}

static int32_t
clip(rnn_lower *L, int32_t x)
{
	if (L->r.clip <= 0)
		return x;
	int32_t lo = kir_binary(L->k, KIR_MAX, x, fconst(L, -L->r.clip));
	return kir_binary(L->k, KIR_MIN, lo, fconst(L, L->r.clip));
}

static int32_t
ld(rnn_lower *L, int buf, int32_t idx)
{
	return kir_cast(L->k, L->acc, kir_load(L->k, buf, idx));
}

/* The time index of batch row bv at step s, and whether the step is valid. */
static int32_t
time_index(rnn_lower *L, int dir_rev, int64_t s, int32_t bv, int32_t *valid)
{
	kir_kernel *k = L->k;
	if (L->bl < 0) {
		*valid = -1;
		return kir_iconst(k, dir_rev ? L->r.seq - 1 - s : s);
	}
	int32_t len = kir_cast(k, MPCC_DTYPE_I64, kir_load(k, L->bl, bv));
	*valid = kir_binary(k, KIR_LT, kir_iconst(k, s), len);
	if (!dir_rev)
		return kir_iconst(k, s);
	/* reverse: row b walks len-1 .. 0; invalid steps use slot s (>= len) */
	int32_t t = kir_iadd(k, len, kir_iconst(k, -1 - s));
	return kir_select(k, *valid, t, kir_iconst(k, s));
}

static int32_t
x_index(rnn_lower *L, int32_t t, int32_t b, int32_t i)
{
	kir_kernel *k = L->k;
	int64_t S = L->r.seq, B = L->r.batch, I = L->r.in;
	if (L->r.layout)
		return kir_iadd(k, kir_imul(k, kir_iadd(k, kir_imul(k, b, S), t), I), i);
	return kir_iadd(k, kir_imul(k, kir_iadd(k, kir_imul(k, t, B), b), I), i);
}

/* acc[b, j] = sum_k A[b, k] * M[dir, row_off + j, k] + bias[dir, boff + j],
 * as one stage over (B, rows) reducing K; A is X at step s or a TEMP [B, K]. */
static void
matvec_stage(rnn_lower *L, int dir, int dir_rev, int64_t s, int a_buf, int m_buf, int64_t K,
             int64_t rows, int64_t row_off, int64_t boff, int dst)
{
	kir_kernel *k = L->k;
	int32_t v[3];
	mpcc_lower_vars(k, 0, 3, v);
	int32_t a_idx;
	if (a_buf == L->bx) {
		int32_t valid;
		int32_t t = time_index(L, dir_rev, s, v[0], &valid);
		t = kir_binary(k, KIR_MIN, kir_binary(k, KIR_MAX, t, kir_iconst(k, 0)),
		               kir_iconst(k, L->r.seq - 1));
		a_idx = x_index(L, t, v[0], v[2]);
	} else {
		a_idx = kir_iadd(k, kir_imul(k, v[0], K), v[2]);
	}
	int64_t G = L->r.n_gates * L->r.hid;
	int32_t m_idx = kir_iadd(
	    k, kir_imul(k, kir_iadd(k, kir_iconst(k, dir * G + row_off), v[1]), K), v[2]);
	int32_t prod = kir_binary(k, KIR_MUL, ld(L, a_buf, a_idx), ld(L, m_buf, m_idx));
	int64_t par[2] = {L->r.batch, rows};
	kir_stage *st = kir_stage_add(k, 2, par, 1, &K, KIR_RED_SUM, L->acc, prod);
	if (!st)
		return;
	int32_t out = kir_acc(k, L->acc);
	if (L->bb >= 0)
		out = kir_binary(k, KIR_ADD, out,
		                 ld(L, L->bb, kir_iadd(k, kir_iconst(k, dir * 2 * G + boff), v[1])));
	kir_stage_store(k, st, dst, kir_iadd(k, kir_imul(k, v[0], rows), v[1]), out);
}

/* Update stage for one step: gates -> new state, Y. vars: (b, h). */
static void
update_stage(rnn_lower *L, int dir, int dir_rev, int64_t s)
{
	kir_kernel *k = L->k;
	int64_t H = L->r.hid, G = L->r.n_gates * H;
	const act *a = &L->r.acts[dir * L->r.n_acts];
	int32_t v[2];
	mpcc_lower_vars(k, 0, 2, v);
	int32_t bh = kir_iadd(k, kir_imul(k, v[0], H), v[1]);
	int32_t hprev = kir_load(k, L->hs, bh);
	int32_t gate[4], xg[4], hg[4];
	for (int q = 0; q < L->r.n_gates; q++) {
		int32_t gi = kir_iadd(k, kir_imul(k, v[0], G), kir_iadd(k, kir_iconst(k, q * H), v[1]));
		xg[q] = kir_load(k, L->gx, gi);
		hg[q] = kir_load(k, L->gh, gi);
		gate[q] = kir_binary(k, KIR_ADD, xg[q], hg[q]);
	}
	int32_t hnew, cnew = -1;
	if (L->r.kind == RNN_PLAIN) {
		hnew = apply_act(L, &a[0], clip(L, gate[0]));
	} else if (L->r.kind == RNN_GRU) {
		int32_t z = apply_act(L, &a[0], clip(L, gate[0]));
		int32_t hh;
		if (L->r.lbr) {
			int32_t r = apply_act(L, &a[0], clip(L, gate[1]));
			hh = kir_binary(k, KIR_ADD, xg[2], kir_binary(k, KIR_MUL, r, hg[2]));
		} else {
			/* gh's h block was replaced by (r * H) Rh^T + Rbh already */
			hh = gate[2];
		}
		hh = apply_act(L, &a[1], clip(L, hh));
		int32_t one_z = kir_binary(k, KIR_SUB, fconst(L, 1), z);
		hnew = kir_binary(k, KIR_ADD, kir_binary(k, KIR_MUL, one_z, hh),
		                  kir_binary(k, KIR_MUL, z, hprev));
	} else {
		int32_t cprev = kir_load(k, L->cs, bh);
		int32_t pi = -1, po = -1, pf = -1;
		if (L->bp >= 0) {
			int32_t base = kir_iadd(k, kir_iconst(k, dir * 3 * H), v[1]);
			pi = ld(L, L->bp, base);
			po = ld(L, L->bp, kir_iadd(k, base, kir_iconst(k, H)));
			pf = ld(L, L->bp, kir_iadd(k, base, kir_iconst(k, 2 * H)));
		}
		int32_t gi_ = gate[0], go = gate[1], gf = gate[2], gc = gate[3];
		if (pi >= 0) {
			gi_ = kir_binary(k, KIR_ADD, gi_, kir_binary(k, KIR_MUL, pi, cprev));
			gf = kir_binary(k, KIR_ADD, gf, kir_binary(k, KIR_MUL, pf, cprev));
		}
		int32_t i = apply_act(L, &a[0], clip(L, gi_));
		int32_t f = L->r.input_forget ? kir_binary(k, KIR_SUB, fconst(L, 1), i)
		                              : apply_act(L, &a[0], clip(L, gf));
		int32_t c = apply_act(L, &a[1], clip(L, gc));
		cnew = kir_binary(k, KIR_ADD, kir_binary(k, KIR_MUL, f, cprev),
		                  kir_binary(k, KIR_MUL, i, c));
		if (po >= 0)
			go = kir_binary(k, KIR_ADD, go, kir_binary(k, KIR_MUL, po, cnew));
		int32_t o = apply_act(L, &a[0], clip(L, go));
		hnew = kir_binary(k, KIR_MUL, o, apply_act(L, &a[2], cnew));
	}
	int32_t valid;
	int32_t t = time_index(L, dir_rev, s, v[0], &valid);
	int32_t yval = hnew;
	if (valid >= 0) {
		hnew = kir_select(k, valid, hnew, hprev);
		if (cnew >= 0)
			cnew = kir_select(k, valid, cnew, kir_load(k, L->cs, bh));
		yval = kir_select(k, valid, yval, fconst(L, 0));
	}
	int64_t par[2] = {L->r.batch, H};
	kir_stage *st = kir_stage_add(k, 2, par, 0, NULL, KIR_RED_NONE, MPCC_DTYPE_UNDEF, -1);
	if (!st)
		return;
	kir_stage_store(k, st, L->hs, bh, hnew);
	if (cnew >= 0)
		kir_stage_store(k, st, L->cs, bh, cnew);
	if (L->by >= 0) {
		mpcc_dtype yt = (mpcc_dtype)k->bufs[L->by].dtype;
		int64_t S = L->r.seq, D = L->r.dirs, B = L->r.batch;
		int32_t yi;
		if (L->r.layout)
			yi = kir_iadd(k, kir_imul(k, kir_iadd(k, kir_imul(k, kir_iadd(k, kir_imul(k, v[0], S), t), D),
			                                      kir_iconst(k, dir)), H), v[1]);
		else
			yi = kir_iadd(k, kir_imul(k, kir_iadd(k, kir_imul(k, kir_iadd(k, kir_imul(k, t, D),
			                                                               kir_iconst(k, dir)), B), v[0]), H), v[1]);
		kir_stage_store(k, st, L->by, yi, kir_cast(k, yt, yval));
	}
}

/* GRU without linear_before_reset: rh = r * H, then gh's h block =
 * rh Rh^T + Rbh. r comes from the z/r blocks already in gx and gh. */
static void
gru_reset_stages(rnn_lower *L, int dir)
{
	kir_kernel *k = L->k;
	int64_t H = L->r.hid, G = 3 * H;
	int32_t v[2];
	mpcc_lower_vars(k, 0, 2, v);
	int32_t gi = kir_iadd(k, kir_imul(k, v[0], G), kir_iadd(k, kir_iconst(k, H), v[1]));
	int32_t pre = kir_binary(k, KIR_ADD, kir_load(k, L->gx, gi), kir_load(k, L->gh, gi));
	int32_t r = apply_act(L, &L->r.acts[dir * 2], clip(L, pre));
	int32_t bh = kir_iadd(k, kir_imul(k, v[0], H), v[1]);
	int64_t par[2] = {L->r.batch, H};
	kir_stage *st = kir_stage_add(k, 2, par, 0, NULL, KIR_RED_NONE, MPCC_DTYPE_UNDEF, -1);
	if (!st)
		return;
	kir_stage_store(k, st, L->rh, bh, kir_binary(k, KIR_MUL, r, kir_load(k, L->hs, bh)));
	/* (r*H) Rh^T + Rbh into a [B, H] slice: reuse matvec into rh-sized temp,
	 * then scatter into gh's h block with a copy stage. */
	int tmp = kir_buf_add(k, L->acc, KIR_BUF_TEMP, MPCC_NONE, L->r.batch * H);
	matvec_stage(L, dir, 0, 0, L->rh, L->br, H, H, 2 * H, 5 * H, tmp);
	mpcc_lower_vars(k, 0, 2, v);
	st = kir_stage_add(k, 2, par, 0, NULL, KIR_RED_NONE, MPCC_DTYPE_UNDEF, -1);
	if (!st)
		return;
	int32_t dst = kir_iadd(k, kir_imul(k, v[0], G), kir_iadd(k, kir_iconst(k, 2 * H), v[1]));
	kir_stage_store(k, st, L->gh, dst, kir_load(k, tmp, kir_iadd(k, kir_imul(k, v[0], H), v[1])));
}

/* Copies initial_h / initial_c (or zeros) into the state, per direction. */
static void
init_state(rnn_lower *L, int dir, int src, int dst)
{
	kir_kernel *k = L->k;
	int32_t v[2];
	mpcc_lower_vars(k, 0, 2, v);
	int64_t H = L->r.hid, B = L->r.batch;
	int32_t bh = kir_iadd(k, kir_imul(k, v[0], H), v[1]);
	int32_t value = fconst(L, 0);
	if (src >= 0) {
		int32_t si = L->r.layout
		                 ? kir_iadd(k, kir_imul(k, kir_iadd(k, kir_imul(k, v[0], L->r.dirs),
		                                                    kir_iconst(k, dir)), H), v[1])
		                 : kir_iadd(k, kir_iconst(k, dir * B * H), bh);
		value = ld(L, src, si);
	}
	int64_t par[2] = {B, H};
	kir_stage *st = kir_stage_add(k, 2, par, 0, NULL, KIR_RED_NONE, MPCC_DTYPE_UNDEF, -1);
	if (st)
		kir_stage_store(k, st, dst, bh, value);
}

static void
final_state(rnn_lower *L, int dir, int src, int dst)
{
	if (dst < 0)
		return;
	kir_kernel *k = L->k;
	int32_t v[2];
	mpcc_lower_vars(k, 0, 2, v);
	int64_t H = L->r.hid, B = L->r.batch;
	int32_t bh = kir_iadd(k, kir_imul(k, v[0], H), v[1]);
	int32_t di = L->r.layout
	                 ? kir_iadd(k, kir_imul(k, kir_iadd(k, kir_imul(k, v[0], L->r.dirs),
	                                                    kir_iconst(k, dir)), H), v[1])
	                 : kir_iadd(k, kir_iconst(k, dir * B * H), bh);
	int64_t par[2] = {B, H};
	kir_stage *st = kir_stage_add(k, 2, par, 0, NULL, KIR_RED_NONE, MPCC_DTYPE_UNDEF, -1);
	if (st)
		kir_stage_store(k, st, dst, di,
		                kir_cast(k, (mpcc_dtype)k->bufs[dst].dtype, kir_load(k, src, bh)));
}

static int
opt_param(kir_kernel *k, mpcc_graph *g, const mpcc_node *n, int i)
{
	return i < n->n_in && n->in[i] != MPCC_NONE ? mpcc_lower_param(k, g, n->in[i]) : -1;
}

static int
opt_out(kir_kernel *k, mpcc_graph *g, const mpcc_node *n, int i)
{
	return i < n->n_out && n->out[i] != MPCC_NONE ? mpcc_lower_param(k, g, n->out[i]) : -1;
}

mpcc_status
mpcc_lower_rnn(mpcc_lower *lx, int32_t ni)
{
	mpcc_graph *g = lx->g;
	mpcc_node *n = &g->nodes[ni];
	rnn_lower L = {.g = g, .n = n};
	mpcc_status st = rnn_describe(g, n, &L.r, lx->d);
	if (st)
		return st;
	for (int i = 0; i < L.r.dirs * L.r.n_acts; i++) {
		int32_t probe = 0;
		kir_kernel *tmp = kir_kernel_create("probe");
		if (!tmp)
			return MPCC_ERR_NOMEM;
		L.k = tmp;
		L.acc = MPCC_DTYPE_F32;
		probe = apply_act(&L, &L.r.acts[i], kir_const_f(tmp, MPCC_DTYPE_F32, 0));
		kir_kernel_destroy(tmp);
		if (probe < 0)
			return mpcc_node_error(lx->d, n, MPCC_ERR_UNSUPPORTED, "activation '%s'",
			                       L.r.acts[i].name);
	}
	kir_kernel *k = L.k = mpcc_lower_kernel(lx, ni, "");
	if (!k)
		return MPCC_ERR_NOMEM;
	mpcc_dtype xt = g->values[n->in[0]].dtype;
	L.acc = xt == MPCC_DTYPE_F64 ? MPCC_DTYPE_F64 : MPCC_DTYPE_F32;
	bool lstm = L.r.kind == RNN_LSTM;
	L.bx = mpcc_lower_param(k, g, n->in[0]);
	L.bw = mpcc_lower_param(k, g, n->in[1]);
	L.br = mpcc_lower_param(k, g, n->in[2]);
	L.bb = opt_param(k, g, n, 3);
	L.bl = opt_param(k, g, n, 4);
	int bh0 = opt_param(k, g, n, 5);
	int bc0 = lstm ? opt_param(k, g, n, 6) : -1;
	L.bp = lstm ? opt_param(k, g, n, 7) : -1;
	L.by = opt_out(k, g, n, 0);
	L.byh = opt_out(k, g, n, 1);
	L.byc = lstm ? opt_out(k, g, n, 2) : -1;
	int64_t B = L.r.batch, H = L.r.hid, G = L.r.n_gates * H;
	L.hs = kir_buf_add(k, L.acc, KIR_BUF_TEMP, MPCC_NONE, B * H);
	L.cs = lstm ? kir_buf_add(k, L.acc, KIR_BUF_TEMP, MPCC_NONE, B * H) : -1;
	L.gx = kir_buf_add(k, L.acc, KIR_BUF_TEMP, MPCC_NONE, B * G);
	L.gh = kir_buf_add(k, L.acc, KIR_BUF_TEMP, MPCC_NONE, B * G);
	L.rh = kir_buf_add(k, L.acc, KIR_BUF_TEMP, MPCC_NONE, B * H);

	for (int dir = 0; dir < L.r.dirs; dir++) {
		const char *dname = mpcc_node_attr_string(n, "direction", "forward");
		int rev = !strcmp(dname, "reverse") || dir == 1;
		init_state(&L, dir, bh0, L.hs);
		if (lstm)
			init_state(&L, dir, bc0, L.cs);
		for (int64_t s = 0; s < L.r.seq; s++) {
			matvec_stage(&L, dir, rev, s, L.bx, L.bw, L.r.in, G, 0, 0, L.gx);
			matvec_stage(&L, dir, rev, s, L.hs, L.br, H, G, 0, G, L.gh);
			if (L.r.kind == RNN_GRU && !L.r.lbr)
				gru_reset_stages(&L, dir);
			update_stage(&L, dir, rev, s);
		}
		final_state(&L, dir, L.hs, L.byh);
		if (lstm)
			final_state(&L, dir, L.cs, L.byc);
	}
	if (L.r.seq == 0 && L.by >= 0)
		return mpcc_node_error(lx->d, n, MPCC_ERR_UNSUPPORTED, "empty sequence");
	return kir_kernel_ok(k) ? MPCC_OK : MPCC_ERR_NOMEM;
}
