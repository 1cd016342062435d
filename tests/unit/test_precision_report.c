/*
 * test_precision_report.c - the precision report (issue 3, point 5): the
 * text table of a small fp16 graph checked literally, JSON identical across
 * two compiles, FLOPs estimates, cast counts, the plan section PRND kept by
 * a round trip and refused when damaged, `explain`, and the HTML page.
 *
 * The small graph is y = Softmax(x @ w + b), x[2,4], w[4,3], b[3], built
 * with the IR calls and compiled by the real pipeline (fp16), lowering,
 * fusion and plan; the dumps come through the public API from the loaded
 * plan, as the CLI gets them.
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
#include <unistd.h>

#include "codegen/fuse.h"
#include "codegen/lower.h"
#include "passes/passes.h"
#include "runtime/plan.h"

static int32_t
add_value(mpcc_graph *g, const char *name, int rank, const int64_t *dims)
{
	int32_t v = mpcc_graph_add_value(g, name);
	assert_true(v >= 0);
	g->values[v].dtype = MPCC_DTYPE_F32;
	g->values[v].rank = rank;
	for (int i = 0; i < rank; i++)
		g->values[v].dims[i] = dims[i];
	return v;
}

static int32_t
add_const(mpcc_graph *g, const char *name, int rank, const int64_t *dims)
{
	int32_t v = add_value(g, name, rank, dims);
	int64_t n = mpcc_value_numel(&g->values[v]);
	float *p = malloc((size_t)n * sizeof(float));
	assert_non_null(p);
	for (int64_t i = 0; i < n; i++)
		p[i] = 0.25f * (float)(i % 7) - 0.5f;
	mpcc_value_set_data(&g->values[v], p, (size_t)n * sizeof(float));
	return v;
}

/* y = Softmax(x @ w + b); the MatMul is named mm_name. */
static mpcc_graph *
small_graph(const char *mm_name)
{
	static const int64_t dx[] = {2, 4}, dw[] = {4, 3}, db[] = {3};
	mpcc_graph *g;

	assert_int_equal(mpcc_graph_create(&g), MPCC_OK);
	g->opset = 17;
	int32_t x = add_value(g, "x", 2, dx);
	assert_int_equal(mpcc_graph_add_input(g, x), MPCC_OK);
	int32_t w = add_const(g, "w", 2, dw), b = add_const(g, "b", 1, db);
	int32_t h = mpcc_graph_add_value(g, "h"), a = mpcc_graph_add_value(g, "a");
	int32_t y = mpcc_graph_add_value(g, "y");
	int32_t in_mm[] = {x, w}, in_add[] = {h, b};
	assert_true(mpcc_graph_add_node(g, MPCC_OP_MATMUL, mm_name, 2, in_mm, 1, &h) >= 0);
	assert_true(mpcc_graph_add_node(g, MPCC_OP_ADD, "add", 2, in_add, 1, &a) >= 0);
	int32_t sm = mpcc_graph_add_node(g, MPCC_OP_SOFTMAX, "sm", 1, &a, 1, &y);
	assert_true(sm >= 0);
	mpcc_node_add_attr(g, sm, "axis", MPCC_ATTR_INT)->i = -1;
	assert_int_equal(mpcc_graph_add_output(g, y), MPCC_OK);
	return g;
}

/* Runs the compile path of runtime/api.c on g (destroyed) and returns the
 * serialised plan. */
