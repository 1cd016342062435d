/*
 * test_export.c - `mpcc export` in the library: a training plan carries its
 * source ONNX model (section ONNX, runtime/plan_source.c) and
 * mpcc_trainer_export writes the trained weights back into it
 * (frontend/onnx_export.c, docs/training.md "Export").
 *
 * The model is a two-layer MLP packed in memory with the frontend's
 * protobuf-c bindings, decorated with what an export must keep: a second
 * opset import, producer and doc strings, metadata, an unused initializer
 * stored as raw_data and a frozen one. It is trained a few Adam steps, so
 * the state holds moments and a step count besides the weights.
 *
 *   numerics   the exported model, compiled as an ordinary fp32 inference
 *              plan, gives mpcc_trainer_eval's logits bit for bit;
 *   bytes      trained initializers hold the state's f32 bytes as raw_data;
 *              with the source's initializers put back, the export packs
 *              to the source's bytes exactly; a checkpoint exports as the
 *              trainer it was saved from;
 *   external   a trained external-data initializer is written inline, an
 *              untouched one keeps its reference;
 *   low-io     an f16 master weight (--low-io) is exported widened to f32;
 *   plans      inference plans carry no source; a plan without one gives
 *              the documented error; a damaged section is refused with one
 *              line; a source model that lacks a weight, or shapes it
 *              otherwise, is named.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "onnx.pb-c.h"
#include "runtime/api_internal.h"
#include "runtime/plan.h"

#define B 8 /* batch */
#define F 4 /* features */
#define H 5 /* hidden */
#define C 3 /* classes */
#define STEPS 5

static float W1[F * H], b1[H], W2[H * C], b2[C], unused[2] = {1.5f, -2.5f};
static float xs[B * F];
static int64_t labels[B];

/* ---------------------------------------------------------------- models */

enum store { TYPED, RAW, EXTERNAL };

typedef struct init_spec {
	const char *name;
	int rank;
	int64_t dims[2];
	const float *data;
	enum store store;
} init_spec;

typedef struct model_opts {
	enum store w2, b1; /* where W2 and b1 keep their data */
	bool w2_transposed; /* W2 declared [C,H] (a model that does not fit) */
	const char *w2_name;
} model_opts;

/* The external-data entries of one initializer: location, offset, length. */
typedef struct ext {
	Onnx__StringStringEntryProto e[3], *p[3];
	char len[32];
} ext;

static void
set_external(Onnx__TensorProto *t, ext *x, const char *file, size_t nbytes)
{
	snprintf(x->len, sizeof(x->len), "%zu", nbytes);
	const char *kv[3][2] = {{"location", file}, {"offset", "0"}, {"length", x->len}};
	for (int i = 0; i < 3; i++) {
		onnx__string_string_entry_proto__init(&x->e[i]);
		x->e[i].key = (char *)kv[i][0];
		x->e[i].value = (char *)kv[i][1];
		x->p[i] = &x->e[i];
	}
	t->has_data_location = 1;
	t->data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
	t->n_external_data = 3;
	t->external_data = x->p;
}

static void
declare(Onnx__ValueInfoProto *vi, Onnx__TypeProto *type, Onnx__TypeProto__Tensor *tt,
        Onnx__TensorShapeProto *shape, Onnx__TensorShapeProto__Dimension *dim,
        Onnx__TensorShapeProto__Dimension **dim_p, const char *name, int rank,
        const int64_t *dims)
{
	onnx__value_info_proto__init(vi);
	onnx__type_proto__init(type);
	onnx__type_proto__tensor__init(tt);
	onnx__tensor_shape_proto__init(shape);
	vi->name = (char *)name;
	vi->type = type;
	type->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
	type->tensor_type = tt;
	tt->has_elem_type = 1;
	tt->elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
	tt->shape = shape;
	for (int i = 0; i < rank; i++) {
		onnx__tensor_shape_proto__dimension__init(&dim[i]);
		dim[i].value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
		dim[i].dim_value = dims[i];
		dim_p[i] = &dim[i];
	}
	shape->n_dim = (size_t)rank;
	shape->dim = dim_p;
}

/*
 * logits = relu(x W1 + b1) W2 + b2, opset 17, plus an unused initializer
 * and the decorations an export must keep. An EXTERNAL initializer refers
 * to "<name>.bin" (write_external writes it). Malloc'd, *size bytes.
 */
