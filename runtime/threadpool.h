/*
 * threadpool.h - a small persistent pool of worker threads that splits a
 * range of indices into chunks.
 *
 * A pool belongs to whoever creates it (the CPU backend creates one per
 * session); there is no global pool. mpcc_threadpool_for() hands out chunks
 * of [0, n) to the workers and to the calling thread, which takes part, and
 * returns when every chunk has run. Each chunk runs exactly once, so a range
 * function that writes disjoint outputs per index gives results independent
 * of the thread count. Dispatch allocates nothing.
 *
 * Thread safety: one pool serves one caller at a time (a session is used by
 * one thread at a time, see mpcc.h).
 */
#ifndef MPCC_THREADPOOL_H
#define MPCC_THREADPOOL_H

#include <stdint.h>

#include "mpcc.h"

typedef struct mpcc_threadpool mpcc_threadpool;
typedef void (*mpcc_range_fn)(void *ctx, int64_t begin, int64_t end);

/* A pool of n_threads in all, the caller included (n_threads - 1 workers are
 * started; n_threads <= 1 starts none and runs everything inline).
 * Errors: MPCC_ERR_NOMEM, MPCC_ERR_BACKEND when a thread cannot start. */
mpcc_status mpcc_threadpool_create(int n_threads, mpcc_threadpool **out);
void mpcc_threadpool_destroy(mpcc_threadpool *tp);
int mpcc_threadpool_size(const mpcc_threadpool *tp);

/* Runs fn(ctx, b, e) over [0, n) in chunks of at most `chunk` indices and
 * waits for all of them. */
void mpcc_threadpool_for(mpcc_threadpool *tp, int64_t n, int64_t chunk, mpcc_range_fn fn,
                         void *ctx);

/* Threads a pool should have: MPCC_NUM_THREADS when set to a positive
 * number, else the CPUs this process may run on. */
int mpcc_threadpool_default_size(void);

#endif
