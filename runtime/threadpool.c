/*
 * threadpool.c - persistent workers that split a range into chunks.
 *
 * A job (range function, context, extent, chunk size) is published by
 * writing its fields and then one atomic claim word, (chunks in all, next
 * chunk), and bumping a generation counter that wakes the workers. Anyone
 * (workers and the caller) takes a chunk by a compare-and-swap of the claim
 * word from "next < total" to "next + 1", and reads the job's fields only
 * after that succeeded: a claimed chunk is not done, so the job is still
 * live and its fields still the ones published. A finished chunk bumps
 * `done`; the caller returns when every chunk is done.
 *
 * Why chunks and not workers are counted: on a loaded machine a worker can
 * stay descheduled for a whole time slice. Waiting for every worker to check
 * in would stall each stage that long (milliseconds a kernel); waiting only
 * for claimed chunks lets the caller run the job alone when the workers are
 * late. A late worker then finds the claim word exhausted (or already a
 * newer job's, which it may then help with: claims are always checked
 * against the live word) and goes back to waiting.
 *
 * Workers spin briefly on the generation before sleeping on a condition
 * variable: kernels come in quick succession during a run, and a sleeping
 * worker costs a futex wake-up per stage.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#include "runtime/threadpool.h"

#define SPIN_ITERS 20000

struct mpcc_threadpool {
	int n_threads; /* workers + caller */
	pthread_t *workers;
	int n_started;
	pthread_mutex_t mu;
	pthread_cond_t wake;
	atomic_uint_fast64_t gen; /* bumped per job */
	atomic_bool stop;
	/* the current job */
	mpcc_range_fn fn;
	void *ctx;
	int64_t n, chunk;
	atomic_uint_fast64_t claim; /* CLAIM_TOTAL(total) | next chunk */
	atomic_int_fast64_t done;   /* chunks finished */
};

/* The claim word: chunks in all in the high half, the next chunk to take in
 * the low half. */
#define CLAIM_TOTAL(t) ((uint_fast64_t)(t) << 32)
#define CLAIM_MAX_CHUNKS 0x7fffffff

static inline void
cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

/* Takes and runs chunks of the live job until none is left. */
static void
run_chunks(mpcc_threadpool *tp)
{
	uint_fast64_t c = atomic_load_explicit(&tp->claim, memory_order_acquire);

	for (;;) {
		uint_fast64_t total = c >> 32, next = c & 0xffffffffu;
		if (next >= total)
			return;
		if (!atomic_compare_exchange_weak_explicit(&tp->claim, &c, c + 1,
		                                           memory_order_acq_rel,
		                                           memory_order_acquire))
			continue; /* c now holds the live word */
		int64_t b = (int64_t)next * tp->chunk;
		int64_t e = b + tp->chunk < tp->n ? b + tp->chunk : tp->n;
		tp->fn(tp->ctx, b, e);
		atomic_fetch_add_explicit(&tp->done, 1, memory_order_release);
		c = atomic_load_explicit(&tp->claim, memory_order_acquire);
	}
}

static void *
worker(void *arg)
{
	mpcc_threadpool *tp = arg;
	uint_fast64_t seen = 0; /* the generation at creation: no job can predate a worker */

	for (;;) {
		int spin = 0;
		while (atomic_load_explicit(&tp->gen, memory_order_acquire) == seen &&
		       !atomic_load(&tp->stop) && spin < SPIN_ITERS) {
			cpu_relax();
			spin++;
		}
		if (atomic_load_explicit(&tp->gen, memory_order_acquire) == seen) {
			pthread_mutex_lock(&tp->mu);
			while (atomic_load(&tp->gen) == seen && !atomic_load(&tp->stop))
				pthread_cond_wait(&tp->wake, &tp->mu);
			pthread_mutex_unlock(&tp->mu);
		}
		if (atomic_load(&tp->stop))
			return NULL;
		seen = atomic_load_explicit(&tp->gen, memory_order_acquire);
		run_chunks(tp);
	}
}

int
mpcc_threadpool_default_size(void)
{
	const char *env = getenv("MPCC_NUM_THREADS");
	cpu_set_t set;

	if (env && *env) {
		char *end;
		long v = strtol(env, &end, 10);
		if (!*end && v > 0 && v <= 1024)
			return (int)v;
	}
	if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
		return CPU_COUNT(&set);
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (int)n : 1;
}

mpcc_status
mpcc_threadpool_create(int n_threads, mpcc_threadpool **out)
{
	mpcc_threadpool *tp;

	*out = NULL;
	tp = calloc(1, sizeof(*tp));
	if (!tp)
		return MPCC_ERR_NOMEM;
	tp->n_threads = n_threads > 1 ? n_threads : 1;
	pthread_mutex_init(&tp->mu, NULL);
	pthread_cond_init(&tp->wake, NULL);
	atomic_init(&tp->gen, 0);
	atomic_init(&tp->stop, false);
	atomic_init(&tp->claim, 0);
	atomic_init(&tp->done, 0);
	if (tp->n_threads > 1) {
		tp->workers = calloc((size_t)tp->n_threads - 1, sizeof(pthread_t));
		if (!tp->workers) {
			mpcc_threadpool_destroy(tp);
			return MPCC_ERR_NOMEM;
		}
		for (int i = 0; i < tp->n_threads - 1; i++) {
			if (pthread_create(&tp->workers[i], NULL, worker, tp) != 0) {
				mpcc_threadpool_destroy(tp);
				return MPCC_ERR_BACKEND;
			}
			tp->n_started++;
		}
	}
	*out = tp;
	return MPCC_OK;
}

void
mpcc_threadpool_destroy(mpcc_threadpool *tp)
{
	if (!tp)
		return;
	pthread_mutex_lock(&tp->mu);
	atomic_store(&tp->stop, true);
	pthread_cond_broadcast(&tp->wake);
	pthread_mutex_unlock(&tp->mu);
	for (int i = 0; i < tp->n_started; i++)
		pthread_join(tp->workers[i], NULL);
	free(tp->workers);
	pthread_cond_destroy(&tp->wake);
	pthread_mutex_destroy(&tp->mu);
	free(tp);
}

int
mpcc_threadpool_size(const mpcc_threadpool *tp)
{
	return tp ? tp->n_threads : 1;
}

void
mpcc_threadpool_for(mpcc_threadpool *tp, int64_t n, int64_t chunk, mpcc_range_fn fn, void *ctx)
{
	if (n <= 0)
		return;
	if (chunk < 1)
		chunk = 1;
	if (n / chunk >= CLAIM_MAX_CHUNKS)
		chunk = n / CLAIM_MAX_CHUNKS + 1;
	if (!tp || tp->n_started == 0 || chunk >= n) {
		fn(ctx, 0, n);
		return;
	}
	int64_t total = (n + chunk - 1) / chunk;
	tp->fn = fn;
	tp->ctx = ctx;
	tp->n = n;
	tp->chunk = chunk;
	atomic_store_explicit(&tp->done, 0, memory_order_relaxed);
	atomic_store_explicit(&tp->claim, CLAIM_TOTAL(total), memory_order_release);
	pthread_mutex_lock(&tp->mu);
	atomic_fetch_add_explicit(&tp->gen, 1, memory_order_release);
	pthread_cond_broadcast(&tp->wake);
	pthread_mutex_unlock(&tp->mu);
	run_chunks(tp);
	for (int spin = 0; atomic_load_explicit(&tp->done, memory_order_acquire) < total; spin++) {
		if (spin < SPIN_ITERS)
			cpu_relax();
		else
			sched_yield();
	}
}