static uint8_t *
pack_mlp(const model_opts *o, size_t *size)
{
	const char *w2 = o->w2_name ? o->w2_name : "W2";
	init_spec is[5] = {
		{"W1", 2, {F, H}, W1, TYPED},
		{"b1", 1, {H}, b1, o->b1},
		{w2, 2, {H, C}, W2, o->w2},
		{"b2", 1, {C}, b2, RAW},
		{"unused", 1, {2}, unused, RAW},
	};
	static const char *const node[5][4] = {
		{"MatMul", "mm1", "x", "W1"}, {"Add", "add1", "z1a", "b1"}, {"Relu", "relu", "z1", NULL},
		{"MatMul", "mm2", "h", "W2"}, {"Add", "add2", "z2a", "b2"},
	};
	static const char *const out[5] = {"z1a", "z1", "h", "z2a", "logits"};
	Onnx__TensorProto init[5], *init_p[5];
	Onnx__NodeProto nodes[5], *node_p[5];
	char *node_in[5][2];
	ext x[5];
	char loc[5][32];
	int64_t xd[2] = {B, F}, ld[2] = {B, C};
	Onnx__ValueInfoProto in, outv, *in_p = &in, *out_p = &outv;
	Onnx__TypeProto ty[2];
	Onnx__TypeProto__Tensor tt[2];
	Onnx__TensorShapeProto sh[2];
	Onnx__TensorShapeProto__Dimension dim[2][2], *dim_p[2][2];
	Onnx__GraphProto g = ONNX__GRAPH_PROTO__INIT;
	Onnx__ModelProto m = ONNX__MODEL_PROTO__INIT;
	Onnx__OperatorSetIdProto ops[2], *ops_p[2] = {&ops[0], &ops[1]};
	Onnx__StringStringEntryProto meta = ONNX__STRING_STRING_ENTRY_PROTO__INIT, *meta_p = &meta;

	if (o->w2_transposed) {
		is[2].dims[0] = C;
		is[2].dims[1] = H;
	}
	for (int i = 0; i < 5; i++) {
		Onnx__TensorProto *t = init_p[i] = &init[i];
		size_t n = 1;
		onnx__tensor_proto__init(t);
		t->name = (char *)is[i].name;
		t->n_dims = (size_t)is[i].rank;
		t->dims = is[i].dims;
		for (int k = 0; k < is[i].rank; k++)
			n *= (size_t)is[i].dims[k];
		t->has_data_type = 1;
		t->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
		t->doc_string = i == 0 ? "the first layer" : NULL;
		if (is[i].store == TYPED) {
			t->n_float_data = n;
			t->float_data = (float *)is[i].data;
		} else if (is[i].store == RAW) {
			t->has_raw_data = 1;
			t->raw_data.len = n * sizeof(float);
			t->raw_data.data = (uint8_t *)is[i].data;
		} else {
			snprintf(loc[i], sizeof(loc[i]), "%s.bin", is[i].name);
			set_external(t, &x[i], loc[i], n * sizeof(float));
		}
	}
	for (int i = 0; i < 5; i++) {
		Onnx__NodeProto *n = node_p[i] = &nodes[i];
		onnx__node_proto__init(n);
		n->op_type = (char *)node[i][0];
		n->name = (char *)node[i][1];
		node_in[i][0] = (char *)node[i][2];
		node_in[i][1] = (char *)(i == 3 ? w2 : node[i][3]);
		n->input = node_in[i];
		n->n_input = node[i][3] ? 2 : 1;
		n->output = (char **)&out[i];
		n->n_output = 1;
	}
	declare(&in, &ty[0], &tt[0], &sh[0], dim[0], dim_p[0], "x", 2, xd);
	declare(&outv, &ty[1], &tt[1], &sh[1], dim[1], dim_p[1], "logits", 2, ld);
	g.name = "mlp";
	g.doc_string = "a graph to train";
	g.n_node = 5;
	g.node = node_p;
	g.n_initializer = 5;
	g.initializer = init_p;
	g.n_input = 1;
	g.input = &in_p;
	g.n_output = 1;
	g.output = &out_p;
	for (int i = 0; i < 2; i++) {
		onnx__operator_set_id_proto__init(&ops[i]);
		ops[i].domain = i ? "ai.onnx.ml" : "";
		ops[i].has_version = 1;
		ops[i].version = i ? 3 : 17;
	}
	meta.key = "author";
	meta.value = "test_export";
	m.has_ir_version = 1;
	m.ir_version = 8;
	m.producer_name = "test_export";
	m.producer_version = "1";
	m.doc_string = "an MLP";
	m.n_opset_import = 2;
	m.opset_import = ops_p;
	m.n_metadata_props = 1;
	m.metadata_props = &meta_p;
	m.graph = &g;
	*size = onnx__model_proto__get_packed_size(&m);
	uint8_t *buf = malloc(*size);
	assert_non_null(buf);
	onnx__model_proto__pack(&m, buf);
	return buf;
}

/* ---------------------------------------------------------------- files */

static char tmpdir[64];

static const char *
tmp_path(const char *name)
{
	static char path[4][160];
	static int next;
	char *p = path[next++ % 4];
	snprintf(p, sizeof(path[0]), "%s/%s", tmpdir, name);
	return p;
}

static void
write_file(const char *path, const void *data, size_t n)
{
	mpcc_diag d;
	mpcc_diag_init(&d);
	if (mpcc_write_whole_file(path, data, n, &d) != MPCC_OK)
		fail_msg("%s", d.msg);
}

