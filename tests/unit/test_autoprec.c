/*
 * test_autoprec.c - auto precision mode (runtime/autoprec.c) on tiny ONNX
 * models the test writes itself: the range rules of stage b, the error
 * budget search of stage c, determinism, and the mixed f16/bf16 casts the
 * cast pass must get right for it.
 *
 * Models are packed with the protobuf-c bindings the frontend reads them
 * with, so they go through the same reader as a user's file; the driver is
 * called directly and its hints are handed to a pipeline run, which is what
 * mpcc_compile_* does, so the decisions can be read off the graph.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frontend/onnx.h"
#include "onnx.pb-c.h"
#include "passes/passes.h"
#include "runtime/autoprec.h"

/* ---------------------------------------------------------------- model builder */

#define MB_MAX 16

typedef struct mb {
	Onnx__NodeProto node[MB_MAX], *node_p[MB_MAX];
	char *node_in[MB_MAX][3], *node_out[MB_MAX][1];
	int n_node;
	Onnx__TensorProto init[MB_MAX], *init_p[MB_MAX];
	int64_t init_dims[MB_MAX][2];
	int n_init;
	Onnx__ValueInfoProto vi[MB_MAX], *in_p[MB_MAX], *out_p[MB_MAX];
	Onnx__TypeProto type[MB_MAX];
	Onnx__TypeProto__Tensor ttype[MB_MAX];
	Onnx__TensorShapeProto shape[MB_MAX];
	Onnx__TensorShapeProto__Dimension dim[MB_MAX][2], *dim_p[MB_MAX][2];
	int n_vi, n_in, n_out;
} mb;

static void
mb_node(mb *m, const char *op, const char *name, const char *in0, const char *in1,
        const char *out)
{
	int i = m->n_node++;
	Onnx__NodeProto *n = &m->node[i];
	onnx__node_proto__init(n);
	n->op_type = (char *)op;
	n->name = (char *)name;
	m->node_in[i][0] = (char *)in0;
	m->node_in[i][1] = (char *)in1;
	n->n_input = in1 ? 2 : 1;
	n->input = m->node_in[i];
	m->node_out[i][0] = (char *)out;
	n->n_output = 1;
	n->output = m->node_out[i];
	m->node_p[i] = n;
}

/* A rows x cols f32 initializer; data must outlive the packing. */
static void
mb_init(mb *m, const char *name, int rows, int cols, float *data)
{
	int i = m->n_init++;
	Onnx__TensorProto *t = &m->init[i];
	onnx__tensor_proto__init(t);
	t->name = (char *)name;
	m->init_dims[i][0] = rows;
	m->init_dims[i][1] = cols;
	t->n_dims = 2;
	t->dims = m->init_dims[i];
	t->has_data_type = 1;
	t->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
	t->n_float_data = (size_t)(rows * cols);
	t->float_data = data;
	m->init_p[i] = t;
}

/* A graph input (rows x cols, f32) or output (f32, rows 0: shape left
 * to inference). */
static void
mb_io(mb *m, const char *name, int rows, int cols, bool input)
{
	int i = m->n_vi++;
	Onnx__ValueInfoProto *v = &m->vi[i];
	onnx__value_info_proto__init(v);
	onnx__type_proto__init(&m->type[i]);
	onnx__type_proto__tensor__init(&m->ttype[i]);
	v->name = (char *)name;
	v->type = &m->type[i];
	m->type[i].value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
	m->type[i].tensor_type = &m->ttype[i];
	m->ttype[i].has_elem_type = 1;
	m->ttype[i].elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
	if (rows > 0) {
		onnx__tensor_shape_proto__init(&m->shape[i]);
		for (int k = 0; k < 2; k++) {
			onnx__tensor_shape_proto__dimension__init(&m->dim[i][k]);
			m->dim[i][k].value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
			m->dim[i][k].dim_value = k ? cols : rows;
			m->dim_p[i][k] = &m->dim[i][k];
		}
		m->shape[i].n_dim = 2;
		m->shape[i].dim = m->dim_p[i];
		m->ttype[i].shape = &m->shape[i];
	}
	if (input)
		m->in_p[m->n_in++] = v;
	else
		m->out_p[m->n_out++] = v;
}

