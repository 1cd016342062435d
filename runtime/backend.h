/*
 * backend.h - the interface every execution backend implements.
 *
 * The executor (runtime/session.c) owns memory: it allocates one arena for
 * the plan's intermediates, binds inputs, outputs and weights, and for each
 * kernel in the schedule passes the backend one pointer per kernel buffer
 * (TEMP buffers included, allocated by the executor). A backend compiles the
 * plan's kernels once in prepare() and runs one kernel per run_kernel().
 * Backends read the plan and never change it.
 */
#ifndef MPCC_BACKEND_H
#define MPCC_BACKEND_H

#include "runtime/plan.h"

typedef struct mpcc_backend {
	const char *name;
	mpcc_status (*prepare)(const mpcc_plan *plan, void **out_state, mpcc_diag *d);
	mpcc_status (*run_kernel)(void *state, int kernel, void **bufs, mpcc_diag *d);
	void (*release)(void *state);
} mpcc_backend;

extern const mpcc_backend mpcc_backend_cpu;    /* LLVM JIT (codegen/llvm) */
extern const mpcc_backend mpcc_backend_interp; /* kernel IR interpreter, the reference */
extern const mpcc_backend mpcc_backend_cuda;   /* NVRTC + driver API (runtime/backend_cuda.c) */

#endif