static uint8_t *
read_file(const char *path, size_t *n)
{
	void *buf;
	mpcc_diag d;
	mpcc_diag_init(&d);
	if (mpcc_read_whole_file(path, &buf, n, &d) != MPCC_OK)
		fail_msg("%s", d.msg);
	return buf;
}

/* ---------------------------------------------------------------- fixture */

typedef struct fx {
	mpcc_context *cx;
	mpcc_plan *plan;
	mpcc_trainer *tr;
	uint8_t *model; /* the source */
	size_t model_size;
} fx;

static void
load_trainer(fx *f, const void *plan, size_t n)
{
	assert_int_equal(mpcc_plan_load_buffer(f->cx, plan, n, &f->plan), MPCC_OK);
	if (mpcc_trainer_create(f->cx, f->plan, "cpu", &f->tr) != MPCC_OK)
		fail_msg("trainer: %s", mpcc_context_last_error(f->cx));
}

static const char *const frozen[] = {"W1"};

static void
train_options(mpcc_train_options *o)
{
	mpcc_train_options_init(o);
	o->label = "y";
	o->optimizer = MPCC_OPTIMIZER_ADAM;
	o->lr = 0.05;
	o->frozen_weights = frozen;
	o->n_frozen_weights = 1;
}

/* Compiles the model in memory to an fp32 training plan (Adam, W1 frozen)
 * and makes a CPU trainer; *out_plan keeps the plan's bytes if asked. */
static void
compile_train(fx *f, const model_opts *mo, void **out_plan, size_t *out_n)
{
	mpcc_compile_options co;
	mpcc_train_options o;
	void *plan;
	size_t n;

	f->model = pack_mlp(mo, &f->model_size);
	train_options(&o);
	mpcc_compile_options_init(&co);
	co.precision = MPCC_PRECISION_FP32;
	co.train = &o;
	if (mpcc_compile_buffer(f->cx, f->model, f->model_size, NULL, &co, &plan, &n) != MPCC_OK)
		fail_msg("compile: %s", mpcc_context_last_error(f->cx));
	load_trainer(f, plan, n);
	if (out_plan) {
		*out_plan = plan;
		*out_n = n;
	} else {
		free(plan);
	}
}

static mpcc_status
run(fx *f, bool eval, mpcc_train_result *r)
{
	mpcc_tensor in[2] = {
		{.name = "x", .dtype = MPCC_DTYPE_F32, .rank = 2, .dims = {B, F}, .data = xs,
		 .nbytes = sizeof(xs)},
		{.name = "y", .dtype = MPCC_DTYPE_I64, .rank = 1, .dims = {B}, .data = labels,
		 .nbytes = sizeof(labels)},
	};
	return eval ? mpcc_trainer_eval(f->tr, in, 2, r) : mpcc_trainer_step(f->tr, in, 2, r);
}

static void
train_steps(fx *f)
{
	mpcc_train_result r;
	for (int i = 0; i < STEPS; i++) {
		assert_int_equal(run(f, false, &r), MPCC_OK);
		assert_false(r.skipped);
	}
}

/* The state tensor of that name, or NULL. */
static const mpcc_tensor *
state(fx *f, const char *name)
{
	for (int i = 0; i < mpcc_trainer_n_state(f->tr); i++) {
		const mpcc_tensor *t;
		assert_int_equal(mpcc_trainer_state(f->tr, i, &t), MPCC_OK);
		if (!strcmp(t->name, name))
			return t;
	}
	return NULL;
}

/* Logits of model (a file) compiled as an fp32 inference plan, run on xs
 * on the CPU; external data resolves in tmpdir. Malloc'd. */
static float *
infer(fx *f, const char *path)
{
	mpcc_compile_options co;
	mpcc_plan *p;
	mpcc_session *s;
	mpcc_tensor out;
	size_t n, mn;
	void *plan;
	uint8_t *model = read_file(path, &mn);

	mpcc_compile_options_init(&co);
	co.precision = MPCC_PRECISION_FP32;
	if (mpcc_compile_buffer(f->cx, model, mn, tmpdir, &co, &plan, &n) != MPCC_OK)
		fail_msg("compiling the export: %s", mpcc_context_last_error(f->cx));
	free(model);
	assert_int_equal(mpcc_plan_load_buffer(f->cx, plan, n, &p), MPCC_OK);
	free(plan);
	assert_null(p->train);
	assert_null(p->source);
	assert_int_equal(mpcc_session_create(f->cx, p, "cpu", &s), MPCC_OK);
	int64_t xd[2] = {B, F};
	assert_int_equal(mpcc_session_set_input(s, "x", MPCC_DTYPE_F32, 2, xd, xs, sizeof(xs)),
	                 MPCC_OK);
	assert_int_equal(mpcc_session_run(s), MPCC_OK);
	assert_int_equal(mpcc_session_output(s, 0, &out), MPCC_OK);
	assert_int_equal(out.nbytes, sizeof(float) * B * C);
	float *logits = malloc(out.nbytes);
	assert_non_null(logits);
	memcpy(logits, out.data, out.nbytes);
	mpcc_session_destroy(s);
	mpcc_plan_destroy(p);
	return logits;
}