static void
compile(mpcc_graph *g, mpcc_precision prec, void **out, size_t *out_size)
{
	mpcc_compile_options o;
	mpcc_diag d;
	mpcc_lower lx;
	mpcc_plan *p = NULL;

	mpcc_compile_options_init(&o);
	o.precision = prec;
	mpcc_diag_init(&d);
	mpcc_pass_ctx pcx = {.d = &d, .opts = &o};
	if (mpcc_run_pipeline(g, &pcx) != MPCC_OK)
		fail_msg("pipeline: %s", d.msg);
	mpcc_lower_init(&lx, g, &d);
	assert_int_equal(mpcc_lower_graph(&lx), MPCC_OK);
	assert_int_equal(mpcc_fuse_kernels(&lx, NULL), MPCC_OK);
	if (mpcc_plan_build(g, &lx, prec, &p, &d) != MPCC_OK)
		fail_msg("plan: %s", d.msg);
	mpcc_lower_fini(&lx);
	mpcc_graph_destroy(g);
	assert_non_null(p->prec_report);
	assert_int_equal(mpcc_plan_serialize(p, out, out_size, &d), MPCC_OK);
	mpcc_plan_free(p);
}

static char *
dump(const void *buf, size_t size, mpcc_dump_format fmt)
{
	mpcc_context *cx;
	mpcc_plan *p;
	char *text = NULL;

	assert_int_equal(mpcc_context_create(&cx), MPCC_OK);
	if (mpcc_plan_load_buffer(cx, buf, size, &p) != MPCC_OK)
		fail_msg("load: %s", mpcc_context_last_error(cx));
	assert_int_equal(mpcc_plan_precision_dump(cx, p, fmt, &text), MPCC_OK);
	mpcc_plan_destroy(p);
	mpcc_context_destroy(cx);
	return text;
}

/*
 * Checked by hand: the MatMul runs in f16 with f32 accumulation and the Add
 * follows it, so x needs a cast to f16 (w and b are converted at compile
 * time), and Softmax stays f32 behind a cast back. FLOPs: MatMul 2*6*4 =
 * 48, Add and Softmax 6 each. Bytes: cast x 32+16, MatMul 16+24+12, Add
 * 12+6+12, cast a 12+24, Softmax 24+24: f32 104, f16 110.
 */
static void
text_dump_of_a_small_fp16_graph_is_exact(void **state)
{
	void *buf;
	size_t size;

	compile(small_graph("mm"), MPCC_PRECISION_FP16, &buf, &size);
	char *text = dump(buf, size, MPCC_DUMP_TEXT);
	assert_string_equal(
		text,
		"precision report: mode fp16, 3 nodes, 2 casts inserted\n"
		"id          name        op       inputs   compute  accum  outputs  range  error  "
		"reason\n"
		"cast:x:f16  Cast_x_f16  Cast     f32      f16      f16    f16      -      -      "
		"cast inserted at a precision boundary\n"
		"n0          mm          MatMul   f16,f16  f16      f32    f16      -      -      "
		"policy: matrix op (MatMul)\n"
		"n1          add         Add      f16,f16  f16      f16    f16      -      -      "
		"follows producer 'mm'\n"
		"cast:a:f32  Cast_a_f32  Cast     f16      f32      f32    f32      -      -      "
		"cast inserted at a precision boundary\n"
		"n2          sm          Softmax  f32      f32      f32    f32      -      -      "
		"policy: numerically sensitive (Softmax)\n"
		"totals:\n"
		"  nodes by compute: f32 1, f16 2, bf16 0\n"
		"  casts inserted: 2\n"
		"  FLOPs: f32 6 (10.0%), f16 54 (90.0%), bf16 0 (0.0%); total 60\n"
		"  bytes: f32 104 (48.6%), f16 110 (51.4%), bf16 0 (0.0%); total 214\n"
		"  low precision (f16, bf16): 90.0% of FLOPs, 51.4% of bytes\n");
	mpcc_free(text);
	free(buf);
}

