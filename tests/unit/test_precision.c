/*
 * test_precision.c - the precision pass as a user sees it (docs/precision.md):
 * --keep-fp32 and --force-low by op type and node name in fp16 and bf16,
 * which wins, force-low refused in fp32, names matching nothing refused,
 * --low-io's input and output dtypes, and the casts: none between low ops,
 * one per (value, dtype) shared by its readers, a model's own casts kept or
 * cancelled as documented. Tiny ONNX models are packed with the frontend's
 * protobuf-c bindings, compiled with mpcc_compile_buffer and loaded; the
 * decisions are read from the plan's precision records and JSON dump. Every
 * plan runs on the CPU and must stay finite and within its mode's
 * conformance tolerance (32 u) of an f32 compile of the same model.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "onnx.pb-c.h"
#include "runtime/plan.h"

/* ---------------------------------------------------------------- models */

#define ROWS 4
#define COLS 8
#define MAX_NODES 4

enum {
	T_F32 = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT,
	T_F16 = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16,
};

/* A model: input x (f32 of no declared shape: opts() binds it to
 * [ROWS,COLS]), the initializer W[COLS,COLS] (values in [-0.5, 0.5]),
 * nodes in order (inputs NULL-terminated) and up to two outputs, whose
 * dtype and shape the frontend infers. */
typedef struct spec {
	const char *out[2];
	struct {
		const char *op, *name, *in[4], *out;
		int to; /* Cast's target, an ONNX elem type */
	} node[MAX_NODES];
} spec;

/* The spec packed as an opset 17 ONNX model (malloc'd, *size bytes),
 * through the protobuf-c bindings the frontend reads models with. */
static uint8_t *
pack(const spec *s, size_t *size)
{
	Onnx__NodeProto node[MAX_NODES], *node_p[MAX_NODES];
	Onnx__AttributeProto to[MAX_NODES], *to_p[MAX_NODES];
	Onnx__TensorProto w = ONNX__TENSOR_PROTO__INIT, *w_p = &w;
	int64_t w_dims[2] = {COLS, COLS};
	float w_data[COLS * COLS];
	Onnx__ValueInfoProto vi[3], *vi_p[3] = {&vi[0], &vi[1], &vi[2]};
	Onnx__TypeProto type = ONNX__TYPE_PROTO__INIT;
	Onnx__TypeProto__Tensor tensor = ONNX__TYPE_PROTO__TENSOR__INIT;
	Onnx__GraphProto g = ONNX__GRAPH_PROTO__INIT;
	Onnx__ModelProto pm = ONNX__MODEL_PROTO__INIT;
	Onnx__OperatorSetIdProto opset = ONNX__OPERATOR_SET_ID_PROTO__INIT, *opset_p = &opset;

	for (; g.n_node < MAX_NODES && s->node[g.n_node].op; g.n_node++) {
		size_t i = g.n_node;
		Onnx__NodeProto *n = node_p[i] = &node[i];
		onnx__node_proto__init(n);
		n->op_type = (char *)s->node[i].op;
		n->name = (char *)s->node[i].name;
		n->input = (char **)s->node[i].in;
		while (s->node[i].in[n->n_input])
			n->n_input++;
		n->output = (char **)&s->node[i].out;
		n->n_output = 1;
		if (!s->node[i].to)
			continue;
		onnx__attribute_proto__init(to_p[i] = &to[i]);
		to[i].name = "to";
		to[i].has_type = to[i].has_i = 1;
		to[i].type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
		to[i].i = s->node[i].to;
		n->n_attribute = 1;
		n->attribute = &to_p[i];
	}
	for (int k = 0; k < COLS * COLS; k++)
		w_data[k] = (float)((k * 13) % 11 - 5) / 10.0f;
	w.name = "W";
	w.n_dims = 2;
	w.dims = w_dims;
	w.has_data_type = 1;
	w.data_type = T_F32;
	w.n_float_data = COLS * COLS;
	w.float_data = w_data;
	for (int i = 0; i < 3; i++)
		onnx__value_info_proto__init(&vi[i]);
	for (; g.n_output < 2 && s->out[g.n_output]; g.n_output++)
		vi[g.n_output + 1].name = (char *)s->out[g.n_output];
	vi[0].name = "x";
	vi[0].type = &type;
	type.value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
	type.tensor_type = &tensor;
	tensor.has_elem_type = 1;
	tensor.elem_type = T_F32;
	g.name = "test";
	g.node = node_p;
	g.n_initializer = 1;
	g.initializer = &w_p;
	g.n_input = 1;
	g.input = vi_p;
	g.output = vi_p + 1;
	opset.domain = "";
	opset.has_version = 1;
	opset.version = 17;
	pm.has_ir_version = 1;
	pm.ir_version = 8;
	pm.n_opset_import = 1;
	pm.opset_import = &opset_p;
	pm.graph = &g;
	*size = onnx__model_proto__get_packed_size(&pm);
	uint8_t *buf = malloc(*size);
	assert_non_null(buf);
	onnx__model_proto__pack(&pm, buf);
	return buf;
}