static Onnx__ModelProto *
unpack_file(const char *path)
{
	size_t n;
	uint8_t *b = read_file(path, &n);
	Onnx__ModelProto *m = onnx__model_proto__unpack(NULL, n, b);
	free(b);
	assert_non_null(m);
	return m;
}

static Onnx__TensorProto *
initializer(const Onnx__ModelProto *m, const char *name)
{
	for (size_t k = 0; k < m->graph->n_initializer; k++)
		if (!strcmp(m->graph->initializer[k]->name, name))
			return m->graph->initializer[k];
	fail_msg("no initializer '%s'", name);
	return NULL;
}

/* A TensorProto packed alone, for byte comparisons. */
static uint8_t *
pack_tensor(const Onnx__TensorProto *t, size_t *n)
{
	*n = onnx__tensor_proto__get_packed_size(t);
	uint8_t *b = malloc(*n + 1);
	assert_non_null(b);
	onnx__tensor_proto__pack(t, b);
	return b;
}

static void
assert_same_tensor(const Onnx__TensorProto *a, const Onnx__TensorProto *b)
{
	size_t na, nb;
	uint8_t *pa = pack_tensor(a, &na), *pb = pack_tensor(b, &nb);
	assert_int_equal(na, nb);
	assert_memory_equal(pa, pb, na);
	free(pa);
	free(pb);
}

/* The exported initializer of a trained weight: the state's bytes inline. */
static void
assert_trained(fx *f, const Onnx__ModelProto *m, const char *name)
{
	const Onnx__TensorProto *t = initializer(m, name);
	const mpcc_tensor *s = state(f, name);

	assert_non_null(s);
	assert_true(t->has_raw_data);
	assert_int_equal(t->raw_data.len, s->nbytes);
	assert_memory_equal(t->raw_data.data, s->data, s->nbytes);
	assert_int_equal(t->n_float_data, 0);
	assert_int_equal(t->n_external_data, 0);
	assert_false(t->has_data_location && t->data_location ==
	             ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL);
	assert_int_equal(t->data_type, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT);
	assert_int_equal(t->n_dims, (size_t)s->rank);
	for (int i = 0; i < s->rank; i++)
		assert_int_equal(t->dims[i], s->dims[i]);
}

/* ---------------------------------------------------------------- tests */

/* Trained, exported, compiled for inference: the same logits to the bit. */
static void
the_exported_model_gives_the_trainers_logits_bit_for_bit(void **st)
{
	fx *f = *st;
	model_opts mo = {TYPED, TYPED, false, NULL};
	mpcc_train_result r0, r;

	compile_train(f, &mo, NULL, NULL);
	assert_int_equal(run(f, true, &r0), MPCC_OK);
	float before[B * C];
	memcpy(before, r0.logits.data, sizeof(before));
	train_steps(f);
	assert_int_equal(mpcc_trainer_export(f->tr, tmp_path("mlp.onnx")), MPCC_OK);
	assert_int_equal(run(f, true, &r), MPCC_OK);
	assert_int_equal(r.logits.dtype, MPCC_DTYPE_F32);
	assert_int_equal(r.logits.nbytes, sizeof(before));
	assert_true(memcmp(before, r.logits.data, sizeof(before)) != 0); /* it trained */
	float *got = infer(f, tmp_path("mlp.onnx"));
	assert_memory_equal(got, r.logits.data, sizeof(before));
	free(got);
}

/*
 * Trained initializers hold the state's bytes; every other byte of the
 * model is the source's: with the source's initializers swapped back in,
 * the export packs to the source exactly.
 */
static void
everything_but_the_trained_data_is_kept_byte_for_byte(void **st)
{
	fx *f = *st;
	model_opts mo = {TYPED, RAW, false, NULL};

	compile_train(f, &mo, NULL, NULL);
	train_steps(f);
	assert_int_equal(mpcc_trainer_export(f->tr, tmp_path("mlp.onnx")), MPCC_OK);
	Onnx__ModelProto *src = onnx__model_proto__unpack(NULL, f->model_size, f->model);
	Onnx__ModelProto *got = unpack_file(tmp_path("mlp.onnx"));
	assert_non_null(src);
	assert_null(state(f, "W1"));     /* frozen */
	assert_null(state(f, "unused")); /* no path to the loss */
	assert_non_null(state(f, "opt/W2/m"));
	assert_trained(f, got, "W2"); /* was float_data */
	assert_trained(f, got, "b1"); /* was raw_data */
	assert_trained(f, got, "b2");
	assert_same_tensor(initializer(got, "W1"), initializer(src, "W1"));
	assert_same_tensor(initializer(got, "unused"), initializer(src, "unused"));
	assert_true(memcmp(initializer(got, "W2")->raw_data.data, W2, sizeof(W2)) != 0);

	Onnx__TensorProto **mine = got->graph->initializer;
	size_t n_mine = got->graph->n_initializer;
	got->graph->initializer = src->graph->initializer;
	got->graph->n_initializer = src->graph->n_initializer;
	size_t n = onnx__model_proto__get_packed_size(got);
	uint8_t *b = malloc(n);
	assert_non_null(b);
	onnx__model_proto__pack(got, b);
	got->graph->initializer = mine;
	got->graph->n_initializer = n_mine;
	assert_int_equal(n, f->model_size);
	assert_memory_equal(b, f->model, n);
	free(b);
	onnx__model_proto__free_unpacked(src, NULL);
	onnx__model_proto__free_unpacked(got, NULL);
}

