/*
 * test_plan.c - the plan: built from a small hand-made graph and kernel,
 * serialised and loaded back unchanged, damaged files refused with a message
 * (every header byte, sampled body bytes with the checksum repaired, every
 * truncation), and run by a session on the interpreter backend. Section
 * CUDA (GPU source and binaries): a round trip, each field damaged in turn,
 * and the rules choosing a binary for a GPU, none of which needs CUDA.
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

/* ---------------------------------------------------------------- CUDA */

static const char cuda_src[] = "extern \"C\" __global__ void k_s0(float *b0) {}\n";
static const uint8_t fake_cubin[] = {0x7f, 'E', 'L', 'F', 2, 1, 1, 0x41, 8, 0, 0, 0};
static const char fake_ptx[] = "//\n.version 9.0\n.target sm_90\n.address_size 64\n";

static void
add_image(mpcc_plan_cuda *c, mpcc_cuda_image_kind kind, int arch, const void *data, size_t n)
{
	mpcc_plan_cuda_image *im = &c->images[c->n_images++];

	im->kind = kind;
	im->arch = arch;
	im->nvrtc_version = 13000;
	im->data = malloc(n + 1);
	assert_non_null(im->data);
	memcpy(im->data, data, n);
	im->data[n] = 0;
	im->size = n;
}

/* build_plan's plan with a CUDA section of two cubins and a PTX. */
static void
build_cuda_plan(uint8_t **out, size_t *out_size)
{
	void *buf;
	size_t size;
	mpcc_plan *p;
	mpcc_diag d;

	build_plan(&buf, &size);
	mpcc_diag_init(&d);
	assert_int_equal(mpcc_plan_deserialize(buf, size, &p, &d), MPCC_OK);
	free(buf);
	p->cuda = calloc(1, sizeof(*p->cuda));
	assert_non_null(p->cuda);
	p->cuda->source = strdup(cuda_src);
	p->cuda->images = calloc(3, sizeof(*p->cuda->images));
	assert_non_null(p->cuda->images);
	add_image(p->cuda, MPCC_CUDA_IMAGE_CUBIN, 80, fake_cubin, sizeof(fake_cubin));
	add_image(p->cuda, MPCC_CUDA_IMAGE_CUBIN, 90, fake_cubin, sizeof(fake_cubin));
	add_image(p->cuda, MPCC_CUDA_IMAGE_PTX, 90, fake_ptx, strlen(fake_ptx));
	assert_int_equal(mpcc_plan_serialize(p, (void **)out, out_size, &d), MPCC_OK);
	mpcc_plan_free(p);
}

static void
cuda_section_round_trips_and_older_plans_lack_it(void **state)
{
	uint8_t *buf, *buf2;
	size_t size, size2;
	mpcc_plan *p;
	mpcc_diag d;

	build_cuda_plan(&buf, &size);
	mpcc_diag_init(&d);
	assert_int_equal(mpcc_plan_deserialize(buf, size, &p, &d), MPCC_OK);
	assert_non_null(p->cuda);
	assert_string_equal(p->cuda->source, cuda_src);
	assert_int_equal(p->cuda->n_images, 3);
	assert_int_equal(p->cuda->images[1].kind, MPCC_CUDA_IMAGE_CUBIN);
	assert_int_equal(p->cuda->images[1].arch, 90);
	assert_int_equal(p->cuda->images[1].nvrtc_version, 13000);
	assert_int_equal(p->cuda->images[1].size, sizeof(fake_cubin));
	assert_memory_equal(p->cuda->images[1].data, fake_cubin, sizeof(fake_cubin));
	assert_int_equal(p->cuda->images[2].kind, MPCC_CUDA_IMAGE_PTX);
	assert_string_equal((char *)p->cuda->images[2].data, fake_ptx); /* NUL added */
	assert_int_equal(mpcc_plan_serialize(p, (void **)&buf2, &size2, &d), MPCC_OK);
	assert_int_equal(size, size2);
	assert_memory_equal(buf, buf2, size);
	mpcc_plan_free(p);
	free(buf2);
	free(buf);
	/* a plan written without the section still loads, without it */
	build_plan((void **)&buf, &size);
	assert_int_equal(mpcc_plan_deserialize(buf, size, &p, &d), MPCC_OK);
	assert_null(p->cuda);
	mpcc_plan_free(p);
	free(buf);
}

