/*
 * test_memplan.c - the CPU runtime's thread pool and memory plan.
 *
 * The pool must run every index of a range exactly once, whatever its size
 * and chunking; the memory plan must never give two items that are alive at
 * the same kernel overlapping bytes, and must reuse memory along a chain;
 * the model tests must give bit-identical outputs with 1 and 3 threads; and
 * the LLVM emitter's blocked reductions (several output points at once)
 * must match the interpreter bit for bit, remainders included.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mpcc.h"
#include "runtime/memplan.h"
#include "runtime/npy.h"
#include "runtime/plan.h"
#include "runtime/threadpool.h"
#include "codegen/llvm/jit.h"

static void
count_range(void *ctx, int64_t b, int64_t e)
{
	atomic_int *hits = ctx;

	for (int64_t i = b; i < e; i++)
		atomic_fetch_add(&hits[i], 1);
}

static void
pool_runs_every_index_exactly_once(void **state)
{
	(void)state;
	mpcc_threadpool *tp;
	static atomic_int hits[1000];

	assert_int_equal(mpcc_threadpool_create(4, &tp), MPCC_OK);
	assert_int_equal(mpcc_threadpool_size(tp), 4);
	for (int rep = 0; rep < 200; rep++) {
		int64_t n = 1 + rep * 5;
		for (int64_t i = 0; i < n; i++)
			atomic_store(&hits[i], 0);
		mpcc_threadpool_for(tp, n, 1 + rep % 7, count_range, hits);
		for (int64_t i = 0; i < n; i++)
			assert_int_equal(atomic_load(&hits[i]), 1);
	}
	mpcc_threadpool_destroy(tp);
	/* a pool is usable at once after creation (workers may not have started) */
	for (int rep = 0; rep < 20; rep++) {
		assert_int_equal(mpcc_threadpool_create(3, &tp), MPCC_OK);
		for (int i = 0; i < 100; i++)
			atomic_store(&hits[i], 0);
		mpcc_threadpool_for(tp, 100, 3, count_range, hits);
		for (int i = 0; i < 100; i++)
			assert_int_equal(atomic_load(&hits[i]), 1);
		mpcc_threadpool_destroy(tp);
	}
}

static mpcc_plan *
load_model(mpcc_context *cx, const char *name)
{
	char path[512], plan_path[512];
	mpcc_compile_options opts;
	mpcc_plan *plan;

	snprintf(path, sizeof(path), "tests/models/%s/model.onnx", name);
	snprintf(plan_path, sizeof(plan_path), "/tmp/mpcc_memplan_%s_%d.plan", name, (int)getpid());
	mpcc_compile_options_init(&opts);
	opts.precision = MPCC_PRECISION_FP32; /* exact f32 results */
	if (mpcc_compile_file(cx, path, &opts, plan_path) != MPCC_OK)
		fail_msg("%s: compile: %s", name, mpcc_context_last_error(cx));
	if (mpcc_plan_load(cx, plan_path, &plan) != MPCC_OK)
		fail_msg("%s: load: %s", name, mpcc_context_last_error(cx));
	unlink(plan_path);
	return plan;
}

static const char *const models[] = {"mlp", "cnn", "transformer", "lstm"};

typedef struct live_item {
	int64_t off, size;
	int first, last;
} live_item;

/* Recomputes the lives independently: per tensor and TEMP, the first and
 * last kernel touching it; then checks every live pair is disjoint. */
