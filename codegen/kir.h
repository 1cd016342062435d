/*
 * kir.h - the kernel IR: what every op lowers to and every emitter consumes.
 *
 * A kernel is a list of buffers, a pool of expressions and a list of stages
 * run in order. A stage is a loop nest: parallel dims (vars 0..n_par-1), then
 * optional reduction dims (vars n_par..n_par+n_red-1) folded by one reduction
 * operator into an accumulator, then up to KIR_MAX_STORES stores, executed
 * once per point of the parallel domain, that may read the accumulator.
 *
 * Expressions live in one array and refer to their operands by index; an
 * operand always has a smaller index than its user, so the array is a
 * topological order and serialising a kernel is copying arrays. Index maps
 * are ordinary integer expressions over the loop vars (a transpose is a load
 * whose index is sum(var_k * stride_k)), so data movement, broadcasting,
 * gathers and padding need no special forms.
 *
 * Types. Every expression has a dtype. Operands of a binary op share one
 * dtype; comparisons give BOOL; loads give the buffer's dtype; a store's
 * value has the buffer's dtype. F16 and BF16 expressions hold values
 * representable in that format: an emitter may keep them in f32 registers but
 * must round (nearest even, overflow to inf) after every op that produces one,
 * so a CAST to F16 is exactly the rounding a GPU store would do. Lowerings
 * normally cast to F32 to compute and back to the storage dtype to store.
 *
 * Integer semantics: DIV truncates, REM takes the sign of the dividend (C),
 * FLOORMOD the sign of the divisor (Python); division by zero yields 0 rather
 * than trapping. Shifts by >= the bit width yield 0. Float MIN/MAX return NaN
 * if either operand is NaN.
 *
 * Memory safety: every load and store index must be in [0, n_elems) of its
 * buffer. Lowerings clamp indices that come from data (Gather, ScatterND).
 *
 * Building never fails visibly: on out-of-memory the kernel's `failed` flag
 * is set and builders return 0; check kir_kernel_ok() once at the end.
 */
#ifndef MPCC_KIR_H
#define MPCC_KIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ir/ir.h"

#define KIR_MAX_DIMS 8   /* parallel dims, and separately reduction dims */
#define KIR_MAX_STORES 4

typedef enum kir_op {
	KIR_CONST = 0, /* imm */
	KIR_VAR,       /* loop var a (dtype I64) */
	KIR_LOAD,      /* buffer a at element index b (I64) */
	KIR_ACC,       /* the stage's accumulator (reduction result); for ARG* the I64 index */
	KIR_CAST,      /* a converted to dtype: float->int truncates toward zero and
	                  saturates (NaN gives 0); int->int wraps to the target width;
	                  to BOOL is a != 0; to F16/BF16 rounds to nearest even */
	KIR_SELECT,    /* a (BOOL) ? b : c */
	/* unary: a */
	KIR_NEG,
	KIR_ABS,
	KIR_SQRT,
	KIR_EXP,
	KIR_LOG,
	KIR_SIN,
	KIR_COS,
	KIR_TAN,
	KIR_ASIN,
	KIR_ACOS,
	KIR_ATAN,
	KIR_SINH,
	KIR_COSH,
	KIR_TANH,
	KIR_ASINH,
	KIR_ACOSH,
	KIR_ATANH,
	KIR_ERF,
	KIR_FLOOR,
	KIR_CEIL,
	KIR_RINT,  /* round half to even */
	KIR_TRUNC,
	KIR_NOT,   /* logical not of BOOL */
	KIR_BNOT,  /* bitwise not of an integer */
	KIR_ISNAN, /* BOOL result */
	/* binary: a, b */
	KIR_ADD,
	KIR_SUB,
	KIR_MUL,
	KIR_DIV,
	KIR_REM,
	KIR_FLOORMOD,
	KIR_MIN,
	KIR_MAX,
	KIR_POW,
	KIR_AND, /* logical for BOOL, bitwise for integers */
	KIR_OR,
	KIR_XOR,
	KIR_SHL,
	KIR_SHR, /* logical for unsigned, arithmetic for signed */
	KIR_EQ,  /* comparisons: BOOL result */
	KIR_NE,
	KIR_LT,
	KIR_LE,
	KIR_GT,
	KIR_GE,
	KIR_OP_COUNT
} kir_op;

typedef struct kir_expr {
	uint8_t op;    /* kir_op */
	uint8_t dtype; /* mpcc_dtype */
	uint16_t pad;
	int32_t a, b, c; /* operand expr indices (or buffer / var number, per op) */
	union {
		double f;  /* float constants */
		int64_t i; /* integer and bool constants */
	} imm;
} kir_expr;

typedef enum kir_red {
	KIR_RED_NONE = 0,
	KIR_RED_SUM,
	KIR_RED_PROD,
	KIR_RED_MAX,        /* NaN-propagating */
	KIR_RED_MIN,
	KIR_RED_ARGMAX,     /* first index of the maximum; ACC is I64 */
	KIR_RED_ARGMIN,
	KIR_RED_ARGMAX_LAST, /* last index of the maximum */
	KIR_RED_ARGMIN_LAST,
} kir_red;
/*
 * Reduction semantics, identical in every emitter: the reduction points are
 * visited in row-major order of the reduction dims and folded sequentially
 * (no reassociation, so results are bit-identical across backends until a
 * backend states otherwise). SUM starts at 0, PROD at 1, MAX at -inf (the
 * type's minimum for integers), MIN at +inf (maximum). Float MAX/MIN return
 * NaN once any value is NaN. ARG* keep the best value seen and its linear
 * index over the reduction dims: ARGMAX replaces on value > best (first
 * maximum), ARGMAX_LAST on value >= best (last maximum), ARGMIN/_LAST
 * likewise with <; the first point always initialises best. With an empty
 * reduction domain ARG* give 0.
 */

