/*
 * backend_cuda_none.c - the CUDA parts of a build without the CUDA toolkit
 * (MPCC_WITH_CUDA=OFF): the cuda backend exists so "cuda" is a known
 * backend name everywhere, and refuses every session with a message saying
 * why; the compiler writes no GPU images (runtime/plan_cuda_build.c is the
 * real one). Plans that carry images still load and run on the other
 * backends: section CUDA is read by runtime/plan_cuda.c in every build.
 */
#include <string.h>

#include "runtime/backend.h"

mpcc_status
mpcc_plan_cuda_build(mpcc_plan *p, const char *spec, mpcc_diag *d)
{
	mpcc_cuda_target t[MPCC_CUDA_MAX_TARGETS];
	int n = 0;
	mpcc_status st = mpcc_cuda_targets_parse(spec, t, &n, d);

	if (st != MPCC_OK || n == 0 || strcmp(spec, "default") == 0)
		return st;
	return mpcc_diag_error(d, MPCC_ERR_UNSUPPORTED,
	                       "--cuda-archs %s: this mpcc was built without the CUDA toolkit and "
	                       "cannot compile GPU images (use --cuda-archs none)",
	                       spec);
}

mpcc_status
mpcc_plan_cuda_describe(const mpcc_plan *p, char **out, mpcc_diag *d)
{
	(void)p;
	*out = NULL;
	return mpcc_diag_error(d, MPCC_ERR_UNSUPPORTED,
	                       "inspect --cuda: this mpcc was built without the CUDA toolkit");
}

static mpcc_status
prepare(const mpcc_plan *plan, void **out_state, mpcc_diag *d)
{
	*out_state = NULL;
	return mpcc_diag_error(d, MPCC_ERR_UNSUPPORTED,
	                       "cuda backend: this mpcc was built without the CUDA toolkit "
	                       "(configure with MPCC_WITH_CUDA=ON where NVRTC is installed)");
}

static void
release(void *state)
{
}

const mpcc_backend mpcc_backend_cuda = {.name = "cuda", .prepare = prepare, .release = release};
