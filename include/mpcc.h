/*
 * mpcc.h - the public API of mpcc: compile an ONNX model into a plan, load a
 * plan, and run it in a session; run a training step plan in a trainer.
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
	MPCC_ERR_DIVERGED,    /* training stopped by the collapse guard */
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

/* ---- training compilation (docs/training.md, "The step graph") */

typedef enum mpcc_loss {
	MPCC_LOSS_SOFTMAX_CROSS_ENTROPY = 0, /* SoftmaxCrossEntropyLoss, mean; int64 labels */
	MPCC_LOSS_MSE,   /* ReduceMean((logits - label)^2); float labels of the logits' shape */
	MPCC_LOSS_NLL,   /* NegativeLogLikelihoodLoss(LogSoftmax(logits)), mean; int64 labels */
	MPCC_LOSS_MODEL, /* the model's own SoftmaxCrossEntropyLoss or
	                  * NegativeLogLikelihoodLoss, whose loss is a graph output */
} mpcc_loss;

typedef enum mpcc_optimizer {
	MPCC_OPTIMIZER_SGD = 0, /* w -= lr (g + wd w) */
	MPCC_OPTIMIZER_MOMENTUM, /* v = momentum v + (g + wd w); w -= lr v */
	MPCC_OPTIMIZER_ADAM,    /* bias-corrected Adam on g + wd w (L2) */
	MPCC_OPTIMIZER_ADAMW,   /* Adam with decoupled decay: w = w (1 - lr wd) - ... */
} mpcc_optimizer;

typedef enum mpcc_loss_scaling {
	MPCC_LOSS_SCALING_DEFAULT = 0, /* dynamic for fp16, and for auto when a matrix
	                                * op of the model is to compute in f16; off
	                                * for fp32 and bf16 */
	MPCC_LOSS_SCALING_DYNAMIC,     /* starts at loss_scale, grows and backs off */
	MPCC_LOSS_SCALING_STATIC,      /* always loss_scale */
	MPCC_LOSS_SCALING_OFF,
} mpcc_loss_scaling;

/*
 * What `--train` compiles: the model, a loss and an optimizer step, as one
 * step graph whose plan a trainer runs (mpcc_trainer_*). Every f32
 * initializer not listed in frozen_weights is trained, its value in the model
 * the initial value. Strings are read during the compile only.
 */
typedef struct mpcc_train_options {
	mpcc_loss loss;           /* SOFTMAX_CROSS_ENTROPY by default */
	const char *label;        /* the label input: NULL = "label"; a new input
	                           * unless the model has an input of that name;
	                           * MODEL: NULL = the loss node's own label input */
	const char *logits;       /* a float value of the model: NULL = the model's
	                           * only float output (MODEL: the loss's scores) */
	mpcc_optimizer optimizer; /* SGD by default */
	double lr;                /* learning rate, > 0 (0.01) */
	double momentum;          /* MOMENTUM, in [0, 1) (0.9) */
	double beta1, beta2;      /* ADAM, ADAMW, in [0, 1) (0.9, 0.999) */
	double eps;               /* ADAM, ADAMW, > 0 (1e-8) */
	double weight_decay;      /* >= 0 (0): L2 for SGD, MOMENTUM, ADAM; decoupled for ADAMW */
	const char *const *frozen_weights; /* initializer names kept constant */
	int n_frozen_weights;
	mpcc_loss_scaling loss_scaling; /* DEFAULT */
	double loss_scale;        /* STATIC: the scale; DYNAMIC: the first one (65536) */
	double growth_factor;     /* DYNAMIC: after growth_interval finite steps in a row (2) */
	double backoff_factor;    /* DYNAMIC: after a step with a non-finite gradient (0.5) */
	int64_t growth_interval;  /* DYNAMIC (2000) */
} mpcc_train_options;

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
	/* NULL: an inference plan. Otherwise a training step plan of the model
	 * with this loss and optimizer (docs/training.md); auto mode calibrates
	 * and searches on the inference model and decides the backward pass by
	 * the policy. */
	const mpcc_train_options *train;
	/* GPU binaries stored in the plan (docs/plan-format.md, section CUDA),
	 * so the cuda backend need not compile at load: NULL or "none" for none
	 * (the default here, as NVRTC takes seconds per architecture);
	 * "default" for sm_80 and sm_90 cubins and compute_90 PTX when mpcc
	 * was built with NVRTC, else none (the mpcc tool's default; best
	 * effort: where the CUDA emitter or NVRTC cannot, the plan is written
	 * without them); or a list such as "80,90" or "sm_90,compute_90",
	 * which must compile (MPCC_ERR_BACKEND or MPCC_ERR_UNSUPPORTED naming
	 * the target otherwise; MPCC_ERR_UNSUPPORTED without NVRTC;
	 * MPCC_ERR_INVALID when malformed). */
	const char *cuda_archs;
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
/* Initialises o to the training defaults given beside each field (SGD at
 * lr 0.01, softmax cross entropy, default loss scaling). */