/* Offset of section CUDA in a serialised plan. */
static size_t
cuda_section(const uint8_t *b, size_t *len)
{
	uint32_t n;

	memcpy(&n, b + 12, 4);
	for (uint32_t i = 0; i < n; i++) {
		const uint8_t *e = b + 64 + 24 * i;
		if (memcmp(e, "CUDA", 4) == 0) {
			uint64_t off;
			memcpy(&off, e + 8, 8);
			memcpy(len, e + 16, 8);
			return (size_t)off;
		}
	}
	fail_msg("no section CUDA");
	return 0;
}

static void
put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

/* Loads plan with its checksum repaired: refused with one line naming the
 * section and containing want. */
static void
cuda_refused(uint8_t *plan, size_t n, const char *want)
{
	mpcc_plan *p = NULL;
	mpcc_diag d;
	uint64_t sum = fnv(plan + 64, n - 64);

	memcpy(plan + 16, &sum, 8);
	mpcc_diag_init(&d);
	assert_int_equal(mpcc_plan_deserialize(plan, n, &p, &d), MPCC_ERR_INVALID);
	assert_null(p);
	if (strncmp(d.msg, "damaged plan: section 'CUDA': ", 30) != 0 || !strstr(d.msg, want) ||
	    strchr(d.msg, '\n'))
		fail_msg("message '%s', wanted '%s'", d.msg, want);
}

/*
 * Layout (docs/plan-format.md): u32 version, u64 source length S, S bytes,
 * u32 image count, then per image u32 kind, u32 arch, u32 NVRTC version,
 * u32 reserved, u64 size, the bytes. Each field damaged in turn.
 */
static void
a_damaged_cuda_section_is_refused(void **state)
{
	uint8_t *plan, *b;
	size_t n, len = 0;

	build_cuda_plan(&plan, &n);
	size_t off = cuda_section(plan, &len);
	size_t src_len = strlen(cuda_src), im0 = off + 4 + 8 + src_len + 4;
	size_t im1 = im0 + 24 + sizeof(fake_cubin), im2 = im1 + 24 + sizeof(fake_cubin);
	b = malloc(n);
	assert_non_null(b);
#define DAMAGED(edit, want)                                                                    \
	do {                                                                                   \
		memcpy(b, plan, n);                                                            \
		edit;                                                                          \
		cuda_refused(b, n, want);                                                      \
	} while (0)
	DAMAGED(put32(b + off, 2), "layout version 2, this mpcc reads 1");
	DAMAGED(put32(b + off, 0), "layout version 0");
	DAMAGED(put32(b + off + 4, (uint32_t)len), "source of");
	DAMAGED(put32(b + off + 4, 0), "source of 0 bytes");
	DAMAGED(b[off + 12 + 3] = 0, "source holds a NUL byte");
	DAMAGED(put32(b + im0 - 4, 1000), "image count 1000 exceeds the section");
	DAMAGED(put32(b + im0 - 4, 2), "trailing bytes");
	DAMAGED(put32(b + im0, 3), "image 0: unknown kind 3");
	DAMAGED(put32(b + im0 + 4, 5), "image 0: architecture 5 out of range");
	DAMAGED(put32(b + im0 + 12, 1), "image 0 (cubin sm_80): reserved field not zero");
	DAMAGED(put32(b + im0 + 16, 100000), "image 0 (cubin sm_80): 100000 bytes, the section");
	DAMAGED(put32(b + im0 + 16, 0), "image 0 (cubin sm_80): 0 bytes");
	DAMAGED(b[im0 + 24] = 0, "image 0 (cubin sm_80): not an ELF file");
	DAMAGED(put32(b + im1 + 4, 80), "image 1 (cubin sm_80) appears twice");
	DAMAGED(b[im2 + 24 + 5] = 0, "image 2 (PTX compute_90): PTX holds a NUL byte");
	DAMAGED(put32(b + im2 + 16, (uint32_t)strlen(fake_ptx) - 1), "1 trailing bytes");
#undef DAMAGED
	/* the undamaged copy loads */
	mpcc_plan *p;
	mpcc_diag d;
	mpcc_diag_init(&d);
	assert_int_equal(mpcc_plan_deserialize(plan, n, &p, &d), MPCC_OK);
	mpcc_plan_free(p);
	free(b);
	free(plan);
}

