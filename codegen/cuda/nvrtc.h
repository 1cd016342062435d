/*
 * nvrtc.h - compiling CUDA C source with NVRTC, linked at build time.
 *
 * One call compiles one translation unit (all kernels of a plan, as
 * mpcc_cuda_emit prints them) for one architecture: to a cubin for a real
 * architecture (sm_80, sm_90, ...) or to PTX for the matching virtual one
 * (compute_XY), which newer GPUs JIT-compile at load. Options fixed here keep
 * the numerics those of codegen/kir.h: no FMA contraction, IEEE division and
 * square root, denormals kept. The compiler log (warnings included, and with
 * `verbose` ptxas's per-function register and spill report) comes back in
 * full, so callers can treat a warning as a failure.
 *
 * Thread safety: NVRTC programs are independent; calls may run concurrently.
 */
#ifndef MPCC_CUDA_NVRTC_H
#define MPCC_CUDA_NVRTC_H

#include "ir/ir.h"

typedef struct mpcc_nvrtc_result {
	void *image; /* cubin, or NUL-terminated PTX; malloc'd */
	size_t image_size;
	char *log; /* compiler log, "" when empty; malloc'd */
} mpcc_nvrtc_result;

/*
 * Compiles src (name used in messages) for architecture sm (80 for sm_80):
 * a cubin, or PTX when ptx is true. With verbose, ptxas's resource report
 * is added to the log. On failure the log is still returned when there is
 * one. Errors: MPCC_ERR_BACKEND (compilation failed: the message quotes the
 * log's first error line), MPCC_ERR_UNSUPPORTED (architecture unknown to
 * this NVRTC), MPCC_ERR_NOMEM. Free out with mpcc_nvrtc_result_fini.
 */
mpcc_status mpcc_nvrtc_compile(const char *src, const char *name, int sm, bool ptx, bool verbose,
                               mpcc_nvrtc_result *out, mpcc_diag *d);
void mpcc_nvrtc_result_fini(mpcc_nvrtc_result *r);

/* "NVRTC 13.0" style version string into buf. */
void mpcc_nvrtc_version(char *buf, size_t n);
/* The newest architecture this NVRTC compiles for that is at most at_most
 * (90 for sm_90), or 0 when none is: what PTX to make for a GPU newer than
 * this NVRTC knows. */
int mpcc_nvrtc_newest_arch(int at_most);
/* The same as one number, major * 1000 + minor * 10 (13000); 0 if unknown. */
int mpcc_nvrtc_version_number(void);
/* The options every compile uses besides the architecture, as one string:
 * part of the key of runtime/cuda_cache.h, so changing them here retires
 * every cached binary. */
const char *mpcc_nvrtc_options(void);

#endif
