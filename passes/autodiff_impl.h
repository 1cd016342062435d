/*
 * autodiff_impl.h - what the autodiff driver (passes/autodiff.c) shares with
 * its files of gradient rules (passes/autodiff_rules.c, passes/autodiff_nn.c).
 * Private to those three files.
 *
 * A rule gets the context (the forward node being differentiated in a->n),
 * the gradients of the node's outputs (dy[j], MPCC_NONE where an output has
 * none) and which inputs need one (need[i]); it writes dx[i] for those, by
 * appending ordinary ONNX nodes through the builder below. The builder's
 * status a->st is sticky: once a step fails, later steps do nothing and
 * return MPCC_NONE, so a rule reads as straight-line algebra, and the driver
 * checks a->st once per node. New nodes and values are named
 * "grad/<forward node>/<what>"; every node is shape-inferred as it is built.
 */
#ifndef MPCC_AUTODIFF_IMPL_H
#define MPCC_AUTODIFF_IMPL_H

#include "ir/ir.h"

/* The opset whose semantics every gradient node uses (axes, pads, shapes
 * and split sizes as inputs; single-axis Softmax). */
#define MPCC_AD_OPSET 18

typedef struct mpcc_ad_shape {
	int rank;
	int64_t dims[MPCC_MAX_RANK];
} mpcc_ad_shape;

typedef struct mpcc_ad {
	mpcc_graph *g;
	mpcc_diag *d;
	mpcc_node n;    /* copy of the forward node being differentiated */
	mpcc_status st; /* sticky: the first failure of any step */
	int32_t *grad;  /* per forward value: its gradient so far, or NONE */
	char *fwd;      /* per forward value: depends on a wrt */
	char *bwd;      /* per forward value: the loss depends on it */
	int32_t n_values0, n_nodes0;
} mpcc_ad;

/* The forward node's input i, output i; whether input i is present. */
#define MPCC_AD_IN(i) (a->n.in[i])
#define MPCC_AD_OUT(i) (a->n.out[i])
#define MPCC_AD_HAS_IN(i) (a->n.n_in > (i) && a->n.in[i] != MPCC_NONE)

/* ---- the rule tables */

typedef void (*mpcc_ad_rule_fn)(mpcc_ad *a, const int32_t *dy, const bool *need, int32_t *dx);

typedef struct mpcc_ad_rule {
	mpcc_op op;
	mpcc_ad_rule_fn fn;
} mpcc_ad_rule;

/* Each ended by an entry whose op is MPCC_OP_INVALID; no op is in both. */
extern const mpcc_ad_rule mpcc_ad_rules[];    /* autodiff_rules.c */
extern const mpcc_ad_rule mpcc_ad_rules_nn[]; /* autodiff_nn.c */

/* ---- reading the graph */

mpcc_ad_shape mpcc_ad_shape_of(const mpcc_ad *a, int32_t v);
int64_t mpcc_ad_numel(mpcc_ad_shape s);
mpcc_dtype mpcc_ad_dtype_of(const mpcc_ad *a, int32_t v);
/* Axes [from, rank) into axes; returns their count. */
int mpcc_ad_axes_from(int from, int rank, int64_t *axes);
/* The forward node's int list from constant input i, or, when that input is
 * absent, from attribute name. Returns the count, -1 when neither is given,
 * -2 (with the error set) when the input is not constant. */
int mpcc_ad_node_ints(mpcc_ad *a, int i, const char *name, int64_t *out, int max);

/* ---- failing (each sets a->st unless it is already set) */

void mpcc_ad_nomem(mpcc_ad *a);
/* msg, naming the forward node. */
void mpcc_ad_fail(mpcc_ad *a, mpcc_status st, const char *msg);
/* MPCC_ERR_UNSUPPORTED "no gradient rule for <what>", naming the node. */
void mpcc_ad_unsupported(mpcc_ad *a, const char *what);

/* ---- nodes */

/* A node of n_out (1 or 2) new outputs named "grad/<forward>/<what>"
 * (the second "aux"); attributes may be added before mpcc_ad_node_done. */