/* The packed model (malloc'd), opset 17. */
static uint8_t *
mb_pack(mb *m, size_t *size)
{
	Onnx__GraphProto g = ONNX__GRAPH_PROTO__INIT;
	Onnx__ModelProto model = ONNX__MODEL_PROTO__INIT;
	Onnx__OperatorSetIdProto opset = ONNX__OPERATOR_SET_ID_PROTO__INIT, *opset_p = &opset;

	g.name = "test";
	g.n_node = (size_t)m->n_node;
	g.node = m->node_p;
	g.n_initializer = (size_t)m->n_init;
	g.initializer = m->init_p;
	g.n_input = (size_t)m->n_in;
	g.input = m->in_p;
	g.n_output = (size_t)m->n_out;
	g.output = m->out_p;
	opset.domain = "";
	opset.has_version = 1;
	opset.version = 17;
	model.has_ir_version = 1;
	model.ir_version = 8;
	model.n_opset_import = 1;
	model.opset_import = &opset_p;
	model.graph = &g;
	*size = onnx__model_proto__get_packed_size(&model);
	uint8_t *buf = malloc(*size);
	assert_non_null(buf);
	onnx__model_proto__pack(&model, buf);
	return buf;
}

/* ---------------------------------------------------------------- running auto mode */

typedef struct result {
	mpcc_graph *g;          /* after the pipeline, with the hints applied */
	mpcc_autoprec *ap;
	mpcc_autoprec_stats stats;
} result;

/* Runs the search on the model, then the pipeline with its hints. */
static void
run_auto(const uint8_t *model, size_t size, mpcc_compile_options *o, result *r)
{
	mpcc_diag d;
	mpcc_diag_init(&d);
	memset(r, 0, sizeof(*r));
	o->precision = MPCC_PRECISION_AUTO;
	mpcc_status st = mpcc_autoprec_search(model, size, NULL, o, &r->ap, &d);
	if (st)
		fail_msg("search: %s", d.msg);
	r->stats = *mpcc_autoprec_get_stats(r->ap);
	assert_int_equal(mpcc_onnx_read_buffer(model, size, NULL, &r->g, &d), MPCC_OK);
	mpcc_pass_ctx pcx = {.d = &d, .opts = o};
	mpcc_autoprec_apply(r->ap, &pcx);
	st = mpcc_run_pipeline(r->g, &pcx);
	if (st)
		fail_msg("pipeline: %s", d.msg);
}

static void
result_fini(result *r)
{
	mpcc_graph_destroy(r->g);
	mpcc_autoprec_destroy(r->ap);
}

static const mpcc_node *
node_named(const mpcc_graph *g, const char *name)
{
	for (int i = 0; i < g->n_nodes; i++)
		if (!g->nodes[i].dead && g->nodes[i].name && strcmp(g->nodes[i].name, name) == 0)
			return &g->nodes[i];
	fail_msg("no node '%s'", name);
	return NULL;
}

static mpcc_tensor
calib_2d(const char *name, int rows, int cols, float *data)
{
	mpcc_tensor t = {0};
	t.name = name;
	t.dtype = MPCC_DTYPE_F32;
	t.rank = 2;
	t.dims[0] = rows;
	t.dims[1] = cols;
	t.data = data;
	t.nbytes = sizeof(float) * (size_t)(rows * cols);
	return t;
}

static void
fill(float *x, int n, float v)
{
	for (int i = 0; i < n; i++)
		x[i] = v;
}