static void
plan_never_overlaps_live_items(void **state)
{
	(void)state;
	mpcc_context *cx;

	assert_int_equal(mpcc_context_create(&cx), MPCC_OK);
	for (size_t m = 0; m < sizeof(models) / sizeof(*models); m++) {
		mpcc_plan *p = load_model(cx, models[m]);
		mpcc_memplan mp;
		int n = 0, cap = p->n_tensors + 64;
		live_item *it = calloc((size_t)cap, sizeof(*it));
		assert_non_null(it);
		assert_int_equal(mpcc_memplan_build(p, &mp), MPCC_OK);
		for (int t = 0; t < p->n_tensors; t++) {
			if (mp.tensor_off[t] < 0)
				continue;
			it[n] =
			    (live_item){mp.tensor_off[t], (int64_t)p->tensors[t].t.nbytes, -1, -1};
			for (int k = 0; k < p->n_kernels; k++)
				for (int b = 0; b < p->kernels[k]->n_bufs; b++)
					if (p->kernels[k]->bufs[b].kind == KIR_BUF_PARAM &&
					    p->kernels[k]->bufs[b].value == t) {
						if (it[n].first < 0)
							it[n].first = k;
						it[n].last = k;
					}
			if (it[n].first < 0)
				it[n].first = 0, it[n].last = p->n_kernels;
			n++;
		}
		for (int k = 0; k < p->n_kernels; k++) {
			int j = mp.temp_first[k];
			for (int b = 0; b < p->kernels[k]->n_bufs; b++) {
				const kir_buf *buf = &p->kernels[k]->bufs[b];
				if (buf->kind != KIR_BUF_TEMP)
					continue;
				assert_true(n < cap);
				it[n++] = (live_item){
				    mp.temp_off[j++],
				    buf->n_elems * (int64_t)mpcc_dtype_size(buf->dtype), k, k};
			}
		}
		assert_int_equal(n, mp.n_planned);
		for (int a = 0; a < n; a++) {
			assert_true(it[a].off % MPCC_MEMPLAN_ALIGN == 0);
			assert_true((size_t)(it[a].off + it[a].size) <= mp.arena_size);
			for (int b = a + 1; b < n; b++) {
				bool live = it[a].first <= it[b].last && it[b].first <= it[a].last;
				bool apart = it[a].off + it[a].size <= it[b].off ||
				             it[b].off + it[b].size <= it[a].off;
				if (live && !apart && it[a].size && it[b].size)
					fail_msg("%s: items %d and %d overlap while both alive",
					         models[m], a, b);
			}
		}
		assert_true(mp.arena_size <= mp.sum_intermediates);
		if (strcmp(models[m], "transformer") == 0)
			assert_true(mp.arena_size < mp.sum_intermediates / 2);
		mpcc_memplan_fini(&mp);
		free(it);
		mpcc_plan_destroy(p);
	}
	mpcc_context_destroy(cx);
}

/* Runs model `name` on the cpu backend with `threads` threads; returns the
 * outputs' bytes concatenated (malloc'd) and their size. */
static uint8_t *
run_cpu(mpcc_context *cx, const mpcc_plan *plan, const char *name, const char *threads,
        size_t *out_size)
{
	mpcc_session *s;
	char path[512];
	uint8_t *all = NULL;
	size_t size = 0;

	setenv("MPCC_NUM_THREADS", threads, 1);
	if (mpcc_session_create(cx, plan, "cpu", &s) != MPCC_OK)
		fail_msg("%s: session: %s", name, mpcc_context_last_error(cx));
	unsetenv("MPCC_NUM_THREADS");
	for (int i = 0; i < mpcc_plan_n_inputs(plan); i++) {
		const mpcc_tensor *in = mpcc_plan_input(plan, i);
		mpcc_tensor t;
		mpcc_diag d;
		snprintf(path, sizeof(path), "tests/models/%s/input_%s.npy", name, in->name);
		mpcc_diag_init(&d);
		if (mpcc_npy_read_file(path, &t, &d))
			fail_msg("%s: %s", name, d.msg);
		assert_int_equal(
		    mpcc_session_set_input(s, in->name, t.dtype, t.rank, t.dims, t.data, t.nbytes),
		    MPCC_OK);
		free(t.data);
	}
	/* twice: the second run sees the arena as the first left it */
	for (int r = 0; r < 2; r++)
		assert_int_equal(mpcc_session_run(s), MPCC_OK);
	for (int i = 0; i < mpcc_plan_n_outputs(plan); i++) {
		mpcc_tensor o;
		assert_int_equal(mpcc_session_output(s, i, &o), MPCC_OK);
		all = realloc(all, size + o.nbytes + 1);
		assert_non_null(all);
		memcpy(all + size, o.data, o.nbytes);
		size += o.nbytes;
	}
	mpcc_session_destroy(s);
	*out_size = size;
	return all;
}

static void
models_bit_identical_across_thread_counts(void **state)
{
	(void)state;
	mpcc_context *cx;

	assert_int_equal(mpcc_context_create(&cx), MPCC_OK);
	for (size_t m = 0; m < sizeof(models) / sizeof(*models); m++) {
		mpcc_plan *p = load_model(cx, models[m]);
		size_t n1, n3;
		uint8_t *a = run_cpu(cx, p, models[m], "1", &n1);
		uint8_t *b = run_cpu(cx, p, models[m], "3", &n3);
		assert_int_equal(n1, n3);
		if (memcmp(a, b, n1) != 0)
			fail_msg("%s: outputs differ between 1 and 3 threads", models[m]);
		free(a);
		free(b);
		mpcc_plan_destroy(p);
	}
	mpcc_context_destroy(cx);
}

/* C[b,m,n] (op)= A[b,m,k] * B[k,n] (transposed: B[n,k]) in dtype t,
 * accumulated in f32; N is no multiple of the block. */
