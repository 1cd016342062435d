/*
 * backend_cpu.c - the CPU backend: the plan's kernels compiled by the LLVM
 * JIT (codegen/llvm) and run on a per-session thread pool.
 *
 * prepare() compiles every kernel of the plan into one JIT module and starts
 * the pool (runtime/threadpool.h; MPCC_NUM_THREADS or the CPU count).
 * run_kernel() calls the kernel's stages in order; each stage function takes
 * a [begin, end) range of its leading parallel dims (codegen/llvm/jit.h),
 * which the pool splits into chunks. Every point of a stage is computed by
 * exactly one thread, with the same code as a serial run, so results do not
 * depend on the thread count. Stages marked serial and stages too small to
 * repay a dispatch run inline.
 */
#include <stdint.h>
#include <stdlib.h>

#include "codegen/llvm/jit.h"
#include "runtime/backend.h"
#include "runtime/threadpool.h"

/* Estimated scalar operations below which a stage runs inline: a dispatch
 * costs a few microseconds, about this much work on one core. */
#define PAR_MIN_WORK (1 << 15)
/* Chunks per thread: a little slack for uneven progress, few enough that
 * claiming chunks stays cheap. */
#define CHUNKS_PER_THREAD 4

typedef struct cpu_state {
	const mpcc_plan *plan; /* outlives the state: sessions die before their plan */
	mpcc_jit *jit;
	mpcc_threadpool *pool;
} cpu_state;

typedef struct stage_call {
	mpcc_stage_fn fn;
	void **bufs;
} stage_call;

static void
call_stage(void *ctx, int64_t begin, int64_t end)
{
	stage_call *c = ctx;

	c->fn(c->bufs, begin, end);
}

static mpcc_status
cpu_prepare(const mpcc_plan *plan, void **out_state, mpcc_diag *d) {
	cpu_state *s;
	mpcc_status st;

	*out_state = NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return mpcc_diag_error(d, MPCC_ERR_NOMEM, "cpu backend: out of memory");
	s->plan = plan;
	st = mpcc_jit_compile(plan->kernels, plan->n_kernels, &s->jit, d);
	if (st != MPCC_OK) {
		free(s);
		return st;
	}
	st = mpcc_threadpool_create(mpcc_threadpool_default_size(), &s->pool);
	if (st != MPCC_OK) {
		mpcc_jit_destroy(s->jit);
		free(s);
		return mpcc_diag_error(d, st, "cpu backend: cannot start the thread pool");
	}
	*out_state = s;
	return MPCC_OK;
}

static mpcc_status
cpu_run_kernel(void *state, int kernel, void **bufs, mpcc_diag *d) {
	cpu_state *s = state;
	const kir_kernel *k;

	if (!s || kernel < 0 || kernel >= s->plan->n_kernels)
		return mpcc_diag_error(d, MPCC_ERR_INTERNAL, "cpu backend: no kernel %d", kernel);
	k = s->plan->kernels[kernel];
	for (int i = 0; i < k->n_stages; i++) {
		const kir_stage *st = &k->stages[i];
		mpcc_stage_fn fn = mpcc_jit_stage(s->jit, kernel, i);
		int64_t end = mpcc_jit_stage_range(st);

		if (!fn)
			return mpcc_diag_error(d, MPCC_ERR_INTERNAL,
			                       "cpu backend: kernel %s stage %d not compiled",
			                       k->name, i);
		if (end <= 0)
			continue;
		int n_thr = mpcc_threadpool_size(s->pool);
		if (st->serial || n_thr <= 1 || end == 1 || kir_stage_work(k, st) < PAR_MIN_WORK) {
			fn(bufs, 0, end);
		} else {
			stage_call c = {fn, bufs};
			int64_t chunk = end / ((int64_t)n_thr * CHUNKS_PER_THREAD);
			mpcc_threadpool_for(s->pool, end, chunk > 0 ? chunk : 1, call_stage, &c);
		}
	}
	return MPCC_OK;
}

static void
cpu_release(void *state) {
	cpu_state *s = state;

	if (!s)
		return;
	mpcc_threadpool_destroy(s->pool);
	mpcc_jit_destroy(s->jit);
	free(s);
}

const mpcc_backend mpcc_backend_cpu = {
    .name = "cpu",
    .prepare = cpu_prepare,
    .run_kernel = cpu_run_kernel,
    .release = cpu_release,
};
