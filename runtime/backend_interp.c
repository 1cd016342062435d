/*
 * backend_interp.c - the reference backend: runs every kernel of a plan
 * through the kernel IR interpreter.
 *
 * Nothing is compiled, so prepare only remembers the plan; run_kernel hands
 * the executor's buffer pointers to kir_interpret, which validates the kernel
 * and bounds-checks every access. Slow, exact, and available everywhere: the
 * yardstick the LLVM and CUDA backends are compared against.
 */
#include "codegen/kir.h"
#include "runtime/backend.h"

static mpcc_status
interp_prepare(const mpcc_plan *plan, void **out_state, mpcc_diag *d)
{
	*out_state = NULL;
	if (!plan)
		return mpcc_diag_error(d, MPCC_ERR_INVALID, "interp backend: no plan");
	*out_state = (void *)plan;
	return MPCC_OK;
}

static mpcc_status
interp_run_kernel(void *state, int kernel, void **bufs, mpcc_diag *d)
{
	const mpcc_plan *plan = state;

	if (!plan || kernel < 0 || kernel >= plan->n_kernels)
		return mpcc_diag_error(d, MPCC_ERR_INTERNAL, "interp backend: kernel %d out of range",
		                       kernel);
	return kir_interpret(plan->kernels[kernel], bufs, d);
}

static void
interp_release(void *state)
{
	(void)state;
}

const mpcc_backend mpcc_backend_interp = {
	.name = "interp",
	.prepare = interp_prepare,
	.run_kernel = interp_run_kernel,
	.release = interp_release,
};
