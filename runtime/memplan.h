/*
 * memplan.h - liveness-based placement of a plan's intermediates in one
 * arena.
 *
 * The session computes this when it is created (the plan file stays as it
 * is: placement is cheap, and keeping it out of the file lets the runtime
 * change strategy without a format version). Intermediates are the tensors
 * that are no graph input, output or weight, plus every kernel's TEMP
 * buffers. Each lives from the first kernel of the schedule that touches it
 * to the last; two items whose lives overlap get disjoint bytes, so a
 * kernel's inputs and outputs never alias (no in-place execution yet).
 */
#ifndef MPCC_MEMPLAN_H
#define MPCC_MEMPLAN_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/plan.h"

#define MPCC_MEMPLAN_ALIGN 64

typedef struct mpcc_memplan {
	size_t arena_size;        /* bytes of the shared arena: the planned peak */
	size_t sum_intermediates; /* bytes with one buffer per item (64-byte aligned each) */
	int n_planned;            /* items placed in the arena */
	int64_t *tensor_off;      /* per plan tensor: arena offset, -1 when not planned */
	int64_t *temp_off;        /* per TEMP buffer, kernel by kernel in buffer order */
	int *temp_first;          /* per kernel: index in temp_off of its first TEMP */
} mpcc_memplan;

/* Places p's intermediates. Errors: MPCC_ERR_NOMEM; MPCC_ERR_INVALID when a
 * size overflows. mp is zeroed first; release it with mpcc_memplan_fini. */
mpcc_status mpcc_memplan_build(const mpcc_plan *p, mpcc_memplan *mp);
void mpcc_memplan_fini(mpcc_memplan *mp);

#endif
