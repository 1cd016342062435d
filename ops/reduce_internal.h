/*
 * reduce_internal.h - helpers shared by the reduction family's files
 * (ops/reduce.c, ops/reduce_softmax.c, ops/reduce_norm.c) and the rule
 * functions that ops/reduce.c's table takes from the other two.
 *
 * The central object is a reduction view: an input tensor whose axes are
 * split into kept axes (the parallel dims of a reduction stage) and reduced
 * axes (its reduction dims). From the view, a lowering gets per-axis index
 * expressions for a reduction stage (vars: kept axes, then reduced axes) or
 * for a full stage (vars: every axis in order), and linear indices into the
 * whole tensor, into a buffer of the kept axes (per-row temporaries) or over
 * the reduced axes alone.
 */
#ifndef MPCC_OPS_REDUCE_INTERNAL_H
#define MPCC_OPS_REDUCE_INTERNAL_H

#include "ops/ops.h"

typedef struct mpcc_red_view {
	int rank;
	int64_t dims[MPCC_MAX_RANK];
	bool red[MPCC_MAX_RANK]; /* axis is reduced */
	int n_par, n_red;
	int64_t par_ext[MPCC_MAX_RANK]; /* kept axes' extents, in order */
	int64_t red_ext[MPCC_MAX_RANK]; /* reduced axes' extents, in order */
	int64_t n_kept_elems;           /* product of par_ext (1 when none) */
	int64_t n_red_elems;            /* product of red_ext (1 when none) */
} mpcc_red_view;

/* Input i / output i of a node, NULL when absent or omitted. */
mpcc_value *mpcc_red_in(mpcc_graph *g, const mpcc_node *n, int i);
mpcc_value *mpcc_red_out(mpcc_graph *g, const mpcc_node *n, int i);
/* Sets dtype and shape (numeric and symbolic dims) of an output. */
void mpcc_red_set(mpcc_value *v, mpcc_dtype t, int rank, const int64_t *dims,
                  const char *const *sym);
/* Sets v to the dtype and shape of x. */
void mpcc_red_set_like(mpcc_value *v, mpcc_dtype t, const mpcc_value *x);
/* The dtype a float computation runs in: f32 for f16/bf16/f32, f64 for f64. */
mpcc_dtype mpcc_red_float_compute(mpcc_dtype t);
bool mpcc_red_is_lowfloat(mpcc_dtype t);
/* Errors unless x's dtype is a float type (f16, bf16, f32, f64). */
mpcc_status mpcc_red_need_float(const mpcc_node *n, const mpcc_value *x, const char *what,
                                mpcc_diag *d);

void mpcc_red_view_init(mpcc_red_view *rv, const mpcc_value *x, const bool *red);
/* ax[i] = index expr of axis i in a reduction stage over rv. */
void mpcc_red_axes_reduce(kir_kernel *k, const mpcc_red_view *rv, int32_t *ax);
/* ax[i] = var i (a stage whose parallel dims are all of rv's axes). */
void mpcc_red_axes_full(kir_kernel *k, const mpcc_red_view *rv, int32_t *ax);
int32_t mpcc_red_index(kir_kernel *k, const mpcc_red_view *rv, const int32_t *ax);
int32_t mpcc_red_kept_index(kir_kernel *k, const mpcc_red_view *rv, const int32_t *ax);
int32_t mpcc_red_red_index(kir_kernel *k, const mpcc_red_view *rv, const int32_t *ax);
/* Loads buf at idx converted to dtype t. */
int32_t mpcc_red_load(kir_kernel *k, int buf, int32_t idx, mpcc_dtype t);
/* Dtype of buffer b of k. */
mpcc_dtype mpcc_red_buf_dtype(const kir_kernel *k, int b);

/* A stage without reduction over n_par parallel dims. */
kir_stage *mpcc_red_map_stage(kir_kernel *k, int n_par, const int64_t *ext);

/* Two stages over rv: per kept point, max of x (TEMP *out_max) and sum of
 * exp(x - max) (TEMP *out_sum), both of dtype cdt. When safe_max, a max of
 * -inf is replaced by 0 before the subtraction (LogSumExp of all -inf). */
mpcc_status mpcc_red_max_sumexp(kir_kernel *k, const mpcc_red_view *rv, int xbuf, mpcc_dtype cdt,
                                bool safe_max, int *out_max, int *out_sum);
/* Two stages over rv: per kept point, mean of x (TEMP *out_mean) and the
 * biased variance mean((x - mean)^2) (TEMP *out_var), dtype cdt. */
mpcc_status mpcc_red_mean_var(kir_kernel *k, const mpcc_red_view *rv, int xbuf, mpcc_dtype cdt,
                              int *out_mean, int *out_var);

/* ops/reduce_softmax.c */
extern const char *const mpcc_red_attrs_softmax[];
extern const char *const mpcc_red_attrs_sce[];
extern const char *const mpcc_red_attrs_nll[];
mpcc_status mpcc_red_infer_softmax(mpcc_graph *g, int32_t ni, mpcc_diag *d);
mpcc_status mpcc_red_lower_softmax(mpcc_lower *lx, int32_t ni);
mpcc_status mpcc_red_infer_loss(mpcc_graph *g, int32_t ni, mpcc_diag *d);
mpcc_status mpcc_red_lower_loss(mpcc_lower *lx, int32_t ni);

/* ops/reduce_norm.c */
extern const char *const mpcc_red_attrs_batchnorm[];
extern const char *const mpcc_red_attrs_instancenorm[];
extern const char *const mpcc_red_attrs_layernorm[];
extern const char *const mpcc_red_attrs_lrn[];
extern const char *const mpcc_red_attrs_mvn[];
extern const char *const mpcc_red_attrs_lpnorm[];
mpcc_status mpcc_red_infer_batchnorm(mpcc_graph *g, int32_t ni, mpcc_diag *d);
mpcc_status mpcc_red_lower_batchnorm(mpcc_lower *lx, int32_t ni);
mpcc_status mpcc_red_infer_instancenorm(mpcc_graph *g, int32_t ni, mpcc_diag *d);
mpcc_status mpcc_red_lower_instancenorm(mpcc_lower *lx, int32_t ni);
mpcc_status mpcc_red_infer_layernorm(mpcc_graph *g, int32_t ni, mpcc_diag *d);
mpcc_status mpcc_red_lower_layernorm(mpcc_lower *lx, int32_t ni);
mpcc_status mpcc_red_infer_lrn(mpcc_graph *g, int32_t ni, mpcc_diag *d);
mpcc_status mpcc_red_lower_lrn(mpcc_lower *lx, int32_t ni);
mpcc_status mpcc_red_infer_mvn(mpcc_graph *g, int32_t ni, mpcc_diag *d);
mpcc_status mpcc_red_lower_mvn(mpcc_lower *lx, int32_t ni);
mpcc_status mpcc_red_infer_lpnorm(mpcc_graph *g, int32_t ni, mpcc_diag *d);
mpcc_status mpcc_red_lower_lpnorm(mpcc_lower *lx, int32_t ni);

#endif
