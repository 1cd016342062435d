/*
 * test_mutate.c - damaged models never crash or hang the compiler.
 *
 * Takes every Nth model of the ONNX backend test suite (sorted, so the pick
 * is the same on every machine), makes a few mutations of each with a
 * fixed-seed PRNG (bit flips, byte overwrites, truncation), and compiles each
 * mutated buffer in a forked child under alarm(). The parent requires that
 * the child exits normally, and that it reports either success or a failure
 * status with a non-empty one-line message (passed back through a pipe).
 * A failure names the model, the mutation and the seed, so it replays.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mpcc.h"

#define SUITE "/usr/share/libonnx-testdata/data"
#define N_MODELS 40
#define N_MUTATIONS 8
#define SEED UINT64_C(0x6d706363) /* "mpcc" */
#define CHILD_SECONDS 20
#define MAX_MODEL_BYTES (1 << 20) /* skip the few large models: time */

typedef struct paths {
	char **p;
	size_t n, cap;
} paths;

static void
paths_add(paths *ps, const char *s)
{
	if (ps->n == ps->cap) {
		ps->cap = ps->cap ? 2 * ps->cap : 256;
		ps->p = realloc(ps->p, ps->cap * sizeof *ps->p);
		assert_non_null(ps->p);
	}
	ps->p[ps->n] = strdup(s);
	assert_non_null(ps->p[ps->n]);
	ps->n++;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every SUITE/<group>/<case>/model.onnx under the size limit, sorted. */
static void
collect_models(paths *ps)
{
	static const char *const groups[] = {"node", "pytorch-converted", "pytorch-operator",
	                                     "simple"};
	for (size_t g = 0; g < sizeof groups / sizeof groups[0]; g++) {
		char dir[512];
		snprintf(dir, sizeof dir, "%s/%s", SUITE, groups[g]);
		DIR *dp = opendir(dir);
		if (!dp)
			continue;
		struct dirent *e;
		while ((e = readdir(dp))) {
			if (e->d_name[0] == '.')
				continue;
			char path[1024];
			snprintf(path, sizeof path, "%s/%s/model.onnx", dir, e->d_name);
			FILE *f = fopen(path, "rb");
			if (!f)
				continue;
			fseek(f, 0, SEEK_END);
			long n = ftell(f);
			fclose(f);
			if (n > 0 && n <= MAX_MODEL_BYTES)
				paths_add(ps, path);
		}
		closedir(dp);
	}
	qsort(ps->p, ps->n, sizeof *ps->p, cmp_str);
}

static unsigned char *
slurp(const char *path, size_t *size)
{
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	unsigned char *buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*size = (size_t)n;
	return buf;
}

/* xorshift64*: small, fixed, the same everywhere. */
static uint64_t
rnd(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * UINT64_C(2685821657736338717);
}

static const char *const kinds[] = {"bit flips", "byte overwrites", "truncation"};

/* Mutates buf in place; returns the new size. */
static size_t
mutate(unsigned char *buf, size_t size, int kind, uint64_t *s)
{
	if (kind == 2)
		return (size_t)(rnd(s) % size);
	int n = 1 + (int)(rnd(s) % 3);
	for (int i = 0; i < n; i++) {
		size_t at = (size_t)(rnd(s) % size);
		if (kind == 0)
			buf[at] ^= (unsigned char)(1u << (rnd(s) % 8));
		else
			buf[at] = (unsigned char)rnd(s);
	}
	return size;
}

/* In the child: compile, report "status\tmessage" through fd, exit 0. */
static void
child(int fd, const unsigned char *buf, size_t size)
{
	alarm(CHILD_SECONDS);
	mpcc_context *cx;
	char msg[1024];
	mpcc_status s = mpcc_context_create(&cx);
	if (s == MPCC_OK) {
		mpcc_compile_options opts;
		mpcc_compile_options_init(&opts);
		opts.precision = MPCC_PRECISION_FP32; /* exact f32 results */
		void *plan = NULL;
		size_t plan_size = 0;
		s = mpcc_compile_buffer(cx, buf, size, NULL, &opts, &plan, &plan_size);
		free(plan);
		snprintf(msg, sizeof msg, "%d\t%s", (int)s, s ? mpcc_context_last_error(cx) : "");
		mpcc_context_destroy(cx);
	} else {
		snprintf(msg, sizeof msg, "%d\tcontext", (int)s);
	}
	size_t n = strlen(msg), off = 0;
	while (off < n) {
		ssize_t w = write(fd, msg + off, n - off);
		if (w <= 0)
			_exit(3);
		off += (size_t)w;
	}
	_exit(0);
}

typedef struct tally {
	int total, by_status[8], crashes, timeouts, bad_messages;
} tally;

/* Runs one mutated buffer in a child; returns false (after printing why)
 * when the child misbehaved. */
static bool
run_one(const unsigned char *buf, size_t size, const char *what, tally *t)
{
	int fds[2];
	assert_int_equal(pipe(fds), 0);
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(fds[0]);
		child(fds[1], buf, size);
	}
	close(fds[1]);
	char msg[2048];
	size_t n = 0;
	ssize_t r;
	while (n < sizeof msg - 1 && (r = read(fds[0], msg + n, sizeof msg - 1 - n)) > 0)
		n += (size_t)r;
	msg[n] = '\0';
	close(fds[0]);
	int ws;
	assert_int_equal(waitpid(pid, &ws, 0), pid);
	t->total++;
	if (WIFSIGNALED(ws)) {
		int sig = WTERMSIG(ws);
		if (sig == SIGALRM)
			t->timeouts++;
		else
			t->crashes++;
		print_error("%s: child %s (signal %d)\n", what,
		            sig == SIGALRM ? "timed out" : "crashed", sig);
		return false;
	}
	if (!WIFEXITED(ws) || WEXITSTATUS(ws) != 0) {
		t->crashes++;
		print_error("%s: child exited with %d\n", what, WEXITSTATUS(ws));
		return false;
	}
	char *tab = strchr(msg, '\t');
	int st = atoi(msg);
	if (!tab || st < 0 || st > 7) {
		t->bad_messages++;
		print_error("%s: malformed report '%s'\n", what, msg);
		return false;
	}
	t->by_status[st]++;
	const char *text = tab + 1;
	if (st != MPCC_OK && (!text[0] || strchr(text, '\n'))) {
		t->bad_messages++;
		print_error("%s: status %d with message '%s' (empty or several lines)\n", what, st,
		            text);
		return false;
	}
	return true;
}