/* A checkpoint restores the state bit for bit, so it exports the same file
 * (what `mpcc export --checkpoint` does); before any step, the export is
 * the plan's initial weights. */
static void
a_checkpoint_exports_as_the_trainer_it_was_saved_from(void **st)
{
	fx *f = *st;
	model_opts mo = {TYPED, TYPED, false, NULL};
	mpcc_trainer *fresh;
	size_t n1, n2;

	compile_train(f, &mo, NULL, NULL);
	assert_int_equal(mpcc_trainer_create(f->cx, f->plan, "interp", &fresh), MPCC_OK);
	assert_int_equal(mpcc_trainer_export(fresh, tmp_path("initial.onnx")), MPCC_OK);
	Onnx__ModelProto *m = unpack_file(tmp_path("initial.onnx"));
	assert_memory_equal(initializer(m, "W2")->raw_data.data, W2, sizeof(W2));
	onnx__model_proto__free_unpacked(m, NULL);

	train_steps(f);
	assert_int_equal(mpcc_trainer_save(f->tr, tmp_path("mlp.ckpt")), MPCC_OK);
	assert_int_equal(mpcc_trainer_export(f->tr, tmp_path("a.onnx")), MPCC_OK);
	assert_int_equal(mpcc_trainer_load(fresh, tmp_path("mlp.ckpt")), MPCC_OK);
	assert_int_equal(mpcc_trainer_export(fresh, tmp_path("b.onnx")), MPCC_OK);
	mpcc_trainer_destroy(fresh);
	uint8_t *a = read_file(tmp_path("a.onnx"), &n1), *b = read_file(tmp_path("b.onnx"), &n2);
	assert_int_equal(n1, n2);
	assert_memory_equal(a, b, n1);
	free(a);
	free(b);
}

static void
write_external(const char *name, const float *data, size_t nbytes)
{
	char file[64];
	snprintf(file, sizeof(file), "%s.bin", name);
	write_file(tmp_path(file), data, nbytes);
}

/* Compiled from a file whose W2 (trained) and W1 (frozen) live in external
 * files: W2 comes back inline, W1 keeps its reference. */
static void
a_trained_external_initializer_is_written_inline(void **st)
{
	fx *f = *st;
	model_opts mo = {EXTERNAL, TYPED, false, NULL};
	mpcc_compile_options co;
	mpcc_train_options o;
	mpcc_train_result r;
	void *plan;
	size_t n;

	/* W1 is the frozen one; make it external too */
	f->model = pack_mlp(&mo, &f->model_size);
	Onnx__ModelProto *m = onnx__model_proto__unpack(NULL, f->model_size, f->model);
	assert_non_null(m);
	Onnx__TensorProto *w1 = initializer(m, "W1");
	ext x;
	size_t n_float = w1->n_float_data;
	w1->n_float_data = 0;
	set_external(w1, &x, "W1.bin", sizeof(W1));
	free(f->model);
	f->model_size = onnx__model_proto__get_packed_size(m);
	f->model = malloc(f->model_size);
	assert_non_null(f->model);
	onnx__model_proto__pack(m, f->model);
	w1->n_float_data = n_float;
	w1->n_external_data = 0;
	w1->external_data = NULL;
	onnx__model_proto__free_unpacked(m, NULL);
	write_file(tmp_path("source.onnx"), f->model, f->model_size);
	write_external("W1", W1, sizeof(W1));
	write_external("W2", W2, sizeof(W2));

	train_options(&o);
	mpcc_compile_options_init(&co);
	co.precision = MPCC_PRECISION_FP32;
	co.train = &o;
	if (mpcc_compile_file(f->cx, tmp_path("source.onnx"), &co, tmp_path("step.plan")) !=
	    MPCC_OK)
		fail_msg("compile: %s", mpcc_context_last_error(f->cx));
	plan = read_file(tmp_path("step.plan"), &n);
	load_trainer(f, plan, n);
	free(plan);
	assert_non_null(f->plan->source);
	assert_int_equal(f->plan->source->model_size, f->model_size);
	assert_memory_equal(f->plan->source->model, f->model, f->model_size);
	train_steps(f);
	assert_int_equal(mpcc_trainer_export(f->tr, tmp_path("mlp.onnx")), MPCC_OK);

	Onnx__ModelProto *src = onnx__model_proto__unpack(NULL, f->model_size, f->model);
	Onnx__ModelProto *got = unpack_file(tmp_path("mlp.onnx"));
	assert_non_null(src);
	assert_trained(f, got, "W2");
	assert_int_equal(initializer(got, "W1")->n_external_data, 3);
	assert_same_tensor(initializer(got, "W1"), initializer(src, "W1"));
	onnx__model_proto__free_unpacked(src, NULL);
	onnx__model_proto__free_unpacked(got, NULL);

	assert_int_equal(run(f, true, &r), MPCC_OK);
	float *logits = infer(f, tmp_path("mlp.onnx")); /* W1.bin is beside it */
	assert_memory_equal(logits, r.logits.data, sizeof(float) * B * C);
	free(logits);
}