MPCC_API void mpcc_train_options_init(mpcc_train_options *o);

/*
 * Compiles the ONNX model at model_path and writes the plan to plan_path.
 * Errors: MPCC_ERR_IO (files), MPCC_ERR_INVALID (malformed model),
 * MPCC_ERR_UNSUPPORTED (an op, attribute or opset mpcc does not handle).
 * With opts->train: MPCC_ERR_INVALID for training options out of range or
 * not fitting the model (label, logits, frozen names), naming the option;
 * MPCC_ERR_UNSUPPORTED when an op between a trained weight and the loss has
 * no gradient rule (naming the node).
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
/* One line saying which backend runs the session and how: "cpu", or for
 * cuda the device, which GPU code was loaded (a cubin or PTX from the plan,
 * or NVRTC, cached or not) and whether runs replay a CUDA graph. Valid
 * until the session is destroyed. */
MPCC_API const char *mpcc_session_backend(const mpcc_session *s);

/* Per-launch timing (`mpcc run --profile`). One record per launch of the
 * schedule, in schedule order: on cuda one per stage (a GPU kernel), timed
 * on the device with a pair of CUDA events around it in a run that
 * enqueues the launches one by one (not the CUDA graph, so launch gaps are
 * not counted); on the host backends (cpu, interp) one per kernel, timed by
 * the host's monotonic clock around it. Times are over `runs` runs of the
 * inputs last set (no warm-up: run once before for steady state). */
typedef struct mpcc_launch_time {
	const char *kernel;   /* the plan's kernel name (valid while the plan is) */
	int kernel_index;     /* in the schedule */
	int stage;            /* cuda: the stage launched; host backends: -1, the whole kernel */
	unsigned grid, block; /* cuda: blocks and threads per block (1-D); host: 0, 0 */
	double median_ms, min_ms, max_ms;
} mpcc_launch_time;
/* Runs the plan `runs` (>= 1) times timing every launch; *out (n_out
 * records, freed with mpcc_free) as above. Outputs are those of the last
 * run. A failing timer call is MPCC_ERR_BACKEND naming it. */
MPCC_API mpcc_status mpcc_session_profile(mpcc_session *s, int runs, mpcc_launch_time **out,
                                          int *n_out);

/* ---------------------------------------------------------------- training
 *
 * A training step plan (docs/training.md) is a plan whose inputs include
 * the training state and whose outputs include its next value; its section
 * TRAN says which is which. A trainer runs such a plan step after step: it
 * owns a session and two buffers per piece of state, binds the current one
 * as the state input and the other as the next-state output, and after a
 * step swaps them, so a step copies only the batch in and allocates
 * nothing. Errors go to the context given at creation, which must outlive
 * the trainer; the plan must outlive it too. One trainer must not be used
 * from two threads at once.
 */
typedef struct mpcc_trainer mpcc_trainer;

/* What one step or evaluation gave. */
typedef struct mpcc_train_result {
	double loss;        /* the batch's loss */
	double loss_scale;  /* the loss scale this step used; 1 when the plan has none */
	bool skipped;       /* the update was not applied (the plan's ok flag was
	                     * false, e.g. non-finite gradients); false for eval */
	uint64_t step;      /* steps run so far, this one included (eval: unchanged) */
	/* The logits output (data NULL when the plan has no logits role):
	 * a read-only view, valid until the next step, eval, load or destroy. */
	mpcc_tensor logits;
} mpcc_train_result;

/* The skip history, kept by the trainer and saved in checkpoints. */
typedef struct mpcc_train_counts {
	uint64_t steps;             /* steps run, skipped ones included */
	uint64_t skipped;           /* steps whose update was not applied */
	uint64_t consecutive_skips; /* skipped steps since the last applied one */
} mpcc_train_counts;

/*
 * Creates a trainer for plan on backend ("cpu", "interp", "cuda"; NULL for
 * the best available), its state set to the plan's initial values.
 * Errors: MPCC_ERR_INVALID when the plan has no training section or for an
 * unknown backend; MPCC_ERR_NOMEM; MPCC_ERR_BACKEND when the JIT fails.
 */
MPCC_API mpcc_status mpcc_trainer_create(mpcc_context *cx, const mpcc_plan *plan,
                                         const char *backend, mpcc_trainer **out);