/* Three low ops in a row. */
static const spec MLP = {
	.out = {"y"},
	.node = {{"Gemm", "gemm", {"x", "W"}, "h"},
	         {"Relu", "relu", {"h"}, "r"},
	         {"MatMul", "mm", {"r", "W"}, "y"}},
};

/* The policy keeps the Softmax in f32 between two low ops. */
static const spec SOFTMAX = {
	.out = {"y"},
	.node = {{"MatMul", "mm", {"x", "W"}, "h"},
	         {"Softmax", "sm", {"h"}, "s"},
	         {"MatMul", "mm2", {"s", "W"}, "y"}},
};

/* The low MatMul's output h is read by two f32 nodes. */
static const spec TWO_READERS = {
	.out = {"y"},
	.node = {{"MatMul", "mm", {"x", "W"}, "h"},
	         {"Softmax", "sm", {"h"}, "s"},
	         {"Exp", "exp", {"h"}, "e"},
	         {"Add", "add", {"s", "e"}, "y"}},
};

/* The model's own widen-then-narrow pair after a low op; y is f16. */
static const spec WIDEN_NARROW = {
	.out = {"y"},
	.node = {{"MatMul", "mm", {"x", "W"}, "h"},
	         {"Cast", "c32", {"h"}, "c", T_F32},
	         {"Cast", "c16", {"c"}, "y", T_F16}},
};

/* The model's own round trip x -> f16 -> f32 in front of a low op; with
 * the f16 value q also an output in ROUND_TRIP_SHARED. */
#define ROUND_TRIP_NODES                                                                   \
	{{"Cast", "r16", {"x"}, "q", T_F16},                                                   \
	 {"Cast", "r32", {"q"}, "r", T_F32},                                                   \
	 {"MatMul", "mm", {"r", "W"}, "y"}}
static const spec ROUND_TRIP = {.out = {"y"}, .node = ROUND_TRIP_NODES};
static const spec ROUND_TRIP_SHARED = {.out = {"y", "q"}, .node = ROUND_TRIP_NODES};

/* ---------------------------------------------------------------- compiling and running */

/* An override list: LIST("MatMul", "sm") gives the pointer and the count. */
#define LIST(...)                                                                          \
	(const char *const[]){__VA_ARGS__},                                                    \
	    (int)(sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *))
#define NONE NULL, 0

static mpcc_compile_options
opts(mpcc_precision p, const char *const *keep, int n_keep, const char *const *force,
     int n_force)
{
	static const mpcc_shape_binding x = {"x", 2, {ROWS, COLS}};
	mpcc_compile_options o;
	mpcc_compile_options_init(&o);
	o.precision = p;
	o.shapes = &x;
	o.n_shapes = 1;
	o.keep_fp32 = keep;
	o.n_keep_fp32 = n_keep;
	o.force_low = force;
	o.n_force_low = n_force;
	return o;
}

