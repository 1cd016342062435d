/*
 * test_plan.c - the plan: built from a small hand-made graph and kernel,
 * serialised and loaded back unchanged, damaged files refused with a message
 * (every header byte, sampled body bytes with the checksum repaired, every
 * truncation), and run by a session on the interpreter backend.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/lower.h"
#include "runtime/plan.h"

/* y[2,3] = x[2,3] + w[3], w = {10, 20, 30} a constant. */
static void
build_plan(void **out, size_t *out_size)
{
	mpcc_graph *g;
	mpcc_lower lx;
	mpcc_diag d;
	mpcc_plan *p;

	mpcc_diag_init(&d);
	assert_int_equal(mpcc_graph_create(&g), MPCC_OK);
	int32_t x = mpcc_graph_add_value(g, "x"), w = mpcc_graph_add_value(g, "w"),
		y = mpcc_graph_add_value(g, "y:0");
	assert_true(x >= 0 && w >= 0 && y >= 0);
	mpcc_value *vx = &g->values[x], *vw = &g->values[w], *vy = &g->values[y];
	vx->dtype = vy->dtype = vw->dtype = MPCC_DTYPE_F32;
	vx->rank = vy->rank = 2;
	vx->dims[0] = vy->dims[0] = 2;
	vx->dims[1] = vy->dims[1] = 3;
	vw->rank = 1;
	vw->dims[0] = 3;
	float *wd = malloc(3 * sizeof(float));
	assert_non_null(wd);
	wd[0] = 10, wd[1] = 20, wd[2] = 30;
	mpcc_value_set_data(vw, wd, 3 * sizeof(float));
	vx->flags |= MPCC_VALUE_INPUT;
	vy->flags |= MPCC_VALUE_OUTPUT;
	int32_t in[2] = {x, w};
	int32_t node = mpcc_graph_add_node(g, MPCC_OP_ADD, "add", 2, in, 1, &y);
	assert_true(node >= 0);
	g->inputs = mpcc_arena_alloc(&g->arena, sizeof(int32_t));
	g->outputs = mpcc_arena_alloc(&g->arena, sizeof(int32_t));
	g->inputs[0] = x;
	g->outputs[0] = y;
	g->n_inputs = g->n_outputs = 1;

	mpcc_lower_init(&lx, g, &d);
	kir_kernel *k = mpcc_lower_kernel(&lx, node, "");
	assert_non_null(k);
	int bx = kir_buf_add(k, MPCC_DTYPE_F32, KIR_BUF_PARAM, x, 6);
	int bw = kir_buf_add(k, MPCC_DTYPE_F32, KIR_BUF_PARAM, w, 3);
	int by = kir_buf_add(k, MPCC_DTYPE_F32, KIR_BUF_PARAM, y, 6);
	int64_t ext[2] = {2, 3};
	int32_t i = kir_var(k, 0), j = kir_var(k, 1);
	int32_t lin = kir_iadd(k, kir_imul(k, i, 3), j);
	int32_t sum = kir_binary(k, KIR_ADD, kir_load(k, bx, lin), kir_load(k, bw, j));
	kir_stage *st = kir_stage_add(k, 2, ext, 0, NULL, KIR_RED_NONE, MPCC_DTYPE_UNDEF, 0);
	kir_stage_store(k, st, by, lin, sum);
	assert_true(kir_kernel_ok(k));
	assert_int_equal(kir_validate(k, &d), MPCC_OK);

	assert_int_equal(mpcc_plan_build(g, &lx, MPCC_PRECISION_FP32, &p, &d), MPCC_OK);
	assert_int_equal(lx.n_kernels, 0);
	mpcc_lower_fini(&lx);
	mpcc_graph_destroy(g);
	assert_int_equal(p->n_tensors, 3);
	assert_int_equal(p->n_kernels, 1);
	assert_int_equal(mpcc_plan_serialize(p, out, out_size, &d), MPCC_OK);
	mpcc_plan_free(p);
}

