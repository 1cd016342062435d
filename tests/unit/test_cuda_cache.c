/*
 * test_cuda_cache.c - the NVRTC binary cache (runtime/cuda_cache.c) and the
 * SHA-256 that keys it (runtime/sha256.c), host code only: runs in every
 * build, GPU or not.
 *
 * SHA-256 against FIPS 180-2's vectors, whole and fed in pieces; the
 * cache folder's resolution and creation; a miss then a hit; a different
 * architecture, driver, NVRTC or source missing; a damaged, truncated or
 * misnamed entry refused and deleted; unusable folders degrading to no
 * cache; and concurrent writers and readers never seeing half an entry.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runtime/cuda_cache.h"

static char tmp[64];

static void
hex_of(const void *data, size_t n, char out[65])
{
	uint8_t h[MPCC_SHA256_SIZE];

	mpcc_sha256_digest(data, n, h);
	mpcc_sha256_hex(h, out);
}

static void
sha256_matches_the_fips_vectors(void **state)
{
	char hex[65];
	uint8_t h[MPCC_SHA256_SIZE], whole[MPCC_SHA256_SIZE];
	mpcc_sha256 s;

	hex_of("", 0, hex);
	assert_string_equal(hex,
	                    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	hex_of("abc", 3, hex);
	assert_string_equal(hex,
	                    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	hex_of(two, strlen(two), hex);
	assert_string_equal(hex,
	                    "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
	char *a = malloc(1000000);
	assert_non_null(a);
	memset(a, 'a', 1000000);
	hex_of(a, 1000000, hex);
	assert_string_equal(hex,
	                    "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
	/* fed in uneven pieces: the same digest */
	mpcc_sha256_digest(a, 1000, whole);
	for (size_t step = 1; step < 130; step += 7) {
		mpcc_sha256_init(&s);
		for (size_t at = 0; at < 1000; at += step)
			mpcc_sha256_update(&s, a + at, at + step < 1000 ? step : 1000 - at);
		mpcc_sha256_final(&s, h);
		assert_memory_equal(h, whole, sizeof(h));
	}
	free(a);
}

static mpcc_cuda_cache_key
key_of(const char *src)
{
	mpcc_cuda_cache_key k = {90, 13000, 13000, {0}};

	mpcc_cuda_cache_hash_source("--fmad=false", src, k.source_hash);
	return k;
}

/* A fresh folder under tmp, named name; its path into out. */
static void
fresh_dir(const char *name, char *out, size_t n)
{
	char cmd[300];

	snprintf(out, n, "%s/%s", tmp, name);
	snprintf(cmd, sizeof(cmd), "rm -rf %s && mkdir -m 700 %s", out, out);
	assert_int_equal(system(cmd), 0);
}