MPCC_API void mpcc_trainer_destroy(mpcc_trainer *tr);

/* The inputs a step takes from the caller: every plan input that is not
 * state and not the apply switch, the label included, in plan order
 * (descriptions: data is NULL). */
MPCC_API int mpcc_trainer_n_inputs(const mpcc_trainer *tr);
MPCC_API const mpcc_tensor *mpcc_trainer_input(const mpcc_trainer *tr, int i);
/* The label among them, or NULL when the plan has none. */
MPCC_API const mpcc_tensor *mpcc_trainer_label(const mpcc_trainer *tr);
/* The plan's one-line description of the recipe (optimizer, learning
 * rate, loss, scaling); "" when it has none. */
MPCC_API const char *mpcc_trainer_recipe(const mpcc_trainer *tr);

/*
 * One training step: binds inputs[0..n) by name (each of the trainer's
 * inputs exactly once, dtype and shape as in the plan), the state and
 * apply = true, runs, makes every next-state output the state of the next
 * step, and fills *r. Errors (MPCC_ERR_INVALID, naming the input): a
 * missing input ("the label 'y' is missing"), an unknown or repeated name,
 * a state or apply input given by the caller, a dtype or shape mismatch.
 * A failed step leaves the state as it was.
 */
MPCC_API mpcc_status mpcc_trainer_step(mpcc_trainer *tr, const mpcc_tensor *inputs, int n,
                                       mpcc_train_result *r);
/* The same with apply = false, and the state is never swapped: the loss
 * and logits of the batch under the current state, which stays unchanged.
 * r->skipped is false and r->step unchanged. */
MPCC_API mpcc_status mpcc_trainer_eval(mpcc_trainer *tr, const mpcc_tensor *inputs, int n,
                                       mpcc_train_result *r);
MPCC_API void mpcc_trainer_counts(const mpcc_trainer *tr, mpcc_train_counts *out);

/*
 * The collapse guard (docs/training.md): a skipped step trips it when
 * max_consecutive_skips steps in a row have now been skipped, or when the
 * loss scale that step used was below min_loss_scale. The step then
 * returns MPCC_ERR_DIVERGED (its effects stand: it was skipped, and the
 * scaler backed off) with a message naming the first non-finite value in
 * schedule order, an input or the output of the kernel and ONNX nodes that
 * computed it, found by re-running the step on the interpreter. 0 turns a
 * condition off. Defaults: 1.0 and 32 (from 2^16 a dynamic scale falls
 * below 1 after 17 overflows in a row).
 */
MPCC_API void mpcc_trainer_set_guard(mpcc_trainer *tr, double min_loss_scale,
                                     uint64_t max_consecutive_skips);

/* The state: n_state tensors, named after their plan inputs. *t is a view
 * (name, dtype, shape, current data), valid until the next step, load or
 * destroy. Errors: MPCC_ERR_INVALID for i out of range. */
MPCC_API int mpcc_trainer_n_state(const mpcc_trainer *tr);
MPCC_API mpcc_status mpcc_trainer_state(mpcc_trainer *tr, int i, const mpcc_tensor **t);

/*
 * Checkpoints (format in docs/training.md): every state tensor by name,
 * dtype, shape and bytes, and the counts, with an FNV-1a checksum. Loading
 * restores them bit for bit. Errors: MPCC_ERR_IO (files); MPCC_ERR_INVALID
 * for a damaged file or one whose tensors do not match the plan's state
 * (the message names the tensor); the trainer is unchanged on failure.
 */
MPCC_API mpcc_status mpcc_trainer_save(mpcc_trainer *tr, const char *path);
MPCC_API mpcc_status mpcc_trainer_load(mpcc_trainer *tr, const char *path);

/*
 * Writes the trained model to path as ONNX (docs/training.md, "Export"):
 * the model the plan was compiled from, which a training plan carries
 * (section ONNX), with every trained initializer's data replaced by the
 * trainer's current value of the state of its name, in f32 raw_data (an
 * external-data initializer that was trained is written inline). The
 * optimizer's and loss scaler's state are not exported; the graph, opset
 * imports and every other initializer are kept exactly, external-data
 * references included (resolved next to the new file). The state is read,
 * not changed. Errors: MPCC_ERR_UNSUPPORTED for a plan without its source
 * model ("plan has no source model: recompile it with this mpcc");
 * MPCC_ERR_INVALID naming the weight when the source model has no f32
 * initializer of its name and shape; MPCC_ERR_IO; MPCC_ERR_NOMEM.
 */
MPCC_API mpcc_status mpcc_trainer_export(mpcc_trainer *tr, const char *path);

#ifdef __cplusplus
}
#endif
#endif
