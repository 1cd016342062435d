/*
 * conformance.c - runs ONNX backend test cases through mpcc and reports
 * passed, failed and unsupported per folder.
 *
 * Each case runs in a forked child under alarm(60), so a crash or a hang in
 * one case is that case's FAIL and not the runner's end. The child compiles
 * the model in memory, loads the plan, runs every test_data_set_* and writes
 * one result line into a pipe: "P", "F reason" or "U reason". The parent keeps
 * up to --jobs children running, then prints the cases that did not pass,
 * per-folder counts and a last summary line that scripts parse.
 */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "frontend/onnx.h"
#include "runtime/api_internal.h"
#include "runtime/plan.h"

#define TIMEOUT_S 60
#define REASON_MAX 400

typedef struct tcase {
	char *dir;   /* case folder */
	char *id;    /* parent/case */
	char *group; /* parent folder name */
	char result; /* 'P', 'F', 'U'; 0 while pending */
	bool low;    /* passed with at least one node computing in f16/bf16 */
	char reason[REASON_MAX];
	pid_t pid;
	int fd;
} tcase;

typedef struct cfg {
	const char *backend;
	mpcc_precision precision;
	bool verbose;
	bool no_fuse; /* compile with mpcc_compile_options.no_fuse */
	bool low_io;  /* compile with low_io: graph inputs and outputs low too */
} cfg;

static tcase *cases;
static int n_cases, cap_cases;