static int
count_files(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

static void
the_folder_comes_from_the_environment_and_is_created_private(void **state)
{
	char dir[4096], why[200], want[300];
	struct stat st;

	snprintf(want, sizeof(want), "%s/env/a/b", tmp);
	setenv("MPCC_CACHE_DIR", want, 1);
	assert_true(mpcc_cuda_cache_dir(dir, sizeof(dir), why, sizeof(why)));
	assert_string_equal(dir, want);
	assert_int_equal(stat(dir, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0700);

	unsetenv("MPCC_CACHE_DIR");
	snprintf(want, sizeof(want), "%s/xdg", tmp);
	setenv("XDG_CACHE_HOME", want, 1);
	assert_true(mpcc_cuda_cache_dir(dir, sizeof(dir), why, sizeof(why)));
	strcat(want, "/mpcc");
	assert_string_equal(dir, want);

	setenv("XDG_CACHE_HOME", "relative/path", 1); /* ignored, as the XDG spec says */
	snprintf(want, sizeof(want), "%s/home", tmp);
	setenv("HOME", want, 1);
	assert_true(mpcc_cuda_cache_dir(dir, sizeof(dir), why, sizeof(why)));
	strcat(want, "/.cache/mpcc");
	assert_string_equal(dir, want);
	assert_int_equal(stat(dir, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);

	unsetenv("XDG_CACHE_HOME");
	unsetenv("HOME");
	assert_false(mpcc_cuda_cache_dir(dir, sizeof(dir), why, sizeof(why)));
	assert_string_equal(why, "no MPCC_CACHE_DIR, XDG_CACHE_HOME or HOME");
}

static void
a_miss_then_a_hit_and_every_key_field_matters(void **state)
{
	char dir[300];
	static const char payload[] = "\x7f"
	                              "ELF pretend cubin";
	void *got;
	size_t n;

	fresh_dir("keys", dir, sizeof(dir));
	mpcc_cuda_cache_key k = key_of("__global__ void k() {}");
	assert_int_equal(mpcc_cuda_cache_get(dir, &k, &got, &n), MPCC_CUDA_CACHE_MISS);
	assert_null(got);
	assert_true(mpcc_cuda_cache_put(dir, &k, payload, sizeof(payload)));
	assert_int_equal(mpcc_cuda_cache_get(dir, &k, &got, &n), MPCC_CUDA_CACHE_HIT);
	assert_int_equal(n, sizeof(payload));
	assert_memory_equal(got, payload, n);
	free(got);

	mpcc_cuda_cache_key other = k;
	other.arch = 80;
	assert_int_equal(mpcc_cuda_cache_get(dir, &other, &got, &n), MPCC_CUDA_CACHE_MISS);
	other = k;
	other.driver_version = 12080;
	assert_int_equal(mpcc_cuda_cache_get(dir, &other, &got, &n), MPCC_CUDA_CACHE_MISS);
	other = k;
	other.nvrtc_version = 13010;
	assert_int_equal(mpcc_cuda_cache_get(dir, &other, &got, &n), MPCC_CUDA_CACHE_MISS);
	other = key_of("__global__ void k() { }");
	assert_int_equal(mpcc_cuda_cache_get(dir, &other, &got, &n), MPCC_CUDA_CACHE_MISS);
	/* the options are part of the source hash */
	mpcc_cuda_cache_hash_source("--fmad=true", "__global__ void k() {}", other.source_hash);
	assert_int_equal(mpcc_cuda_cache_get(dir, &other, &got, &n), MPCC_CUDA_CACHE_MISS);
	/* and the entry is still there */
	assert_int_equal(mpcc_cuda_cache_get(dir, &k, &got, &n), MPCC_CUDA_CACHE_HIT);
	free(got);
	assert_int_equal(count_files(dir), 1);
}

/* Rewrites the entry of k in dir with edit applied, then expects it
 * refused and deleted, and a miss after. */
static void
refused_after(const char *dir, const mpcc_cuda_cache_key *k, const char *what,
              void (*edit)(const char *path))
{
	char path[4096];
	void *got;
	size_t n;

	assert_true(mpcc_cuda_cache_put(dir, k, "payload bytes", 13));
	assert_true(mpcc_cuda_cache_entry_path(dir, k, path, sizeof(path)));
	edit(path);
	if (mpcc_cuda_cache_get(dir, k, &got, &n) != MPCC_CUDA_CACHE_DAMAGED)
		fail_msg("%s: not refused", what);
	assert_null(got);
	assert_int_not_equal(access(path, F_OK), 0);
	assert_int_equal(mpcc_cuda_cache_get(dir, k, &got, &n), MPCC_CUDA_CACHE_MISS);
}

static void
flip_payload(const char *path)
{
	FILE *f = fopen(path, "r+b");
	assert_non_null(f);
	fseek(f, -1, SEEK_END);
	int c = fgetc(f);
	fseek(f, -1, SEEK_END);
	fputc(c ^ 1, f);
	fclose(f);
}

static void
flip_header(const char *path)
{
	FILE *f = fopen(path, "r+b");
	assert_non_null(f);
	fseek(f, 12, SEEK_SET); /* the architecture */
	fputc(80, f);
	fclose(f);
}

static void
truncate_by_one(const char *path)
{
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(truncate(path, st.st_size - 1), 0);
}

static void
truncate_to_header(const char *path)
{
	assert_int_equal(truncate(path, 40), 0);
}

static void
empty_it(const char *path)
{
	assert_int_equal(truncate(path, 0), 0);
}

static void
damaged_truncated_or_foreign_entries_are_deleted(void **state)
{
	char dir[300], path[4096], other_path[4096];
	mpcc_cuda_cache_key k = key_of("src"), other = key_of("other src");
	void *got;
	size_t n;

	fresh_dir("damaged", dir, sizeof(dir));
	refused_after(dir, &k, "a payload byte flipped", flip_payload);
	refused_after(dir, &k, "the header's architecture changed", flip_header);
	refused_after(dir, &k, "the last byte cut", truncate_by_one);
	refused_after(dir, &k, "cut inside the header", truncate_to_header);
	refused_after(dir, &k, "empty", empty_it);
	/* another key's valid entry under this key's name */
	assert_true(mpcc_cuda_cache_put(dir, &other, "theirs", 6));
	assert_true(mpcc_cuda_cache_entry_path(dir, &k, path, sizeof(path)));
	assert_true(mpcc_cuda_cache_entry_path(dir, &other, other_path, sizeof(other_path)));
	assert_int_equal(rename(other_path, path), 0);
	assert_int_equal(mpcc_cuda_cache_get(dir, &k, &got, &n), MPCC_CUDA_CACHE_DAMAGED);
	/* a folder in the entry's place is no entry */
	assert_int_equal(mkdir(path, 0700), 0);
	assert_int_equal(mpcc_cuda_cache_get(dir, &k, &got, &n), MPCC_CUDA_CACHE_MISS);
	assert_false(mpcc_cuda_cache_put(dir, &k, "x", 1));
	assert_int_equal(rmdir(path), 0);
}

static void
unusable_folders_mean_no_cache_and_no_error(void **state)
{
	char dir[300], path[400], why[200], got_dir[4096];
	mpcc_cuda_cache_key k = key_of("src");
	void *got;
	size_t n;

	/* under a regular file: cannot be created, even by root */
	snprintf(path, sizeof(path), "%s/file", tmp);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fclose(f);
	strcat(path, "/cache");
	setenv("MPCC_CACHE_DIR", path, 1);
	assert_false(mpcc_cuda_cache_dir(got_dir, sizeof(got_dir), why, sizeof(why)));
	assert_non_null(strstr(why, "cannot create"));
	assert_false(mpcc_cuda_cache_put(path, &k, "x", 1));
	assert_int_equal(mpcc_cuda_cache_get(path, &k, &got, &n), MPCC_CUDA_CACHE_MISS);
	assert_int_equal(mpcc_cuda_cache_get(NULL, &k, &got, &n), MPCC_CUDA_CACHE_MISS);

	/* relative */
	setenv("MPCC_CACHE_DIR", "cache", 1);
	assert_false(mpcc_cuda_cache_dir(got_dir, sizeof(got_dir), why, sizeof(why)));
	assert_non_null(strstr(why, "not an absolute path"));

	/* writable by others: refused, a cubin from it would run as us */
	fresh_dir("shared", dir, sizeof(dir));
	assert_int_equal(chmod(dir, 0777), 0);
	setenv("MPCC_CACHE_DIR", dir, 1);
	assert_false(mpcc_cuda_cache_dir(got_dir, sizeof(got_dir), why, sizeof(why)));
	assert_non_null(strstr(why, "not private to this user"));

	/* read-only: put fails quietly (root can write anyway: skip that part) */
	fresh_dir("readonly", dir, sizeof(dir));
	assert_int_equal(chmod(dir, 0500), 0);
	if (geteuid() != 0) {
		setenv("MPCC_CACHE_DIR", dir, 1);
		assert_false(mpcc_cuda_cache_dir(got_dir, sizeof(got_dir), why, sizeof(why)));
		assert_non_null(strstr(why, "not writable"));
		assert_false(mpcc_cuda_cache_put(dir, &k, "x", 1));
		assert_int_equal(count_files(dir), 0);
	}
	assert_int_equal(chmod(dir, 0700), 0);
	unsetenv("MPCC_CACHE_DIR");
}

/*
 * Writers in four processes store the same key (payloads differ by
 * writer, each valid) 200 times each while this process reads: every read
 * is a miss or a whole entry of one writer, never damaged, and one whole
 * entry is left with no temporary file beside it.
 */
static void
concurrent_writers_leave_one_valid_entry(void **state)
{
	char dir[300];
	mpcc_cuda_cache_key k = key_of("shared source");
	enum { WRITERS = 4, PUTS = 200, SIZE = 100000 };
	pid_t pid[WRITERS];
	int hits = 0;

	fresh_dir("concurrent", dir, sizeof(dir));
	for (int w = 0; w < WRITERS; w++) {
		pid[w] = fork();
		assert_true(pid[w] >= 0);
		if (pid[w] == 0) {
			uint8_t *b = malloc(SIZE);
			if (!b)
				_exit(1);
			memset(b, 'A' + w, SIZE);
			for (int i = 0; i < PUTS; i++)
				if (!mpcc_cuda_cache_put(dir, &k, b, SIZE))
					_exit(1);
			free(b);
			_exit(0);
		}
	}
	for (int alive = WRITERS; alive > 0;) {
		void *got;
		size_t n;
		mpcc_cuda_cache_result r = mpcc_cuda_cache_get(dir, &k, &got, &n);
		assert_int_not_equal(r, MPCC_CUDA_CACHE_DAMAGED);
		if (r == MPCC_CUDA_CACHE_HIT) {
			const uint8_t *b = got;
			assert_int_equal(n, SIZE);
			assert_true(b[0] >= 'A' && b[0] < 'A' + WRITERS);
			for (size_t i = 1; i < n; i++)
				if (b[i] != b[0])
					fail_msg("entry mixes writers at byte %zu", i);
			free(got);
			hits++;
		}
		alive = 0;
		for (int w = 0; w < WRITERS; w++) {
			int status;
			if (pid[w] > 0 && waitpid(pid[w], &status, WNOHANG) == pid[w]) {
				assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
				pid[w] = 0;
			}
			alive += pid[w] > 0;
		}
	}
	void *got;
	size_t n;
	assert_int_equal(mpcc_cuda_cache_get(dir, &k, &got, &n), MPCC_CUDA_CACHE_HIT);
	free(got);
	assert_int_equal(count_files(dir), 1);
	print_message("concurrent: %d whole entries read while %d writers stored %d each\n", hits,
	              WRITERS, PUTS);
}

static int
setup(void **state)
{
	snprintf(tmp, sizeof(tmp), "/tmp/mpcc_cache_XXXXXX");
	return mkdtemp(tmp) ? 0 : -1;
}

static int
teardown(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "chmod -R u+rwx %s; rm -rf %s", tmp, tmp);
	return system(cmd) == 0 ? 0 : -1;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(sha256_matches_the_fips_vectors),
	    cmocka_unit_test(the_folder_comes_from_the_environment_and_is_created_private),
	    cmocka_unit_test(a_miss_then_a_hit_and_every_key_field_matters),
	    cmocka_unit_test(damaged_truncated_or_foreign_entries_are_deleted),
	    cmocka_unit_test(unusable_folders_mean_no_cache_and_no_error),
	    cmocka_unit_test(concurrent_writers_leave_one_valid_entry),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
