/*
 * backend.h - the interface every execution backend implements.
 *
 * The executor (runtime/session.c) owns host memory: it allocates one arena
 * for the plan's intermediates, binds inputs, outputs and weights, and for
 * each kernel in the schedule precomputes one pointer per kernel buffer
 * (TEMP buffers included, allocated by the executor). A backend compiles
 * the plan's kernels once in prepare() and then either runs one kernel per
 * run_kernel() (the host backends, which work in those buffers), or the
 * whole schedule per run() (the cuda backend, which keeps its own device
 * memory and only reads inputs from and writes outputs to the host
 * buffers). Backends read the plan and never change it.
 */
#ifndef MPCC_BACKEND_H
#define MPCC_BACKEND_H

#include "runtime/plan.h"

typedef struct mpcc_backend {
	const char *name;
	mpcc_status (*prepare)(const mpcc_plan *plan, void **out_state, mpcc_diag *d);
	/* Kernel `kernel` of the schedule on bufs (one pointer per buffer).
	 * May be NULL when run is set: the backend then cannot stop between
	 * kernels (mpcc_session_run_watched refuses it). */
	mpcc_status (*run_kernel)(void *state, int kernel, void **bufs, mpcc_diag *d);
	void (*release)(void *state);
	/* Optional: the whole schedule; bufs[k] is what run_kernel(k) would get
	 * (the pointers may change between runs: the trainer rebinds its
	 * state). When set, mpcc_session_run calls only this. */
	mpcc_status (*run)(void *state, void **const *bufs, mpcc_diag *d);
	/* Optional: one line on how this session runs (device, which code was
	 * loaded, fallbacks taken), valid until release; NULL: the name says
	 * it all. */
	const char *(*describe)(void *state);
	/* Optional, for mpcc_session_profile: the number of launches a run
	 * makes, describing each in out[0..n) (kernel, kernel_index, stage,
	 * grid, block) when out is not NULL; then run_timed, a whole run that
	 * stores launch i's device time in ms[i]. Without them the session
	 * times run_kernel calls on the host. */
	int (*launches)(void *state, mpcc_launch_time *out);
	mpcc_status (*run_timed)(void *state, void **const *bufs, double *ms, mpcc_diag *d);
} mpcc_backend;

extern const mpcc_backend mpcc_backend_cpu;    /* LLVM JIT (codegen/llvm) */
extern const mpcc_backend mpcc_backend_interp; /* kernel IR interpreter, the reference */
extern const mpcc_backend mpcc_backend_cuda;   /* NVRTC + driver API (runtime/backend_cuda.c) */

#endif
