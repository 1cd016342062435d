/*
 * sha256.h - SHA-256 (FIPS 180-4), for keys that must not collide.
 *
 * The plan's checksum is FNV-1a 64 (runtime/plan.h), which catches damage
 * but not a deliberate or birthday collision. Where a hash names content
 * that is then trusted without comparing it, as the NVRTC cache does with
 * CUDA source (runtime/cuda_cache.h), a collision would load the wrong
 * kernels silently, so those places use SHA-256. Incremental, no
 * allocation, thread safe (state in caller storage).
 */
#ifndef MPCC_SHA256_H
#define MPCC_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define MPCC_SHA256_SIZE 32

typedef struct mpcc_sha256 {
	uint32_t h[8];
	uint64_t n_bytes;  /* message bytes so far */
	uint8_t block[64]; /* the partial block */
} mpcc_sha256;

void mpcc_sha256_init(mpcc_sha256 *s);
void mpcc_sha256_update(mpcc_sha256 *s, const void *data, size_t n);
void mpcc_sha256_final(mpcc_sha256 *s, uint8_t out[MPCC_SHA256_SIZE]);
/* One call: the digest of data[0..n). */
void mpcc_sha256_digest(const void *data, size_t n, uint8_t out[MPCC_SHA256_SIZE]);
/* The digest as 64 lowercase hex digits and a NUL. */
void mpcc_sha256_hex(const uint8_t digest[MPCC_SHA256_SIZE], char out[2 * MPCC_SHA256_SIZE + 1]);

#endif
