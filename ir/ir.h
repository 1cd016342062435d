/*
 * ir.h - mpcc's graph IR: values and nodes held in arrays and referred to by
 * 32-bit index, typed attributes, the op enumeration, the op rule registry,
 * the diagnostics sink and the arena that owns everything a graph allocates.
 *
 * A graph owns an arena; strings, attribute arrays and small constant data
 * live there and die with the graph. Large tensor data (initializers,
 * folded constants) is malloc'd and owned by its value, freed by the graph.
 */
#ifndef MPCC_IR_H
#define MPCC_IR_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mpcc.h"

#define MPCC_NONE (-1) /* an absent value or node index */

/* ---------------------------------------------------------------- arena */

typedef struct mpcc_arena_chunk mpcc_arena_chunk;
typedef struct mpcc_arena {
	mpcc_arena_chunk *head;
	size_t used; /* bytes handed out in head */
} mpcc_arena;

void mpcc_arena_init(mpcc_arena *a);
void mpcc_arena_fini(mpcc_arena *a);
/* 16-byte aligned, zeroed; NULL when out of memory. */
void *mpcc_arena_alloc(mpcc_arena *a, size_t n);
char *mpcc_arena_strdup(mpcc_arena *a, const char *s);

/* ---------------------------------------------------------------- diagnostics */

/*
 * The sink keeps the first error (later ones are usually consequences) as one
 * line of text. Library code reports here and returns the status; the CLI or
 * the API layer decides what to show.
 */
typedef struct mpcc_diag {
	mpcc_status status; /* MPCC_OK until the first error */
	char msg[512];
} mpcc_diag;

void mpcc_diag_init(mpcc_diag *d);
/* Records the error (if none yet) and returns st, so callers can
 * `return mpcc_diag_error(d, MPCC_ERR_INVALID, "...", ...);`. */
