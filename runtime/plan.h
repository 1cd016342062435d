/*
 * plan.h - the in-memory plan and its file format.
 *
 * A plan is what the compiler hands the runtime: a tensor table (every tensor
 * a kernel touches), the weights in their storage dtype, the kernels in kernel
 * IR, and the schedule (kernels in execution order). Kernel buffers of kind
 * PARAM name tensors by index into the table.
 *
 * File format (docs/plan-format.md): little-endian; a 64-byte header with
 * magic "MPCCPLAN", format version, section count and a 64-bit FNV-1a
 * checksum of everything after the header; then sections (tag, offset,
 * size). Weights are 64-byte aligned. Loading checks magic, version, bounds,
 * the checksum and every kernel (kir_validate), and refuses a damaged file
 * with a message naming what is wrong. A training step plan also carries
 * its state pairs and roles (section TRAN, runtime/plan_train.c) and the
 * ONNX model it was compiled from (section ONNX, runtime/plan_source.c).
 * A plan compiled where NVRTC is available carries its kernels' CUDA source
 * and GPU binaries (section CUDA, runtime/plan_cuda.c).
 */
#ifndef MPCC_PLAN_H
#define MPCC_PLAN_H

#include "codegen/kir.h"
#include "ir/ir.h"
#include "passes/precision_report.h"

#define MPCC_PLAN_VERSION 1

enum {
	MPCC_TENSOR_INPUT = 1 << 0,
	MPCC_TENSOR_OUTPUT = 1 << 1,
	MPCC_TENSOR_WEIGHT = 1 << 2, /* data stored in the plan */
};

typedef struct mpcc_plan_tensor {
	mpcc_tensor t;    /* name, dtype, shape; t.data points into weights for WEIGHT */
	uint32_t flags;   /* MPCC_TENSOR_* */
	uint64_t offset;  /* WEIGHT: offset in the weights blob */
} mpcc_plan_tensor;

/* One piece of training state (section TRAN): the plan input a step reads,
 * the plan output that is its next value, and its first value. */
typedef struct mpcc_plan_state {
	int32_t in;          /* position in inputs[] */
	int32_t out;         /* position in outputs[]; same dtype and shape */
	const uint8_t *init; /* the input's nbytes, in its dtype (arena) */
} mpcc_plan_state;

/* A training step plan's state and roles (optional section TRAN; see
 * ir.h's mpcc_train_info, of which this is the plan's copy by position). */
typedef struct mpcc_plan_train {
	int n_state;
	mpcc_plan_state *state; /* arena */
	int32_t label;      /* input position, or -1 */
	int32_t loss;       /* output position: one float element */
	int32_t logits;     /* output position, or -1 */
	int32_t loss_scale; /* output position (one float element), or -1 */
	int32_t ok;         /* output position (one bool), or -1 */
	int32_t apply;      /* input position (one bool), or -1 */
	const char *recipe; /* one line, may be empty (arena) */
} mpcc_plan_train;

/* Kinds of GPU image in section CUDA. */
typedef enum mpcc_cuda_image_kind {
	MPCC_CUDA_IMAGE_CUBIN = 1, /* machine code for one architecture, sm_XY */
	MPCC_CUDA_IMAGE_PTX = 2,   /* virtual ISA compute_XY, JIT-compiled at load */
} mpcc_cuda_image_kind;

/* One GPU binary of the plan's kernels (section CUDA). */
typedef struct mpcc_plan_cuda_image {
	mpcc_cuda_image_kind kind;
	int arch;          /* 90: sm_90 (cubin) or compute_90 (PTX) */
	int nvrtc_version; /* the NVRTC that made it: major * 1000 + minor * 10 */
	uint8_t *data;     /* size bytes and a NUL after them (malloc'd) */
	size_t size;
} mpcc_plan_cuda_image;

/* The plan's kernels as CUDA (optional section CUDA): the translation unit
 * mpcc_cuda_emit prints for them, and the images NVRTC made of it. */
typedef struct mpcc_plan_cuda {
	char *source; /* NUL-terminated (malloc'd) */
	int n_images;
	mpcc_plan_cuda_image *images; /* malloc'd */
} mpcc_plan_cuda;

