/*
 * testkit.h - the harness the op-family unit tests (test_ops_*.c) share:
 * build a tiny graph whose inputs are constants, run the pass pipeline on it
 * so that constant folding evaluates each node through its lowering and the
 * reference interpreter, and check the folded outputs.
 *
 * A test receives a fresh mpcc_tk from mpcc_tk_setup (cmocka's setup hook),
 * adds constants and nodes with the builders below (every node output is a
 * graph output, so nothing is eliminated as dead), calls mpcc_tk_run_ok or
 * mpcc_tk_run, and reads results with mpcc_tk_result, which checks dtype,
 * shape and that the value was folded.
 *
 * Errors: nothing here returns an error. A builder that cannot do its job
 * (out of memory, a graph call refused) fails the running cmocka test, as do
 * the mpcc_tk_assert_* comparisons. Only mpcc_tk_run hands the pipeline's
 * status back, for the tests that expect a refusal; its message is in t->d.
 *
 * Ownership: the fixture owns its graph; everything the builders create
 * (values, copies of constant data, attributes) belongs to that graph and
 * goes with it in mpcc_tk_teardown. Pointers from mpcc_tk_result point into
 * the graph and live until teardown. Not thread-safe: one fixture per test.
 *
 * Names keep mpcc's mpcc_ prefix; "tk" marks the test kit, which is linked
 * into the unit tests only and never into the library.
 */
#ifndef MPCC_TESTKIT_H
#define MPCC_TESTKIT_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "ir/ir.h"

/* The state of one test: a graph and the diagnostics of its pipeline run. */
typedef struct mpcc_tk {
	mpcc_graph *g; /* the graph under test, owned */
	mpcc_diag d;   /* what the pipeline reported; d.msg names node and op */
} mpcc_tk;

/*
 * cmocka setup: *state gets a new fixture whose graph imports ai.onnx opset
 * 17 and no training domain. Returns 0, or -1 when out of memory.
 */
int mpcc_tk_setup(void **state);

/*
 * As mpcc_tk_setup with the given ai.onnx opset and ai.onnx.preview.training
 * opset (0 for none); a test file with other opsets wraps this in its own
 * setup hook.
 */
int mpcc_tk_setup_opsets(void **state, int opset, int opset_training);

/* cmocka teardown: destroys the fixture in *state and its graph. */
int mpcc_tk_teardown(void **state);

/* A cmocka test entry of fn run on a fresh mpcc_tk_setup fixture. */
#define MPCC_TK_TEST(fn) cmocka_unit_test_setup_teardown(fn, mpcc_tk_setup, mpcc_tk_teardown)

/* A cmocka test entry of fn run on a fixture made by the given setup hook. */
#define MPCC_TK_TEST_WITH(fn, setup) cmocka_unit_test_setup_teardown(fn, setup, mpcc_tk_teardown)

/*
 * A constant value of dtype dt and shape dims[rank] holding a copy of data
 * (numel * dtype size bytes; data may be NULL when that is zero). name may
 * be NULL. Returns the value index.
 */
int32_t mpcc_tk_const(mpcc_tk *t, const char *name, mpcc_dtype dt, int rank, const int64_t *dims,
                      const void *data);

/* A 1-D int64 constant of v[n]: shapes, axes, pads, indices. */
int32_t mpcc_tk_const_ints(mpcc_tk *t, const char *name, int n, const int64_t *v);

/* A scalar (rank 0) int64 constant. */
int32_t mpcc_tk_const_int(mpcc_tk *t, const char *name, int64_t v);

/*
 * A graph input of dtype dt and shape dims[rank], without data: the value a
 * test uses to make the compiler meet something unknown at compile time.
 */
int32_t mpcc_tk_input(mpcc_tk *t, const char *name, mpcc_dtype dt, int rank, const int64_t *dims);

/*
 * A node of op over in[n_in] (MPCC_NONE for an omitted optional input) at
 * the graph's opset, with n_out new values written to out[], each made a
 * graph output. name may be NULL. Returns the node index.
 */
int32_t mpcc_tk_node(mpcc_tk *t, mpcc_op op, const char *name, int n_in, const int32_t *in,
                     int n_out, int32_t *out);

/* As mpcc_tk_node, the node declaring its own domain's opset version. */
int32_t mpcc_tk_node_opset(mpcc_tk *t, mpcc_op op, int opset, const char *name, int n_in,
                           const int32_t *in, int n_out, int32_t *out);

/*
 * The single output of a new node of op over in[n_in], made a graph output:
 * y = op(in) in one expression. *out_node, when not NULL, gets the node so
 * that the test can add attributes.
 */
int32_t mpcc_tk_apply(mpcc_tk *t, mpcc_op op, const char *name, int n_in, const int32_t *in,
                      int32_t *out_node);

/* Attributes of node n; lists and strings are copied into the graph's arena. */
void mpcc_tk_attr_int(mpcc_tk *t, int32_t n, const char *name, int64_t v);
void mpcc_tk_attr_float(mpcc_tk *t, int32_t n, const char *name, float v);
void mpcc_tk_attr_ints(mpcc_tk *t, int32_t n, const char *name, int count, const int64_t *v);
void mpcc_tk_attr_string(mpcc_tk *t, int32_t n, const char *name, const char *s);

/*
 * Runs the whole pass pipeline on the graph in fp32 precision, so folded
 * float results are exact f32 arithmetic. Returns the pipeline's status;
 * on failure t->d.msg says why.
 */
mpcc_status mpcc_tk_run(mpcc_tk *t);

/* mpcc_tk_run, failing the test with the pipeline's message unless MPCC_OK. */
void mpcc_tk_run_ok(mpcc_tk *t);

/*
 * The folded data of value v after a run, checked to have dtype dt and shape
 * dims[rank] and to be a constant with data. Points into the graph.
 */
const void *mpcc_tk_result(const mpcc_tk *t, int32_t v, mpcc_dtype dt, int rank,
                           const int64_t *dims);

/* As mpcc_tk_result, checking the element count instead of the shape. */
const void *mpcc_tk_result_numel(const mpcc_tk *t, int32_t v, mpcc_dtype dt, int64_t numel);

/*
 * Fails the test at the first i < n where |got[i] - want[i]| > tol, naming
 * the element; the difference is taken in double, and a NaN never passes.
 * tol 0 asks for exact equality.
 */
void mpcc_tk_assert_near(const float *got, const float *want, int n, double tol);

/* As mpcc_tk_assert_near against a double-precision reference. */
void mpcc_tk_assert_near_f64(const float *got, const double *want, int n, double tol);

/* Fails the test at the first i < n where got[i] != want[i]. */
void mpcc_tk_assert_ints(const int64_t *got, const int64_t *want, int n);

#endif