static void
casts_and_nodes_are_counted(void **state)
{
	void *buf;
	size_t size;

	compile(small_graph("mm"), MPCC_PRECISION_FP16, &buf, &size);
	char *json = dump(buf, size, MPCC_DUMP_JSON);
	assert_non_null(strstr(json, "\"summary\":{\"nodes\":3,\"casts\":2,"));
	assert_non_null(strstr(json, "\"nodes_by_compute\":{\"f32\":1,\"f16\":2,\"bf16\":0}"));
	assert_non_null(strstr(json, "\"low_flops_share\":0.9,"));
	assert_non_null(strstr(json, "{\"id\":\"n0\",\"name\":\"mm\",\"op\":\"MatMul\",\"inputs\":"
	                             "[\"f16\",\"f16\"],\"compute\":\"f16\",\"accumulate\":\"f32\","
	                             "\"outputs\":[\"f16\"],\"reason\":\"policy: matrix op (MatMul)\","
	                             "\"evidence\":[\"policy: matrix op (MatMul)\"],"
	                             "\"range_absmax\":null,\"error\":null,\"flops\":48,\"bytes\":52,"
	                             "\"kernel\":\"k"));
	mpcc_free(json);
	free(buf);

	/* fp32: no casts, everything f32 */
	compile(small_graph("mm"), MPCC_PRECISION_FP32, &buf, &size);
	json = dump(buf, size, MPCC_DUMP_JSON);
	assert_non_null(strstr(json, "\"mode\":\"fp32\""));
	assert_non_null(strstr(json, "\"nodes\":3,\"casts\":0,"));
	assert_non_null(strstr(json, "\"low_flops_share\":0,"));
	mpcc_free(json);
	free(buf);
}

static char *
compile_model_json(const char *model)
{
	char plan_path[256];
	mpcc_context *cx;
	mpcc_compile_options o;
	mpcc_plan *p;
	char *json = NULL;

	snprintf(plan_path, sizeof(plan_path), "/tmp/mpcc_test_prec_%d.plan", (int)getpid());
	assert_int_equal(mpcc_context_create(&cx), MPCC_OK);
	mpcc_compile_options_init(&o);
	o.precision = MPCC_PRECISION_FP16;
	if (mpcc_compile_file(cx, model, &o, plan_path) != MPCC_OK)
		fail_msg("compile: %s", mpcc_context_last_error(cx));
	assert_int_equal(mpcc_plan_load(cx, plan_path, &p), MPCC_OK);
	unlink(plan_path);
	assert_int_equal(mpcc_plan_precision_dump(cx, p, MPCC_DUMP_JSON, &json), MPCC_OK);
	mpcc_plan_destroy(p);
	mpcc_context_destroy(cx);
	return json;
}

static void
json_is_identical_across_two_compiles(void **state)
{
	char *a = compile_model_json("tests/models/transformer/model.onnx");
	char *b = compile_model_json("tests/models/transformer/model.onnx");
	assert_string_equal(a, b);
	assert_non_null(strstr(a, "{\"schema\":\"mpcc-precision/1\",\"mode\":\"fp16\",\n"));
	assert_non_null(strstr(a, "\"op\":\"LayerNormalization\""));
	assert_non_null(strstr(a, "\"id\":\"cast:"));
	mpcc_free(a);
	mpcc_free(b);
}

static uint64_t
flops_of(mpcc_graph *g, mpcc_op op, int n_in, const int32_t *in, int32_t out)
{
	int32_t n = mpcc_graph_add_node(g, op, NULL, n_in, in, 1, &out);
	assert_true(n >= 0);
	return mpcc_node_flops(g, &g->nodes[n]);
}