/* --low-io stores the master weights as f16 states: exported widened to
 * f32, which is exact. */
static void
a_low_io_weight_is_exported_widened_to_f32(void **st)
{
	fx *f = *st;
	model_opts mo = {TYPED, TYPED, false, NULL};
	mpcc_compile_options co;
	mpcc_train_options o;
	mpcc_train_result r;
	void *plan;
	size_t n;

	f->model = pack_mlp(&mo, &f->model_size);
	train_options(&o);
	o.optimizer = MPCC_OPTIMIZER_SGD;
	o.loss_scaling = MPCC_LOSS_SCALING_OFF;
	mpcc_compile_options_init(&co);
	co.precision = MPCC_PRECISION_FP16;
	co.low_io = true;
	co.train = &o;
	if (mpcc_compile_buffer(f->cx, f->model, f->model_size, NULL, &co, &plan, &n) != MPCC_OK)
		fail_msg("compile: %s", mpcc_context_last_error(f->cx));
	load_trainer(f, plan, n);
	free(plan);
	mpcc_tensor in[2] = {
		{.name = "x", .dtype = MPCC_DTYPE_F16, .rank = 2, .dims = {B, F}},
		{.name = "y", .dtype = MPCC_DTYPE_I64, .rank = 1, .dims = {B}, .data = labels,
		 .nbytes = sizeof(labels)},
	};
	uint16_t xh[B * F];
	for (int i = 0; i < B * F; i++)
		xh[i] = mpcc_f32_to_f16(xs[i]);
	in[0].data = xh;
	in[0].nbytes = sizeof(xh);
	for (int i = 0; i < STEPS; i++)
		assert_int_equal(mpcc_trainer_step(f->tr, in, 2, &r), MPCC_OK);
	assert_int_equal(mpcc_trainer_export(f->tr, tmp_path("mlp.onnx")), MPCC_OK);
	Onnx__ModelProto *m = unpack_file(tmp_path("mlp.onnx"));
	const mpcc_tensor *w = state(f, "W2");
	assert_non_null(w);
	assert_int_equal(w->dtype, MPCC_DTYPE_F16);
	const Onnx__TensorProto *t = initializer(m, "W2");
	assert_int_equal(t->raw_data.len, sizeof(W2));
	for (int i = 0; i < H * C; i++) {
		float got;
		memcpy(&got, t->raw_data.data + 4 * i, 4);
		assert_true(got == mpcc_f16_to_f32(((const uint16_t *)w->data)[i]));
	}
	assert_true(memcmp(t->raw_data.data, W2, sizeof(W2)) != 0);
	onnx__model_proto__free_unpacked(m, NULL);
}

/* Inference plans are unchanged: no section ONNX. A training plan's lists
 * the trained initializers among its states, in state order. */
static void
only_training_plans_carry_the_source_model(void **st)
{
	fx *f = *st;
	model_opts mo = {TYPED, TYPED, false, NULL};
	mpcc_compile_options co;
	mpcc_plan *p;
	void *buf;
	size_t n;

	f->model = pack_mlp(&mo, &f->model_size);
	mpcc_compile_options_init(&co);
	co.precision = MPCC_PRECISION_FP32;
	assert_int_equal(mpcc_compile_buffer(f->cx, f->model, f->model_size, NULL, &co, &buf, &n),
	                 MPCC_OK);
	assert_null(memmem(buf, n, "ONNX", 4));
	assert_int_equal(mpcc_plan_load_buffer(f->cx, buf, n, &p), MPCC_OK);
	assert_null(p->source);
	mpcc_plan_destroy(p);
	free(buf);
	free(f->model);

	compile_train(f, &mo, NULL, NULL);
	const mpcc_plan_source *s = f->plan->source;
	assert_non_null(s);
	assert_int_equal(s->model_size, f->model_size);
	assert_memory_equal(s->model, f->model, f->model_size);
	assert_int_equal(s->n_weights, 3);
	const char *want[3] = {"b1", "W2", "b2"};
	for (int i = 0; i < 3; i++) {
		const mpcc_tensor *t;
		assert_int_equal(mpcc_trainer_state(f->tr, s->weights[i], &t), MPCC_OK);
		assert_string_equal(t->name, want[i]);
	}
}

