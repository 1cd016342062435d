/*
 * precision_report.h - the precision report (issue 3, point 5): what the
 * precision and cast passes decided for every node, in a form that outlives
 * the graph.
 *
 * A report is built from the graph after the casts pass, when every value
 * carries its storage dtype: one record per live node, inserted casts
 * included, in schedule order (the order nodes are lowered in, which the
 * plan's kernels follow). A record keeps what a reader needs without the
 * graph: a stable id, the node's name and op, the dtypes it reads and
 * writes, its compute and accumulate dtypes, the reason and the chain of
 * evidence behind it, what auto mode measured, an estimate of its FLOPs and
 * bytes moved, and the kernels that compute it. The plan stores the records
 * in section PRND (docs/plan-format.md), so `mpcc inspect --precision`,
 * `mpcc explain` and the compile-time dumps all print the same thing.
 *
 * The report owns an arena: freeing it frees every string and array. The
 * formatters (precision_format.c, precision_html.c) return malloc'd text and
 * never print.
 */
#ifndef MPCC_PRECISION_REPORT_H
#define MPCC_PRECISION_REPORT_H

#include "ir/ir.h"

#define MPCC_PREC_REPORT_VERSION 1 /* version of section PRND's layout */

enum {
	MPCC_PREC_IO_INPUT = 1 << 0,  /* a graph input */
	MPCC_PREC_IO_CONST = 1 << 1,  /* a constant (weight, folded, converted) */
	MPCC_PREC_IO_OUTPUT = 1 << 2, /* a graph output */
};

/* One operand as the node reads or writes it. */
typedef struct mpcc_prec_io {
	const char *value;  /* value name */
	mpcc_dtype dtype;   /* storage dtype */
	uint32_t flags;     /* MPCC_PREC_IO_* */
	int32_t producer;   /* inputs: the record writing it, -1 for none;
	                     * always an earlier record; outputs: -1 */
	int rank;
	int64_t dims[MPCC_MAX_RANK];
	uint64_t nbytes;    /* elements times the storage dtype's size */
} mpcc_prec_io;

enum {
	MPCC_PREC_REC_CAST = 1 << 0, /* a Cast the casts pass inserted */
};

typedef struct mpcc_prec_record {
	const char *id;        /* "n<ONNX index>" or "cast:<source value>:<dtype>" */
	const char *name;      /* node name */
	const char *op;        /* ONNX op type */
	uint32_t flags;        /* MPCC_PREC_REC_* */
	mpcc_dtype compute, accum; /* UNDEF when the node decided nothing */
	int n_in, n_out;       /* omitted optional inputs are left out */
	mpcc_prec_io *in, *out;
	const char *reason;    /* one line, "" when none */
	const char *evidence;  /* stages, one a line, last = reason; never NULL */
	double range_absmax;   /* NaN when not measured */
	double err;            /* NaN when not measured */
	uint64_t flops;        /* estimate, see mpcc_node_flops */
	uint64_t bytes;        /* sum of the operands' nbytes */
	const char *kernel;    /* kernels computing it, ", "-joined; "" none */
} mpcc_prec_record;

typedef struct mpcc_prec_report {
	mpcc_arena arena;
	mpcc_precision mode;
	int n_records;
	mpcc_prec_record *records; /* schedule order */
	const char *summary;       /* graph notes, one a line; "" when none */
} mpcc_prec_report;

/* Totals the formatters print, computed from the records. */
typedef struct mpcc_prec_totals {
	int nodes;                     /* records that are no inserted cast */
	int casts;                     /* inserted casts */
	int by_compute[MPCC_DTYPE_COUNT]; /* nodes (casts excluded) per compute dtype */
	uint64_t flops[MPCC_DTYPE_COUNT]; /* by compute dtype, casts included */
	uint64_t bytes[MPCC_DTYPE_COUNT]; /* by each operand's storage dtype */
	uint64_t flops_total, bytes_total;
	double low_flops_share;        /* (f16 + bf16) / total, 0 when total is 0 */
	double low_bytes_share;
} mpcc_prec_totals;

/*
 * Builds the report of g (after the casts pass). node_kernels, when not
 * NULL, holds per graph node the names of the kernels computing it (NULL or
 * "" for none). Ids are made unique ("#2" appended to a clash, which only
 * a broken pass causes). Errors: MPCC_ERR_NOMEM, MPCC_ERR_INTERNAL.
 */
mpcc_status mpcc_prec_report_build(const mpcc_graph *g, mpcc_precision mode,
                                   const char *const *node_kernels, mpcc_prec_report **out,
                                   mpcc_diag *d);
void mpcc_prec_report_destroy(mpcc_prec_report *r);

/* The estimated FLOPs of one node: MatMul/Gemm 2*M*N*K with batch,
 * Conv 2*out*(Cin/group)*window, ConvTranspose 2*in*(Cout/group)*window,
 * Einsum 2*out*contracted, RNN/GRU/LSTM their gate products, pooling
 * out*window, other reductions and normalisations the input elements,
 * elementwise the output elements, data movement and casts 0. Saturates. */
uint64_t mpcc_node_flops(const mpcc_graph *g, const mpcc_node *n);

/* Section PRND: the bytes (malloc'd) and the checked reading. A damaged
 * section is MPCC_ERR_INVALID with a message naming the record and field
 * (the plan loader puts "section 'PRND': " in front). */
mpcc_status mpcc_prec_report_serialize(const mpcc_prec_report *r, void **out, size_t *out_size);
mpcc_status mpcc_prec_report_deserialize(const void *buf, size_t size, mpcc_precision mode,
                                         mpcc_prec_report **out, mpcc_diag *d);

/* Elements of io's dims times its dtype's size (saturating). */
uint64_t mpcc_prec_io_nbytes(const mpcc_prec_io *io);
/* Index of a record whose id another record has too; -1 when the ids are
 * unique, -2 when out of memory. */
int mpcc_prec_report_duplicate_id(const mpcc_prec_report *r);
void mpcc_prec_report_totals(const mpcc_prec_report *r, mpcc_prec_totals *t);
/* "fp32", "fp16", "bf16", "auto". */
const char *mpcc_precision_mode_name(mpcc_precision p);

/* Formatters: malloc'd NUL-terminated text, NULL when out of memory.
 * text: an aligned table, totals and notes (docs/precision-report.md);
 * json: docs/precision-json.md; html: one self-contained page. */
char *mpcc_prec_report_text(const mpcc_prec_report *r);
char *mpcc_prec_report_json(const mpcc_prec_report *r);
char *mpcc_prec_report_html(const mpcc_prec_report *r);

/*
 * The chain of evidence for the records whose name or id is `node`, and the
 * kernels computing them. MPCC_ERR_INVALID when none matches: the message
 * names the node and suggests the closest names. *out is malloc'd.
 */
mpcc_status mpcc_prec_report_explain(const mpcc_prec_report *r, const char *node, char **out,
                                     mpcc_diag *d);

/* ---------------------------------------------------------------- text building */

/* A growing malloc'd string shared by the formatters; a failed allocation
 * sticks and mpcc_strbuf_finish then returns NULL. */
typedef struct mpcc_strbuf {
	char *p;
	size_t len, cap;
	bool failed;
} mpcc_strbuf;

void mpcc_strbuf_printf(mpcc_strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void mpcc_strbuf_putn(mpcc_strbuf *b, const char *s, size_t n);
void mpcc_strbuf_puts(mpcc_strbuf *b, const char *s);
/* The text (caller frees), or NULL after a failure (the buffer is freed). */
char *mpcc_strbuf_finish(mpcc_strbuf *b);

#endif
