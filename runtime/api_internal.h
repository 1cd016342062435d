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

/* Places plan tensors tensors[0..n) at ptrs[0..n) from now on (each 64-byte
 * aligned, the tensor's nbytes, kept alive by the caller), then rewires
 * every kernel's buffer pointers in one pass; an input placed this way
 * counts as set. No allocation, so the trainer can swap its state buffers
 * every step (runtime/train.c). Weights must not be rebound. */
void mpcc_session_bind_tensors(mpcc_session *s, int n, const int32_t *tensors, void *const *ptrs);
/* Where plan tensor t lives now (NULL for an index out of range). */
void *mpcc_session_tensor_data(const mpcc_session *s, int32_t t);

/* Called after kernel k of a watched run with the tensors it wrote in
 * place (mpcc_session_tensor_data); returning true stops the run there. */
typedef bool (*mpcc_kernel_watch)(void *user, int kernel);
/* mpcc_session_run, kernel by kernel under watch: for diagnosis (the
 * trainer's collapse guard), on a host backend, whose tensors are host
 * memory. */
mpcc_status mpcc_session_run_watched(mpcc_session *s, mpcc_kernel_watch watch, void *user);

/* Whole-file I/O. read: *out is malloc'd. write: to PATH.tmp, then renamed. */
mpcc_status mpcc_read_whole_file(const char *path, void **out, size_t *out_size, mpcc_diag *d);
mpcc_status mpcc_write_whole_file(const char *path, const void *buf, size_t size, mpcc_diag *d);

#endif