static void
flops_of_matrix_ops_count_multiply_adds_twice(void **state)
{
	mpcc_graph *g;
	assert_int_equal(mpcc_graph_create(&g), MPCC_OK);

	/* MatMul [2,3,4,5] x [5,6] -> [2,3,4,6]: 2 * 144 * 5 */
	static const int64_t da[] = {2, 3, 4, 5}, db[] = {5, 6}, dy[] = {2, 3, 4, 6};
	int32_t mm_in[] = {add_value(g, "a", 4, da), add_value(g, "b", 2, db)};
	int32_t my = add_value(g, "y", 4, dy);
	assert_int_equal(flops_of(g, MPCC_OP_MATMUL, 2, mm_in, my), 1440);

	/* Conv X[1,4,8,8] W[6,2,3,3] group 2 -> Y[1,6,6,6]: 2 * 216 * 2 * 9 */
	static const int64_t dx[] = {1, 4, 8, 8}, dw[] = {6, 2, 3, 3}, dc[] = {1, 6, 6, 6};
	int32_t x = add_value(g, "cx", 4, dx), w = add_value(g, "cw", 4, dw);
	int32_t cy = add_value(g, "cy", 4, dc);
	int32_t conv_in[] = {x, w};
	assert_int_equal(flops_of(g, MPCC_OP_CONV, 2, conv_in, cy), 7776);

	/* Gemm with transA: A[5,2] -> M=2, K=5; B[5,3]; Y[2,3]: 2 * 6 * 5 */
	static const int64_t dga[] = {5, 2}, dgb[] = {5, 3}, dgy[] = {2, 3};
	int32_t ga = add_value(g, "ga", 2, dga), gb = add_value(g, "gb", 2, dgb);
	int32_t gy = add_value(g, "gy", 2, dgy);
	int32_t gemm_in[] = {ga, gb};
	int32_t gn = mpcc_graph_add_node(g, MPCC_OP_GEMM, "gemm", 2, gemm_in, 1, &gy);
	mpcc_node_add_attr(g, gn, "transA", MPCC_ATTR_INT)->i = 1;
	assert_int_equal(mpcc_node_flops(g, &g->nodes[gn]), 60);

	/* attention scores "bhqd,bhkd->bhqk", B1 H2 Q3 K4 D5: 2 * 24 * 5 */
	static const int64_t dq[] = {1, 2, 3, 5}, dk[] = {1, 2, 4, 5}, ds[] = {1, 2, 3, 4};
	int32_t q = add_value(g, "q", 4, dq), k = add_value(g, "k", 4, dk);
	int32_t s = add_value(g, "s", 4, ds);
	int32_t es_in[] = {q, k};
	int32_t en = mpcc_graph_add_node(g, MPCC_OP_EINSUM, "einsum", 2, es_in, 1, &s);
	mpcc_attr *eq = mpcc_node_add_attr(g, en, "equation", MPCC_ATTR_STRING);
	eq->s = "bhqd,bhkd->bhqk";
	assert_int_equal(mpcc_node_flops(g, &g->nodes[en]), 240);

	/* elementwise: one an output element; data movement: none */
	int32_t relu_in[] = {cy};
	int32_t r = add_value(g, "r", 4, dc);
	assert_int_equal(flops_of(g, MPCC_OP_RELU, 1, relu_in, r), 216);
	int32_t t = add_value(g, "t", 4, dc);
	assert_int_equal(flops_of(g, MPCC_OP_TRANSPOSE, 1, relu_in, t), 0);
	mpcc_graph_destroy(g);
}