/* A test's state: the context, the last model packed and its plan. */
typedef struct fx {
	mpcc_context *cx;
	uint8_t *model;
	size_t model_size;
	mpcc_plan *p;
} fx;

/* Runs p on the CPU with x (rounded to the plan's input dtype where that
 * is low); writes output 0 as f32 into y and returns its element count. */
static int
run(mpcc_context *cx, const mpcc_plan *p, const float *x, float *y, int cap)
{
	const mpcc_tensor *in = mpcc_plan_input(p, 0);
	uint16_t low[ROWS * COLS];
	mpcc_session *s;
	mpcc_tensor t;

	bool bf16 = in->dtype == MPCC_DTYPE_BF16;
	for (int i = 0; i < ROWS * COLS; i++)
		low[i] = bf16 ? mpcc_f32_to_bf16(x[i]) : mpcc_f32_to_f16(x[i]);
	assert_int_equal(mpcc_session_create(cx, p, "cpu", &s), MPCC_OK);
	assert_int_equal(mpcc_session_set_input(s, "x", in->dtype, in->rank, in->dims,
	                                        in->dtype == MPCC_DTYPE_F32 ? (const void *)x : low,
	                                        (size_t)(ROWS * COLS) * mpcc_dtype_size(in->dtype)),
	                 MPCC_OK);
	assert_int_equal(mpcc_session_run(s), MPCC_OK);
	assert_int_equal(mpcc_session_output(s, 0, &t), MPCC_OK);
	assert_int_equal(t.dtype, mpcc_plan_output(p, 0)->dtype);
	int n = (int)(t.nbytes / mpcc_dtype_size(t.dtype));
	assert_true(n > 0 && n <= cap);
	for (int i = 0; i < n; i++) {
		const uint16_t *h = t.data;
		y[i] = t.dtype == MPCC_DTYPE_F32   ? ((const float *)t.data)[i]
		       : t.dtype == MPCC_DTYPE_F16 ? mpcc_f16_to_f32(h[i])
		                                   : mpcc_bf16_to_f32(h[i]);
	}
	mpcc_session_destroy(s);
	return n;
}

/* f's model compiled with o through the public API, the plan loaded. */
static mpcc_status
compile(fx *f, mpcc_compile_options o, mpcc_plan **out)
{
	void *buf = NULL;
	size_t n = 0;

	*out = NULL;
	mpcc_status st = mpcc_compile_buffer(f->cx, f->model, f->model_size, NULL, &o, &buf, &n);
	if (st == MPCC_OK)
		st = mpcc_plan_load_buffer(f->cx, buf, n, out);
	else
		assert_null(buf);
	free(buf);
	return st;
}

/* Runs f->p and an f32 compile of the same model on one input: every
 * output element must be finite and pass |got - ref| <= atol + rtol |ref|
 * with the conformance tolerance of the plan's mode (fp32: rtol 1e-3, atol
 * 1e-7; fp16 and bf16: atol = rtol = 32 u, u = 2^-11 and 2^-8). */
static void
matches_f32(fx *f)
{
	float x[ROWS * COLS], got[64], ref[64];
	double rtol = 1e-3, atol = 1e-7;
	mpcc_plan *f32;

	if (f->p->precision == MPCC_PRECISION_FP16)
		rtol = atol = 32 * ldexp(1, -11);
	else if (f->p->precision == MPCC_PRECISION_BF16)
		rtol = atol = 32 * ldexp(1, -8);
	for (int i = 0; i < ROWS * COLS; i++)
		x[i] = (float)((i * 37) % 17 - 8) / 8.0f;
	assert_int_equal(compile(f, opts(MPCC_PRECISION_FP32, NONE, NONE), &f32), MPCC_OK);
	int n = run(f->cx, f->p, x, got, 64);
	assert_int_equal(run(f->cx, f32, x, ref, 64), n);
	for (int i = 0; i < n; i++)
		if (!isfinite(got[i]) || fabs((double)got[i] - ref[i]) > atol + rtol * fabs(ref[i]))
			fail_msg("element %d: %g, f32 plan %g", i, got[i], ref[i]);
	mpcc_plan_destroy(f32);
}