static void
each_gpu_gets_the_binaries_that_run_on_it_best_first(void **state)
{
	mpcc_plan_cuda c = {0};
	mpcc_plan_cuda_image im[4] = {
	    {MPCC_CUDA_IMAGE_PTX, 90, 0, NULL, 0},
	    {MPCC_CUDA_IMAGE_CUBIN, 80, 0, NULL, 0},
	    {MPCC_CUDA_IMAGE_CUBIN, 86, 0, NULL, 0},
	    {MPCC_CUDA_IMAGE_CUBIN, 90, 0, NULL, 0},
	};
	int order[8];

	c.images = im;
	c.n_images = 4;
	assert_true(mpcc_cuda_image_runs_on(MPCC_CUDA_IMAGE_CUBIN, 80, 89));
	assert_false(mpcc_cuda_image_runs_on(MPCC_CUDA_IMAGE_CUBIN, 86, 80));
	assert_false(mpcc_cuda_image_runs_on(MPCC_CUDA_IMAGE_CUBIN, 80, 90));
	assert_false(mpcc_cuda_image_runs_on(MPCC_CUDA_IMAGE_CUBIN, 90, 100));
	assert_true(mpcc_cuda_image_runs_on(MPCC_CUDA_IMAGE_PTX, 90, 120));
	assert_false(mpcc_cuda_image_runs_on(MPCC_CUDA_IMAGE_PTX, 90, 89));
	/* 9.0: its cubin, then the PTX */
	assert_int_equal(mpcc_plan_cuda_candidates(&c, 90, order, 8), 2);
	assert_int_equal(order[0], 3);
	assert_int_equal(order[1], 0);
	/* 8.9: sm_86 before sm_80, no PTX (compute_90 is newer) */
	assert_int_equal(mpcc_plan_cuda_candidates(&c, 89, order, 8), 2);
	assert_int_equal(order[0], 2);
	assert_int_equal(order[1], 1);
	/* 8.6: the exact one first */
	assert_int_equal(mpcc_plan_cuda_candidates(&c, 86, order, 8), 2);
	assert_int_equal(order[0], 2);
	assert_int_equal(order[1], 1);
	/* 10.0 and 12.0: only the PTX; 7.5: nothing */
	assert_int_equal(mpcc_plan_cuda_candidates(&c, 100, order, 8), 1);
	assert_int_equal(order[0], 0);
	assert_int_equal(mpcc_plan_cuda_candidates(&c, 120, order, 8), 1);
	assert_int_equal(mpcc_plan_cuda_candidates(&c, 75, order, 8), 0);
	assert_int_equal(mpcc_plan_cuda_candidates(NULL, 90, order, 8), 0);
}

static void
cuda_archs_lists_are_parsed_and_checked(void **state)
{
	mpcc_cuda_target t[MPCC_CUDA_MAX_TARGETS];
	mpcc_diag d;
	int n;

	mpcc_diag_init(&d);
	assert_int_equal(mpcc_cuda_targets_parse(NULL, t, &n, &d), MPCC_OK);
	assert_int_equal(n, 0);
	assert_int_equal(mpcc_cuda_targets_parse("none", t, &n, &d), MPCC_OK);
	assert_int_equal(n, 0);
	assert_int_equal(mpcc_cuda_targets_parse("default", t, &n, &d), MPCC_OK);
	assert_int_equal(n, 3);
	assert_true(t[0].kind == MPCC_CUDA_IMAGE_CUBIN && t[0].arch == 80);
	assert_true(t[1].kind == MPCC_CUDA_IMAGE_CUBIN && t[1].arch == 90);
	assert_true(t[2].kind == MPCC_CUDA_IMAGE_PTX && t[2].arch == 90);
	assert_int_equal(mpcc_cuda_targets_parse("86,sm_90,compute_100", t, &n, &d), MPCC_OK);
	assert_int_equal(n, 3);
	assert_true(t[0].kind == MPCC_CUDA_IMAGE_CUBIN && t[0].arch == 86);
	assert_true(t[2].kind == MPCC_CUDA_IMAGE_PTX && t[2].arch == 100);
	static const char *bad[] = {"", "80,", ",80", "sm_", "compute_", "8", "080", "80x",
	                            "sm80", "1000", "80,80", "80,sm_80", "all"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		mpcc_diag_init(&d);
		if (mpcc_cuda_targets_parse(bad[i], t, &n, &d) != MPCC_ERR_INVALID)
			fail_msg("'%s' accepted", bad[i]);
		assert_non_null(strstr(d.msg, "--cuda-archs: "));
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(plan_round_trips_unchanged),
		cmocka_unit_test(damaged_plans_are_refused_with_a_message),
		cmocka_unit_test(interp_session_adds_the_weight),
		cmocka_unit_test(cuda_section_round_trips_and_older_plans_lack_it),
		cmocka_unit_test(a_damaged_cuda_section_is_refused),
		cmocka_unit_test(each_gpu_gets_the_binaries_that_run_on_it_best_first),
		cmocka_unit_test(cuda_archs_lists_are_parsed_and_checked),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