/* A training plan written without the section (as before it existed)
 * still loads and trains; export says what to do. */
static void
a_plan_without_its_source_model_says_to_recompile(void **st)
{
	fx *f = *st;
	model_opts mo = {TYPED, TYPED, false, NULL};
	mpcc_diag d;
	void *buf;
	size_t n;

	compile_train(f, &mo, NULL, NULL);
	mpcc_trainer_destroy(f->tr);
	f->tr = NULL;
	free(f->plan->source->model);
	f->plan->source = NULL;
	mpcc_diag_init(&d);
	assert_int_equal(mpcc_plan_serialize(f->plan, &buf, &n, &d), MPCC_OK);
	mpcc_plan_destroy(f->plan);
	f->plan = NULL;
	load_trainer(f, buf, n);
	free(buf);
	assert_null(f->plan->source);
	train_steps(f);
	assert_int_equal(mpcc_trainer_export(f->tr, tmp_path("none.onnx")), MPCC_ERR_UNSUPPORTED);
	assert_string_equal(mpcc_context_last_error(f->cx),
	                    "plan has no source model: recompile it with this mpcc");
	assert_int_equal(access(tmp_path("none.onnx"), F_OK), -1);
}

/* Where section ONNX lies in a plan file. */
static void
find_onnx_section(const uint8_t *b, size_t n, size_t *off, size_t *len)
{
	uint32_t count;
	memcpy(&count, b + 12, 4);
	for (uint32_t i = 0; i < count; i++) {
		const uint8_t *e = b + 64 + 24 * (size_t)i;
		if (memcmp(e, "ONNX", 4) == 0) {
			uint64_t o, l;
			memcpy(&o, e + 8, 8);
			memcpy(&l, e + 16, 8);
			assert_true(o + l <= n);
			*off = (size_t)o;
			*len = (size_t)l;
			return;
		}
	}
	fail_msg("no section ONNX");
}

static void
put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

/* Loads plan (fixing its checksum first): MPCC_ERR_INVALID, one line
 * naming the section, containing want. */
static void
refused(fx *f, uint8_t *plan, size_t n, const char *want)
{
	mpcc_plan *p = NULL;
	uint64_t sum = mpcc_fnv1a64(plan + 64, n - 64);
	memcpy(plan + 16, &sum, 8);
	assert_int_equal(mpcc_plan_load_buffer(f->cx, plan, n, &p), MPCC_ERR_INVALID);
	assert_null(p);
	const char *msg = mpcc_context_last_error(f->cx);
	if (strncmp(msg, "damaged plan: section 'ONNX': ", 30) != 0 || !strstr(msg, want) ||
	    strchr(msg, '\n'))
		fail_msg("message '%s', wanted '%s'", msg, want);
}

/*
 * Layout (docs/plan-format.md): u32 version, u32 weight count W, W u32
 * state indices, u64 model size N, N model bytes. Each field damaged in
 * turn, with a valid file checksum, is refused by name.
 */
static void
a_damaged_source_section_is_refused(void **st)
{
	fx *f = *st;
	model_opts mo = {TYPED, TYPED, false, NULL};
	void *plan;
	size_t n, off = 0, len = 0;

	compile_train(f, &mo, &plan, &n);
	find_onnx_section(plan, n, &off, &len);
	uint8_t *s0 = (uint8_t *)plan + off, *b = malloc(n);
	assert_non_null(b);
	uint32_t w;
	memcpy(&w, s0 + 4, 4);
	assert_int_equal(w, 3);
	size_t model_at = 8 + 4 * 3 + 8;
	assert_int_equal(len, model_at + f->model_size);
	uint8_t *s = b + off;

#define DAMAGED(edit, want)                                                                \
	do {                                                                                   \
		memcpy(b, plan, n);                                                                \
		edit;                                                                              \
		refused(f, b, n, want);                                                            \
	} while (0)
	DAMAGED(put32(s, 2), "layout version 2, this mpcc reads 1");
	DAMAGED(put32(s, 0), "layout version 0");
	DAMAGED(put32(s + 4, 1000), "1000 trained weights, the plan has");
	DAMAGED(put32(s + 12, 1000), "weight 1: state 1000, the plan has 10");
	DAMAGED(memcpy(s + 12, s + 8, 4), "weight 1: state 0 does not follow state 0");
	/* the step count is an int64 state: no weight */
	DAMAGED(put32(s + 16, (uint32_t)mpcc_trainer_n_state(f->tr) - 1), "is i64, not f32");
	DAMAGED(put32(s + 20, (uint32_t)f->model_size + 1), "the section holds");
	DAMAGED(put32(s + 20, 0), "model of 0 bytes");
	DAMAGED(put32(s + 20, (uint32_t)f->model_size - 2), "2 trailing bytes");
	DAMAGED(s[model_at] = 0x07, "the model is no ONNX model (byte 0: field 0 with wire type 7)");
	/* field 1 (ir_version, a varint) as a length-delimited field */
	DAMAGED(s[model_at] = 0x0a, "field 1 with wire type 2");
	/* one doc_string field (6) over the whole model: valid, but no graph */
	DAMAGED((s[model_at] = 0x32, s[model_at + 1] = 0x80 | ((f->model_size - 4) & 0x7f),
	         s[model_at + 2] = 0x80 | (((f->model_size - 4) >> 7) & 0x7f),
	         s[model_at + 3] = (uint8_t)((f->model_size - 4) >> 14)),
	        "the model has no graph");
	/* a length past the end */
	DAMAGED((s[model_at] = 0x32, s[model_at + 1] = 0xff, s[model_at + 2] = 0x7f),
	        "field 6 runs past its end");
#undef DAMAGED
	/* the undamaged copy loads */
	mpcc_plan *p;
	assert_int_equal(mpcc_plan_load_buffer(f->cx, plan, n, &p), MPCC_OK);
	mpcc_plan_destroy(p);
	free(b);
	free(plan);
}