static bool
is_dir(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool
has_model(const char *dir)
{
	char p[4096];
	struct stat st;

	snprintf(p, sizeof(p), "%s/model.onnx", dir);
	return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static char *
xstrdup(const char *s)
{
	char *r = strdup(s);

	if (!r) {
		fprintf(stderr, "mpcc-conformance: out of memory\n");
		exit(1);
	}
	return r;
}

static void
add_case(const char *dir)
{
	char buf[4096], *slash, *parent;

	if (n_cases == cap_cases) {
		cap_cases = cap_cases ? cap_cases * 2 : 256;
		cases = realloc(cases, sizeof(tcase) * (size_t)cap_cases);
		if (!cases) {
			fprintf(stderr, "mpcc-conformance: out of memory\n");
			exit(1);
		}
	}
	tcase *c = &cases[n_cases++];
	memset(c, 0, sizeof(*c));
	c->dir = xstrdup(dir);
	snprintf(buf, sizeof(buf), "%s", dir);
	while (strlen(buf) > 1 && buf[strlen(buf) - 1] == '/')
		buf[strlen(buf) - 1] = 0;
	slash = strrchr(buf, '/');
	const char *name = slash ? slash + 1 : buf;
	if (slash) {
		*slash = 0;
		parent = strrchr(buf, '/');
		parent = parent ? parent + 1 : buf;
	} else {
		parent = ".";
	}
	c->group = xstrdup(parent);
	char id[4096];
	snprintf(id, sizeof(id), "%s/%s", parent, name);
	c->id = xstrdup(id);
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A case folder, or a folder of case folders (sorted by name). */
static void
collect(const char *dir)
{
	if (has_model(dir)) {
		add_case(dir);
		return;
	}
	DIR *dp = opendir(dir);
	if (!dp) {
		fprintf(stderr, "mpcc-conformance: cannot open '%s': %s\n", dir, strerror(errno));
		exit(2);
	}
	char **names = NULL;
	int n = 0, cap = 0;
	struct dirent *e;
	while ((e = readdir(dp))) {
		if (e->d_name[0] == '.')
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 256;
			names = realloc(names, sizeof(char *) * (size_t)cap);
			if (!names)
				exit(1);
		}
		names[n++] = xstrdup(e->d_name);
	}
	closedir(dp);
	qsort(names, (size_t)n, sizeof(char *), cmp_str);
	for (int i = 0; i < n; i++) {
		char p[4096];
		snprintf(p, sizeof(p), "%s/%s", dir, names[i]);
		if (is_dir(p) && has_model(p))
			add_case(p);
		free(names[i]);
	}
	free(names);
}

/* ---------------------------------------------------------------- the child */

/*
 * The tolerance: |got - exp| <= tol_abs + tol_rel * |exp|. fp32 keeps its
 * fixed 1e-7 + 1e-3. The low-precision modes allow LOW_ROUNDINGS unit
 * roundoffs u of the low dtype (fp16 u = 2^-11, bf16 u = 2^-8), both
 * absolute and relative; docs/precision.md derives the multiple from the
 * roundings a typical case sees. It is stated, not tuned to pass.
 */
#define LOW_ROUNDINGS 32.0
static double tol_abs = 1e-7, tol_rel = 1e-3;

static void
set_tolerance(mpcc_precision p)
{
	double u = p == MPCC_PRECISION_BF16 ? 0x1p-8 : 0x1p-11;
	if (p == MPCC_PRECISION_FP32)
		return;
	tol_abs = tol_rel = LOW_ROUNDINGS * u;
}

static bool
close_enough(double got, double exp)
{
	if (isnan(exp))
		return isnan(got);
	if (isinf(exp))
		return got == exp;
	return fabs(got - exp) <= tol_abs + tol_rel * fabs(exp);
}

static double
elem_f(const mpcc_tensor *t, size_t i)
{
	const uint8_t *p = t->data;
	switch (t->dtype) {
	case MPCC_DTYPE_F32: return ((const float *)p)[i];
	case MPCC_DTYPE_F64: return ((const double *)p)[i];
	case MPCC_DTYPE_F16: return mpcc_f16_to_f32(((const uint16_t *)p)[i]);
	case MPCC_DTYPE_BF16: return mpcc_bf16_to_f32(((const uint16_t *)p)[i]);
	default: return 0;
	}
}

static const char *
shape_str(char *b, size_t n, const mpcc_tensor *t)
{
	size_t u = (size_t)snprintf(b, n, "[");
	for (int i = 0; i < t->rank && u < n; i++)
		u += (size_t)snprintf(b + u, n - u, "%s%lld", i ? "," : "", (long long)t->dims[i]);
	if (u < n)
		snprintf(b + u, n - u, "]");
	return b;
}

/* Returns true when equal; else writes the reason. */
static bool
compare(const mpcc_tensor *got, const mpcc_tensor *exp, int k, char *why, size_t n)
{
	char a[128], b[128];
	mpcc_tensor e16;

	/* The suite stores bfloat16 data in UINT16 tensors. */
	if (got->dtype == MPCC_DTYPE_BF16 && exp->dtype == MPCC_DTYPE_U16) {
		e16 = *exp;
		e16.dtype = MPCC_DTYPE_BF16;
		exp = &e16;
	}
	/* --low-io: the plan stores f32 outputs as f16/bf16; compared as values */
	bool widened = (got->dtype == MPCC_DTYPE_F16 || got->dtype == MPCC_DTYPE_BF16) &&
	               exp->dtype == MPCC_DTYPE_F32;
	if (got->dtype != exp->dtype && !widened) {
		snprintf(why, n, "output %d: dtype %s, expected %s", k, mpcc_dtype_name(got->dtype),
		         mpcc_dtype_name(exp->dtype));
		return false;
	}
	bool same = got->rank == exp->rank;
	for (int i = 0; same && i < got->rank; i++)
		same = got->dims[i] == exp->dims[i];
	size_t gsz = mpcc_dtype_size(got->dtype), xsz = mpcc_dtype_size(exp->dtype);
	if (!same || (gsz && xsz && got->nbytes / gsz != exp->nbytes / xsz)) {
		snprintf(why, n, "output %d: shape %s, expected %s", k, shape_str(a, sizeof(a), got),
		         shape_str(b, sizeof(b), exp));
		return false;
	}
	size_t esz = mpcc_dtype_size(exp->dtype);
	size_t count = esz ? exp->nbytes / esz : 0;
	if (mpcc_dtype_is_float(exp->dtype)) {
		for (size_t i = 0; i < count; i++) {
			double g = elem_f(got, i), e = elem_f(exp, i);
			if (!close_enough(g, e)) {
				snprintf(why, n, "output %d: element %zu is %.9g, expected %.9g", k, i, g, e);
				return false;
			}
		}
		return true;
	}
	for (size_t i = 0; i < count; i++) {
		if (memcmp((const uint8_t *)got->data + i * esz, (const uint8_t *)exp->data + i * esz,
		           esz) != 0) {
			snprintf(why, n, "output %d: element %zu differs", k, i);
			return false;
		}
	}
	return true;
}

static int
cmp_cstr(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Reads a .pb tensor; 'U' when it is not a plain tensor, 'F' otherwise. */
static char
read_pb(const char *path, mpcc_tensor *t, char *why, size_t n)
{
	void *buf;
	size_t size;
	mpcc_diag d;

	mpcc_diag_init(&d);
	if (mpcc_read_whole_file(path, &buf, &size, &d) != MPCC_OK) {
		snprintf(why, n, "%s", d.msg);
		return 'F';
	}
	mpcc_status st = mpcc_onnx_read_tensor(buf, size, t, &d);
	free(buf);
	if (st != MPCC_OK) {
		snprintf(why, n, "%s: %s", strrchr(path, '/') + 1, d.msg);
		return 'U';
	}
	free((void *)t->name);
	t->name = NULL;
	return 'P';
}

/* --low-io: an f32 test input whose plan input is f16/bf16 is rounded to
 * it here, as a user feeding such a plan would. */
static bool
lower_input(const mpcc_plan *plan, const char *name, mpcc_tensor *t)
{
	for (int j = 0; j < mpcc_plan_n_inputs(plan); j++) {
		const mpcc_tensor *pi = mpcc_plan_input(plan, j);
		if (strcmp(pi->name, name) != 0 || t->dtype != MPCC_DTYPE_F32 ||
		    (pi->dtype != MPCC_DTYPE_F16 && pi->dtype != MPCC_DTYPE_BF16))
			continue;
		size_t count = t->nbytes / sizeof(float);
		uint16_t *h = malloc(count ? count * sizeof(uint16_t) : 1);
		if (!h)
			return false;
		for (size_t i = 0; i < count; i++) {
			float f = ((const float *)t->data)[i];
			h[i] = pi->dtype == MPCC_DTYPE_F16 ? mpcc_f32_to_f16(f) : mpcc_f32_to_bf16(f);
		}
		free(t->data);
		t->data = h;
		t->dtype = pi->dtype;
		t->nbytes = count * sizeof(uint16_t);
	}
	return true;
}

/* True when some node of the plan (inserted casts aside) computes low. */
static bool
plan_runs_low(const mpcc_plan *plan)
{
	const mpcc_prec_report *r = plan->prec_report;
	for (int i = 0; r && i < r->n_records; i++)
		if ((r->records[i].compute == MPCC_DTYPE_F16 ||
		     r->records[i].compute == MPCC_DTYPE_BF16) &&
		    strcmp(r->records[i].op, "Cast") != 0)
			return true;
	return false;
}

/*
 * Runs one data set: input_K.pb goes to the graph input named names[K]
 * (every graph input, frozen ones included, in model order); inputs the plan
 * no longer has (frozen) are skipped.
 */
static char
run_data_set(mpcc_context *cx, const mpcc_plan *plan, mpcc_session *s, const char *dir,
             char *const *names, int n_names, char *why, size_t n)
{
	char path[4096];
	char r = 'P';

	for (int k = 0; k < n_names; k++) {
		bool in_plan = false;
		for (int j = 0; j < mpcc_plan_n_inputs(plan) && !in_plan; j++)
			in_plan = strcmp(mpcc_plan_input(plan, j)->name, names[k]) == 0;
		if (!in_plan)
			continue;
		mpcc_tensor t;
		snprintf(path, sizeof(path), "%s/input_%d.pb", dir, k);
		if ((r = read_pb(path, &t, why, n)) != 'P')
			return r;
		for (int j = 0; j < mpcc_plan_n_inputs(plan); j++)
			if (!strcmp(mpcc_plan_input(plan, j)->name, names[k]) &&
			    mpcc_plan_input(plan, j)->dtype == MPCC_DTYPE_BF16 && t.dtype == MPCC_DTYPE_U16)
				t.dtype = MPCC_DTYPE_BF16; /* the suite's bfloat16 storage */
		if (!lower_input(plan, names[k], &t)) {
			free(t.data);
			snprintf(why, n, "out of memory");
			return 'F';
		}
		mpcc_status st = mpcc_session_set_input(s, names[k], t.dtype, t.rank, t.dims, t.data,
		                                        t.nbytes);
		free(t.data);
		if (st != MPCC_OK) {
			snprintf(why, n, "%s", mpcc_context_last_error(cx));
			return 'F';
		}
	}
	if (mpcc_session_run(s) != MPCC_OK) {
		snprintf(why, n, "run: %s", mpcc_context_last_error(cx));
		return 'F';
	}
	for (int k = 0; k < mpcc_plan_n_outputs(plan); k++) {
		mpcc_tensor got, exp;
		snprintf(path, sizeof(path), "%s/output_%d.pb", dir, k);
		if ((r = read_pb(path, &exp, why, n)) != 'P')
			return r;
		mpcc_session_output(s, k, &got);
		bool ok = compare(&got, &exp, k, why, n);
		free(exp.data);
		if (!ok)
			return 'F';
	}
	return 'P';
}

/* The model's graph input names in order (initializers excluded). */
static int
graph_input_names(const void *model, size_t size, const char *dir, char ***out)
{
	mpcc_graph *g;
	mpcc_diag d;
	mpcc_diag_init(&d);
	*out = NULL;
	if (mpcc_onnx_read_buffer(model, size, dir, &g, &d) != MPCC_OK)
		return 0;
	char **names = calloc((size_t)g->n_inputs + 1, sizeof(char *));
	for (int i = 0; names && i < g->n_inputs; i++)
		names[i] = xstrdup(g->values[g->inputs[i]].name);
	int n = names ? g->n_inputs : 0;
	mpcc_graph_destroy(g);
	*out = names;
	return n;
}

/* Inputs small enough to be shape-like (rank <= 1, at most 64 elements)
 * are the ones a retry freezes. */
#define FREEZE_MAX_ELEMS 64

/*
 * Compiles the case, loads the plan and opens a session. With a data-set
 * folder, the shape-like inputs of that set are frozen into the plan
 * (mpcc_compile_options.frozen) and their names listed in `frozen`.
 */
static mpcc_status
build(mpcc_context *cx, const void *model, size_t model_size, const tcase *c, const cfg *cf,
      const char *set_dir, char *const *names, int n_names, char *frozen, size_t frozen_n,
      mpcc_plan **plan, mpcc_session **s)
{
	mpcc_compile_options opts;
	mpcc_tensor fz[MPCC_MAX_RANK * 8];
	int n_fz = 0;
	void *planbuf = NULL;
	size_t plan_size;

	mpcc_compile_options_init(&opts);
	opts.precision = cf->precision;
	opts.no_fuse = cf->no_fuse;
	opts.low_io = cf->low_io;
	/* auto mode's search aims at what is checked here: |got - exp| <=
	 * tol (1 + |exp|) per element is its max-element metric when the
	 * absolute and relative tolerances are equal (set_tolerance) */
	if (cf->precision == MPCC_PRECISION_AUTO) {
		opts.error_metric = MPCC_ERROR_METRIC_MAX_ELEMENT;
		opts.tolerance = tol_rel;
	}
	if (set_dir) {
		for (int k = 0; k < n_names && n_fz < (int)(sizeof(fz) / sizeof(fz[0])); k++) {
			char path[4096], why[64];
			mpcc_tensor t;
			snprintf(path, sizeof(path), "%s/input_%d.pb", set_dir, k);
			if (read_pb(path, &t, why, sizeof(why)) != 'P')
				continue;
			size_t numel = t.nbytes / (mpcc_dtype_size(t.dtype) ? mpcc_dtype_size(t.dtype) : 1);
			if (t.rank > 1 || numel > FREEZE_MAX_ELEMS) {
				free(t.data);
				continue;
			}
			t.name = names[k];
			fz[n_fz++] = t;
			size_t len = strlen(frozen);
			snprintf(frozen + len, frozen_n - len, "%s%s", len ? "," : "", names[k]);
		}
		opts.frozen = fz;
		opts.n_frozen = n_fz;
	}
	mpcc_status st = mpcc_compile_buffer(cx, model, model_size, c->dir, &opts, &planbuf,
	                                     &plan_size);
	for (int i = 0; i < n_fz; i++)
		free(fz[i].data);
	if (st == MPCC_OK) {
		st = mpcc_plan_load_buffer(cx, planbuf, plan_size, plan);
		if (st == MPCC_OK && (st = mpcc_session_create(cx, *plan, cf->backend, s)) != MPCC_OK)
			st = MPCC_ERR_BACKEND;
		else if (st != MPCC_OK)
			st = MPCC_ERR_BACKEND;
	}
	free(planbuf);
	return st;
}

/*
 * One case: compile once and run every data set. When compiling fails as
 * unsupported, retry per data set with its shape-like inputs frozen (the
 * plan is then specialised to them, as `mpcc --freeze` does); a case that
 * passes that way says so in its reason, and the tables count it apart.
 */
static char
run_case(const tcase *c, const cfg *cf, char *why, size_t n)
{
	char path[4096];
	void *model;
	size_t model_size;
	mpcc_context *cx = NULL;
	mpcc_plan *plan = NULL;
	mpcc_session *s = NULL;
	mpcc_diag d;
	char r = 'P';
	char **names = NULL;
	char frozen[REASON_MAX] = "";

	mpcc_diag_init(&d);
	snprintf(path, sizeof(path), "%s/model.onnx", c->dir);
	if (mpcc_read_whole_file(path, &model, &model_size, &d) != MPCC_OK) {
		snprintf(why, n, "%s", d.msg);
		return 'F';
	}
	if (mpcc_context_create(&cx) != MPCC_OK) {
		snprintf(why, n, "out of memory");
		free(model);
		return 'F';
	}
	int n_names = graph_input_names(model, model_size, c->dir, &names);

	DIR *dp = opendir(c->dir);
	char *sets[256];
	int n_sets = 0;
	struct dirent *e;
	while (dp && (e = readdir(dp)) && n_sets < 256)
		if (strncmp(e->d_name, "test_data_set_", 14) == 0)
			sets[n_sets++] = xstrdup(e->d_name);
	if (dp)
		closedir(dp);
	qsort(sets, (size_t)n_sets, sizeof(char *), cmp_cstr);
	if (n_sets == 0) {
		snprintf(why, n, "no test_data_set_* folder");
		r = 'F';
	}

	mpcc_status st = build(cx, model, model_size, c, cf, NULL, names, n_names, frozen,
	                       sizeof(frozen), &plan, &s);
	bool per_set = false;
	if (st == MPCC_ERR_UNSUPPORTED && n_sets > 0) {
		char first[REASON_MAX];
		snprintf(first, sizeof(first), "compile: %s", mpcc_context_last_error(cx));
		snprintf(path, sizeof(path), "%s/%s", c->dir, sets[0]);
		st = build(cx, model, model_size, c, cf, path, names, n_names, frozen,
		           sizeof(frozen), &plan, &s);
		if (st != MPCC_OK || !frozen[0]) {
			snprintf(why, n, "%s", first);
			r = 'U';
			st = MPCC_ERR_UNSUPPORTED;
		} else {
			per_set = true;
		}
	} else if (st != MPCC_OK && r == 'P') {
		snprintf(why, n, "%s: %s", st == MPCC_ERR_BACKEND ? "session" : "compile",
		         mpcc_context_last_error(cx));
		r = st == MPCC_ERR_UNSUPPORTED ? 'U' : 'F';
	}
	for (int i = 0; st == MPCC_OK && i < n_sets && r == 'P'; i++) {
		snprintf(path, sizeof(path), "%s/%s", c->dir, sets[i]);
		if (per_set && i > 0) {
			mpcc_session_destroy(s);
			mpcc_plan_destroy(plan);
			s = NULL;
			plan = NULL;
			frozen[0] = 0;
			if (build(cx, model, model_size, c, cf, path, names, n_names, frozen,
			          sizeof(frozen), &plan, &s) != MPCC_OK) {
				snprintf(why, n, "%s: compile: %s", sets[i], mpcc_context_last_error(cx));
				r = 'F';
				break;
			}
		}
		r = run_data_set(cx, plan, s, path, names, n_names, why, n);
		if (r != 'P') {
			char tmp[REASON_MAX];
			snprintf(tmp, sizeof(tmp), "%s: %s", sets[i], why);
			snprintf(why, n, "%s", tmp);
		}
	}
	if (r == 'P' && per_set)
		snprintf(why, n, "frozen: %s", frozen);
	if (r == 'P' && plan && plan_runs_low(plan))
		r = 'L';
	for (int i = 0; i < n_sets; i++)
		free(sets[i]);
	for (int i = 0; i < n_names; i++)
		free(names[i]);
	free(names);
	free(model);
	mpcc_session_destroy(s);
	mpcc_plan_destroy(plan);
	mpcc_context_destroy(cx);
	return r;
}

static void
child(const tcase *c, const cfg *cf, int fd)
{
	char why[REASON_MAX] = "", line[REASON_MAX + 4];

	alarm(TIMEOUT_S);
	char r = run_case(c, cf, why, sizeof(why));
	for (char *p = why; *p; p++)
		if (*p == '\n')
			*p = ' ';
	int len = snprintf(line, sizeof(line), "%c %s", r, why);
	if (write(fd, line, (size_t)len) < 0)
		_exit(3);
	_exit(0);
}

/* ---------------------------------------------------------------- the parent */

static void
finish(tcase *c, int status)
{
	char buf[REASON_MAX + 8];
	ssize_t n = read(c->fd, buf, sizeof(buf) - 1);

	close(c->fd);
	if (WIFSIGNALED(status)) {
		c->result = 'F';
		if (WTERMSIG(status) == SIGALRM)
			snprintf(c->reason, sizeof(c->reason), "timed out after %d s", TIMEOUT_S);
		else
			snprintf(c->reason, sizeof(c->reason), "crashed (signal %d)", WTERMSIG(status));
		return;
	}
	if (n < 1 || (buf[0] != 'P' && buf[0] != 'L' && buf[0] != 'F' && buf[0] != 'U')) {
		c->result = 'F';
		snprintf(c->reason, sizeof(c->reason), "child exited (status %d) without a result",
		         WIFEXITED(status) ? WEXITSTATUS(status) : -1);
		return;
	}
	buf[n] = 0;
	c->low = buf[0] == 'L';
	c->result = c->low ? 'P' : buf[0];
	snprintf(c->reason, sizeof(c->reason), "%s", n > 2 ? buf + 2 : "");
}

static void
run_all(const cfg *cf, int jobs)
{
	int next = 0, running = 0;

	while (next < n_cases || running > 0) {
		while (running < jobs && next < n_cases) {
			tcase *c = &cases[next++];
			int fds[2];
			if (pipe(fds) != 0) {
				perror("mpcc-conformance: pipe");
				exit(1);
			}
			fflush(stdout);
			pid_t pid = fork();
			if (pid < 0) {
				perror("mpcc-conformance: fork");
				exit(1);
			}
			if (pid == 0) {
				close(fds[0]);
				child(c, cf, fds[1]);
			}
			close(fds[1]);
			c->pid = pid;
			c->fd = fds[0];
			running++;
		}
		int status;
		pid_t pid = waitpid(-1, &status, 0);
		if (pid < 0) {
			if (errno == EINTR)
				continue;
			perror("mpcc-conformance: waitpid");
			exit(1);
		}
		for (int i = 0; i < next; i++) {
			if (cases[i].pid == pid && !cases[i].result) {
				finish(&cases[i], status);
				if (cf->verbose)
					fprintf(stderr, "%s %s\n", cases[i].result == 'P' ? "pass" : "done",
					        cases[i].id);
				running--;
				break;
			}
		}
	}
}

static const tcase *
find_case(const char *id)
{
	for (int i = 0; i < n_cases; i++)
		if (strcmp(cases[i].id, id) == 0)
			return &cases[i];
	return NULL;
}

static int
usage(void)
{
	fprintf(stderr,
	        "usage: mpcc-conformance [--precision fp32|fp16|bf16|auto] [--backend cpu|interp]\n"
	        "                        [--jobs N] [--list-passed FILE] [--expect FILE] [--no-fuse]\n"
	        "                        [--low-io]\n"
	        "                        [-v] DIR...\n"
	        "Each DIR is an ONNX backend test case (holding model.onnx) or a folder of them.\n");
	return 2;
}

int
main(int argc, char **argv)
{
	cfg cf = {.backend = "cpu", .precision = MPCC_PRECISION_FP32};
	const char *list_passed = NULL, *expect = NULL;
	int jobs = 2, n_dirs = 0;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--precision") == 0 && i + 1 < argc) {
			const char *p = argv[++i];
			if (strcmp(p, "fp32") == 0)
				cf.precision = MPCC_PRECISION_FP32;
			else if (strcmp(p, "fp16") == 0)
				cf.precision = MPCC_PRECISION_FP16;
			else if (strcmp(p, "bf16") == 0)
				cf.precision = MPCC_PRECISION_BF16;
			else if (strcmp(p, "auto") == 0)
				cf.precision = MPCC_PRECISION_AUTO;
			else
				return usage();
		} else if (strcmp(a, "--backend") == 0 && i + 1 < argc) {
			cf.backend = argv[++i];
		} else if (strcmp(a, "--jobs") == 0 && i + 1 < argc) {
			jobs = atoi(argv[++i]);
			if (jobs < 1)
				return usage();
		} else if (strcmp(a, "--list-passed") == 0 && i + 1 < argc) {
			list_passed = argv[++i];
		} else if (strcmp(a, "--expect") == 0 && i + 1 < argc) {
			expect = argv[++i];
		} else if (strcmp(a, "--no-fuse") == 0) {
			cf.no_fuse = true;
		} else if (strcmp(a, "--low-io") == 0) {
			cf.low_io = true;
		} else if (strcmp(a, "-v") == 0) {
			cf.verbose = true;
		} else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage();
			return 0;
		} else if (a[0] == '-') {
			return usage();
		} else {
			collect(a);
			n_dirs++;
		}
	}
	if (n_dirs == 0)
		return usage();

	set_tolerance(cf.precision);
	run_all(&cf, jobs);

	int np = 0, nf = 0, nu = 0, nl = 0;
	for (int i = 0; i < n_cases; i++) {
		tcase *c = &cases[i];
		np += c->result == 'P';
		nl += c->result == 'P' && c->low;
		nf += c->result == 'F';
		nu += c->result == 'U';
		if (c->result == 'P' && !strncmp(c->reason, "frozen: ", 8))
			printf("PASS-FROZEN %s: %s\n", c->id, c->reason);
		if (c->result == 'F')
			printf("FAIL %s: %s\n", c->id, c->reason);
		else if (c->result == 'U')
			printf("UNSUPPORTED %s: %s\n", c->id, c->reason);
	}
	/* Per-folder counts, folders in order of first appearance. */
	for (int i = 0; i < n_cases; i++) {
		bool seen = false;
		for (int j = 0; j < i && !seen; j++)
			seen = strcmp(cases[j].group, cases[i].group) == 0;
		if (seen)
			continue;
		int p = 0, f = 0, u = 0;
		for (int j = i; j < n_cases; j++) {
			if (strcmp(cases[j].group, cases[i].group) != 0)
				continue;
			p += cases[j].result == 'P';
			f += cases[j].result == 'F';
			u += cases[j].result == 'U';
		}
		printf("%s: %d passed, %d failed, %d unsupported\n", cases[i].group, p, f, u);
	}

	int rc = 0;
	if (list_passed) {
		FILE *f = fopen(list_passed, "w");
		if (!f) {
			fprintf(stderr, "mpcc-conformance: cannot write '%s'\n", list_passed);
			return 1;
		}
		for (int i = 0; i < n_cases; i++)
			if (cases[i].result == 'P')
				fprintf(f, "%s\n", cases[i].id);
		fclose(f);
	}
	if (expect) {
		FILE *f = fopen(expect, "r");
		char line[1024];
		if (!f) {
			fprintf(stderr, "mpcc-conformance: cannot read '%s'\n", expect);
			return 1;
		}
		while (fgets(line, sizeof(line), f)) {
			line[strcspn(line, "\r\n")] = 0;
			if (!line[0] || line[0] == '#')
				continue;
			const tcase *c = find_case(line);
			if (!c || c->result != 'P') {
				printf("REGRESSION %s: %s\n", line, c ? c->reason : "case not run");
				rc = 1;
			}
		}
		fclose(f);
	}
	if (cf.precision != MPCC_PRECISION_FP32)
		printf("low precision: %d of the %d passed cases ran at least one node in f16/bf16\n",
		       nl, np);
	printf("conformance: %d passed, %d failed, %d unsupported\n", np, nf, nu);
	return rc;
}
