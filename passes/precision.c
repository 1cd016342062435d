/*
 * precision.c - per-node precision assignment (issue 3).
 *
 * Runs after inference, folding and DCE, when every value has its dtype and
 * shape. It only decides: each live node gets a compute dtype, an accumulate
 * dtype and a one-line reason (mpcc_node.compute / accum / reason, the
 * strings in the graph arena). passes/casts.c then rewrites the graph so the
 * values carry the decided storage dtypes. docs/precision.md describes the
 * policy and the fields that the dumps and the auto search build on.
 *
 * Only f32 data is a candidate for low precision: f64 and tensors that are
 * already f16/bf16 in the model keep their dtype, integers are no decision.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "passes/autodiff.h"
#include "passes/passes.h"

/* How a node takes part in the decision, derived from its precision class
 * and, for class NONE, from what the op does with float data. */
typedef enum behaviour {
	B_LOW,      /* matrix op: low compute, f32 accumulate */
	B_F32,      /* numerically sensitive: f32 */
	B_FOLLOW,   /* takes the precision of its float inputs */
	B_KEEP,     /* handles float data but has no low-precision policy: f32 */
	B_NEUTRAL,  /* Cast, Shape, Size: reads any dtype, decides nothing */
} behaviour;

mpcc_dtype
mpcc_precision_low_dtype(mpcc_precision p)
{
	switch (p) {
	case MPCC_PRECISION_FP16:
	case MPCC_PRECISION_AUTO:
		return MPCC_DTYPE_F16;
	case MPCC_PRECISION_BF16:
		return MPCC_DTYPE_BF16;
	case MPCC_PRECISION_FP32:
		break;
	}
	return MPCC_DTYPE_UNDEF;
}

bool
mpcc_precision_input_neutral(mpcc_op op, int input)
{
	switch (op) {
	case MPCC_OP_CAST:
	case MPCC_OP_SHAPE:
	case MPCC_OP_SIZE:
		return true;
	case MPCC_OP_CASTLIKE:
		return input == 0;
	default:
		return false;
	}
}

/*
 * Class NONE covers both pure data movement (which copies float elements and
 * may as well copy them in low precision) and ops with float parameters that
 * have no low-precision policy (quantisation, Range, windows, control flow).
 * Only the first kind follows its inputs; ops whose outputs are not float
 * (ArgMax, comparisons) follow too, since they read their inputs in any
 * dtype as long as the inputs agree.
 */
static behaviour
op_behaviour(mpcc_op op)
{
	switch (mpcc_op_prec_class(op)) {
	case MPCC_PREC_LOW: return B_LOW;
	case MPCC_PREC_F32: return B_F32;
	case MPCC_PREC_FOLLOW: return B_FOLLOW;
	case MPCC_PREC_NONE: break;
	}
	switch (op) {
	case MPCC_OP_CAST:
	case MPCC_OP_CASTLIKE:
	case MPCC_OP_SHAPE:
	case MPCC_OP_SIZE:
		return B_NEUTRAL;
	case MPCC_OP_IDENTITY:
	case MPCC_OP_RESHAPE:
	case MPCC_OP_FLATTEN:
	case MPCC_OP_SQUEEZE:
	case MPCC_OP_UNSQUEEZE:
	case MPCC_OP_TRANSPOSE:
	case MPCC_OP_CONCAT:
	case MPCC_OP_SPLIT:
	case MPCC_OP_SLICE:
	case MPCC_OP_GATHER:
	case MPCC_OP_GATHERELEMENTS:
	case MPCC_OP_GATHERND:
	case MPCC_OP_SCATTER:
	case MPCC_OP_SCATTERELEMENTS:
	case MPCC_OP_SCATTERND:
	case MPCC_OP_EXPAND:
	case MPCC_OP_TILE:
	case MPCC_OP_PAD:
	case MPCC_OP_TRILU:
	case MPCC_OP_DEPTHTOSPACE:
	case MPCC_OP_SPACETODEPTH:
	case MPCC_OP_REVERSESEQUENCE:
	case MPCC_OP_COMPRESS:
	case MPCC_OP_TOPK:
	case MPCC_OP_HARDMAX:
	case MPCC_OP_ARGMAX:
	case MPCC_OP_ARGMIN:
	case MPCC_OP_ISNAN:
	case MPCC_OP_ISINF:
	case MPCC_OP_EQUAL:
	case MPCC_OP_GREATER:
	case MPCC_OP_GREATEROREQUAL:
	case MPCC_OP_LESS:
	case MPCC_OP_LESSOREQUAL:
	case MPCC_OP_NONZERO:
		return B_FOLLOW;
	default:
		return B_KEEP;
	}
}