int32_t mpcc_ad_node_new(mpcc_ad *a, mpcc_op op, const char *what, int n_in, const int32_t *in,
                         int n_out);
/* Infers node ni with its op's shape function; returns its output 0. */
int32_t mpcc_ad_node_done(mpcc_ad *a, int32_t ni);
mpcc_attr *mpcc_ad_attr(mpcc_ad *a, int32_t ni, const char *name, mpcc_attr_kind kind);
void mpcc_ad_attr_int(mpcc_ad *a, int32_t ni, const char *name, int64_t v);
void mpcc_ad_attr_float(mpcc_ad *a, int32_t ni, const char *name, float v);
/* v is not copied: static strings only. */
void mpcc_ad_attr_str(mpcc_ad *a, int32_t ni, const char *name, const char *v);
void mpcc_ad_attr_ints(mpcc_ad *a, int32_t ni, const char *name, int n, const int64_t *v);
/* A finished node of one output over 1, 2 or 3 inputs. */
int32_t mpcc_ad_op1(mpcc_ad *a, mpcc_op op, const char *what, int32_t x);
int32_t mpcc_ad_op2(mpcc_ad *a, mpcc_op op, const char *what, int32_t x, int32_t y);
int32_t mpcc_ad_op3(mpcc_ad *a, mpcc_op op, const char *what, int32_t x, int32_t y, int32_t z);

/* ---- constants */

/* Of float dtype t and shape s: vals[numel], or fill everywhere when vals
 * is NULL. */
int32_t mpcc_ad_cst_float(mpcc_ad *a, const char *what, mpcc_dtype t, mpcc_ad_shape s,
                          const double *vals, double fill);
int32_t mpcc_ad_cst_scalar(mpcc_ad *a, mpcc_dtype t, double v);
/* Of dtype t (i32 or i64) from vals[numel]. */
int32_t mpcc_ad_cst_int(mpcc_ad *a, const char *what, mpcc_dtype t, mpcc_ad_shape s,
                        const int64_t *vals);
/* 1-D int64: axes, shapes, pads. */
int32_t mpcc_ad_cst_ints(mpcc_ad *a, int n, const int64_t *v);

/* ---- common ops (c is a scalar constant of x's dtype) */

int32_t mpcc_ad_mul(mpcc_ad *a, int32_t x, int32_t y);
int32_t mpcc_ad_mulc(mpcc_ad *a, int32_t x, double c);
int32_t mpcc_ad_add(mpcc_ad *a, int32_t x, int32_t y);
int32_t mpcc_ad_addc(mpcc_ad *a, int32_t x, double c);
/* c - x */
int32_t mpcc_ad_rsubc(mpcc_ad *a, double c, int32_t x);
/* x itself when it already has shape s. */
int32_t mpcc_ad_reshape(mpcc_ad *a, int32_t x, mpcc_ad_shape s);
int32_t mpcc_ad_expand(mpcc_ad *a, int32_t x, mpcc_ad_shape s);
int32_t mpcc_ad_zeros(mpcc_ad *a, mpcc_dtype t, mpcc_ad_shape s);
int32_t mpcc_ad_transpose(mpcc_ad *a, int32_t x, int n, const int64_t *perm);
/* Swaps the last two dims (rank >= 2). */
int32_t mpcc_ad_transpose_last2(mpcc_ad *a, int32_t x);
int32_t mpcc_ad_slice(mpcc_ad *a, int32_t x, int n, const int64_t *starts, const int64_t *ends,
                      const int64_t *axes);
/* ReduceSum (or ReduceMean) over n_axes axes; x itself when n_axes is 0. */
int32_t mpcc_ad_reduce(mpcc_ad *a, mpcc_op op, int32_t x, int n_axes, const int64_t *axes,
                       bool keep);
/* dx, computed at an elementwise op's broadcast shape, summed over the axes
 * the operand was broadcast along and reshaped to its shape `to`. */
int32_t mpcc_ad_unbroadcast(mpcc_ad *a, int32_t dx, mpcc_ad_shape to);
/* x itself when it already has dtype t. */
int32_t mpcc_ad_cast(mpcc_ad *a, int32_t x, mpcc_dtype t);

#endif