/* Packs s and compiles it with o through the public API (the plan loaded
 * into f->p); a plan that compiles must match the f32 one (matches_f32). */
static mpcc_status
try_build(fx *f, const spec *s, mpcc_compile_options o)
{
	mpcc_plan_destroy(f->p);
	free(f->model);
	f->model = pack(s, &f->model_size);
	mpcc_status st = compile(f, o, &f->p);
	if (st == MPCC_OK) {
		assert_non_null(f->p->prec_report);
		matches_f32(f);
	}
	return st;
}

static const mpcc_plan *
build(fx *f, const spec *s, mpcc_compile_options o)
{
	if (try_build(f, s, o) != MPCC_OK)
		fail_msg("compile: %s", mpcc_context_last_error(f->cx));
	return f->p;
}

/* ---------------------------------------------------------------- reading the records */

/* The precision record of node `name`. */
static const mpcc_prec_record *
rec(const mpcc_plan *p, const char *name)
{
	for (int i = 0; i < p->prec_report->n_records; i++)
		if (!strcmp(p->prec_report->records[i].name, name))
			return &p->prec_report->records[i];
	fail_msg("no precision record for node '%s'", name);
	return NULL;
}

/* The record writing input j of r, or NULL for a graph input or constant. */
static const mpcc_prec_record *
producer(const mpcc_plan *p, const mpcc_prec_record *r, int j)
{
	assert_true(j < r->n_in);
	return r->in[j].producer < 0 ? NULL : &p->prec_report->records[r->in[j].producer];
}

static int
n_casts(const mpcc_plan *p)
{
	int n = 0;
	for (int i = 0; i < p->prec_report->n_records; i++)
		n += (p->prec_report->records[i].flags & MPCC_PREC_REC_CAST) != 0;
	return n;
}

/* Node `name` computes in t, decided by `why` alone: an override has no
 * policy line before it in the evidence. */
static void
decided(const mpcc_plan *p, const char *name, mpcc_dtype t, const char *why)
{
	const mpcc_prec_record *r = rec(p, name);
	assert_int_equal(r->compute, t);
	assert_string_equal(r->reason, why);
	assert_string_equal(r->evidence, why);
}

/* ---------------------------------------------------------------- overrides */

static void
keep_fp32_op_type_runs_f32_and_the_rest_goes_low(void **state)
{
	const mpcc_precision modes[] = {MPCC_PRECISION_FP16, MPCC_PRECISION_BF16};
	const mpcc_dtype lows[] = {MPCC_DTYPE_F16, MPCC_DTYPE_BF16};
	fx *f = *state;
	char *json;

	for (int k = 0; k < 2; k++) {
		const mpcc_plan *p = build(f, &MLP, opts(modes[k], LIST("MatMul"), NONE));
		decided(p, "mm", MPCC_DTYPE_F32, "user override --keep-fp32 MatMul");
		assert_int_equal(rec(p, "mm")->accum, MPCC_DTYPE_F32);
		assert_int_equal(rec(p, "mm")->in[0].dtype, MPCC_DTYPE_F32);
		decided(p, "gemm", lows[k], "policy: matrix op (Gemm)");
		assert_int_equal(rec(p, "relu")->compute, lows[k]);
		assert_int_equal(n_casts(p), 2); /* x to low for the Gemm, r to f32 */
	}
	/* the public dump of the (bf16) plan says the same */
	assert_int_equal(mpcc_plan_precision_dump(f->cx, f->p, MPCC_DUMP_JSON, &json), MPCC_OK);
	assert_non_null(strstr(json, "\"evidence\":[\"user override --keep-fp32 MatMul\"]"));
	mpcc_free(json);
}

