/*
 * gradcheck.h - the harness the autodiff unit tests (test_autodiff*.c)
 * share: build a tiny graph, differentiate it with mpcc_autodiff, compile
 * and run it on the CPU backend, and check every gradient element against
 * central finite differences.
 *
 * A gradient-check case is a name and a build function (mpcc_gc_case). The
 * build function adds the float inputs to differentiate with mpcc_gc_wrt
 * (f64, random data, odd shapes and broadcasting welcome), the constants
 * and nodes of the graph with the other builders, and returns y. The
 * harness appends loss = ReduceSum(y * R) with R a fixed random tensor of
 * y's shape (so every element of y matters), calls mpcc_autodiff and makes
 * the gradients graph outputs. That graph and the forward-only one are
 * compiled like mpcc_compile_* (pipeline in fp32 precision, where f64 stays
 * f64; lowering, fusion, plan) and run on the CPU backend. Each gradient
 * element must match (L(x + h) - L(x - h)) / 2h from the forward plan
 * within 1e-6 relative to max(1, |fd|), with h = 1e-6: in f64 the
 * difference's rounding error (~1e-16 |L| / h) and truncation error (~h^2)
 * are both far below that. An f32 input steps by 2^-10 and divides by the
 * step actually representable; a case with one keeps its loss quadratic in
 * that input, so the difference is exact up to rounding.
 *
 * The random stream is seeded from the case's name, so a case builds the
 * same data every run and in both of its builds.
 *
 * Contract tests (what the pass refuses, how it names and types what it
 * adds) use the same builders, mpcc_gc_infer, mpcc_gc_compile and the
 * runner directly.
 *
 * Errors: nothing here returns an error. A builder or run that cannot do
 * its job (out of memory, a graph call refused, a pipeline failure) fails
 * the running cmocka test, naming the reason.
 *
 * Ownership: an mpcc_gc lives in caller storage. Its graph is the caller's
 * until mpcc_gc_compile consumes it (or the caller destroys it); the input
 * data is the mpcc_gc's until mpcc_gc_free_data. Strings passed as names
 * must outlive the mpcc_gc (string literals in practice). Not thread-safe:
 * the compile options are one process-wide object.
 *
 * Names keep mpcc's mpcc_ prefix; "gc" marks the gradient check, which is
 * linked into the autodiff unit tests only and never into the library.
 */
#ifndef MPCC_GRADCHECK_H
#define MPCC_GRADCHECK_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "ir/ir.h"

/* The most inputs one case differentiates. */
#define MPCC_GC_MAX_IN 4

