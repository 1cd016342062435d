/*
 * backend_cuda_none.c - the cuda backend of a build without the CUDA
 * toolkit (MPCC_WITH_CUDA=OFF): it exists so "cuda" is a known backend name
 * everywhere, and refuses every session with a message saying why.
 */
#include "runtime/backend.h"

static mpcc_status
prepare(const mpcc_plan *plan, void **out_state, mpcc_diag *d)
{
	*out_state = NULL;
	return mpcc_diag_error(d, MPCC_ERR_UNSUPPORTED,
	                       "cuda backend: this mpcc was built without the CUDA toolkit "
	                       "(configure with MPCC_WITH_CUDA=ON where NVRTC is installed)");
}

static mpcc_status
run_kernel(void *state, int kernel, void **bufs, mpcc_diag *d)
{
	return mpcc_diag_error(d, MPCC_ERR_INTERNAL, "cuda backend: not available in this build");
}

static void
release(void *state)
{
}

const mpcc_backend mpcc_backend_cuda = {"cuda", prepare, run_kernel, release};