/* x[4,8] -> MatMul(x, W) -> y, x calibrated to xv everywhere. */
static void
matmul_case(float xv, float *w, mpcc_compile_options *o, result *r)
{
	static float x[32];
	mb m = {0};
	size_t size;

	fill(x, 32, xv);
	mb_io(&m, "x", 4, 8, true);
	mb_io(&m, "y", 0, 0, false);
	mb_init(&m, "W", 8, 4, w);
	mb_node(&m, "MatMul", "mm", "x", "W", "y");
	uint8_t *model = mb_pack(&m, &size);
	static mpcc_tensor cal;
	cal = calib_2d("x", 4, 8, x);
	o->calib = &cal;
	o->n_calib = 1;
	run_auto(model, size, o, r);
	free(model);
}

/* ---------------------------------------------------------------- stage b */

static void
activations_beyond_the_threshold_go_bf16(void **state)
{
	float w[32];
	mpcc_compile_options o;
	result r;

	(void)state;
	fill(w, 32, 1000);
	mpcc_compile_options_init(&o);
	o.tolerance = 0.1; /* keep stage c out of it */
	matmul_case(10, w, &o, &r);
	const mpcc_node *n = node_named(r.g, "mm");
	assert_int_equal(n->compute, MPCC_DTYPE_BF16);
	assert_non_null(strstr(n->reason, "auto: bf16: calibrated max 8.0e+04 beyond f16 threshold"));
	assert_non_null(n->evidence);
	assert_non_null(strstr(n->evidence, "auto: policy: matrix op (MatMul)\n"));
	assert_true(fabs(n->range_absmax - 80000) < 1);
	assert_int_equal(r.stats.n_bf16, 1);
	assert_true(r.stats.final_error <= 0.1);
	result_fini(&r);
}

static void
initializers_beyond_f16_max_go_bf16(void **state)
{
	float w[32];
	mpcc_compile_options o;
	result r;

	(void)state;
	fill(w, 32, 1);
	w[5] = 1e5f;
	mpcc_compile_options_init(&o);
	o.tolerance = 0.1;
	matmul_case(1e-3f, w, &o, &r);
	const mpcc_node *n = node_named(r.g, "mm");
	assert_int_equal(n->compute, MPCC_DTYPE_BF16);
	assert_non_null(strstr(n->reason, "auto: bf16: initializer 'W' max 1.0e+05"));
	result_fini(&r);
}

static void
values_below_the_smallest_normal_go_bf16(void **state)
{
	float w[32];
	mpcc_compile_options o;
	result r;

	(void)state;
	fill(w, 32, 1e-6f);
	mpcc_compile_options_init(&o);
	o.tolerance = 0.1;
	matmul_case(1, w, &o, &r);
	const mpcc_node *n = node_named(r.g, "mm");
	assert_int_equal(n->compute, MPCC_DTYPE_BF16);
	assert_non_null(strstr(n->reason, "below f16's smallest normal"));
	result_fini(&r);
}

static void
ordinary_ranges_stay_f16(void **state)
{
	float w[32];
	mpcc_compile_options o;
	result r;

	(void)state;
	for (int i = 0; i < 32; i++)
		w[i] = 0.1f * (float)(i % 5) + 0.05f;
	mpcc_compile_options_init(&o);
	o.tolerance = 0.1;
	matmul_case(1, w, &o, &r);
	const mpcc_node *n = node_named(r.g, "mm");
	assert_int_equal(n->compute, MPCC_DTYPE_F16);
	assert_string_equal(n->reason, "auto: policy: matrix op (MatMul)");
	assert_null(n->evidence);
	assert_int_equal(r.stats.n_bf16, 0);
	assert_int_equal(r.stats.evaluations, 1);
	result_fini(&r);
}

/* ---------------------------------------------------------------- stage c */

/*
 * Two branches read x (rows near 1000, one column offset by r_i): 'a' is a
 * benign MatMul and Relu, 'b' subtracts the columns, so f16's rounding of
 * x (spacing 0.5 near 1000) ruins it while its f32 compute is exact.
 */
