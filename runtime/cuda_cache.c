/*
 * cuda_cache.c - the NVRTC binary cache (runtime/cuda_cache.h): folder
 * resolution, entry files with a checked header, atomic writes.
 *
 * Why SHA-256 for the source and the payload: the key is trusted without
 * comparing sources (the cache does not store them), so a collision would
 * run another plan's kernels on this plan's buffers and give wrong numbers
 * without an error. A 64-bit FNV-1a has birthday collisions around 2^32
 * entries and is trivial to collide on purpose; two independent 64-bit
 * hashes would be better but are still not designed to resist it. SHA-256
 * costs well under a millisecond for a plan's source, nothing beside the
 * NVRTC compile the entry saves.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/cuda_cache.h"

#define HEADER_SIZE 96
#define LAYOUT_VERSION 1

static const char entry_magic[8] = {'M', 'P', 'C', 'C', 'N', 'V', 'R', 'C'};

void
mpcc_cuda_cache_hash_source(const char *options, const char *src, uint8_t out[MPCC_SHA256_SIZE])
{
	mpcc_sha256 s;

	mpcc_sha256_init(&s);
	mpcc_sha256_update(&s, options, strlen(options));
	mpcc_sha256_update(&s, "\n", 1);
	mpcc_sha256_update(&s, src, strlen(src));
	mpcc_sha256_final(&s, out);
}

/* Creates every missing folder of path (absolute) with mode 0700. */
static bool
make_dirs(char *path)
{
	for (char *p = path + 1;; p++) {
		if (*p != '/' && *p != 0)
			continue;
		char c = *p;
		*p = 0;
		bool ok = mkdir(path, 0700) == 0 || errno == EEXIST;
		*p = c;
		if (!ok)
			return false;
		if (!c)
			return true;
	}
}

bool
mpcc_cuda_cache_dir(char *buf, size_t n, char *why, size_t why_n)
{
	const char *env = getenv("MPCC_CACHE_DIR"), *suffix = "";
	struct stat st;

	if (!env || !env[0]) {
		env = getenv("XDG_CACHE_HOME");
		suffix = "/mpcc";
		/* the XDG spec ignores a relative XDG_CACHE_HOME */
		if (!env || env[0] != '/') {
			env = getenv("HOME");
			suffix = "/.cache/mpcc";
		}
	}
	if (!env || !env[0]) {
		snprintf(why, why_n, "no MPCC_CACHE_DIR, XDG_CACHE_HOME or HOME");
		return false;
	}
	if (env[0] != '/') {
		snprintf(why, why_n, "cache folder '%s' is not an absolute path", env);
		return false;
	}
	if ((size_t)snprintf(buf, n, "%s%s", env, suffix) >= n) {
		snprintf(why, why_n, "cache folder path too long");
		return false;
	}
	if (!make_dirs(buf)) {
		snprintf(why, why_n, "cannot create %s: %s", buf, strerror(errno));
		return false;
	}
	if (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode)) {
		snprintf(why, why_n, "%s is not a folder", buf);
		return false;
	}
	if (st.st_uid != geteuid() || (st.st_mode & (S_IWGRP | S_IWOTH))) {
		snprintf(why, why_n, "%s is not private to this user", buf);
		return false;
	}
	if (access(buf, W_OK | X_OK) != 0) {
		snprintf(why, why_n, "%s is not writable", buf);
		return false;
	}
	return true;
}

bool
mpcc_cuda_cache_entry_path(const char *dir, const mpcc_cuda_cache_key *k, char *buf, size_t n)
{
	char hex[2 * MPCC_SHA256_SIZE + 1];

	mpcc_sha256_hex(k->source_hash, hex);
	return (size_t)snprintf(buf, n, "%s/cuda-sm%d-d%d-n%d-%s.bin", dir, k->arch,
	                        k->driver_version, k->nvrtc_version, hex) < n;
}

static void
put_u32(uint8_t *b, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		b[i] = (uint8_t)(v >> (8 * i));
}

