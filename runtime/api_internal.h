/*
 * api_internal.h - what runtime/api.c and runtime/session.c share behind the
 * public header: the context's layout, the helper that records a failure in
 * it, and whole-file reading and writing (also used by the CLI and tests).
 */
#ifndef MPCC_API_INTERNAL_H
#define MPCC_API_INTERNAL_H

#include "ir/ir.h"

struct mpcc_context {
	char last_error[512]; /* "" until a call fails; kept across successes */
};

/* Copies d's message (or the status name) into cx when st is an error;
 * returns st. cx may be NULL. */
mpcc_status mpcc_context_fail(mpcc_context *cx, const mpcc_diag *d, mpcc_status st);

/* Puts "PREFIX: " in front of d's message (cut to fit). */
void mpcc_diag_prefix(mpcc_diag *d, const char *prefix);

/* Whole-file I/O. read: *out is malloc'd. write: to PATH.tmp, then renamed. */
mpcc_status mpcc_read_whole_file(const char *path, void **out, size_t *out_size, mpcc_diag *d);
mpcc_status mpcc_write_whole_file(const char *path, const void *buf, size_t size, mpcc_diag *d);

#endif