static uint8_t *
two_branches(size_t *size, mpcc_tensor *cal)
{
	static float x[32], wa[8], wb[2] = {1, -1};
	static mb m;

	for (int i = 0; i < 16; i++) {
		x[2 * i] = 1000.0f + 0.37f * (float)(i % 7) - 1.0f;
		x[2 * i + 1] = 1000.0f;
	}
	for (int i = 0; i < 8; i++)
		wa[i] = 0.01f * (float)(i + 1);
	memset(&m, 0, sizeof(m));
	mb_io(&m, "x", 16, 2, true);
	mb_io(&m, "out_a", 0, 0, false);
	mb_io(&m, "out_b", 0, 0, false);
	mb_init(&m, "Wa", 2, 4, wa);
	mb_init(&m, "Wb", 2, 1, wb);
	mb_node(&m, "MatMul", "A", "x", "Wa", "a");
	mb_node(&m, "Relu", "relu", "a", NULL, "out_a");
	mb_node(&m, "MatMul", "B", "x", "Wb", "out_b");
	*cal = calib_2d("x", 16, 2, x);
	return mb_pack(&m, size);
}

static void
the_one_node_that_breaks_the_budget_is_raised(void **state)
{
	mpcc_compile_options o;
	mpcc_tensor cal;
	size_t size;
	result r;

	(void)state;
	uint8_t *model = two_branches(&size, &cal);
	mpcc_compile_options_init(&o);
	o.calib = &cal;
	o.n_calib = 1;
	o.tolerance = 1e-2;
	run_auto(model, size, &o, &r);
	assert_int_equal(node_named(r.g, "A")->compute, MPCC_DTYPE_F16);
	assert_int_equal(node_named(r.g, "relu")->compute, MPCC_DTYPE_F16);
	const mpcc_node *b = node_named(r.g, "B");
	assert_int_equal(b->compute, MPCC_DTYPE_F32);
	assert_non_null(strstr(b->reason, "auto: f32: error budget, output 'out_b' rel. error"));
	assert_non_null(strstr(b->evidence, "auto: policy: matrix op (MatMul)\n"));
	assert_int_equal(r.stats.n_candidates, 3);
	assert_int_equal(r.stats.n_raised, 1);
	assert_int_equal(r.stats.evaluations, 2);
	assert_true(r.stats.base_error > 1e-2);
	assert_true(r.stats.final_error <= 1e-2);
	assert_non_null(strstr(r.g->prec_summary, "search: 2 evaluations"));
	result_fini(&r);
	free(model);
}

static void
a_generous_budget_leaves_everything_low_in_one_evaluation(void **state)
{
	mpcc_compile_options o;
	mpcc_tensor cal;
	size_t size;
	result r;

	(void)state;
	uint8_t *model = two_branches(&size, &cal);
	mpcc_compile_options_init(&o);
	o.calib = &cal;
	o.n_calib = 1;
	o.tolerance = 1.0;
	run_auto(model, size, &o, &r);
	assert_int_equal(node_named(r.g, "A")->compute, MPCC_DTYPE_F16);
	assert_int_equal(node_named(r.g, "B")->compute, MPCC_DTYPE_F16);
	assert_int_equal(r.stats.evaluations, 1);
	assert_int_equal(r.stats.n_raised, 0);
	result_fini(&r);
	free(model);
}

static void
the_max_element_metric_is_honoured(void **state)
{
	mpcc_compile_options o;
	mpcc_tensor cal;
	size_t size;
	result r;

	(void)state;
	uint8_t *model = two_branches(&size, &cal);
	mpcc_compile_options_init(&o);
	o.calib = &cal;
	o.n_calib = 1;
	o.tolerance = 1e-2;
	o.error_metric = MPCC_ERROR_METRIC_MAX_ELEMENT;
	run_auto(model, size, &o, &r);
	const mpcc_node *b = node_named(r.g, "B");
	assert_int_equal(b->compute, MPCC_DTYPE_F32);
	assert_non_null(strstr(b->reason, "max-element error"));
	assert_true(r.stats.final_error <= 1e-2);
	assert_non_null(strstr(r.g->prec_summary, "max-element"));
	result_fini(&r);
	free(model);
}