/* Shape arguments: MPCC_GC_SHAPE(3, 5) gives "2, (const int64_t[]){3, 5}". */
#define MPCC_GC_SHAPE(...)                                                                         \
	(int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (const int64_t[])               \
	{                                                                                          \
		__VA_ARGS__                                                                        \
	}

/* Where random data lies: signed values keep 0.05 away from 0 (the kinks of
 * Relu, LeakyRelu and Abs); positive ones lie in [0.5, 2] (away from the
 * poles of Log, Sqrt, Div and Pow). */
typedef enum mpcc_gc_range { MPCC_GC_SIGNED, MPCC_GC_POSITIVE } mpcc_gc_range;

/* The state of one graph build: the graph, its differentiated inputs with
 * their data, the last node (for attributes) and the random stream. */
typedef struct mpcc_gc {
	mpcc_graph *g;
	int n_in;
	int32_t in[MPCC_GC_MAX_IN];
	const char *name[MPCC_GC_MAX_IN]; /* static strings: valid after the graph is gone */
	int rank[MPCC_GC_MAX_IN];
	int64_t dims[MPCC_GC_MAX_IN][MPCC_MAX_RANK];
	mpcc_dtype dt[MPCC_GC_MAX_IN];
	double *data[MPCC_GC_MAX_IN]; /* owned; f32 inputs hold f32-representable values */
	int64_t numel[MPCC_GC_MAX_IN];
	int32_t last; /* the node the attribute builders annotate */
	uint64_t rng;
} mpcc_gc;

/* Builds a case's graph into c and returns y, the value the loss weighs. */
typedef int32_t (*mpcc_gc_build_fn)(mpcc_gc *c);

/* One gradient check: its cmocka test name (also the random seed). */
typedef struct mpcc_gc_case {
	const char *name;
	mpcc_gc_build_fn build;
} mpcc_gc_case;

/* ---------------------------------------------------------------- graph building */

/*
 * Starts c on a new graph (opset 17) with a random stream seeded by name;
 * whatever c held before is forgotten, not freed.
 */
void mpcc_gc_init(mpcc_gc *c, const char *name);

/* Frees the data of c's inputs; the graph is not touched. */
void mpcc_gc_free_data(mpcc_gc *c);

/* The next sample of c's random stream in range r. */
double mpcc_gc_sample(mpcc_gc *c, mpcc_gc_range r);

/*
 * A graph input to differentiate, of dtype t and shape dims[rank], with
 * random data in range r. At most MPCC_GC_MAX_IN a graph.
 */
int32_t mpcc_gc_wrt_typed(mpcc_gc *c, const char *name, mpcc_dtype t, mpcc_gc_range r, int rank,
                          const int64_t *dims);

/* mpcc_gc_wrt_typed for an f64 input. */
int32_t mpcc_gc_wrt(mpcc_gc *c, const char *name, mpcc_gc_range r, int rank, const int64_t *dims);

/* A constant of dtype t and shape dims[rank] holding a copy of data. */
int32_t mpcc_gc_const_data(mpcc_gc *c, mpcc_dtype t, int rank, const int64_t *dims,
                           const void *data);

/* An f64 constant with random data: an operand that is not differentiated. */
int32_t mpcc_gc_cfloat(mpcc_gc *c, mpcc_gc_range r, int rank, const int64_t *dims);

/* An f64 scalar constant x. */
int32_t mpcc_gc_cscalar(mpcc_gc *c, double x);

/* A 1-D int64 constant: mpcc_gc_ints(c, MPCC_GC_SHAPE(0, 2)) is [0, 2]. */
int32_t mpcc_gc_ints(mpcc_gc *c, int n, const int64_t *v);

/* A node of op o over n_in inputs (varargs int32_t, at most 8) with one
 * output, returned; the node becomes c->last. */
int32_t mpcc_gc_op(mpcc_gc *c, mpcc_op o, const char *name, int n_in, ...);

/* A node with in[n_in] and n_out new outputs, written to out[]. */
void mpcc_gc_opn(mpcc_gc *c, mpcc_op o, const char *name, int n_in, const int32_t *in, int n_out,
                 int32_t *out);

/* Attributes of c->last. Strings are not copied; int lists go to the
 * graph's arena. */
void mpcc_gc_attr_i(mpcc_gc *c, const char *name, int64_t v);
void mpcc_gc_attr_f(mpcc_gc *c, const char *name, float v);
void mpcc_gc_attr_s(mpcc_gc *c, const char *name, const char *v);
void mpcc_gc_attr_is(mpcc_gc *c, const char *name, int n, const int64_t *v);

/* ---------------------------------------------------------------- compiling and running */

/*
 * The compile options every compile here uses: the defaults in fp32
 * precision. Made on first use; a test wanting others copies them.
 */
const mpcc_compile_options *mpcc_gc_options(void);

/* Checks ops, verifies g and infers shapes, folding constants. */
void mpcc_gc_infer(mpcc_graph *g);

/* Compiles g like mpcc_compile_*, in fp32 precision. Consumes g; the
 * caller owns the plan (mpcc_gc_runner_close frees it). */
mpcc_plan *mpcc_gc_compile(mpcc_graph *g);

/* Appends loss = ReduceSum(y * R), R random of y's shape, keepdims 0, and
 * returns it; shapes are inferred on return. */
int32_t mpcc_gc_append_loss(mpcc_gc *c, int32_t y);

/* A plan open in a CPU session. */
typedef struct mpcc_gc_runner {
	mpcc_context *cx;
	mpcc_session *s;
	mpcc_plan *p;
} mpcc_gc_runner;

/* Opens a CPU session on p, which r then owns. */
void mpcc_gc_runner_open(mpcc_gc_runner *r, mpcc_plan *p);

/* Destroys the session, its context and the plan. */
void mpcc_gc_runner_close(mpcc_gc_runner *r);

/* Sets every input of c (in its dtype, from c->data) and runs. */
void mpcc_gc_runner_run(mpcc_gc_runner *r, const mpcc_gc *c);

/* Element k of output i, an f32 or f64 tensor, as double. */
double mpcc_gc_runner_out(mpcc_gc_runner *r, int i, int64_t k);

/* ---------------------------------------------------------------- the gradient check */

/*
 * The cmocka test of one case, *state pointing to its mpcc_gc_case: fails
 * at the first gradient element off its finite difference, or when an
 * input gets no gradient.
 */
void mpcc_gc_check(void **state);

/*
 * Runs cmocka group `group`: a gradient check for each of cases[n_cases],
 * in order, then the tests extra[n_extra]. Returns what cmocka returns, the
 * number of failed tests.
 */
int mpcc_gc_run_group(const char *group, const mpcc_gc_case *cases, size_t n_cases,
                      const struct CMUnitTest *extra, size_t n_extra);

#endif