/* A source model that does not fit the state: the weight is named. */
static void
a_weight_the_source_model_lacks_or_shapes_otherwise_is_named(void **st)
{
	fx *f = *st;
	model_opts mo = {TYPED, TYPED, false, NULL};
	model_opts renamed = {TYPED, TYPED, false, "W2x"};
	model_opts transposed = {TYPED, TYPED, true, NULL};
	uint8_t *good, *bad;
	size_t n_good, n_bad;

	compile_train(f, &mo, NULL, NULL);
	mpcc_plan_source *s = f->plan->source;
	good = s->model;
	n_good = s->model_size;

	bad = pack_mlp(&renamed, &n_bad);
	s->model = bad;
	s->model_size = n_bad;
	assert_int_equal(mpcc_trainer_export(f->tr, tmp_path("bad.onnx")), MPCC_ERR_INVALID);
	assert_string_equal(mpcc_context_last_error(f->cx),
	                    "trained weight 'W2' names no initializer of the source model");
	free(bad);

	bad = pack_mlp(&transposed, &n_bad);
	s->model = bad;
	s->model_size = n_bad;
	assert_int_equal(mpcc_trainer_export(f->tr, tmp_path("bad.onnx")), MPCC_ERR_INVALID);
	assert_string_equal(mpcc_context_last_error(f->cx),
	                    "trained weight 'W2' is f32 [5,3], the source model's initializer "
	                    "f32 [3,5]");
	free(bad);

	s->model = good;
	s->model_size = n_good;
	assert_int_equal(access(tmp_path("bad.onnx"), F_OK), -1);
	assert_int_equal(mpcc_trainer_export(f->tr, tmp_path("good.onnx")), MPCC_OK);
}

/* ---------------------------------------------------------------- main */

static int
setup(void **st)
{
	fx *f = calloc(1, sizeof(*f));
	if (!f || mpcc_context_create(&f->cx) != MPCC_OK) {
		free(f);
		return -1;
	}
	*st = f;
	return 0;
}

static int
teardown(void **st)
{
	fx *f = *st;
	mpcc_trainer_destroy(f->tr);
	mpcc_plan_destroy(f->plan);
	mpcc_context_destroy(f->cx);
	free(f->model);
	free(f);
	return 0;
}

static int
make_tmpdir(void **st)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/mpcc_export_XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int
remove_tmpdir(void **st)
{
	static const char *const names[] = {"mlp.onnx", "initial.onnx", "a.onnx", "b.onnx",
	                                    "mlp.ckpt", "source.onnx", "step.plan", "W1.bin",
	                                    "W2.bin", "good.onnx"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		remove(tmp_path(names[i]));
	return rmdir(tmpdir);
}

static void
make_data(void)
{
	uint64_t s = 7;
	float *all[5] = {W1, b1, W2, b2, xs};
	int n[5] = {F * H, H, H * C, C, B * F};
	for (int k = 0; k < 5; k++)
		for (int i = 0; i < n[k]; i++) {
			s = s * 6364136223846793005ull + 1442695040888963407ull;
			all[k][i] = (float)((double)(s >> 40) / (double)(1 << 24) * 2 - 1);
		}
	for (int i = 0; i < B; i++)
		labels[i] = i % C;
}

#define TEST(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		TEST(the_exported_model_gives_the_trainers_logits_bit_for_bit),
		TEST(everything_but_the_trained_data_is_kept_byte_for_byte),
		TEST(a_checkpoint_exports_as_the_trainer_it_was_saved_from),
		TEST(a_trained_external_initializer_is_written_inline),
		TEST(a_low_io_weight_is_exported_widened_to_f32),
		TEST(only_training_plans_carry_the_source_model),
		TEST(a_plan_without_its_source_model_says_to_recompile),
		TEST(a_damaged_source_section_is_refused),
		TEST(a_weight_the_source_model_lacks_or_shapes_otherwise_is_named),
	};
	make_data();
	return cmocka_run_group_tests(tests, make_tmpdir, remove_tmpdir);
}