/* Everything but the timings: dtypes, reasons, evidence, measurements. */
static void
two_searches_decide_alike(void **state)
{
	mpcc_compile_options o;
	mpcc_tensor cal;
	size_t size;
	result r1, r2;

	(void)state;
	uint8_t *model = two_branches(&size, &cal);
	mpcc_compile_options_init(&o);
	o.tolerance = 1e-2; /* no calib: seeded random data */
	o.seed = 7;
	run_auto(model, size, &o, &r1);
	run_auto(model, size, &o, &r2);
	assert_non_null(strstr(r1.g->prec_summary, "seeded random inputs, seed 7"));
	assert_int_equal(r1.g->n_nodes, r2.g->n_nodes);
	for (int i = 0; i < r1.g->n_nodes; i++) {
		const mpcc_node *a = &r1.g->nodes[i], *b = &r2.g->nodes[i];
		assert_int_equal(a->dead, b->dead);
		if (a->dead)
			continue;
		assert_int_equal(a->compute, b->compute);
		assert_string_equal(a->reason, b->reason);
		assert_true((!a->evidence && !b->evidence) ||
		            (a->evidence && b->evidence && !strcmp(a->evidence, b->evidence)));
		assert_memory_equal(&a->err, &b->err, sizeof(double));
		assert_memory_equal(&a->range_absmax, &b->range_absmax, sizeof(double));
	}
	assert_int_equal(r1.stats.evaluations, r2.stats.evaluations);
	assert_memory_equal(&r1.stats.final_error, &r2.stats.final_error, sizeof(double));
	result_fini(&r1);
	result_fini(&r2);
	free(model);
}

static void
a_calibration_tensor_naming_no_input_is_refused(void **state)
{
	mpcc_compile_options o;
	mpcc_tensor cal;
	mpcc_autoprec *ap = NULL;
	size_t size;
	mpcc_diag d;

	(void)state;
	uint8_t *model = two_branches(&size, &cal);
	cal.name = "nope";
	mpcc_compile_options_init(&o);
	o.precision = MPCC_PRECISION_AUTO;
	o.calib = &cal;
	o.n_calib = 1;
	mpcc_diag_init(&d);
	assert_int_equal(mpcc_autoprec_search(model, size, NULL, &o, &ap, &d), MPCC_ERR_INVALID);
	assert_null(ap);
	assert_non_null(strstr(d.msg, "--calib nope"));
	free(model);
}

