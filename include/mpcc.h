/*
 * mpcc.h - the public API of mpcc: compile an ONNX model into a plan, load a
 * plan, and run it in a session.
 *
 * Ownership: every object is created by a *_create or *_load call and freed by
 * the matching *_destroy. A plan may back several sessions; destroy the
 * sessions first. Pointers returned by query functions stay valid until the
 * object they came from is destroyed (outputs: until the next run).
 *
 * Errors: every action returns an mpcc_status. The message of the last failed
 * call on a context is read with mpcc_context_last_error(). Nothing is printed
 * and nothing exits the process.
 *
 * Threads: there is no global state. Distinct contexts, plans and sessions
 * may be used from distinct threads at once; one object must not be used from
 * two threads at the same time.
 */
#ifndef MPCC_H
#define MPCC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(MPCC_BUILDING)
#define MPCC_API __attribute__((visibility("default")))
#else
#define MPCC_API
#endif

typedef enum mpcc_status {
	MPCC_OK = 0,
	MPCC_ERR_INVALID,     /* bad input: model, plan, shape, argument */
	MPCC_ERR_UNSUPPORTED, /* valid but not supported by mpcc (yet) */
	MPCC_ERR_NOMEM,       /* an allocation failed */
	MPCC_ERR_IO,          /* a file could not be read or written */
	MPCC_ERR_BACKEND,     /* the JIT or a device failed */
	MPCC_ERR_INTERNAL,    /* a broken invariant of mpcc itself */
} mpcc_status;

/* Element types. Values are mpcc's own, not ONNX's. */
typedef enum mpcc_dtype {
	MPCC_DTYPE_UNDEF = 0,
	MPCC_DTYPE_F32,
	MPCC_DTYPE_F16,
	MPCC_DTYPE_BF16,
	MPCC_DTYPE_F64,
	MPCC_DTYPE_I8,
	MPCC_DTYPE_I16,
	MPCC_DTYPE_I32,
	MPCC_DTYPE_I64,
	MPCC_DTYPE_U8,
	MPCC_DTYPE_U16,
	MPCC_DTYPE_U32,
	MPCC_DTYPE_U64,
	MPCC_DTYPE_BOOL, /* one byte, 0 or 1 */
	MPCC_DTYPE_COUNT
} mpcc_dtype;

typedef enum mpcc_precision {
	MPCC_PRECISION_FP32 = 0,
	MPCC_PRECISION_FP16,
	MPCC_PRECISION_BF16,
	MPCC_PRECISION_AUTO,
} mpcc_precision;

#define MPCC_MAX_RANK 8

typedef struct mpcc_context mpcc_context;
typedef struct mpcc_plan mpcc_plan;
typedef struct mpcc_session mpcc_session;

/* A view of a tensor. Data is dense, row-major. */
typedef struct mpcc_tensor {
	const char *name;
	mpcc_dtype dtype;
	int rank;
	int64_t dims[MPCC_MAX_RANK];
	void *data;    /* NULL in descriptions that carry no data */
	size_t nbytes; /* element size times element count */
} mpcc_tensor;

/* One symbolic input dimension bound at compile time: NAME=2x3x224x224. */
typedef struct mpcc_shape_binding {
	const char *input; /* graph input name */
	int rank;
	int64_t dims[MPCC_MAX_RANK];
} mpcc_shape_binding;

/* How auto mode measures an output's error against the f32 plan. */
typedef enum mpcc_error_metric {
	MPCC_ERROR_METRIC_REL_L2 = 0,  /* ||got - ref||_2 / ||ref||_2 */
	MPCC_ERROR_METRIC_MAX_ELEMENT, /* max_i |got_i - ref_i| / (1 + |ref_i|) */
} mpcc_error_metric;

typedef struct mpcc_compile_options {
	mpcc_precision precision;        /* MPCC_PRECISION_AUTO by default */
	const mpcc_shape_binding *shapes; /* n_shapes bindings, may be NULL */
	int n_shapes;
	bool no_fold; /* skip constant folding (for testing) */
	bool no_fuse; /* skip kernel fusion (for testing) */
	/* Inputs frozen to a value at compile time, matched by name: the plan is
	 * specialised to that value and the input disappears from it. For inputs
	 * that decide shapes (Reshape's shape, Resize's sizes, TopK's k) and
	 * that ONNX lets a model take at run time. Data is copied. */
	const mpcc_tensor *frozen;
	int n_frozen;
	/* Precision overrides (docs/precision.md), each entry an ONNX op type
	 * ("Softmax") or a node name; a node name wins over its op type and
	 * keep_fp32 over force_low. force_low needs a low-precision mode. */
	const char *const *keep_fp32;
	int n_keep_fp32;
	const char *const *force_low;
	int n_force_low;
	bool low_io; /* graph inputs and outputs in the low dtype too */
	/* Auto mode (docs/precision.md). Calibration inputs matched by graph
	 * input name (data copied; an input without one gets seeded random
	 * data of its shape and dtype); the error budget each output must meet
	 * against the f32 plan on them (0 = the default, 1e-3) in the chosen
	 * metric; the seed of the random data. Ignored in the other modes. */
	const mpcc_tensor *calib;
	int n_calib;
	double tolerance;
	mpcc_error_metric error_metric;
	uint64_t seed;
} mpcc_compile_options;