typedef struct kir_store {
	int32_t buf;   /* buffer index */
	int32_t index; /* I64 expr: element index */
	int32_t value; /* expr of the buffer's dtype */
} kir_store;

typedef struct kir_stage {
	int n_par;                    /* parallel dims: vars 0..n_par-1 */
	int64_t par_ext[KIR_MAX_DIMS];
	int n_red;                    /* reduction dims: vars n_par.. */
	int64_t red_ext[KIR_MAX_DIMS];
	uint8_t red_op;               /* kir_red; NONE when n_red == 0 */
	uint8_t acc_dtype;            /* SUM/PROD/MAX/MIN: dtype of value and ACC */
	bool serial;                  /* must run in order (scatters with duplicates) */
	int32_t red_value;            /* expr evaluated at each reduction point */
	int n_store;
	kir_store store[KIR_MAX_STORES];
} kir_stage;

typedef enum kir_buf_kind {
	KIR_BUF_PARAM = 0, /* bound to a graph value (value) at run time */
	KIR_BUF_TEMP,      /* scratch owned by the kernel invocation */
} kir_buf_kind;

typedef struct kir_buf {
	uint8_t dtype;    /* mpcc_dtype */
	uint8_t kind;     /* kir_buf_kind */
	bool written;     /* some store targets it */
	int32_t value;    /* PARAM: graph value / plan tensor index; TEMP: MPCC_NONE */
	int64_t n_elems;
} kir_buf;

typedef struct kir_kernel {
	char name[64];    /* C identifier, unique in a plan */
	int32_t node;     /* graph node it came from, MPCC_NONE if several */
	int n_bufs, cap_bufs;
	kir_buf *bufs;
	int n_exprs, cap_exprs;
	kir_expr *exprs;
	int n_stages, cap_stages;
	kir_stage *stages;
	bool failed;      /* an allocation failed while building */
	/* Graph nodes the kernel computes, set by fusion (codegen/fuse.h) when
	 * more than `node`; malloc'd, freed with the kernel, not serialised (the
	 * plan keeps node names in its own section). */
	int32_t *cover;
	int n_cover;
} kir_kernel;

/* Creation. name is truncated to 63 chars and made a C identifier. */
kir_kernel *kir_kernel_create(const char *name);
void kir_kernel_destroy(kir_kernel *k);
bool kir_kernel_ok(const kir_kernel *k);

/* Adds a buffer and returns its index. */
int kir_buf_add(kir_kernel *k, mpcc_dtype dtype, kir_buf_kind kind, int32_t value, int64_t n_elems);

/* Expression builders; each returns the new expr's index. */
int32_t kir_const_f(kir_kernel *k, mpcc_dtype dtype, double v);
int32_t kir_const_i(kir_kernel *k, mpcc_dtype dtype, int64_t v);
int32_t kir_var(kir_kernel *k, int var);
int32_t kir_load(kir_kernel *k, int buf, int32_t index);
int32_t kir_acc(kir_kernel *k, mpcc_dtype dtype);
int32_t kir_cast(kir_kernel *k, mpcc_dtype dtype, int32_t a); /* no-op if same dtype */
int32_t kir_unary(kir_kernel *k, kir_op op, int32_t a);
int32_t kir_binary(kir_kernel *k, kir_op op, int32_t a, int32_t b);
int32_t kir_select(kir_kernel *k, int32_t cond, int32_t a, int32_t b);
/* Integer index helpers (I64): a*s folded when s is 1, a+b when one is 0. */
int32_t kir_imul(kir_kernel *k, int32_t a, int64_t s);
int32_t kir_iadd(kir_kernel *k, int32_t a, int32_t b);
int32_t kir_iconst(kir_kernel *k, int64_t v); /* I64 constant */
mpcc_dtype kir_expr_dtype(const kir_kernel *k, int32_t e);

/* Adds a stage; returns a pointer valid until the next kir_stage_add. */
kir_stage *kir_stage_add(kir_kernel *k, int n_par, const int64_t *par_ext, int n_red,
                         const int64_t *red_ext, kir_red red_op, mpcc_dtype acc_dtype,
                         int32_t red_value);
void kir_stage_store(kir_kernel *k, kir_stage *st, int buf, int32_t index, int32_t value);

/* Full structural and type check (used on every deserialised kernel, and in
 * debug builds after lowering). */
mpcc_status kir_validate(const kir_kernel *k, mpcc_diag *d);

/* A rough cost of running stage st once: its points times its reduction
 * points times the kernel's expression pool (an upper bound on the work
 * per point). Used to decide threading, LLVM's unroller and auto mode's
 * backend; only its order of magnitude matters. */
double kir_stage_work(const kir_kernel *k, const kir_stage *st);

/* Reference interpreter: runs every stage over bufs[i] (one pointer per
 * buffer; TEMP buffers may be NULL and are then allocated here). Slow and
 * exact: used for constant folding and to check the emitters. */
mpcc_status kir_interpret(const kir_kernel *k, void **bufs, mpcc_diag *d);

/* Readable text form, for dumps and golden tests. malloc'd. */
char *kir_print(const kir_kernel *k);

/* Serialised form used inside plans; kir_deserialize validates. */
typedef struct kir_writer {
	uint8_t *data;
	size_t size, cap;
	bool failed;
} kir_writer;
void kir_write_bytes(kir_writer *w, const void *p, size_t n);
void kir_serialize(kir_writer *w, const kir_kernel *k);
mpcc_status kir_deserialize(const uint8_t *p, size_t size, size_t *consumed, kir_kernel **out,
                            mpcc_diag *d);

const char *kir_op_name(kir_op op);

#endif