/* Through the public API: the plan computes within the budget of f32's. */
static void
an_auto_plan_runs_within_its_budget(void **state)
{
	mpcc_compile_options o;
	mpcc_tensor cal;
	size_t size;
	const float *out[2][2];
	mpcc_plan *plan[2];
	mpcc_session *s[2];
	mpcc_context *cx;

	(void)state;
	uint8_t *model = two_branches(&size, &cal);
	assert_int_equal(mpcc_context_create(&cx), MPCC_OK);
	for (int k = 0; k < 2; k++) {
		void *buf;
		size_t n;
		mpcc_compile_options_init(&o);
		o.precision = k ? MPCC_PRECISION_AUTO : MPCC_PRECISION_FP32;
		o.calib = &cal;
		o.n_calib = 1;
		o.tolerance = 1e-2;
		if (mpcc_compile_buffer(cx, model, size, NULL, &o, &buf, &n))
			fail_msg("%s", mpcc_context_last_error(cx));
		assert_int_equal(mpcc_plan_load_buffer(cx, buf, n, &plan[k]), MPCC_OK);
		free(buf);
		assert_int_equal(mpcc_session_create(cx, plan[k], "cpu", &s[k]), MPCC_OK);
		assert_int_equal(mpcc_session_set_input(s[k], "x", cal.dtype, cal.rank, cal.dims,
		                                        cal.data, cal.nbytes),
		                 MPCC_OK);
		assert_int_equal(mpcc_session_run(s[k]), MPCC_OK);
		for (int i = 0; i < 2; i++) {
			mpcc_tensor t;
			assert_int_equal(mpcc_session_output(s[k], i, &t), MPCC_OK);
			assert_int_equal(t.dtype, MPCC_DTYPE_F32);
			out[k][i] = t.data;
		}
	}
	double dd = 0, rr = 0;
	for (int i = 0; i < 16; i++) {
		dd += (out[1][1][i] - out[0][1][i]) * (double)(out[1][1][i] - out[0][1][i]);
		rr += out[0][1][i] * (double)out[0][1][i];
	}
	assert_true(sqrt(dd / rr) <= 1e-2);
	for (int k = 0; k < 2; k++) {
		mpcc_session_destroy(s[k]);
		mpcc_plan_destroy(plan[k]);
	}
	mpcc_context_destroy(cx);
	free(model);
}

/* ---------------------------------------------------------------- mixed casts */

static void
check_inputs_agree(const mpcc_graph *g)
{
	for (int i = 0; i < g->n_nodes; i++) {
		const mpcc_node *n = &g->nodes[i];
		mpcc_dtype t = MPCC_DTYPE_UNDEF;
		if (n->dead || n->op == MPCC_OP_CAST)
			continue;
		for (int j = 0; j < n->n_in; j++) {
			if (n->in[j] == MPCC_NONE)
				continue;
			mpcc_dtype u = g->values[n->in[j]].dtype;
			if (!mpcc_dtype_is_float(u))
				continue;
			if (t != MPCC_DTYPE_UNDEF && u != t)
				fail_msg("node '%s' reads %s and %s", n->name, mpcc_dtype_name(t),
				         mpcc_dtype_name(u));
			t = u;
		}
	}
}

/*
 * a = A(x) is read by an f16, a bf16 and an f32 node; W2 feeds an f16 and a
 * bf16 node; E adds the bf16 and the f16 results. Hints set B to bf16.
 */