static void
plan_round_trip_keeps_the_records(void **state)
{
	void *buf, *buf2;
	size_t size, size2;
	mpcc_plan *p;
	mpcc_diag d;

	compile(small_graph("mm"), MPCC_PRECISION_FP16, &buf, &size);
	mpcc_diag_init(&d);
	assert_int_equal(mpcc_plan_deserialize(buf, size, &p, &d), MPCC_OK);
	assert_non_null(p->prec_report);
	assert_int_equal(p->prec_report->n_records, 5);
	const mpcc_prec_record *mm = &p->prec_report->records[1];
	assert_string_equal(mm->id, "n0");
	assert_int_equal(mm->compute, MPCC_DTYPE_F16);
	assert_int_equal(mm->accum, MPCC_DTYPE_F32);
	assert_int_equal(mm->in[0].producer, 0); /* the cast of x */
	assert_int_equal(mm->in[1].flags, MPCC_PREC_IO_CONST);
	assert_true(isnan(mm->err));
	assert_true(mm->kernel[0] != 0);
	assert_int_equal(mpcc_plan_serialize(p, &buf2, &size2, &d), MPCC_OK);
	assert_int_equal(size, size2);
	assert_memory_equal(buf, buf2, size);
	mpcc_plan_free(p);
	free(buf2);

	/* measured values and evidence survive too */
	mpcc_prec_report *r;
	mpcc_graph *g = small_graph("mm");
	g->nodes[0].compute = g->nodes[0].accum = MPCC_DTYPE_F32;
	g->nodes[0].reason = "f32: error budget, output y rel. error 3e-2 -> 4e-3";
	g->nodes[0].evidence = "policy: matrix op (MatMul)\n"
	                       "f32: error budget, output y rel. error 3e-2 -> 4e-3";
	g->nodes[0].range_absmax = 7.1e4;
	g->nodes[0].err = 4e-3;
	g->prec_summary = "calibration: 8 random samples\nevaluations: 3";
	assert_int_equal(mpcc_prec_report_build(g, MPCC_PRECISION_AUTO, NULL, &r, &d), MPCC_OK);
	assert_int_equal(mpcc_prec_report_serialize(r, &buf2, &size2), MPCC_OK);
	mpcc_prec_report *r2;
	assert_int_equal(mpcc_prec_report_deserialize(buf2, size2, MPCC_PRECISION_AUTO, &r2, &d),
	                 MPCC_OK);
	assert_true(r2->records[0].range_absmax == 7.1e4);
	assert_true(r2->records[0].err == 4e-3);
	assert_string_equal(r2->records[0].evidence, g->nodes[0].evidence);
	char *a = mpcc_prec_report_json(r), *b = mpcc_prec_report_json(r2);
	assert_string_equal(a, b);
	assert_non_null(strstr(a, "\"notes\":[\"calibration: 8 random samples\",\"evaluations: 3\"]"));
	assert_non_null(strstr(a, "\"range_absmax\":71000,\"error\":0.004,"));
	free(a);
	free(b);
	char *ex;
	assert_int_equal(mpcc_prec_report_explain(r2, "mm", &ex, &d), MPCC_OK);
	assert_non_null(strstr(ex, "  decision: f32: error budget, output y"));
	assert_non_null(strstr(ex, "    policy: matrix op (MatMul)\n"
	                           "    f32: error budget, output y rel. error 3e-2 -> 4e-3\n"));
	assert_non_null(strstr(ex, "max |value| 7.1e+04, relative error 0.004"));
	free(ex);
	mpcc_prec_report_destroy(r);
	mpcc_prec_report_destroy(r2);
	mpcc_graph_destroy(g);
	free(buf2);
	free(buf);
}

static uint64_t
fnv(const uint8_t *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}

static void
fix_checksum(uint8_t *b, size_t size)
{
	uint64_t h = fnv(b + 64, size - 64);
	for (int k = 0; k < 8; k++)
		b[16 + k] = (uint8_t)(h >> (8 * k));
}

static uint32_t
rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void
wr32(uint8_t *p, uint32_t v)
{
	for (int k = 0; k < 4; k++)
		p[k] = (uint8_t)(v >> (8 * k));
}

/* Section table entry of PRND: its offset in the file. */
static size_t
prnd_entry(const uint8_t *b)
{
	uint32_t n = rd32(b + 12);
	for (uint32_t i = 0; i < n; i++)
		if (memcmp(b + 64 + 24 * i, "PRND", 4) == 0)
			return 64 + 24 * (size_t)i;
	fail_msg("no PRND section");
	return 0;
}

static void
refused(uint8_t *copy, size_t size, const char *what)
{
	mpcc_plan *p;
	mpcc_diag d;

	fix_checksum(copy, size);
	mpcc_diag_init(&d);
	assert_int_equal(mpcc_plan_deserialize(copy, size, &p, &d), MPCC_ERR_INVALID);
	assert_null(p);
	if (!strstr(d.msg, "damaged plan: section 'PRND': ") || !strstr(d.msg, what))
		fail_msg("unexpected message: %s", d.msg);
}