mpcc_status mpcc_diag_error(mpcc_diag *d, mpcc_status st, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
mpcc_status mpcc_diag_verror(mpcc_diag *d, mpcc_status st, const char *fmt, va_list ap);

/* ---------------------------------------------------------------- dtypes */

bool mpcc_dtype_is_float(mpcc_dtype t); /* f16, bf16, f32, f64 */
bool mpcc_dtype_is_int(mpcc_dtype t);   /* signed and unsigned integers */
bool mpcc_dtype_is_signed(mpcc_dtype t);
/* ONNX TensorProto.DataType <-> mpcc; UNDEF when there is no counterpart. */
mpcc_dtype mpcc_dtype_from_onnx(int onnx_type);
int mpcc_dtype_to_onnx(mpcc_dtype t);

/* IEEE binary16 and bfloat16 conversions, round to nearest even, overflow to
 * inf, NaN kept NaN. */
uint16_t mpcc_f32_to_f16(float f);
float mpcc_f16_to_f32(uint16_t h);
uint16_t mpcc_f32_to_bf16(float f);
float mpcc_bf16_to_f32(uint16_t h);

/* ---------------------------------------------------------------- ops */

typedef enum mpcc_op {
	MPCC_OP_INVALID = 0,
#define OP(id, onnx, dom, prec) MPCC_OP_##id,
#include "ops.def"
#undef OP
	MPCC_OP_COUNT
} mpcc_op;

typedef enum mpcc_prec_class {
	MPCC_PREC_LOW,
	MPCC_PREC_F32,
	MPCC_PREC_FOLLOW,
	MPCC_PREC_NONE,
} mpcc_prec_class;

const char *mpcc_op_name(mpcc_op op);         /* ONNX op type */
mpcc_prec_class mpcc_op_prec_class(mpcc_op op);
/* domain "" or "ai.onnx" or "ai.onnx.preview.training"; INVALID if unknown */
mpcc_op mpcc_op_lookup(const char *domain, const char *op_type);

/* ---------------------------------------------------------------- attributes */

typedef enum mpcc_attr_kind {
	MPCC_ATTR_UNDEF = 0,
	MPCC_ATTR_FLOAT,
	MPCC_ATTR_INT,
	MPCC_ATTR_STRING,
	MPCC_ATTR_TENSOR,
	MPCC_ATTR_GRAPH,
	MPCC_ATTR_FLOATS,
	MPCC_ATTR_INTS,
	MPCC_ATTR_STRINGS,
} mpcc_attr_kind;

typedef struct mpcc_graph mpcc_graph;

/* A constant tensor held by an attribute (Constant's value, ConstantOfShape's
 * value). Data lives in the graph's arena. */
typedef struct mpcc_const_tensor {
	mpcc_dtype dtype;
	int rank;
	int64_t dims[MPCC_MAX_RANK];
	void *data;
	size_t nbytes;
} mpcc_const_tensor;

typedef struct mpcc_attr {
	const char *name;
	mpcc_attr_kind kind;
	int64_t i;                /* INT */
	float f;                  /* FLOAT */
	const char *s;            /* STRING (NUL-terminated; may hold no NUL) */
	int n;                    /* element count of INTS, FLOATS, STRINGS */
	int64_t *ints;            /* INTS */
	float *floats;            /* FLOATS */
	const char **strings;     /* STRINGS */
	mpcc_const_tensor *t;     /* TENSOR */
	mpcc_graph *g;            /* GRAPH (owned by the parent graph) */
} mpcc_attr;

/* ---------------------------------------------------------------- values and nodes */

enum {
	MPCC_VALUE_INPUT = 1 << 0,  /* graph input */
	MPCC_VALUE_OUTPUT = 1 << 1, /* graph output */
	MPCC_VALUE_CONST = 1 << 2,  /* data is known at compile time */
	MPCC_VALUE_WEIGHT = 1 << 3, /* came from an initializer */
	/* An f32 value of the model that the precision pass stores as f16/bf16
	 * (or a cast it inserted): its rounding is a storage decision, so a
	 * fusion that keeps it in registers drops it (codegen/fuse.c). */
	MPCC_VALUE_LOWERED = 1 << 4,
};

typedef struct mpcc_value {
	const char *name;
	mpcc_dtype dtype;   /* UNDEF until inferred */
	int rank;           /* -1 until inferred */
	int64_t dims[MPCC_MAX_RANK];
	const char *sym[MPCC_MAX_RANK]; /* symbolic dim names, NULL when numeric */
	uint32_t flags;     /* MPCC_VALUE_* */
	int32_t producer;   /* node index, or MPCC_NONE */
	void *data;         /* CONST: malloc'd, owned by the graph */
	size_t nbytes;
	/* precision pass (issue 3) */
	mpcc_dtype storage; /* dtype the value is stored in; UNDEF = dtype */
} mpcc_value;

typedef struct mpcc_node {
	const char *name;   /* ONNX node name, or a generated "Op_N" */
	mpcc_op op;
	int opset;          /* opset version of the op's domain */
	int n_in, n_out, n_attr;
	int32_t *in;        /* value indices; MPCC_NONE for an omitted optional */
	int32_t *out;
	mpcc_attr *attr;
	bool dead;          /* removed by a pass; skipped everywhere */
	/* precision pass (issue 3) */
	mpcc_dtype compute, accum;
	const char *reason;   /* final decision, one line (arena) */
	/* The chain of evidence behind `reason`, one stage per line, oldest
	 * first, the last line equal to reason (arena; NULL = just reason).
	 * E.g. "policy: matrix op (MatMul)\nbf16: calibrated max 7.1e4 is
	 * beyond f16". Read by the dumps and `mpcc explain`. */
	const char *evidence;
	/* Measured by auto mode, NaN when not measured: the calibrated largest
	 * |value| over the node's float outputs in the f32 run, and the
	 * relative L2 error of its first float output in the final plan against
	 * the f32 run. */
	double range_absmax, err;
	/* Stable id across builds: the node's position in the ONNX graph at
	 * import (mpcc_graph_add_node sets the creation index); -1 for nodes
	 * a pass inserted (casts.c). */
	int32_t src_index;
} mpcc_node;

struct mpcc_graph {
	mpcc_arena arena;
	mpcc_value *values;
	int n_values, cap_values;
	mpcc_node *nodes;
	int n_nodes, cap_nodes;
	int32_t *inputs;  /* graph inputs that are not initializers, in order */
	int n_inputs;
	int32_t *outputs;
	int n_outputs;
	int opset;          /* ai.onnx opset import */
	int opset_training; /* ai.onnx.preview.training opset, 0 if none */
	mpcc_graph *parent; /* enclosing graph of a subgraph, else NULL */
	/* name -> value index, open addressing, kept by mpcc_graph_add_value;
	 * value names must not change once added (ir/graph.c) */
	int32_t *vindex;    /* cap_vindex slots, MPCC_NONE when empty; malloc'd */
	int cap_vindex;
	int n_genname;      /* counter behind generated value names "_vN" */
	/* Graph-level notes of the precision pass (arena, NULL = none): one
	 * line each, e.g. how auto mode calibrated and what its search cost.
	 * Stored in the plan beside the per-node decisions. */
	const char *prec_summary;
	/* What makes this a training step graph (docs/training.md): state
	 * pairs and roles, below. NULL for inference; arena-allocated. */
	struct mpcc_train_info *train;
};

mpcc_status mpcc_graph_create(mpcc_graph **out);
void mpcc_graph_destroy(mpcc_graph *g);
/* Adds a value; name is copied (NULL gives a generated unique name).
 * Returns its index, or MPCC_NONE when out of memory. */
int32_t mpcc_graph_add_value(mpcc_graph *g, const char *name);
/* Adds a node with n_in inputs and n_out outputs (arrays copied).
 * Sets the outputs' producer. Returns the index or MPCC_NONE. */
int32_t mpcc_graph_add_node(mpcc_graph *g, mpcc_op op, const char *name, int n_in,
                            const int32_t *in, int n_out, const int32_t *out);
int32_t mpcc_graph_find_value(const mpcc_graph *g, const char *name);
/* Appends an attribute slot to node n; returns it or NULL. */
mpcc_attr *mpcc_node_add_attr(mpcc_graph *g, int32_t n, const char *name, mpcc_attr_kind kind);

/* Typed attribute lookup: returns the attribute or NULL. */
const mpcc_attr *mpcc_node_attr(const mpcc_node *n, const char *name);
int64_t mpcc_node_attr_int(const mpcc_node *n, const char *name, int64_t dflt);
float mpcc_node_attr_float(const mpcc_node *n, const char *name, float dflt);
const char *mpcc_node_attr_string(const mpcc_node *n, const char *name, const char *dflt);

/* Element count of a value with known shape (1 for rank 0), -1 if unknown. */
int64_t mpcc_value_numel(const mpcc_value *v);
/* Takes ownership of malloc'd data and marks v constant. */
void mpcc_value_set_data(mpcc_value *v, void *data, size_t nbytes);
/* Reads element i of a constant integer value as int64 (any int dtype). */
int64_t mpcc_value_get_int(const mpcc_value *v, int64_t i);
/* Reads element i of a constant value as double (any numeric dtype). */
double mpcc_value_get_double(const mpcc_value *v, int64_t i);

/* Topological order check and structural invariants. */
mpcc_status mpcc_graph_verify(const mpcc_graph *g, mpcc_diag *d);
/* Stable text form, used by dumps and golden tests. Returns malloc'd text. */
char *mpcc_graph_print(const mpcc_graph *g);

/* Error about a node: "node 'NAME' (Op, opset N): <message>". */
mpcc_status mpcc_node_error(mpcc_diag *d, const mpcc_node *n, mpcc_status st, const char *fmt,
                            ...) __attribute__((format(printf, 4, 5)));

/* Appends v to the graph inputs (outputs) and sets its INPUT (OUTPUT) flag;
 * the arrays live in the arena. MPCC_ERR_NOMEM when out of memory. */
mpcc_status mpcc_graph_add_input(mpcc_graph *g, int32_t v);
mpcc_status mpcc_graph_add_output(mpcc_graph *g, int32_t v);

/* ---------------------------------------------------------------- training */

/*
 * A training step graph (docs/training.md) reads the batch, the label and
 * the training state, and writes the loss and the state's next value. The
 * runtime needs to know which is which: g->train says it, by value index.
 * Value indices are stable (passes add values and mark nodes dead, never
 * renumber), so the passes keep it valid as long as the values stay graph
 * inputs and outputs; mpcc_graph_verify checks that after every pass, and
 * dead-code elimination keeps graph outputs. mpcc_plan_build turns it into
 * the plan's section TRAN (by input and output position).
 */
typedef struct mpcc_train_state {
	int32_t in;            /* graph input: the value this step reads */
	int32_t out;           /* graph output: its value for the next step */
	mpcc_dtype init_dtype; /* dtype of init: the input's dtype when set
	                        * (low_io may lower the input; the plan converts) */
	const void *init;      /* initial value, dense row-major (arena) */
	size_t init_nbytes;    /* element count of `in` times init_dtype's size */
} mpcc_train_state;

typedef struct mpcc_train_info {
	int n_state;
	mpcc_train_state *state; /* n_state entries (arena) */
	int32_t label;      /* graph input, or MPCC_NONE */
	int32_t loss;       /* graph output, one float element (required) */
	int32_t logits;     /* graph output, or MPCC_NONE */
	int32_t loss_scale; /* graph output, one float element: the scale this
	                     * step used; MPCC_NONE when there is no scaling */
	int32_t ok;         /* graph output, one bool: the update was applied
	                     * (not skipped); MPCC_NONE = always applied */
	int32_t apply;      /* graph input, one bool: false leaves the state
	                     * unchanged (evaluation); MPCC_NONE = none */
	const char *recipe; /* one line for display, e.g. "sgd lr=0.05, mse,
	                     * no loss scaling" (arena; NULL = none) */
} mpcc_train_info;

/* Gives g a train info with n_state zeroed state slots (in = out = NONE)
 * and every role MPCC_NONE; *out is g->train. MPCC_ERR_NOMEM. */
mpcc_status mpcc_graph_train_new(mpcc_graph *g, int n_state, mpcc_train_info **out);
/* Fills state slot i: in, out and a copy of init (nbytes, in dtype) in the
 * arena. MPCC_ERR_INTERNAL for a bad slot, MPCC_ERR_NOMEM. */
mpcc_status mpcc_train_set_state(mpcc_graph *g, int i, int32_t in, int32_t out,
                                 mpcc_dtype dtype, const void *init, size_t nbytes);
/* Checks g->train (if any) against the graph: every role and state value
 * is a graph input or output as documented, state pairs are distinct and
 * agree in dtype and shape where known, initial sizes fit. Called by
 * mpcc_graph_verify; errors name the role or state value. */
mpcc_status mpcc_train_verify(const mpcc_graph *g, mpcc_diag *d);

/* ---------------------------------------------------------------- op rules */

struct kir_builder;
typedef struct mpcc_lower mpcc_lower; /* codegen/lower.h */

/*
 * The rule of an op. Families of ops (ops/<family>.c) each export one table
 * of rules; the registry finds an op's rule by scanning them.
 *
 * attrs: the attribute names the op accepts, NULL-terminated; any other
 *        attribute on a node is an error (never silently ignored).
 * infer: sets dtype and shape of every output from the inputs (and their
 *        constant data where the op needs it, e.g. Reshape's shape).
 *        Returns MPCC_ERR_INVALID / UNSUPPORTED through d with mpcc_node_error.
 * lower: appends the op's kernels to lx (codegen/lower.h).
 */
typedef struct mpcc_op_rule {
	mpcc_op op;
	int min_in, max_in;   /* input count accepted */
	int min_out, max_out;
	const char *const *attrs;
	mpcc_status (*infer)(mpcc_graph *g, int32_t node, mpcc_diag *d);
	mpcc_status (*lower)(mpcc_lower *lx, int32_t node);
} mpcc_op_rule;

/* NULL when no family supports the op. */
const mpcc_op_rule *mpcc_op_rule_get(mpcc_op op);

#endif