/* Reductions and pooling accumulate; their accumulator is f32 whatever
 * they store. */
static bool
op_accumulates(mpcc_op op)
{
	switch (op) {
	case MPCC_OP_REDUCESUM:
	case MPCC_OP_REDUCEMEAN:
	case MPCC_OP_REDUCEMAX:
	case MPCC_OP_REDUCEMIN:
	case MPCC_OP_REDUCEPROD:
	case MPCC_OP_REDUCEL1:
	case MPCC_OP_REDUCEL2:
	case MPCC_OP_REDUCELOGSUM:
	case MPCC_OP_REDUCELOGSUMEXP:
	case MPCC_OP_REDUCESUMSQUARE:
	case MPCC_OP_CUMSUM:
	case MPCC_OP_SUM:
	case MPCC_OP_MEAN:
	case MPCC_OP_MAXPOOL:
	case MPCC_OP_AVERAGEPOOL:
	case MPCC_OP_GLOBALAVERAGEPOOL:
	case MPCC_OP_GLOBALMAXPOOL:
	case MPCC_OP_LPPOOL:
		return true;
	default:
		return mpcc_op_prec_class(op) == MPCC_PREC_LOW;
	}
}

static bool
is_f32(const mpcc_graph *g, int32_t v)
{
	return v != MPCC_NONE && g->values[v].dtype == MPCC_DTYPE_F32;
}

bool
mpcc_precision_candidate(const mpcc_graph *g, const mpcc_node *n)
{
	for (int j = 0; j < n->n_in; j++)
		if (is_f32(g, n->in[j]) && !mpcc_precision_input_neutral(n->op, j))
			return true;
	for (int j = 0; j < n->n_out; j++)
		if (is_f32(g, n->out[j]))
			return true;
	return false;
}

bool
mpcc_precision_decides(const mpcc_graph *g, const mpcc_node *n)
{
	return mpcc_precision_candidate(g, n) && op_behaviour(n->op) != B_NEUTRAL;
}

static bool
list_has(const char *const *list, int n, const char *s)
{
	for (int i = 0; s && i < n; i++)
		if (list[i] && strcmp(list[i], s) == 0)
			return true;
	return false;
}

/* Every override must name an op type or a node of this graph: a typo that
 * silently changes nothing is the worst outcome for a user tuning precision. */
static mpcc_status
check_names(const mpcc_graph *g, const char *flag, const char *const *list, int n, mpcc_diag *d)
{
	if (n < 0 || (n > 0 && !list))
		return mpcc_diag_error(d, MPCC_ERR_INVALID, "%s: bad count or pointer", flag);
	for (int i = 0; i < n; i++) {
		bool found = list[i] && mpcc_op_lookup("", list[i]) != MPCC_OP_INVALID;
		for (int k = 0; !found && list[i] && k < g->n_nodes; k++)
			found = g->nodes[k].name && strcmp(g->nodes[k].name, list[i]) == 0;
		if (!found)
			return mpcc_diag_error(d, MPCC_ERR_INVALID,
			                       "%s: '%s' names no op type and no node of the model", flag,
			                       list[i] ? list[i] : "(null)");
	}
	return MPCC_OK;
}

static const char *
reason(mpcc_graph *g, bool autom, const char *fmt, const char *arg)
{
	char buf[256];
	int at = snprintf(buf, sizeof(buf), "%s", autom ? "auto: " : "");
	snprintf(buf + at, sizeof(buf) - (size_t)at, fmt, arg);
	return mpcc_arena_strdup(&g->arena, buf);
}

/* The first output dtype, else the first input's, for nodes that are no
 * precision decision. */
static mpcc_dtype
own_dtype(const mpcc_graph *g, const mpcc_node *n)
{
	for (int j = 0; j < n->n_out; j++)
		if (n->out[j] != MPCC_NONE)
			return g->values[n->out[j]].dtype;
	for (int j = 0; j < n->n_in; j++)
		if (n->in[j] != MPCC_NONE)
			return g->values[n->in[j]].dtype;
	return MPCC_DTYPE_UNDEF;
}

/*
 * Decides a FOLLOW node: low when every non-constant f32 input comes out of
 * a low producer (or is a low graph input), f32 otherwise. Constants do not
 * vote: casts.c converts them to whatever the node computes in. Returns the
 * low dtype the inputs share, bf16 when they mix f16 and bf16 (*mixed set:
 * bf16 holds every f16 value's range, the reverse is not true), UNDEF when
 * the node stays f32. *who names the producer that decided.
 */