static void
a_damaged_prnd_section_is_refused(void **state)
{
	uint8_t *buf, *copy;
	size_t size;

	compile(small_graph("mm"), MPCC_PRECISION_FP16, (void **)&buf, &size);
	copy = malloc(size);
	assert_non_null(copy);
	size_t e = prnd_entry(buf);
	size_t off = (size_t)rd32(buf + e + 8), len = (size_t)rd32(buf + e + 16);
	size_t summary_len = rd32(buf + off + 4);
	size_t count_at = off + 8 + summary_len, rec0 = count_at + 4;

	/* a record count beyond the section */
	memcpy(copy, buf, size);
	wr32(copy + count_at, 0x7fffffff);
	refused(copy, size, "record count 2147483647 exceeds the section");
	/* the first record's id length running past the section */
	memcpy(copy, buf, size);
	wr32(copy + rec0 + 4, 0xfffffff0);
	refused(copy, size, "record 0: id length runs past the section");
	/* the section one byte shorter (a length that truncates it) */
	memcpy(copy, buf, size);
	wr32(copy + e + 16, (uint32_t)len - 1);
	refused(copy, size, "record 4 (n2): kernel length runs past the section");
	/* an unknown layout version */
	memcpy(copy, buf, size);
	wr32(copy + off, 2);
	refused(copy, size, "version 2 is newer than this mpcc (1)");
	/* every byte of the section, three ways: refused with a message, or
	 * (names, flops) accepted; never a crash */
	for (size_t i = off; i < off + len; i++) {
		for (int m = 0; m < 3; m++) {
			static const uint8_t masks[3] = {0x01, 0x80, 0xff};
			mpcc_plan *p;
			mpcc_diag d;
			memcpy(copy, buf, size);
			copy[i] ^= masks[m];
			fix_checksum(copy, size);
			mpcc_diag_init(&d);
			if (mpcc_plan_deserialize(copy, size, &p, &d) == MPCC_OK)
				mpcc_plan_free(p);
			else
				assert_non_null(strstr(d.msg, "section 'PRND'"));
		}
	}
	free(copy);
	free(buf);
}

static void
a_plan_without_records_loads_and_says_so(void **state)
{
	mpcc_graph *g = small_graph("mm");
	mpcc_compile_options o;
	mpcc_diag d;
	mpcc_lower lx;
	mpcc_plan *p;
	void *buf;
	size_t size;

	mpcc_compile_options_init(&o);
	mpcc_diag_init(&d);
	mpcc_pass_ctx pcx = {.d = &d, .opts = &o};
	assert_int_equal(mpcc_run_pipeline(g, &pcx), MPCC_OK);
	mpcc_lower_init(&lx, g, &d);
	assert_int_equal(mpcc_lower_graph(&lx), MPCC_OK);
	assert_int_equal(mpcc_plan_build(g, &lx, MPCC_PRECISION_FP32, &p, &d), MPCC_OK);
	mpcc_lower_fini(&lx);
	mpcc_graph_destroy(g);
	mpcc_prec_report_destroy(p->prec_report); /* as an older mpcc wrote it */
	p->prec_report = NULL;
	assert_int_equal(mpcc_plan_serialize(p, &buf, &size, &d), MPCC_OK);
	mpcc_plan_free(p);

	mpcc_context *cx;
	mpcc_plan *lp;
	char *text = (char *)1;
	assert_int_equal(mpcc_context_create(&cx), MPCC_OK);
	assert_int_equal(mpcc_plan_load_buffer(cx, buf, size, &lp), MPCC_OK);
	assert_int_equal(mpcc_plan_precision_dump(cx, lp, MPCC_DUMP_TEXT, &text),
	                 MPCC_ERR_UNSUPPORTED);
	assert_null(text);
	assert_non_null(strstr(mpcc_context_last_error(cx), "has no precision records"));
	assert_int_equal(mpcc_plan_explain(cx, lp, "mm", &text), MPCC_ERR_UNSUPPORTED);
	mpcc_plan_destroy(lp);
	mpcc_context_destroy(cx);
	free(buf);
}