/* The ONNX model a training step plan was compiled from (optional section
 * ONNX), which mpcc_trainer_export writes the trained weights into. */
typedef struct mpcc_plan_source {
	int n_weights;
	int32_t *weights;   /* TRAN state indices of the trained initializers,
	                     * increasing (arena) */
	uint8_t *model;     /* the ModelProto's bytes as compiled (malloc'd) */
	size_t model_size;
} mpcc_plan_source;

struct mpcc_plan {
	mpcc_arena arena;         /* names and small arrays */
	int n_tensors;
	mpcc_plan_tensor *tensors;
	int n_inputs, n_outputs;
	int32_t *inputs;          /* tensor indices, in graph order */
	int32_t *outputs;
	mpcc_tensor *input_desc;  /* views for mpcc_plan_input() */
	mpcc_tensor *output_desc;
	int n_kernels;
	kir_kernel **kernels;     /* schedule order */
	/* Per kernel, the ONNX node names it covers joined by ", " (optional
	 * section KNOD; NULL when the plan has none). Arena-allocated. */
	char **kernel_nodes;
	uint8_t *weights;         /* 64-byte aligned blob */
	size_t weights_size;
	mpcc_precision precision;
	/* Per-node precision decisions (optional section PRND; NULL when the
	 * plan has none, e.g. one written before the section existed). */
	mpcc_prec_report *prec_report;
	/* State pairs and roles of a training step plan (optional section
	 * TRAN; NULL for an inference plan). Arena-allocated. */
	mpcc_plan_train *train;
	/* The source model of a training step plan (optional section ONNX;
	 * NULL for inference plans and training plans written before it). */
	mpcc_plan_source *source;
	/* CUDA source and GPU images (optional section CUDA; NULL when the
	 * plan was compiled without NVRTC or with --cuda-archs none). */
	mpcc_plan_cuda *cuda;
};

/* Builds a plan from a lowered graph; takes the kernels out of lx. */
mpcc_status mpcc_plan_build(const mpcc_graph *g, mpcc_lower *lx, mpcc_precision precision,
                            mpcc_plan **out, mpcc_diag *d);
/* Little-endian integers appended to a plan section being written. */
void mpcc_plan_put_u32(kir_writer *w, uint32_t v);
void mpcc_plan_put_u64(kir_writer *w, uint64_t v);
/* A bounds-checked little-endian cursor over a plan's bytes, shared by the
 * readers of its sections (plan.c, plan_train.c, plan_source.c). Reading
 * past the end returns 0 / NULL, sets short_read and stays at the end. */
typedef struct mpcc_plan_reader {
	const uint8_t *p;
	size_t size, pos;
	bool short_read;
} mpcc_plan_reader;

uint32_t mpcc_plan_get_u32(mpcc_plan_reader *r);
uint64_t mpcc_plan_get_u64(mpcc_plan_reader *r);
const uint8_t *mpcc_plan_get_bytes(mpcc_plan_reader *r, size_t n);
/* MPCC_ERR_INVALID with "damaged plan: section 'SECTION': <message>"
 * (section NULL: "damaged plan: <message>"). */