/* The 96-byte header of an entry of size bytes for k (payload hash at 64). */
static void
make_header(uint8_t h[HEADER_SIZE], const mpcc_cuda_cache_key *k, const void *payload, size_t size)
{
	memset(h, 0, HEADER_SIZE);
	memcpy(h, entry_magic, 8);
	put_u32(h + 8, LAYOUT_VERSION);
	put_u32(h + 12, (uint32_t)k->arch);
	put_u32(h + 16, (uint32_t)k->driver_version);
	put_u32(h + 20, (uint32_t)k->nvrtc_version);
	memcpy(h + 24, k->source_hash, MPCC_SHA256_SIZE);
	put_u32(h + 56, (uint32_t)size);
	put_u32(h + 60, (uint32_t)((uint64_t)size >> 32));
	mpcc_sha256_digest(payload, size, h + 64);
}

/* Reads exactly n bytes; false on a short read or an error. */
static bool
read_all(int fd, void *buf, size_t n)
{
	uint8_t *p = buf;

	while (n) {
		ssize_t r = read(fd, p, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return false;
		p += r;
		n -= (size_t)r;
	}
	return true;
}

static bool
write_all(int fd, const void *buf, size_t n)
{
	const uint8_t *p = buf;

	while (n) {
		ssize_t r = write(fd, p, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return false;
		p += r;
		n -= (size_t)r;
	}
	return true;
}

/*
 * Why every header field is compared, not only the payload hash: the file
 * name carries the key, but a file renamed by hand, or written by a
 * different layout, must not pass for this key. Anything that fails is
 * deleted so the next writer replaces it.
 */
mpcc_cuda_cache_result
mpcc_cuda_cache_get(const char *dir, const mpcc_cuda_cache_key *k, void **out, size_t *out_size)
{
	char path[4096];
	uint8_t h[HEADER_SIZE], want[HEADER_SIZE];
	struct stat st;
	uint8_t *payload = NULL;
	size_t size;
	int fd;

	*out = NULL;
	*out_size = 0;
	if (!dir || !mpcc_cuda_cache_entry_path(dir, k, path, sizeof(path)))
		return MPCC_CUDA_CACHE_MISS;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0 && (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))) {
		close(fd); /* not an entry, and nothing to delete */
		fd = -1;
	}
	if (fd < 0)
		return MPCC_CUDA_CACHE_MISS;
	if (st.st_size <= HEADER_SIZE || !read_all(fd, h, HEADER_SIZE))
		goto damaged;
	size = (size_t)st.st_size - HEADER_SIZE;
	payload = malloc(size);
	if (!payload) {
		close(fd);
		return MPCC_CUDA_CACHE_MISS;
	}
	if (!read_all(fd, payload, size))
		goto damaged;
	make_header(want, k, payload, size); /* the payload's hash included */
	if (memcmp(h, want, HEADER_SIZE) != 0)
		goto damaged;
	close(fd);
	*out = payload;
	*out_size = size;
	return MPCC_CUDA_CACHE_HIT;
damaged:
	free(payload);
	close(fd);
	unlink(path);
	return MPCC_CUDA_CACHE_DAMAGED;
}

bool
mpcc_cuda_cache_put(const char *dir, const mpcc_cuda_cache_key *k, const void *payload, size_t size)
{
	char path[4096], tmp[4096 + 16];
	uint8_t h[HEADER_SIZE];
	bool ok;
	int fd;

	if (!dir || !size || !mpcc_cuda_cache_entry_path(dir, k, path, sizeof(path)))
		return false;
	snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path);
	fd = mkstemp(tmp);
	if (fd < 0)
		return false;
	make_header(h, k, payload, size);
	ok = write_all(fd, h, HEADER_SIZE) && write_all(fd, payload, size);
	ok = close(fd) == 0 && ok;
	if (!ok || rename(tmp, path) != 0) {
		unlink(tmp);
		return false;
	}
	return true;
}