static void
explain_names_the_kernel_and_refuses_an_unknown_node(void **state)
{
	void *buf;
	size_t size;
	mpcc_context *cx;
	mpcc_plan *p;
	char *text;

	compile(small_graph("mm"), MPCC_PRECISION_FP16, &buf, &size);
	assert_int_equal(mpcc_context_create(&cx), MPCC_OK);
	assert_int_equal(mpcc_plan_load_buffer(cx, buf, size, &p), MPCC_OK);
	free(buf);

	assert_int_equal(mpcc_plan_explain(cx, p, "add", &text), MPCC_OK);
	assert_non_null(strstr(text, "node 'add' (Add, id n1)\n"
	                             "  decision: f16: follows producer 'mm'\n"
	                             "  compute f16, accumulate f16\n"
	                             "  evidence:\n"
	                             "    follows producer 'mm'\n"));
	assert_non_null(strstr(text, "    h f16[2,3] from n0 'mm'\n"));
	assert_non_null(strstr(text, "  kernel: k"));
	mpcc_free(text);
	/* by id, a cast */
	assert_int_equal(mpcc_plan_explain(cx, p, "cast:a:f32", &text), MPCC_OK);
	assert_non_null(strstr(text, "inserted by the precision pass"));
	assert_non_null(strstr(text, "    a f16[2,3] from n1 'add'\n"));
	mpcc_free(text);

	text = (char *)1;
	assert_int_equal(mpcc_plan_explain(cx, p, "smx", &text), MPCC_ERR_INVALID);
	assert_null(text);
	const char *msg = mpcc_context_last_error(cx);
	if (!strstr(msg, "no node 'smx' in the plan; closest: 'sm' (n2)"))
		fail_msg("unexpected message: %s", msg);
	assert_int_equal(mpcc_plan_precision_dump(cx, p, (mpcc_dump_format)9, &text),
	                 MPCC_ERR_INVALID);
	mpcc_plan_destroy(p);
	mpcc_context_destroy(cx);
}

static void
html_is_self_contained_and_escapes_names(void **state)
{
	void *buf;
	size_t size;

	compile(small_graph("mm<script>&\"'"), MPCC_PRECISION_FP16, &buf, &size);
	char *html = dump(buf, size, MPCC_DUMP_HTML);
	assert_non_null(strstr(html, "<!DOCTYPE html>"));
	assert_null(strstr(html, "http"));
	assert_null(strstr(html, "<script"));
	assert_null(strstr(html, "src="));
	assert_non_null(strstr(html, "mm&lt;script&gt;&amp;&quot;&#39;"));
	assert_non_null(strstr(html, "<svg "));
	assert_non_null(strstr(html, "class=\"n f16 cast\""));
	assert_non_null(strstr(html, "class=\"n f32\""));
	mpcc_free(html);
	/* the JSON escapes it too */
	char *json = dump(buf, size, MPCC_DUMP_JSON);
	assert_non_null(strstr(json, "\"name\":\"mm<script>&\\\"'\""));
	mpcc_free(json);
	free(buf);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(text_dump_of_a_small_fp16_graph_is_exact),
		cmocka_unit_test(casts_and_nodes_are_counted),
		cmocka_unit_test(json_is_identical_across_two_compiles),
		cmocka_unit_test(flops_of_matrix_ops_count_multiply_adds_twice),
		cmocka_unit_test(plan_round_trip_keeps_the_records),
		cmocka_unit_test(a_damaged_prnd_section_is_refused),
		cmocka_unit_test(a_plan_without_records_loads_and_says_so),
		cmocka_unit_test(explain_names_the_kernel_and_refuses_an_unknown_node),
		cmocka_unit_test(html_is_self_contained_and_escapes_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