static void
force_low_lowers_what_the_policy_keeps_f32(void **state)
{
	fx *f = *state;

	const mpcc_plan *p = build(f, &SOFTMAX, opts(MPCC_PRECISION_FP16, NONE, NONE));
	decided(p, "sm", MPCC_DTYPE_F32, "policy: numerically sensitive (Softmax)");
	assert_int_equal(n_casts(p), 4); /* x, h, s and y's low twin */

	p = build(f, &SOFTMAX, opts(MPCC_PRECISION_FP16, NONE, LIST("Softmax")));
	decided(p, "sm", MPCC_DTYPE_F16, "user override --force-low Softmax");
	assert_int_equal(rec(p, "sm")->in[0].dtype, MPCC_DTYPE_F16);
	assert_int_equal(rec(p, "sm")->out[0].dtype, MPCC_DTYPE_F16);
	assert_ptr_equal(producer(p, rec(p, "sm"), 0), rec(p, "mm"));
	assert_ptr_equal(producer(p, rec(p, "mm2"), 0), rec(p, "sm"));
	assert_int_equal(n_casts(p), 2); /* x and y's low twin */
}

/* Keep wins over force for the same name; a node name wins over its op
 * type in either list (docs/precision.md). */
static void
overrides_resolve_keep_over_force_and_node_over_op(void **state)
{
	fx *f = *state;

	const mpcc_plan *p =
	    build(f, &SOFTMAX, opts(MPCC_PRECISION_FP16, LIST("Softmax"), LIST("Softmax")));
	decided(p, "sm", MPCC_DTYPE_F32, "user override --keep-fp32 Softmax");
	assert_int_equal(rec(p, "mm")->compute, MPCC_DTYPE_F16);
	assert_int_equal(rec(p, "mm2")->compute, MPCC_DTYPE_F16);

	p = build(f, &SOFTMAX, opts(MPCC_PRECISION_FP16, LIST("MatMul"), LIST("mm2")));
	decided(p, "mm", MPCC_DTYPE_F32, "user override --keep-fp32 MatMul");
	decided(p, "mm2", MPCC_DTYPE_F16, "user override --force-low mm2");
}

/* Compiling SOFTMAX with o fails with MPCC_ERR_INVALID and one line of
 * message that contains `what`. */
static void
refused(fx *f, mpcc_compile_options o, const char *what)
{
	assert_int_equal(try_build(f, &SOFTMAX, o), MPCC_ERR_INVALID);
	assert_null(f->p);
	const char *msg = mpcc_context_last_error(f->cx);
	if (!strstr(msg, what) || strchr(msg, '\n'))
		fail_msg("message \"%s\", wanted one line with \"%s\"", msg, what);
}

static void
overrides_that_cannot_apply_are_refused_in_one_line(void **state)
{
	fx *f = *state;

	refused(f, opts(MPCC_PRECISION_FP32, NONE, LIST("Softmax")),
	        "--force-low needs --precision fp16, bf16 or auto");
	/* keep_fp32 is no error in fp32, where it changes nothing */
	const mpcc_plan *p = build(f, &SOFTMAX, opts(MPCC_PRECISION_FP32, LIST("Softmax"), NONE));
	assert_int_equal(rec(p, "mm")->compute, MPCC_DTYPE_F32);
	assert_int_equal(n_casts(p), 0);

	/* "a name that matches nothing is an error" (docs/precision.md): an
	 * ONNX op type (even one the model lacks) or a node name matches,
	 * exactly */
	refused(f, opts(MPCC_PRECISION_FP16, LIST("Softmx"), NONE),
	        "--keep-fp32: 'Softmx' names no op type and no node of the model");
	refused(f, opts(MPCC_PRECISION_BF16, NONE, LIST("matmul")),
	        "--force-low: 'matmul' names no op type and no node of the model");
	refused(f, opts(MPCC_PRECISION_FP16, NONE, NULL, 1), "--force-low: bad count or pointer");
	p = build(f, &SOFTMAX, opts(MPCC_PRECISION_FP16, LIST("mm2", "Conv"), NONE));
	decided(p, "mm2", MPCC_DTYPE_F32, "user override --keep-fp32 mm2");
	assert_int_equal(rec(p, "mm")->compute, MPCC_DTYPE_F16);
}