static void
mutated_models_fail_cleanly_or_compile(void **state)
{
	paths ps = {0};
	collect_models(&ps);
	if (ps.n < N_MODELS) {
		print_message("mutate: the ONNX backend test suite is not installed; skipped\n");
		skip();
	}
	size_t step = ps.n / N_MODELS;
	uint64_t s = SEED;
	tally t = {0};
	int failures = 0;
	time_t start = time(NULL);
	for (size_t m = 0; m < N_MODELS; m++) {
		const char *path = ps.p[m * step];
		size_t size;
		unsigned char *orig = slurp(path, &size);
		unsigned char *buf = malloc(size + 1);
		assert_non_null(buf);
		for (int k = 0; k < N_MUTATIONS; k++) {
			int kind = k % 3;
			uint64_t seed_here = s;
			memcpy(buf, orig, size);
			size_t n = mutate(buf, size, kind, &s);
			char what[1200];
			snprintf(what, sizeof what, "%s mutation %d (%s, prng state %#llx)", path,
			         k, kinds[kind], (unsigned long long)seed_here);
			if (!run_one(buf, n, what, &t))
				failures++;
		}
		free(buf);
		free(orig);
	}
	print_message("mutate: %d buffers from %d models in %lds: %d compiled, %d invalid, "
	              "%d unsupported, %d other failures; %d crashes, %d timeouts, %d bad "
	              "messages\n",
	              t.total, N_MODELS, (long)(time(NULL) - start), t.by_status[MPCC_OK],
	              t.by_status[MPCC_ERR_INVALID], t.by_status[MPCC_ERR_UNSUPPORTED],
	              t.total - t.by_status[MPCC_OK] - t.by_status[MPCC_ERR_INVALID] -
	                  t.by_status[MPCC_ERR_UNSUPPORTED] - t.crashes - t.timeouts -
	                  t.bad_messages,
	              t.crashes, t.timeouts, t.bad_messages);
	for (size_t i = 0; i < ps.n; i++)
		free(ps.p[i]);
	free(ps.p);
	assert_int_equal(failures, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(mutated_models_fail_cleanly_or_compile),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