static mpcc_dtype
follow_inputs(const mpcc_graph *g, const mpcc_node *n, const mpcc_dtype *low_val,
              const char **who, bool *any, bool *mixed)
{
	mpcc_dtype t = MPCC_DTYPE_UNDEF;
	bool all_low = true;

	*who = NULL;
	*any = *mixed = false;
	for (int j = 0; j < n->n_in; j++) {
		int32_t v = n->in[j];
		if (!is_f32(g, v) || (g->values[v].flags & MPCC_VALUE_CONST) ||
		    mpcc_precision_input_neutral(n->op, j))
			continue;
		int32_t p = g->values[v].producer;
		const char *name = p >= 0 ? g->nodes[p].name : g->values[v].name;
		if (!*any || (all_low && low_val[v] == MPCC_DTYPE_UNDEF))
			*who = name;
		*any = true;
		if (low_val[v] == MPCC_DTYPE_UNDEF)
			all_low = false;
		else if (t != MPCC_DTYPE_UNDEF && t != low_val[v])
			*mixed = true;
		else
			t = low_val[v];
	}
	if (!*any || !all_low)
		return MPCC_DTYPE_UNDEF;
	return *mixed ? MPCC_DTYPE_BF16 : t;
}

/* The hint for node n, or NULL (inserted nodes and plain modes have none). */
static const mpcc_prec_hint *
hint_of(const mpcc_pass_ctx *cx, const mpcc_node *n)
{
	if (!cx->hints || n->src_index < 0 || n->src_index >= cx->n_hints)
		return NULL;
	return &cx->hints[n->src_index];
}

/*
 * The node's evidence chain from its first line (the policy or override)
 * and the notes auto mode added; the reason is the last line.
 */
static bool
set_evidence(mpcc_graph *g, mpcc_node *n, const char *first, const char *const *notes,
             int n_notes)
{
	size_t len = strlen(first) + 1;
	int used = 0;

	for (int i = 0; i < n_notes; i++)
		if (notes[i]) {
			len += strlen(notes[i]) + 1;
			used++;
		}
	n->evidence = NULL;
	n->reason = first;
	if (!used)
		return true;
	char *ev = mpcc_arena_alloc(&g->arena, len);
	if (!ev)
		return false;
	strcpy(ev, first);
	for (int i = 0; i < n_notes; i++) {
		if (!notes[i])
			continue;
		strcat(ev, "\n");
		n->reason = ev + strlen(ev);
		strcat(ev, notes[i]);
	}
	n->evidence = ev;
	return true;
}