/* ---------------------------------------------------------------- --low-io */

static void
low_io_decides_the_dtype_of_graph_inputs_and_outputs(void **state)
{
	const mpcc_precision modes[] = {MPCC_PRECISION_FP16, MPCC_PRECISION_BF16};
	const mpcc_dtype lows[] = {MPCC_DTYPE_F16, MPCC_DTYPE_BF16};
	fx *f = *state;

	for (int k = 0; k < 4; k++) {
		mpcc_compile_options o = opts(modes[k / 2], NONE, NONE);
		o.low_io = k % 2;
		mpcc_dtype io = o.low_io ? lows[k / 2] : MPCC_DTYPE_F32;
		const mpcc_plan *p = build(f, &MLP, o);
		assert_int_equal(mpcc_plan_input(p, 0)->dtype, io);
		assert_int_equal(mpcc_plan_output(p, 0)->dtype, io);
		assert_string_equal(mpcc_plan_output(p, 0)->name, "y");
		/* low_io: the Gemm reads x as given and the MatMul writes y
		 * itself, so no cast is left at either end */
		assert_int_equal(rec(p, "gemm")->in[0].dtype, lows[k / 2]);
		assert_int_equal(n_casts(p), o.low_io ? 0 : 2);
	}
	/* an output computed in f32 (Add follows Softmax and Exp) is rounded
	 * to the low dtype by one cast at the end; the Add itself stays f32 */
	mpcc_compile_options o = opts(MPCC_PRECISION_FP16, NONE, NONE);
	o.low_io = true;
	const mpcc_plan *p = build(f, &TWO_READERS, o);
	assert_int_equal(mpcc_plan_output(p, 0)->dtype, MPCC_DTYPE_F16);
	assert_string_equal(mpcc_plan_output(p, 0)->name, "y");
	assert_int_equal(rec(p, "add")->compute, MPCC_DTYPE_F32);
	assert_int_equal(rec(p, "add")->out[0].dtype, MPCC_DTYPE_F32);
}

/* ---------------------------------------------------------------- casts */

static void
two_low_ops_in_a_row_need_no_cast_between_them(void **state)
{
	fx *f = *state;

	const mpcc_plan *p = build(f, &MLP, opts(MPCC_PRECISION_FP16, NONE, NONE));
	decided(p, "relu", MPCC_DTYPE_F16, "follows producer 'gemm'");
	assert_int_equal(rec(p, "mm")->compute, MPCC_DTYPE_F16);
	assert_int_equal(rec(p, "mm")->accum, MPCC_DTYPE_F32); /* matrix op: f32 accumulation */
	assert_ptr_equal(producer(p, rec(p, "relu"), 0), rec(p, "gemm"));
	assert_ptr_equal(producer(p, rec(p, "mm"), 0), rec(p, "relu"));
	assert_int_equal(rec(p, "mm")->in[0].dtype, MPCC_DTYPE_F16);
	assert_int_equal(n_casts(p), 2); /* x in, y's low twin out */
}

static void
one_value_read_by_two_f32_nodes_is_cast_once(void **state)
{
	fx *f = *state;
	char *json;

	const mpcc_plan *p = build(f, &TWO_READERS, opts(MPCC_PRECISION_FP16, NONE, NONE));
	assert_int_equal(rec(p, "mm")->compute, MPCC_DTYPE_F16);
	assert_int_equal(rec(p, "sm")->compute, MPCC_DTYPE_F32);
	assert_int_equal(rec(p, "exp")->compute, MPCC_DTYPE_F32);
	const mpcc_prec_record *c = producer(p, rec(p, "sm"), 0);
	assert_non_null(c);
	assert_string_equal(c->id, "cast:h:f32");
	assert_ptr_equal(producer(p, rec(p, "exp"), 0), c);
	assert_ptr_equal(producer(p, c, 0), rec(p, "mm"));
	assert_int_equal(n_casts(p), 2); /* x to f16, h to f32 */
	assert_int_equal(mpcc_plan_precision_dump(f->cx, p, MPCC_DUMP_JSON, &json), MPCC_OK);
	assert_non_null(strstr(json, "\"summary\":{\"nodes\":4,\"casts\":2,"));
	mpcc_free(json);
}