static void
plan_round_trips_unchanged(void **state)
{
	void *buf, *buf2;
	size_t size, size2;
	mpcc_plan *p;
	mpcc_diag d;

	build_plan(&buf, &size);
	mpcc_diag_init(&d);
	assert_int_equal(mpcc_plan_deserialize(buf, size, &p, &d), MPCC_OK);
	assert_int_equal(p->n_inputs, 1);
	assert_int_equal(p->n_outputs, 1);
	assert_string_equal(p->input_desc[0].name, "x");
	assert_string_equal(p->output_desc[0].name, "y:0");
	assert_int_equal(p->output_desc[0].rank, 2);
	assert_int_equal(p->output_desc[0].nbytes, 24);
	int weights = 0;
	for (int i = 0; i < p->n_tensors; i++) {
		if (p->tensors[i].flags & MPCC_TENSOR_WEIGHT) {
			weights++;
			assert_int_equal(((uintptr_t)p->tensors[i].t.data) % 64, 0);
			assert_true(((float *)p->tensors[i].t.data)[2] == 30.0f);
		}
	}
	assert_int_equal(weights, 1);
	assert_int_equal(mpcc_plan_serialize(p, &buf2, &size2, &d), MPCC_OK);
	assert_int_equal(size, size2);
	assert_memory_equal(buf, buf2, size);
	mpcc_plan_free(p);
	free(buf);
	free(buf2);
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
damaged_plans_are_refused_with_a_message(void **state)
{
	uint8_t *buf, *copy;
	size_t size;
	mpcc_plan *p;
	mpcc_diag d;

	build_plan((void **)&buf, &size);
	copy = malloc(size);
	assert_non_null(copy);
	/* Every header byte, two ways. */
	for (size_t i = 0; i < 64; i++) {
		for (int m = 0; m < 2; m++) {
			memcpy(copy, buf, size);
			copy[i] ^= m ? 0xff : 0x01;
			mpcc_diag_init(&d);
			assert_int_not_equal(mpcc_plan_deserialize(copy, size, &p, &d), MPCC_OK);
			assert_null(p);
			assert_true(d.msg[0] != 0);
		}
	}
	/* Every body byte: refused by the checksum. */
	for (size_t i = 64; i < size; i++) {
		memcpy(copy, buf, size);
		copy[i] ^= 0x10;
		mpcc_diag_init(&d);
		assert_int_equal(mpcc_plan_deserialize(copy, size, &p, &d), MPCC_ERR_INVALID);
		assert_non_null(strstr(d.msg, "checksum"));
	}
	/* Every body byte with the checksum repaired: the structural checks must
	 * hold without crashing (some flips, e.g. in weight data, are valid). */
	for (size_t i = 64; i < size; i++) {
		for (int m = 0; m < 3; m++) {
			static const uint8_t masks[3] = {0x01, 0x80, 0xff};
			memcpy(copy, buf, size);
			copy[i] ^= masks[m];
			uint64_t h = fnv(copy + 64, size - 64);
			for (int b = 0; b < 8; b++)
				copy[16 + b] = (uint8_t)(h >> (8 * b));
			mpcc_diag_init(&d);
			mpcc_status st = mpcc_plan_deserialize(copy, size, &p, &d);
			if (st == MPCC_OK)
				mpcc_plan_free(p);
			else
				assert_true(d.msg[0] != 0);
		}
	}
	/* Every truncation. */
	for (size_t n = 0; n < size; n++) {
		mpcc_diag_init(&d);
		assert_int_not_equal(mpcc_plan_deserialize(buf, n, &p, &d), MPCC_OK);
		assert_true(d.msg[0] != 0);
	}
	/* A newer format version says so. */
	memcpy(copy, buf, size);
	copy[8] = MPCC_PLAN_VERSION + 1;
	mpcc_diag_init(&d);
	assert_int_equal(mpcc_plan_deserialize(copy, size, &p, &d), MPCC_ERR_INVALID);
	assert_non_null(strstr(d.msg, "is newer than this mpcc"));
	free(copy);
	free(buf);
}

static void
interp_session_adds_the_weight(void **state)
{
	void *buf;
	size_t size;
	mpcc_context *cx;
	mpcc_plan *p;
	mpcc_session *s;
	mpcc_tensor out;
	float x[6] = {1, 2, 3, 4, 5, 6};
	int64_t dims[2] = {2, 3}, wrong[2] = {3, 2};

	build_plan(&buf, &size);
	assert_int_equal(mpcc_context_create(&cx), MPCC_OK);
	assert_int_equal(mpcc_plan_load_buffer(cx, buf, size, &p), MPCC_OK);
	free(buf);
	assert_int_equal(mpcc_session_create(cx, p, "nosuch", &s), MPCC_ERR_INVALID);
	assert_non_null(strstr(mpcc_context_last_error(cx), "interp"));
	assert_int_equal(mpcc_session_create(cx, p, "interp", &s), MPCC_OK);
	assert_int_equal(mpcc_session_run(s), MPCC_ERR_INVALID);
	assert_non_null(strstr(mpcc_context_last_error(cx), "never set"));
	assert_int_equal(mpcc_session_set_input(s, "z", MPCC_DTYPE_F32, 2, dims, x, sizeof(x)),
	                 MPCC_ERR_INVALID);
	assert_non_null(strstr(mpcc_context_last_error(cx), "'x'"));
	assert_int_equal(mpcc_session_set_input(s, "x", MPCC_DTYPE_F32, 2, wrong, x, sizeof(x)),
	                 MPCC_ERR_INVALID);
	assert_string_equal(mpcc_context_last_error(cx),
	                    "input 'x': shape [2,3] expected, got [3,2]");
	assert_int_equal(mpcc_session_set_input(s, "x", MPCC_DTYPE_I32, 2, dims, x, sizeof(x)),
	                 MPCC_ERR_INVALID);
	assert_int_equal(mpcc_session_set_input(s, "x", MPCC_DTYPE_F32, 2, dims, x, sizeof(x)),
	                 MPCC_OK);
	assert_int_equal(mpcc_session_run(s), MPCC_OK);
	assert_int_equal(mpcc_session_output(s, 0, &out), MPCC_OK);
	assert_string_equal(out.name, "y:0");
	assert_int_equal(out.nbytes, sizeof(x));
	const float *y = out.data;
	for (int i = 0; i < 6; i++)
		assert_true(y[i] == x[i] + 10.0f * (float)(i % 3 + 1));
	assert_int_equal(mpcc_session_output(s, 1, &out), MPCC_ERR_INVALID);
	mpcc_session_destroy(s);
	mpcc_plan_destroy(p);
	mpcc_context_destroy(cx);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(plan_round_trips_unchanged),
		cmocka_unit_test(damaged_plans_are_refused_with_a_message),
		cmocka_unit_test(interp_session_adds_the_weight),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