static void
f16_and_bf16_nodes_share_one_cast_per_value_and_dtype(void **state)
{
	static float w[64], w2[64];
	mb m = {0};
	size_t size;
	mpcc_graph *g = NULL;
	mpcc_diag d;

	(void)state;
	for (int i = 0; i < 64; i++)
		w[i] = w2[i] = 0.01f * (float)(i % 9);
	mb_io(&m, "x", 4, 8, true);
	mb_io(&m, "d", 0, 0, false);
	mb_io(&m, "e", 0, 0, false);
	mb_init(&m, "W", 8, 8, w);
	mb_init(&m, "W2", 8, 8, w2);
	mb_node(&m, "MatMul", "A", "x", "W", "a");
	mb_node(&m, "MatMul", "B", "a", "W2", "b");
	mb_node(&m, "MatMul", "C", "a", "W2", "c");
	mb_node(&m, "Softmax", "D", "a", NULL, "d");
	mb_node(&m, "Add", "E", "b", "c", "e");
	uint8_t *model = mb_pack(&m, &size);
	mpcc_diag_init(&d);
	assert_int_equal(mpcc_onnx_read_buffer(model, size, NULL, &g, &d), MPCC_OK);

	mpcc_prec_hint hints[MB_MAX];
	for (int i = 0; i < MB_MAX; i++)
		hints[i] = (mpcc_prec_hint){.range_absmax = NAN, .err = NAN};
	int b_src = node_named(g, "B")->src_index;
	assert_true(b_src >= 0 && b_src < MB_MAX);
	hints[b_src].low = MPCC_DTYPE_BF16;
	hints[b_src].low_note = "auto: bf16: test";
	mpcc_compile_options o;
	mpcc_compile_options_init(&o);
	o.precision = MPCC_PRECISION_AUTO;
	mpcc_pass_ctx pcx = {.d = &d, .opts = &o, .hints = hints, .n_hints = MB_MAX};
	mpcc_precision_stats stats;
	mpcc_status st = mpcc_freeze_inputs(g, &pcx);
	if (!st)
		st = mpcc_bind_shapes(g, &pcx);
	if (!st)
		st = mpcc_check_ops(g, &pcx);
	if (!st)
		st = mpcc_infer_and_fold(g, &pcx);
	if (!st)
		st = mpcc_eliminate_dead(g, &pcx);
	if (!st)
		st = mpcc_assign_precision(g, &pcx);
	if (!st)
		st = mpcc_insert_casts(g, &pcx, &stats);
	if (st)
		fail_msg("%s", d.msg);

	assert_int_equal(node_named(g, "A")->compute, MPCC_DTYPE_F16);
	assert_int_equal(node_named(g, "B")->compute, MPCC_DTYPE_BF16);
	assert_string_equal(node_named(g, "B")->reason, "auto: bf16: test");
	assert_int_equal(node_named(g, "C")->compute, MPCC_DTYPE_F16);
	assert_int_equal(node_named(g, "D")->compute, MPCC_DTYPE_F32);
	const mpcc_node *e = node_named(g, "E");
	assert_int_equal(e->compute, MPCC_DTYPE_BF16);
	assert_non_null(strstr(e->reason, "mixed f16/bf16"));
	check_inputs_agree(g);

	/* one Cast per (source, dtype); W2 converted once per low dtype */
	int casts = 0;
	for (int i = 0; i < g->n_nodes; i++) {
		const mpcc_node *n = &g->nodes[i];
		if (n->dead || n->op != MPCC_OP_CAST || n->src_index >= 0)
			continue;
		casts++;
		for (int k = i + 1; k < g->n_nodes; k++) {
			const mpcc_node *o2 = &g->nodes[k];
			if (!o2->dead && o2->op == MPCC_OP_CAST && o2->src_index < 0)
				assert_false(o2->in[0] == n->in[0] &&
				             g->values[o2->out[0]].dtype == g->values[n->out[0]].dtype);
		}
	}
	/* x->f16 for A, a->bf16 for B, a->f32 for D, c->bf16 for E, e's
	 * bf16 twin -> f32 output */
	assert_int_equal(casts, 5);
	assert_int_equal(stats.casts_inserted, 5);
	assert_int_equal(stats.consts_converted, 3); /* W f16, W2 f16, W2 bf16 */
	assert_int_equal(node_named(g, "B")->in[1] == node_named(g, "C")->in[1], false);
	assert_int_equal(mpcc_graph_verify(g, &d), MPCC_OK);
	mpcc_graph_destroy(g);
	free(model);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(activations_beyond_the_threshold_go_bf16),
		cmocka_unit_test(initializers_beyond_f16_max_go_bf16),
		cmocka_unit_test(values_below_the_smallest_normal_go_bf16),
		cmocka_unit_test(ordinary_ranges_stay_f16),
		cmocka_unit_test(the_one_node_that_breaks_the_budget_is_raised),
		cmocka_unit_test(a_generous_budget_leaves_everything_low_in_one_evaluation),
		cmocka_unit_test(the_max_element_metric_is_honoured),
		cmocka_unit_test(two_searches_decide_alike),
		cmocka_unit_test(a_calibration_tensor_naming_no_input_is_refused),
		cmocka_unit_test(an_auto_plan_runs_within_its_budget),
		cmocka_unit_test(f16_and_bf16_nodes_share_one_cast_per_value_and_dtype),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