/* Only Cast(Cast(x, low), dtype of x) with x wider is a round trip the
 * pass cancels: the model's f16 -> f32 -> f16 pair stays (it is exact),
 * and the pass adds no cast of its own around it. */
static void
a_models_widening_then_narrowing_casts_stay(void **state)
{
	fx *f = *state;

	const mpcc_plan *p = build(f, &WIDEN_NARROW, opts(MPCC_PRECISION_FP16, NONE, NONE));
	const mpcc_prec_record *c32 = rec(p, "c32"), *c16 = rec(p, "c16");
	assert_int_equal(rec(p, "mm")->compute, MPCC_DTYPE_F16);
	assert_ptr_equal(producer(p, c32, 0), rec(p, "mm"));
	assert_int_equal(c32->in[0].dtype, MPCC_DTYPE_F16);
	assert_int_equal(c32->out[0].dtype, MPCC_DTYPE_F32);
	assert_ptr_equal(producer(p, c16, 0), c32);
	assert_int_equal(c16->out[0].dtype, MPCC_DTYPE_F16);
	assert_int_equal(mpcc_plan_output(p, 0)->dtype, MPCC_DTYPE_F16);
	assert_int_equal(n_casts(p), 1); /* x to f16 for the MatMul */
}

/* The model's Cast(Cast(x, f16), f32) feeding a low MatMul is cancelled
 * (the MatMul reads x through one cast to f16, which rounds alike), unless
 * something else reads the f16 value; fp32 runs no cast pass at all. */
static void
a_models_round_trip_through_f16_is_cancelled(void **state)
{
	fx *f = *state;

	const mpcc_plan *p = build(f, &ROUND_TRIP, opts(MPCC_PRECISION_FP16, NONE, NONE));
	assert_int_equal(p->prec_report->n_records, 3); /* r16 and r32 are gone */
	const mpcc_prec_record *c = producer(p, rec(p, "mm"), 0);
	assert_non_null(c);
	assert_true(c->flags & MPCC_PREC_REC_CAST);
	assert_string_equal(c->in[0].value, "x");
	assert_null(producer(p, c, 0));
	assert_int_equal(c->compute, MPCC_DTYPE_F16);
	assert_int_equal(n_casts(p), 2); /* x to f16, y's low twin out */

	p = build(f, &ROUND_TRIP_SHARED, opts(MPCC_PRECISION_FP16, NONE, NONE));
	assert_ptr_equal(producer(p, rec(p, "r32"), 0), rec(p, "r16"));
	p = build(f, &ROUND_TRIP, opts(MPCC_PRECISION_FP32, NONE, NONE));
	assert_ptr_equal(producer(p, rec(p, "r32"), 0), rec(p, "r16"));
}

/* ---------------------------------------------------------------- main */

static int
setup(void **state)
{
	fx *f = calloc(1, sizeof(*f));
	if (!f || mpcc_context_create(&f->cx) != MPCC_OK) {
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	fx *f = *state;
	mpcc_plan_destroy(f->p);
	free(f->model);
	mpcc_context_destroy(f->cx);
	free(f);
	return 0;
}

#define TEST(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		TEST(keep_fp32_op_type_runs_f32_and_the_rest_goes_low),
		TEST(force_low_lowers_what_the_policy_keeps_f32),
		TEST(overrides_resolve_keep_over_force_and_node_over_op),
		TEST(overrides_that_cannot_apply_are_refused_in_one_line),
		TEST(low_io_decides_the_dtype_of_graph_inputs_and_outputs),
		TEST(two_low_ops_in_a_row_need_no_cast_between_them),
		TEST(one_value_read_by_two_f32_nodes_is_cast_once),
		TEST(a_models_widening_then_narrowing_casts_stay),
		TEST(a_models_round_trip_through_f16_is_cancelled),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
