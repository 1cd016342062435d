/*
 * backend_cpu.c - the CPU backend: the plan's kernels compiled by the LLVM
 * JIT (codegen/llvm) and run on the calling thread.
 *
 * prepare() compiles every kernel of the plan into one JIT module; run_kernel()
 * calls the kernel's stages in order, each over its whole parallel dim 0. The
 * stage functions take a [begin, end) range so a thread pool can later split
 * dim 0 without recompiling.
 */
#include <stdlib.h>

#include "codegen/llvm/jit.h"
#include "runtime/backend.h"

typedef struct cpu_state {
	const mpcc_plan *plan; /* outlives the state: sessions die before their plan */
	mpcc_jit *jit;
} cpu_state;

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
		int64_t end = st->n_par > 0 ? st->par_ext[0] : 1;

		if (!fn)
			return mpcc_diag_error(d, MPCC_ERR_INTERNAL,
			                       "cpu backend: kernel %s stage %d not compiled",
			                       k->name, i);
		if (end > 0)
			fn(bufs, 0, end);
	}
	return MPCC_OK;
}

static void
cpu_release(void *state) {
	cpu_state *s = state;

	if (!s)
		return;
	mpcc_jit_destroy(s->jit);
	free(s);
}

const mpcc_backend mpcc_backend_cpu = {
    .name = "cpu",
    .prepare = cpu_prepare,
    .run_kernel = cpu_run_kernel,
    .release = cpu_release,
};