static void
check_blocked(kir_red red, mpcc_dtype t, bool trans_b, int64_t n_batch)
{
	const int64_t M = 3, N = 21, K = 37;
	kir_kernel *k = kir_kernel_create("blk");
	int a = kir_buf_add(k, t, KIR_BUF_PARAM, 0, n_batch * M * K);
	int b = kir_buf_add(k, t, KIR_BUF_PARAM, 1, K * N);
	int c = kir_buf_add(k, t, KIR_BUF_PARAM, 2, n_batch * M * N);
	int64_t par[3] = {n_batch, M, N}, rk = K;
	int32_t vb = kir_var(k, 0), vm = kir_var(k, 1), vn = kir_var(k, 2), vk = kir_var(k, 3);
	int32_t ia = kir_iadd(k, kir_imul(k, kir_iadd(k, kir_imul(k, vb, M), vm), K), vk);
	int32_t ib =
	    trans_b ? kir_iadd(k, kir_imul(k, vn, K), vk) : kir_iadd(k, kir_imul(k, vk, N), vn);
	int32_t prod = kir_binary(k, KIR_MUL, kir_cast(k, MPCC_DTYPE_F32, kir_load(k, a, ia)),
	                          kir_cast(k, MPCC_DTYPE_F32, kir_load(k, b, ib)));
	kir_stage *st = kir_stage_add(k, 3, par, 1, &rk, red, MPCC_DTYPE_F32, prod);
	int32_t ic = kir_iadd(k, kir_imul(k, kir_iadd(k, kir_imul(k, vb, M), vm), N), vn);
	kir_stage_store(k, st, c, ic, kir_cast(k, t, kir_acc(k, MPCC_DTYPE_F32)));
	assert_true(kir_kernel_ok(k));

	size_t es = mpcc_dtype_size(t);
	size_t na = (size_t)(n_batch * M * K), nb = (size_t)(K * N), nc = (size_t)(n_batch * M * N);
	uint8_t *A = malloc(na * es), *B = malloc(nb * es), *C1 = calloc(nc, es),
	        *C2 = calloc(nc, es);
	assert_true(A && B && C1 && C2);
	srand(7);
	for (size_t i = 0; i < na + nb; i++) {
		float f = (float)(rand() % 2001 - 1000) / 337.0f;
		uint8_t *dst = i < na ? A + i * es : B + (i - na) * es;
		if (t == MPCC_DTYPE_F32)
			memcpy(dst, &f, 4);
		else {
			uint16_t h = t == MPCC_DTYPE_F16 ? mpcc_f32_to_f16(f) : mpcc_f32_to_bf16(f);
			memcpy(dst, &h, 2);
		}
	}
	void *ref[3] = {A, B, C1}, *jb[3] = {A, B, C2};
	mpcc_diag d;
	mpcc_jit *j;
	mpcc_diag_init(&d);
	assert_int_equal(kir_validate(k, &d), MPCC_OK);
	assert_int_equal(kir_interpret(k, ref, &d), MPCC_OK);
	assert_int_equal(mpcc_jit_compile(&k, 1, &j, &d), MPCC_OK);
	/* in two pieces, as a thread pool would split it */
	int64_t r = mpcc_jit_stage_range(&k->stages[0]);
	mpcc_jit_stage(j, 0, 0)(jb, 0, r / 2);
	mpcc_jit_stage(j, 0, 0)(jb, r / 2, r);
	if (memcmp(C1, C2, nc * es) != 0)
		fail_msg("blocked reduction %d dtype %d trans %d differs from the interpreter", red,
		         t, trans_b);
	mpcc_jit_destroy(j);
	kir_kernel_destroy(k);
	free(A);
	free(B);
	free(C1);
	free(C2);
}

static void
blocked_reductions_match_interpreter(void **state)
{
	(void)state;
	const kir_red reds[] = {KIR_RED_SUM, KIR_RED_MAX, KIR_RED_PROD, KIR_RED_MIN};
	const mpcc_dtype types[] = {MPCC_DTYPE_F32, MPCC_DTYPE_F16, MPCC_DTYPE_BF16};

	for (int r = 0; r < 4; r++)
		for (int t = 0; t < 3; t++)
			for (int tr = 0; tr < 2; tr++) {
				check_blocked(reds[r], types[t], tr, 1);
				check_blocked(reds[r], types[t], tr, 5);
			}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(pool_runs_every_index_exactly_once),
	    cmocka_unit_test(plan_never_overlaps_live_items),
	    cmocka_unit_test(models_bit_identical_across_thread_counts),
	    cmocka_unit_test(blocked_reductions_match_interpreter),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
