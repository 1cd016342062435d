/*
 * cuda_cache.h - the per-user cache of GPU binaries NVRTC compiled at run
 * time (runtime/backend_cuda.c), so a plan whose stored images fit no GPU
 * pays NVRTC's seconds once per machine, not once per session.
 *
 * Host-only code: files and hashes, no CUDA header and no driver, so it is
 * tested without a GPU (tests/unit/test_cuda_cache.c).
 *
 * Where: $MPCC_CACHE_DIR, else $XDG_CACHE_HOME/mpcc, else $HOME/.cache/mpcc;
 * missing folders are created with mode 0700. A folder owned by another
 * user, or writable by group or others, is refused: a cubin loaded from it
 * runs as the caller. What: one file per entry, named after its key
 * ("cuda-sm90-d13000-n13000-<sha256 hex>.bin"), holding a 96-byte header
 * (magic, layout version, the key again, payload length and the payload's
 * SHA-256) and the payload. An entry is written to a temporary file in the
 * same folder and renamed over its name, so readers and concurrent writers
 * only ever see whole entries; one that is truncated or damaged anyway
 * (a crash before the data reached the disk) fails its checks, is deleted
 * and reads as a miss. The cache never fails a caller: when the folder is
 * unusable, nothing is cached and every get misses.
 *
 * Thread safety: no shared state; calls may run concurrently, from several
 * processes too.
 */
#ifndef MPCC_CUDA_CACHE_H
#define MPCC_CUDA_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/sha256.h"

/* What an entry is valid for: the same source compiled by the same NVRTC
 * with the same options for the same GPU architecture and driver. */
typedef struct mpcc_cuda_cache_key {
	int arch;                              /* the device's compute capability: 90 for sm_90 */
	int driver_version;                    /* cuDriverGetVersion: 13000 for CUDA 13.0 */
	int nvrtc_version;                     /* major * 1000 + minor * 10, as CUDA_VERSION */
	uint8_t source_hash[MPCC_SHA256_SIZE]; /* mpcc_cuda_cache_hash_source */
} mpcc_cuda_cache_key;

typedef enum mpcc_cuda_cache_result {
	MPCC_CUDA_CACHE_MISS = 0, /* no entry (or no usable folder) */
	MPCC_CUDA_CACHE_HIT,      /* *out holds the payload */
	MPCC_CUDA_CACHE_DAMAGED,  /* an entry failed its checks and was deleted */
} mpcc_cuda_cache_result;

/* SHA-256 of the compiler options, a newline and the source: a change to
 * either makes a new key. */
void mpcc_cuda_cache_hash_source(const char *options, const char *src,
                                 uint8_t out[MPCC_SHA256_SIZE]);

/*
 * Resolves the cache folder into buf (n bytes) and creates what is missing
 * of it. false when there is none to use (no variable names one, it cannot
 * be created, it is not a folder, not the caller's, writable by others or
 * not writable); then why (why_n bytes) says which, in a few words.
 */
bool mpcc_cuda_cache_dir(char *buf, size_t n, char *why, size_t why_n);

/* "DIR/cuda-sm90-d13000-n13000-<hex>.bin" into buf; false if it does not fit. */
bool mpcc_cuda_cache_entry_path(const char *dir, const mpcc_cuda_cache_key *k, char *buf, size_t n);

/* Looks k up in dir. HIT: *out (malloc'd, the caller frees) and *out_size
 * hold the payload. MISS and DAMAGED: *out is NULL. Out of memory reads as
 * a miss. */
mpcc_cuda_cache_result mpcc_cuda_cache_get(const char *dir, const mpcc_cuda_cache_key *k,
                                           void **out, size_t *out_size);

/* Stores size bytes (>= 1) under k in dir, atomically; false when it could
 * not (the folder is unwritable, the disk full): the caller goes on. */
bool mpcc_cuda_cache_put(const char *dir, const mpcc_cuda_cache_key *k, const void *payload,
                         size_t size);

#endif