/* Contexts carry the last error message. Never fails except for memory. */
MPCC_API mpcc_status mpcc_context_create(mpcc_context **out);
MPCC_API void mpcc_context_destroy(mpcc_context *cx);
/* The message of the last failed call made with cx; "" if none. */
MPCC_API const char *mpcc_context_last_error(const mpcc_context *cx);

MPCC_API const char *mpcc_status_name(mpcc_status s);
MPCC_API const char *mpcc_dtype_name(mpcc_dtype t);
MPCC_API size_t mpcc_dtype_size(mpcc_dtype t);

/* Initialises opts to the defaults (auto precision at its default tolerance,
 * seeded random calibration, no bindings). */
MPCC_API void mpcc_compile_options_init(mpcc_compile_options *opts);

/*
 * Compiles the ONNX model at model_path and writes the plan to plan_path.
 * Errors: MPCC_ERR_IO (files), MPCC_ERR_INVALID (malformed model),
 * MPCC_ERR_UNSUPPORTED (an op, attribute or opset mpcc does not handle).
 */
MPCC_API mpcc_status mpcc_compile_file(mpcc_context *cx, const char *model_path,
                                       const mpcc_compile_options *opts,
                                       const char *plan_path);

/* Same, from a model held in memory; the plan is returned in a malloc'd
 * buffer the caller frees with free(). External data is resolved relative to
 * base_dir (may be NULL: external data is then refused). */
MPCC_API mpcc_status mpcc_compile_buffer(mpcc_context *cx, const void *model, size_t model_size,
                                         const char *base_dir, const mpcc_compile_options *opts,
                                         void **out_plan, size_t *out_plan_size);

/* Loads and checks a plan file (magic, version, bounds, checksums). */
MPCC_API mpcc_status mpcc_plan_load(mpcc_context *cx, const char *path, mpcc_plan **out);
MPCC_API mpcc_status mpcc_plan_load_buffer(mpcc_context *cx, const void *buf, size_t size,
                                           mpcc_plan **out);
MPCC_API void mpcc_plan_destroy(mpcc_plan *plan);

/* Graph inputs and outputs of a plan (data is NULL in these descriptions). */
MPCC_API int mpcc_plan_n_inputs(const mpcc_plan *plan);
MPCC_API int mpcc_plan_n_outputs(const mpcc_plan *plan);
MPCC_API const mpcc_tensor *mpcc_plan_input(const mpcc_plan *plan, int i);
MPCC_API const mpcc_tensor *mpcc_plan_output(const mpcc_plan *plan, int i);

/* Precision report formats (docs/precision-report.md, docs/precision-json.md). */
typedef enum mpcc_dump_format {
	MPCC_DUMP_TEXT = 0, /* aligned table, totals, notes */
	MPCC_DUMP_JSON,     /* schema "mpcc-precision/1" */
	MPCC_DUMP_HTML,     /* one self-contained page: graph coloured by precision, table */
} mpcc_dump_format;

/*
 * The plan's precision decisions (every node and inserted cast: dtypes,
 * reason, evidence, measured range and error, FLOPs and bytes, kernel),
 * read from the plan, so a dump of a loaded plan equals the one made at
 * compile time. *out is NUL-terminated text the caller frees with
 * mpcc_free(). Errors: MPCC_ERR_UNSUPPORTED when the plan carries no
 * precision records (written by an older mpcc: recompile it),
 * MPCC_ERR_INVALID for a bad format, MPCC_ERR_NOMEM.
 */
MPCC_API mpcc_status mpcc_plan_precision_dump(mpcc_context *cx, const mpcc_plan *plan,
                                              mpcc_dump_format fmt, char **out);
/* The chain of evidence for one node, named by its ONNX name or its id
 * ("n12", "cast:x:f16"), and the kernel that computes it. *out as above.
 * An unknown node is MPCC_ERR_INVALID, the message suggesting the closest
 * names; MPCC_ERR_UNSUPPORTED as above. */
MPCC_API mpcc_status mpcc_plan_explain(mpcc_context *cx, const mpcc_plan *plan, const char *node,
                                       char **out);
/* Frees memory mpcc handed to the caller (dumps, explanations). NULL is fine. */
MPCC_API void mpcc_free(void *p);

/* Sessions compile the plan's kernels for a backend ("cpu", or NULL for the
 * best available) and own the working memory. */
MPCC_API mpcc_status mpcc_session_create(mpcc_context *cx, const mpcc_plan *plan,
                                         const char *backend, mpcc_session **out);
MPCC_API void mpcc_session_destroy(mpcc_session *s);

/* Copies one input in. Name, dtype and shape must match the plan exactly;
 * a mismatch is MPCC_ERR_INVALID naming the input and what differs. */
MPCC_API mpcc_status mpcc_session_set_input(mpcc_session *s, const char *name, mpcc_dtype dtype,
                                            int rank, const int64_t *dims, const void *data,
                                            size_t nbytes);
/* Runs the plan once. Every input must have been set. */
MPCC_API mpcc_status mpcc_session_run(mpcc_session *s);
/* Output i of the last run; data stays valid until the next run. */
MPCC_API mpcc_status mpcc_session_output(mpcc_session *s, int i, mpcc_tensor *out);

#ifdef __cplusplus
}
#endif
#endif