mpcc_status mpcc_plan_damaged(mpcc_diag *d, const char *section, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

mpcc_status mpcc_plan_serialize(const mpcc_plan *p, void **out, size_t *out_size, mpcc_diag *d);
mpcc_status mpcc_plan_deserialize(const void *buf, size_t size, mpcc_plan **out, mpcc_diag *d);
void mpcc_plan_free(mpcc_plan *p);

/* FNV-1a 64 (docs/plan-format.md), also the checksum of trainer checkpoints. */
uint64_t mpcc_fnv1a64(const uint8_t *p, size_t n);

/* Section TRAN (runtime/plan_train.c). build: p's tensors and I/O lists are
 * final; copies g->train by position. write: appends the section's bytes.
 * read: parses and checks it against p's tensor table and I/O lists. */
mpcc_status mpcc_plan_train_build(mpcc_plan *p, const mpcc_graph *g, mpcc_diag *d);
void mpcc_plan_train_write(kir_writer *w, const mpcc_plan *p);
mpcc_status mpcc_plan_train_read(mpcc_plan *p, const uint8_t *b, size_t size, mpcc_diag *d);

/* Section ONNX (runtime/plan_source.c). build: p->train is final; copies
 * the model's size bytes and records which states are trained initializers
 * (their input value came from one in g). write: appends the section's
 * bytes. read: parses and checks it against p->train (read after TRAN). */
mpcc_status mpcc_plan_source_build(mpcc_plan *p, const mpcc_graph *g, const void *model,
                                   size_t size, mpcc_diag *d);
void mpcc_plan_source_write(kir_writer *w, const mpcc_plan *p);
mpcc_status mpcc_plan_source_read(mpcc_plan *p, const uint8_t *b, size_t size, mpcc_diag *d);

/* Section CUDA (runtime/plan_cuda.c). write: appends the section's bytes.
 * read: parses and checks it (source and images; whether the source still
 * matches the kernels is the cuda backend's check). free: NULL is fine. */
void mpcc_plan_cuda_write(kir_writer *w, const mpcc_plan *p);
mpcc_status mpcc_plan_cuda_read(mpcc_plan *p, const uint8_t *b, size_t size, mpcc_diag *d);
void mpcc_plan_cuda_free(mpcc_plan_cuda *c);

/* What section CUDA should hold, from a --cuda-archs value: "default"
 * (cubins for sm_80 and sm_90, PTX for compute_90), "none", or a comma
 * list of "80" or "sm_80" (a cubin) and "compute_90" (PTX), at most
 * MPCC_CUDA_MAX_TARGETS, no repeats. NULL means none. *out_n is 0 for
 * none. Errors: MPCC_ERR_INVALID naming the item. */
#define MPCC_CUDA_MAX_TARGETS 8
typedef struct mpcc_cuda_target {
	mpcc_cuda_image_kind kind;
	int arch;
} mpcc_cuda_target;
mpcc_status mpcc_cuda_targets_parse(const char *spec, mpcc_cuda_target *out, int *out_n,
                                    mpcc_diag *d);

/*
 * Compiles p's kernels for the targets spec names (as above) and stores the
 * source and images in p->cuda, replacing any. Needs NVRTC: a build
 * without the CUDA toolkit leaves p alone for NULL, "none" and "default",
 * and refuses any other spec with MPCC_ERR_UNSUPPORTED. "default" is best
 * effort: architectures this NVRTC does not know are left out, and when
 * the emitter or NVRTC fails p is left without the section (only
 * MPCC_ERR_NOMEM is returned). For a list, errors are those of
 * mpcc_cuda_emit and mpcc_nvrtc_compile (codegen/cuda/), naming the target.
 */
mpcc_status mpcc_plan_cuda_build(mpcc_plan *p, const char *spec, mpcc_diag *d);

/*
 * The cuda backend's launches for p, one line each: "kernel K stage S:
 * <path>; grid G x B threads" (S a range for a row kernel), malloc'd into
 * *out. MPCC_ERR_UNSUPPORTED in a build without the CUDA toolkit.
 */
mpcc_status mpcc_plan_cuda_describe(const mpcc_plan *p, char **out, mpcc_diag *d);

/*
 * Whether an image runs on a device of compute capability device_arch
 * (major * 10 + minor): a cubin for sm_XY on the same major with minor
 * >= Y (sm_80 on 8.0, 8.6, 8.9; sm_90 on 9.0 only), PTX for compute_XY on
 * any device >= XY (the driver JIT-compiles it).
 */
bool mpcc_cuda_image_runs_on(mpcc_cuda_image_kind kind, int arch, int device_arch);
/*
 * The images of c that run on device_arch, best first, as indices into
 * c->images (at most max): the cubin for exactly that architecture, then
 * compatible cubins from the highest minor down, then PTX from the highest
 * virtual architecture down. Returns the count (0 when c is NULL).
 */
int mpcc_plan_cuda_candidates(const mpcc_plan_cuda *c, int device_arch, int *out, int max);
/* "cubin sm_90" / "PTX compute_90" into buf. */
const char *mpcc_cuda_image_name(char *buf, size_t n, mpcc_cuda_image_kind kind, int arch);

#endif