mpcc_status
mpcc_assign_precision(mpcc_graph *g, mpcc_pass_ctx *cx)
{
	static const mpcc_compile_options defaults = {0};
	const mpcc_compile_options *o = cx->opts ? cx->opts : &defaults;
	mpcc_dtype low = mpcc_precision_low_dtype(o->precision);
	bool autom = o->precision == MPCC_PRECISION_AUTO;
	mpcc_status st;
	mpcc_dtype *low_val;

	if ((st = check_names(g, "--keep-fp32", o->keep_fp32, o->n_keep_fp32, cx->d)))
		return st;
	if ((st = check_names(g, "--force-low", o->force_low, o->n_force_low, cx->d)))
		return st;
	if (low == MPCC_DTYPE_UNDEF && o->n_force_low > 0)
		return mpcc_diag_error(cx->d, MPCC_ERR_INVALID,
		                       "--force-low needs --precision fp16, bf16 or auto");
	if (cx->prec_summary &&
	    !(g->prec_summary = mpcc_arena_strdup(&g->arena, cx->prec_summary)))
		return mpcc_diag_error(cx->d, MPCC_ERR_NOMEM, "out of memory assigning precision");
	low_val = calloc((size_t)g->n_values + 1, sizeof(*low_val));
	if (!low_val)
		return mpcc_diag_error(cx->d, MPCC_ERR_NOMEM, "out of memory assigning precision");
	if (low != MPCC_DTYPE_UNDEF && o->low_io)
		for (int i = 0; i < g->n_inputs; i++)
			if (is_f32(g, g->inputs[i]))
				low_val[g->inputs[i]] = low;

	/* Decisions read only the producers' decisions, so one sweep in
	 * topological order is already the fixed point. */
	for (int i = 0; i < g->n_nodes; i++) {
		mpcc_node *n = &g->nodes[i];
		const mpcc_prec_hint *h = hint_of(cx, n);
		const char *who = NULL, *notes[2] = {NULL, NULL};
		mpcc_dtype dt = MPCC_DTYPE_UNDEF; /* low dtype, UNDEF = f32 */
		bool is_low = false, any, mixed = false, user = false;

		if (n->dead)
			continue;
		n->reason = NULL;
		n->evidence = NULL;
		if (h) {
			n->range_absmax = h->range_absmax;
			n->err = h->err;
		}
		if (!mpcc_precision_candidate(g, n)) {
			n->compute = n->accum = own_dtype(g, n);
			n->reason = reason(g, false,
			                   mpcc_dtype_is_float(n->compute) ? "model dtype %s"
			                                                   : "not floating point",
			                   mpcc_dtype_name(n->compute));
			goto check;
		}
		behaviour b = op_behaviour(n->op);
		const char *op = mpcc_op_name(n->op);
		if (b == B_NEUTRAL) {
			n->compute = n->accum = own_dtype(g, n);
			n->reason = reason(g, false, "%s: reads any dtype", op);
			goto check;
		}
		user = true;
		if (low == MPCC_DTYPE_UNDEF) {
			n->reason = reason(g, false, "mode fp32%s", "");
		} else if (list_has(o->keep_fp32, o->n_keep_fp32, n->name)) {
			n->reason = reason(g, false, "user override --keep-fp32 %s", n->name);
		} else if (list_has(o->force_low, o->n_force_low, n->name)) {
			is_low = true;
			n->reason = reason(g, false, "user override --force-low %s", n->name);
		} else if (list_has(o->keep_fp32, o->n_keep_fp32, op)) {
			n->reason = reason(g, false, "user override --keep-fp32 %s", op);
		} else if (list_has(o->force_low, o->n_force_low, op)) {
			is_low = true;
			n->reason = reason(g, false, "user override --force-low %s", op);
		} else {
			user = false;
		}
		if (user) {
			dt = is_low ? low : MPCC_DTYPE_UNDEF;
		} else if (mpcc_autodiff_is_accumulation(n)) {
			/* Sums a value's gradient contributions (autodiff marks
			 * it). Its terms may be f16 (a low MatMul's dB); following
			 * them would round the running sum to f16 at every
			 * consumer, so it is f32 by policy (docs/training.md). */
			n->reason = reason(g, autom, "policy: gradient accumulation (%s)", op);
		} else if (b == B_LOW) {
			is_low = true;
			dt = low;
			n->reason = reason(g, autom, "policy: matrix op (%s)", op);
		} else if (b == B_F32) {
			n->reason = reason(g, autom, "policy: numerically sensitive (%s)", op);
		} else if (b == B_KEEP) {
			n->reason = reason(g, autom, "policy: no low-precision rule (%s)", op);
		} else {
			dt = follow_inputs(g, n, low_val, &who, &any, &mixed);
			is_low = dt != MPCC_DTYPE_UNDEF;
			char buf[256];
			if (!any)
				snprintf(buf, sizeof(buf), "follows: no low-precision input");
			else if (!is_low)
				snprintf(buf, sizeof(buf), "follows f32 producer '%s'", who);
			else if (mixed)
				snprintf(buf, sizeof(buf), "follows producers of mixed f16/bf16 ('%s'): bf16",
				         who);
			else if (dt != low)
				snprintf(buf, sizeof(buf), "follows producer '%s' (%s)", who,
				         mpcc_dtype_name(dt));
			else
				snprintf(buf, sizeof(buf), "follows producer '%s'", who);
			n->reason = reason(g, autom, "%s", buf);
		}
		/* Auto mode's stages: ranges choose the low dtype, the error
		 * budget keeps a node in f32. Overrides are the user's word. */
		if (h && is_low && h->low != MPCC_DTYPE_UNDEF && (h->low != dt || h->low != low)) {
			dt = h->low;
			notes[0] = h->low_note;
		}
		if (h && is_low && h->keep_f32 && !user) {
			is_low = false;
			dt = MPCC_DTYPE_UNDEF;
			notes[1] = h->f32_note;
		}
		n->compute = is_low ? dt : MPCC_DTYPE_F32;
		n->accum = is_low && !op_accumulates(n->op) ? dt : MPCC_DTYPE_F32;
		for (int j = 0; is_low && j < n->n_out; j++)
			if (is_f32(g, n->out[j]))
				low_val[n->out[j]] = dt;
		if (n->reason && !set_evidence(g, n, n->reason, notes, 2))
			n->reason = NULL;
	check:
		if (!n->reason) {
			free(low_val);
			return mpcc_diag_error(cx->d, MPCC_ERR_NOMEM, "out of memory assigning precision");
		}
	}
	free(low_val);
	return MPCC_OK;
}
