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
 * with a message naming what is wrong.
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
};

/* Builds a plan from a lowered graph; takes the kernels out of lx. */
mpcc_status mpcc_plan_build(const mpcc_graph *g, mpcc_lower *lx, mpcc_precision precision,
                            mpcc_plan **out, mpcc_diag *d);
mpcc_status mpcc_plan_serialize(const mpcc_plan *p, void **out, size_t *out_size, mpcc_diag *d);
mpcc_status mpcc_plan_deserialize(const void *buf, size_t size, mpcc_plan **out, mpcc_diag *d);
void mpcc_plan_free(mpcc_plan *p);

#endif
