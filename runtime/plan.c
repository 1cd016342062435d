/*
 * plan.c - building a plan from a lowered graph, and the plan file format.
 *
 * Building compacts the graph values that kernels, inputs and outputs refer
 * to into a tensor table, copies constant values into one 64-byte aligned
 * weights blob and takes the kernels over from the lowering. The file format
 * (docs/plan-format.md) is a 64-byte header, a section table, five
 * required sections and five optional ones (KNOD, PRND, TRAN, ONNX and
 * CUDA; the last three's layouts are owned by runtime/plan_train.c,
 * runtime/plan_source.c and runtime/plan_cuda.c); the loader reads it
 * with a bounds-checked cursor and validates every field before anything
 * uses it, so a damaged file is refused with a message naming the section
 * and field instead of crashing.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/lower.h"
#include "runtime/plan.h"

#define HEADER_SIZE 64
#define SECTION_ENTRY 24
#define WEIGHT_ALIGN 64

/* Section tags, four ASCII characters read as a little-endian u32. */
#define TAG(a, b, c, d) ((uint32_t)(a) | (uint32_t)(b) << 8 | (uint32_t)(c) << 16 | (uint32_t)(d) << 24)
#define TAG_TENSORS TAG('T', 'E', 'N', 'S')
#define TAG_WEIGHTS TAG('W', 'G', 'H', 'T')
#define TAG_KERNELS TAG('K', 'E', 'R', 'N')
#define TAG_IO TAG('I', 'O', 'U', 'T')
#define TAG_PRECISION TAG('P', 'R', 'E', 'C')
#define TAG_KNODES TAG('K', 'N', 'O', 'D') /* optional: nodes each kernel covers */
#define TAG_PRND TAG('P', 'R', 'N', 'D')   /* optional: precision report records */
#define TAG_TRAN TAG('T', 'R', 'A', 'N')   /* optional: training state and roles */
#define TAG_ONNX TAG('O', 'N', 'N', 'X')   /* optional: a training plan's source model */
#define TAG_CUDA TAG('C', 'U', 'D', 'A')   /* optional: CUDA source and GPU images */
#define N_SECTIONS 5 /* required sections */
#define N_WRITTEN 10 /* known: the required ones, KNOD, PRND, TRAN, ONNX and CUDA */

static const char plan_magic[8] = {'M', 'P', 'C', 'C', 'P', 'L', 'A', 'N'};

static size_t
align_up(size_t n, size_t a)
{
	return (n + a - 1) / a * a;
}

uint64_t
mpcc_fnv1a64(const uint8_t *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

static mpcc_plan *
plan_alloc(void)
{
	mpcc_plan *p = calloc(1, sizeof(*p));

	if (p)
		mpcc_arena_init(&p->arena);
	return p;
}

void
mpcc_plan_free(mpcc_plan *p)
{
	if (!p)
		return;
	for (int i = 0; i < p->n_kernels; i++)
		kir_kernel_destroy(p->kernels[i]);
	free(p->kernels);
	free(p->weights);
	if (p->source)
		free(p->source->model);
	mpcc_plan_cuda_free(p->cuda);
	mpcc_prec_report_destroy(p->prec_report);
	mpcc_arena_fini(&p->arena);
	free(p);
}

/* Weights blob of at least one aligned block, so p->weights is never NULL. */
static uint8_t *
weights_alloc(size_t size)
{
	size_t n = align_up(size ? size : 1, WEIGHT_ALIGN);
	uint8_t *w = aligned_alloc(WEIGHT_ALIGN, n);

	if (w)
		memset(w, 0, n);
	return w;
}

/* The descriptions handed out by mpcc_plan_input/output and the weight data
 * pointers; called once the table, the weights and the I/O lists are final. */
static mpcc_status
plan_finish(mpcc_plan *p, mpcc_diag *d)
{
	p->input_desc = mpcc_arena_alloc(&p->arena, sizeof(mpcc_tensor) * (size_t)(p->n_inputs + 1));
	p->output_desc =
		mpcc_arena_alloc(&p->arena, sizeof(mpcc_tensor) * (size_t)(p->n_outputs + 1));
	if (!p->input_desc || !p->output_desc)
		return mpcc_diag_error(d, MPCC_ERR_NOMEM, "out of memory building the plan");
	for (int i = 0; i < p->n_tensors; i++) {
		mpcc_plan_tensor *t = &p->tensors[i];
		t->t.data = (t->flags & MPCC_TENSOR_WEIGHT) ? p->weights + t->offset : NULL;
	}
	for (int i = 0; i < p->n_inputs; i++) {
		p->input_desc[i] = p->tensors[p->inputs[i]].t;
		p->input_desc[i].data = NULL;
	}
	for (int i = 0; i < p->n_outputs; i++) {
		p->output_desc[i] = p->tensors[p->outputs[i]].t;
		p->output_desc[i].data = NULL;
	}
	return MPCC_OK;
}

/* ---------------------------------------------------------------- building */

/* Element count of a shape, or -1 on overflow or a negative dim. */
static int64_t
shape_numel(int rank, const int64_t *dims)
{
	int64_t n = 1;

	for (int i = 0; i < rank; i++) {
		if (dims[i] < 0 || __builtin_mul_overflow(n, dims[i], &n))
			return -1;
	}
	return n;
}

static mpcc_dtype
value_dtype(const mpcc_value *v)
{
	return v->storage != MPCC_DTYPE_UNDEF ? v->storage : v->dtype;
}

/* Gives value v a tensor slot (first sight wins, so inputs come first, then
 * values in kernel order, then outputs). Returns the index or -1 on error. */
static int32_t
add_tensor(mpcc_plan *p, const mpcc_graph *g, int32_t *map, int32_t v, mpcc_diag *d)
{
	const mpcc_value *val;
	mpcc_plan_tensor *t;

	if (v < 0 || v >= g->n_values) {
		mpcc_diag_error(d, MPCC_ERR_INTERNAL, "plan: value index %d out of range", (int)v);
		return -1;
	}
	if (map[v] >= 0)
		return map[v];
	val = &g->values[v];
	if (val->rank < 0 || val->rank > MPCC_MAX_RANK || value_dtype(val) == MPCC_DTYPE_UNDEF) {
		mpcc_diag_error(d, MPCC_ERR_INTERNAL, "plan: value '%s' has no inferred type",
		                val->name ? val->name : "?");
		return -1;
	}
	for (int i = 0; i < val->rank; i++) {
		if (val->dims[i] < 0) {
			mpcc_diag_error(d, MPCC_ERR_UNSUPPORTED,
			                "value '%s' has symbolic dim '%s'; bind it with --shape",
			                val->name ? val->name : "?", val->sym[i] ? val->sym[i] : "?");
			return -1;
		}
	}
	t = &p->tensors[p->n_tensors];
	t->t.name = mpcc_arena_strdup(&p->arena, val->name ? val->name : "");
	if (!t->t.name) {
		mpcc_diag_error(d, MPCC_ERR_NOMEM, "out of memory building the plan");
		return -1;
	}
	t->t.dtype = value_dtype(val);
	t->t.rank = val->rank;
	memcpy(t->t.dims, val->dims, sizeof(int64_t) * (size_t)val->rank);
	int64_t numel = shape_numel(val->rank, val->dims);
	if (numel < 0) {
		mpcc_diag_error(d, MPCC_ERR_UNSUPPORTED, "value '%s' is too large", t->t.name);
		return -1;
	}
	t->t.nbytes = (size_t)numel * mpcc_dtype_size(t->t.dtype);
	if (val->flags & MPCC_VALUE_CONST) {
		if (val->nbytes != t->t.nbytes || (t->t.nbytes && !val->data)) {
			mpcc_diag_error(d, MPCC_ERR_INTERNAL,
			                "plan: constant '%s' holds %zu bytes, %zu expected", t->t.name,
			                val->nbytes, t->t.nbytes);
			return -1;
		}
		t->flags |= MPCC_TENSOR_WEIGHT;
	}
	map[v] = p->n_tensors++;
	return map[v];
}

/* Per-kernel node names for `mpcc inspect`: the kernel's cover list (set by
 * fusion) or its single node. */
static mpcc_status
kernel_nodes_build(mpcc_plan *p, const mpcc_graph *g)
{
	p->kernel_nodes = mpcc_arena_alloc(&p->arena, sizeof(char *) * (size_t)(p->n_kernels + 1));
	if (!p->kernel_nodes)
		return MPCC_ERR_NOMEM;
	for (int k = 0; k < p->n_kernels; k++) {
		const kir_kernel *kk = p->kernels[k];
		int n = kk->cover ? kk->n_cover : (kk->node != MPCC_NONE ? 1 : 0);
		size_t len = 1;
		for (int i = 0; i < n; i++) {
			int32_t nd = kk->cover ? kk->cover[i] : kk->node;
			if (nd >= 0 && nd < g->n_nodes && g->nodes[nd].name)
				len += strlen(g->nodes[nd].name) + 2;
		}
		char *s = mpcc_arena_alloc(&p->arena, len);
		if (!s)
			return MPCC_ERR_NOMEM;
		s[0] = 0;
		for (int i = 0; i < n; i++) {
			int32_t nd = kk->cover ? kk->cover[i] : kk->node;
			if (nd < 0 || nd >= g->n_nodes || !g->nodes[nd].name)
				continue;
			if (s[0])
				strcat(s, ", ");
			strcat(s, g->nodes[nd].name);
		}
		p->kernel_nodes[k] = s;
	}
	return MPCC_OK;
}

/*
 * The precision report (section PRND) names, per node, the kernels that
 * compute it: the inverse of each kernel's cover list, joined by ", ".
 * Built in malloc'd strings, freed once the report has copied them.
 */
static mpcc_status
prec_report_build(mpcc_plan *p, const mpcc_graph *g, mpcc_diag *d)
{
	size_t *len = calloc((size_t)g->n_nodes + 1, sizeof(size_t));
	char **names = calloc((size_t)g->n_nodes + 1, sizeof(char *));
	mpcc_status st = MPCC_ERR_NOMEM;

	if (!len || !names)
		goto out;
	for (int pass = 0; pass < 2; pass++) {
		for (int k = 0; k < p->n_kernels; k++) {
			const kir_kernel *kk = p->kernels[k];
			int n = kk->cover ? kk->n_cover : (kk->node != MPCC_NONE ? 1 : 0);
			for (int i = 0; i < n; i++) {
				int32_t nd = kk->cover ? kk->cover[i] : kk->node;
				if (nd < 0 || nd >= g->n_nodes)
					continue;
				if (pass == 0) {
					len[nd] += strlen(kk->name) + 2;
					continue;
				}
				if (names[nd][0])
					strcat(names[nd], ", ");
				strcat(names[nd], kk->name);
			}
		}
		for (int nd = 0; pass == 0 && nd < g->n_nodes; nd++)
			if (len[nd] && !(names[nd] = calloc(len[nd] + 1, 1)))
				goto out;
	}
	st = mpcc_prec_report_build(g, p->precision, (const char *const *)names, &p->prec_report,
	                            d);
out:
	for (int nd = 0; names && nd < g->n_nodes; nd++)
		free(names[nd]);
	free(names);
	free(len);
	if (st == MPCC_ERR_NOMEM && d->status == MPCC_OK)
		mpcc_diag_error(d, st, "out of memory building the precision report");
	return st;
}

/*
 * Why two passes over the weights: the blob is one aligned allocation, so
 * its size (every weight rounded up to 64 bytes) is known before copying.
 * The kernels are moved, not copied: their PARAM buffers are rewritten from
 * graph value indices to tensor indices, which only makes sense in the plan.
 */
mpcc_status
mpcc_plan_build(const mpcc_graph *g, mpcc_lower *lx, mpcc_precision precision, mpcc_plan **out,
                mpcc_diag *d)
{
	mpcc_plan *p;
	int32_t *map = NULL;
	bool *written = NULL;
	int max_tensors;

	*out = NULL;
	p = plan_alloc();
	if (!p)
		return mpcc_diag_error(d, MPCC_ERR_NOMEM, "out of memory building the plan");
	p->precision = precision;
	map = malloc(sizeof(int32_t) * (size_t)(g->n_values + 1));
	max_tensors = g->n_values + 1;
	p->tensors = mpcc_arena_alloc(&p->arena, sizeof(mpcc_plan_tensor) * (size_t)max_tensors);
	p->inputs = mpcc_arena_alloc(&p->arena, sizeof(int32_t) * (size_t)(g->n_inputs + 1));
	p->outputs = mpcc_arena_alloc(&p->arena, sizeof(int32_t) * (size_t)(g->n_outputs + 1));
	p->kernels = calloc((size_t)lx->n_kernels + 1, sizeof(kir_kernel *));
	if (!map || !p->tensors || !p->inputs || !p->outputs || !p->kernels) {
		mpcc_diag_error(d, MPCC_ERR_NOMEM, "out of memory building the plan");
		goto fail;
	}
	for (int i = 0; i < g->n_values; i++)
		map[i] = -1;

	for (int i = 0; i < g->n_inputs; i++) {
		int32_t t = add_tensor(p, g, map, g->inputs[i], d);
		if (t < 0)
			goto fail;
		p->tensors[t].flags |= MPCC_TENSOR_INPUT;
		p->inputs[p->n_inputs++] = t;
	}
	for (int k = 0; k < lx->n_kernels; k++) {
		kir_kernel *kk = lx->kernels[k];
		for (int b = 0; b < kk->n_bufs; b++) {
			kir_buf *buf = &kk->bufs[b];
			if (buf->kind != KIR_BUF_PARAM)
				continue;
			int32_t t = add_tensor(p, g, map, buf->value, d);
			if (t < 0)
				goto fail;
			if (p->tensors[t].t.dtype != buf->dtype ||
			    (size_t)buf->n_elems * mpcc_dtype_size(buf->dtype) != p->tensors[t].t.nbytes) {
				mpcc_diag_error(d, MPCC_ERR_INTERNAL,
				                "plan: kernel '%s' buffer %d disagrees with value '%s'",
				                kk->name, b, p->tensors[t].t.name);
				goto fail;
			}
		}
	}
	for (int i = 0; i < g->n_outputs; i++) {
		int32_t t = add_tensor(p, g, map, g->outputs[i], d);
		if (t < 0)
			goto fail;
		p->tensors[t].flags |= MPCC_TENSOR_OUTPUT;
		p->outputs[p->n_outputs++] = t;
	}

	/* Every output must be an input, a weight or written by some kernel. */
	written = calloc((size_t)p->n_tensors + 1, sizeof(bool));
	if (!written) {
		mpcc_diag_error(d, MPCC_ERR_NOMEM, "out of memory building the plan");
		goto fail;
	}
	for (int k = 0; k < lx->n_kernels; k++) {
		kir_kernel *kk = lx->kernels[k];
		for (int b = 0; b < kk->n_bufs; b++)
			if (kk->bufs[b].kind == KIR_BUF_PARAM && kk->bufs[b].written)
				written[map[kk->bufs[b].value]] = true;
	}
	for (int i = 0; i < p->n_outputs; i++) {
		mpcc_plan_tensor *t = &p->tensors[p->outputs[i]];
		if (!(t->flags & (MPCC_TENSOR_INPUT | MPCC_TENSOR_WEIGHT)) && !written[p->outputs[i]]) {
			mpcc_diag_error(d, MPCC_ERR_INTERNAL, "plan: output '%s' is computed by no kernel",
			                t->t.name);
			goto fail;
		}
	}

	/* Weights: offsets first, then one blob. */
	size_t wsize = 0;
	for (int i = 0; i < p->n_tensors; i++) {
		mpcc_plan_tensor *t = &p->tensors[i];
		if (!(t->flags & MPCC_TENSOR_WEIGHT))
			continue;
		t->offset = wsize;
		wsize = align_up(wsize + t->t.nbytes, WEIGHT_ALIGN);
	}
	p->weights = weights_alloc(wsize);
	if (!p->weights) {
		mpcc_diag_error(d, MPCC_ERR_NOMEM, "out of memory for %zu bytes of weights", wsize);
		goto fail;
	}
	p->weights_size = wsize;
	for (int v = 0; v < g->n_values; v++) {
		if (map[v] < 0 || !(p->tensors[map[v]].flags & MPCC_TENSOR_WEIGHT))
			continue;
		if (g->values[v].nbytes)
			memcpy(p->weights + p->tensors[map[v]].offset, g->values[v].data,
			       g->values[v].nbytes);
	}

	/* Take the kernels over and point their buffers at tensors. */
	for (int k = 0; k < lx->n_kernels; k++) {
		kir_kernel *kk = lx->kernels[k];
		for (int b = 0; b < kk->n_bufs; b++)
			if (kk->bufs[b].kind == KIR_BUF_PARAM)
				kk->bufs[b].value = map[kk->bufs[b].value];
		p->kernels[k] = kk;
		lx->kernels[k] = NULL;
	}
	p->n_kernels = lx->n_kernels;
	lx->n_kernels = 0;
	if (kernel_nodes_build(p, g) != MPCC_OK) {
		mpcc_diag_error(d, MPCC_ERR_NOMEM, "out of memory building the plan");
		goto fail;
	}
	if (prec_report_build(p, g, d) != MPCC_OK)
		goto fail;
	if (g->train && mpcc_plan_train_build(p, g, d) != MPCC_OK)
		goto fail;

	if (plan_finish(p, d) != MPCC_OK)
		goto fail;
	free(map);
	free(written);
	*out = p;
	return MPCC_OK;
fail:
	free(map);
	free(written);
	mpcc_plan_free(p);
	return d->status != MPCC_OK ? d->status : MPCC_ERR_INTERNAL;
}

/* ---------------------------------------------------------------- writing */

void
mpcc_plan_put_u32(kir_writer *w, uint32_t v)
{
	uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
	kir_write_bytes(w, b, 4);
}

void
mpcc_plan_put_u64(kir_writer *w, uint64_t v)
{
	mpcc_plan_put_u32(w, (uint32_t)v);
	mpcc_plan_put_u32(w, (uint32_t)(v >> 32));
}

static void
write_tensors(kir_writer *w, const mpcc_plan *p)
{
	mpcc_plan_put_u32(w, (uint32_t)p->n_tensors);
	for (int i = 0; i < p->n_tensors; i++) {
		const mpcc_plan_tensor *t = &p->tensors[i];
		size_t len = strlen(t->t.name);
		mpcc_plan_put_u32(w, t->flags);
		mpcc_plan_put_u32(w, (uint32_t)t->t.dtype);
		mpcc_plan_put_u32(w, (uint32_t)t->t.rank);
		mpcc_plan_put_u32(w, (uint32_t)len);
		for (int k = 0; k < t->t.rank; k++)
			mpcc_plan_put_u64(w, (uint64_t)t->t.dims[k]);
		mpcc_plan_put_u64(w, t->offset);
		mpcc_plan_put_u64(w, t->t.nbytes);
		kir_write_bytes(w, t->t.name, len);
	}
}

static void
write_kernels(kir_writer *w, const mpcc_plan *p)
{
	mpcc_plan_put_u32(w, (uint32_t)p->n_kernels);
	for (int k = 0; k < p->n_kernels; k++) {
		kir_writer kw = {0};
		kir_serialize(&kw, p->kernels[k]);
		if (kw.failed)
			w->failed = true;
		mpcc_plan_put_u64(w, kw.size);
		kir_write_bytes(w, kw.data, kw.size);
		free(kw.data);
	}
}

static void
write_io(kir_writer *w, const mpcc_plan *p)
{
	mpcc_plan_put_u32(w, (uint32_t)p->n_inputs);
	for (int i = 0; i < p->n_inputs; i++)
		mpcc_plan_put_u32(w, (uint32_t)p->inputs[i]);
	mpcc_plan_put_u32(w, (uint32_t)p->n_outputs);
	for (int i = 0; i < p->n_outputs; i++)
		mpcc_plan_put_u32(w, (uint32_t)p->outputs[i]);
}

static void
pad_to(kir_writer *w, size_t a)
{
	static const uint8_t zeros[64];
	size_t n = align_up(w->size, a) - w->size;

	kir_write_bytes(w, zeros, n);
}

/* Section KNOD: u32 kernel count, then per kernel u32 length and the bytes
 * of its ", "-joined node names. */
static void
write_knodes(kir_writer *w, const mpcc_plan *p)
{
	mpcc_plan_put_u32(w, (uint32_t)p->n_kernels);
	for (int k = 0; k < p->n_kernels; k++) {
		const char *s = p->kernel_nodes ? p->kernel_nodes[k] : "";
		mpcc_plan_put_u32(w, (uint32_t)strlen(s));
		kir_write_bytes(w, s, strlen(s));
	}
}

/* Section PRND: the precision report's records (passes/precision_report.c
 * writes and reads the layout). */
static void
write_prnd(kir_writer *w, const mpcc_plan *p)
{
	void *data;
	size_t size;

	if (mpcc_prec_report_serialize(p->prec_report, &data, &size) != MPCC_OK) {
		w->failed = true;
		return;
	}
	kir_write_bytes(w, data, size);
	free(data);
}

/*
 * Sections are built in separate buffers first so that the section table,
 * which precedes them, can be written with final offsets; the weights come
 * last, at a 64-byte aligned file offset, so a loader could map them.
 * PRND is written when the plan has a precision report, TRAN when it is a
 * training step plan, ONNX when it also carries its source model, CUDA
 * when it was compiled with GPU images.
 */
mpcc_status
mpcc_plan_serialize(const mpcc_plan *p, void **out, size_t *out_size, mpcc_diag *d)
{
	kir_writer sec[N_WRITTEN] = {{0}};
	uint32_t tags[N_WRITTEN];
	kir_writer w = {0};
	uint64_t off[N_WRITTEN];
	bool failed = false;
	int ns = 0;

	*out = NULL;
	*out_size = 0;
	tags[ns] = TAG_TENSORS;
	write_tensors(&sec[ns++], p);
	tags[ns] = TAG_IO;
	write_io(&sec[ns++], p);
	tags[ns] = TAG_PRECISION;
	mpcc_plan_put_u32(&sec[ns++], (uint32_t)p->precision);
	tags[ns] = TAG_KERNELS;
	write_kernels(&sec[ns++], p);
	tags[ns] = TAG_KNODES;
	write_knodes(&sec[ns++], p);
	if (p->prec_report) {
		tags[ns] = TAG_PRND;
		write_prnd(&sec[ns++], p);
	}
	if (p->train) {
		tags[ns] = TAG_TRAN;
		mpcc_plan_train_write(&sec[ns++], p);
	}
	if (p->source) {
		tags[ns] = TAG_ONNX;
		mpcc_plan_source_write(&sec[ns++], p);
	}
	if (p->cuda) {
		tags[ns] = TAG_CUDA;
		mpcc_plan_cuda_write(&sec[ns++], p);
	}
	tags[ns] = TAG_WEIGHTS;
	kir_write_bytes(&sec[ns++], p->weights, p->weights_size);

	size_t pos = align_up(HEADER_SIZE + SECTION_ENTRY * (size_t)ns, 8);
	for (int i = 0; i < ns; i++) {
		if (tags[i] == TAG_WEIGHTS)
			pos = align_up(pos, WEIGHT_ALIGN);
		off[i] = pos;
		pos = align_up(pos + sec[i].size, 8);
		failed |= sec[i].failed;
	}

	uint8_t header[HEADER_SIZE] = {0};
	kir_write_bytes(&w, header, HEADER_SIZE);
	for (int i = 0; i < ns; i++) {
		mpcc_plan_put_u32(&w, tags[i]);
		mpcc_plan_put_u32(&w, 0);
		mpcc_plan_put_u64(&w, off[i]);
		mpcc_plan_put_u64(&w, sec[i].size);
	}
	for (int i = 0; i < ns; i++) {
		pad_to(&w, tags[i] == TAG_WEIGHTS ? WEIGHT_ALIGN : 8);
		kir_write_bytes(&w, sec[i].data, sec[i].size);
		free(sec[i].data);
	}
	pad_to(&w, 8);
	if (failed || w.failed) {
		free(w.data);
		return mpcc_diag_error(d, MPCC_ERR_NOMEM, "out of memory writing the plan");
	}

	/* Header: magic, version, section count, checksum, file size. */
	kir_writer h = {0};
	kir_write_bytes(&h, plan_magic, 8);
	mpcc_plan_put_u32(&h, MPCC_PLAN_VERSION);
	mpcc_plan_put_u32(&h, (uint32_t)ns);
	mpcc_plan_put_u64(&h, mpcc_fnv1a64(w.data + HEADER_SIZE, w.size - HEADER_SIZE));
	mpcc_plan_put_u64(&h, w.size);
	if (h.failed) {
		free(h.data);
		free(w.data);
		return mpcc_diag_error(d, MPCC_ERR_NOMEM, "out of memory writing the plan");
	}
	memcpy(w.data, h.data, h.size);
	free(h.data);
	*out = w.data;
	*out_size = w.size;
	return MPCC_OK;
}

/* ---------------------------------------------------------------- reading */

uint32_t
mpcc_plan_get_u32(mpcc_plan_reader *r)
{
	const uint8_t *b;

	if (r->pos > r->size || r->size - r->pos < 4) {
		r->short_read = true;
		r->pos = r->size;
		return 0;
	}
	b = r->p + r->pos;
	r->pos += 4;
	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

uint64_t
mpcc_plan_get_u64(mpcc_plan_reader *r)
{
	uint64_t lo = mpcc_plan_get_u32(r);
	return lo | (uint64_t)mpcc_plan_get_u32(r) << 32;
}

const uint8_t *
mpcc_plan_get_bytes(mpcc_plan_reader *r, size_t n)
{
	const uint8_t *b;

	if (r->pos > r->size || r->size - r->pos < n) {
		r->short_read = true;
		r->pos = r->size;
		return NULL;
	}
	b = r->p + r->pos;
	r->pos += n;
	return b;
}

mpcc_status
mpcc_plan_damaged(mpcc_diag *d, const char *section, const char *fmt, ...)
{
	char msg[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (section)
		return mpcc_diag_error(d, MPCC_ERR_INVALID, "damaged plan: section '%s': %s",
		                       section, msg);
	return mpcc_diag_error(d, MPCC_ERR_INVALID, "damaged plan: %s", msg);
}

static mpcc_status
read_tensors(mpcc_plan *p, mpcc_plan_reader *r, size_t weights_size, mpcc_diag *d)
{
	uint32_t n = mpcc_plan_get_u32(r);

	if (r->short_read)
		return mpcc_plan_damaged(d, NULL, "section 'TENS': truncated tensor count");
	/* Each tensor takes at least 32 bytes, which bounds n by the section. */
	if (n > (r->size - r->pos) / 32)
		return mpcc_plan_damaged(d, NULL,
		                         "section 'TENS': tensor count %u exceeds the section", n);
	p->tensors = mpcc_arena_alloc(&p->arena, sizeof(mpcc_plan_tensor) * ((size_t)n + 1));
	if (!p->tensors)
		return mpcc_diag_error(d, MPCC_ERR_NOMEM, "out of memory loading the plan");
	for (uint32_t i = 0; i < n; i++) {
		mpcc_plan_tensor *t = &p->tensors[i];
		uint32_t flags = mpcc_plan_get_u32(r), dtype = mpcc_plan_get_u32(r),
		         rank = mpcc_plan_get_u32(r), len = mpcc_plan_get_u32(r);
		if (r->short_read)
			return mpcc_plan_damaged(d, NULL, "section 'TENS': tensor %u truncated", i);
		if (flags & ~(uint32_t)(MPCC_TENSOR_INPUT | MPCC_TENSOR_OUTPUT | MPCC_TENSOR_WEIGHT))
			return mpcc_plan_damaged(
			    d, NULL, "section 'TENS': tensor %u: unknown flags 0x%x", i, flags);
		if ((flags & MPCC_TENSOR_INPUT) && (flags & MPCC_TENSOR_WEIGHT))
			return mpcc_plan_damaged(
			    d, NULL, "section 'TENS': tensor %u: an input cannot be a weight", i);
		if (dtype == MPCC_DTYPE_UNDEF || dtype >= MPCC_DTYPE_COUNT)
			return mpcc_plan_damaged(
			    d, NULL, "section 'TENS': tensor %u: invalid dtype %u", i, dtype);
		if (rank > MPCC_MAX_RANK)
			return mpcc_plan_damaged(d, NULL,
			                         "section 'TENS': tensor %u: rank %u exceeds %d", i,
			                         rank, MPCC_MAX_RANK);
		t->flags = flags;
		t->t.dtype = (mpcc_dtype)dtype;
		t->t.rank = (int)rank;
		for (uint32_t k = 0; k < rank; k++)
			t->t.dims[k] = (int64_t)mpcc_plan_get_u64(r);
		t->offset = mpcc_plan_get_u64(r);
		uint64_t nbytes = mpcc_plan_get_u64(r);
		const uint8_t *name = mpcc_plan_get_bytes(r, len);
		if (r->short_read)
			return mpcc_plan_damaged(d, NULL, "section 'TENS': tensor %u truncated", i);
		for (uint32_t k = 0; k < rank; k++)
			if (t->t.dims[k] < 0)
				return mpcc_plan_damaged(
				    d, NULL, "section 'TENS': tensor %u: negative dim %u", i, k);
		int64_t numel = shape_numel((int)rank, t->t.dims);
		uint64_t expect;
		if (numel < 0 || __builtin_mul_overflow((uint64_t)numel,
		                                        (uint64_t)mpcc_dtype_size(t->t.dtype), &expect))
			return mpcc_plan_damaged(d, NULL,
			                         "section 'TENS': tensor %u: shape too large", i);
		if (nbytes != expect)
			return mpcc_plan_damaged(
			    d, NULL, "section 'TENS': tensor %u: nbytes %llu, shape gives %llu", i,
			    (unsigned long long)nbytes, (unsigned long long)expect);
		t->t.nbytes = (size_t)nbytes;
		if (flags & MPCC_TENSOR_WEIGHT) {
			if (t->offset % WEIGHT_ALIGN || t->offset > weights_size ||
			    nbytes > weights_size - t->offset)
				return mpcc_plan_damaged(
				    d, NULL,
				    "section 'TENS': tensor %u: weight at %llu+%llu outside the "
				    "%zu-byte blob",
				    i, (unsigned long long)t->offset, (unsigned long long)nbytes,
				    weights_size);
		} else if (t->offset != 0) {
			return mpcc_plan_damaged(
			    d, NULL, "section 'TENS': tensor %u: offset set on a non-weight", i);
		}
		char *s = mpcc_arena_alloc(&p->arena, (size_t)len + 1);
		if (!s)
			return mpcc_diag_error(d, MPCC_ERR_NOMEM, "out of memory loading the plan");
		memcpy(s, name, len);
		if (strlen(s) != len)
			return mpcc_plan_damaged(
			    d, NULL, "section 'TENS': tensor %u: name holds a NUL byte", i);
		t->t.name = s;
	}
	p->n_tensors = (int)n;
	if (r->pos != r->size)
		return mpcc_plan_damaged(d, NULL, "section 'TENS': %zu trailing bytes",
		                         r->size - r->pos);
	return MPCC_OK;
}

/* One list of tensor indices, each of which must carry flag. Returns
 * INVALID or NOMEM without a message; read_io words it. */
static mpcc_status
read_index_list(mpcc_plan *p, mpcc_plan_reader *r, uint32_t flag, int *out_n, int32_t **out)
{
	uint32_t n = mpcc_plan_get_u32(r);

	if (r->short_read || n > (r->size - r->pos) / 4)
		return MPCC_ERR_INVALID;
	*out = mpcc_arena_alloc(&p->arena, sizeof(int32_t) * ((size_t)n + 1));
	if (!*out)
		return MPCC_ERR_NOMEM;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t t = mpcc_plan_get_u32(r);
		if (t >= (uint32_t)p->n_tensors || !(p->tensors[t].flags & flag))
			return MPCC_ERR_INVALID;
		(*out)[i] = (int32_t)t;
	}
	*out_n = (int)n;
	return MPCC_OK;
}

static mpcc_status
read_io(mpcc_plan *p, mpcc_plan_reader *r, mpcc_diag *d)
{
	mpcc_status st = read_index_list(p, r, MPCC_TENSOR_INPUT, &p->n_inputs, &p->inputs);

	if (st == MPCC_ERR_NOMEM)
		return mpcc_diag_error(d, st, "out of memory loading the plan");
	if (st != MPCC_OK)
		return mpcc_plan_damaged(d, NULL, "section 'IOUT': input list invalid");
	st = read_index_list(p, r, MPCC_TENSOR_OUTPUT, &p->n_outputs, &p->outputs);
	if (st == MPCC_ERR_NOMEM)
		return mpcc_diag_error(d, st, "out of memory loading the plan");
	if (st != MPCC_OK)
		return mpcc_plan_damaged(d, NULL, "section 'IOUT': output list invalid");
	if (r->pos != r->size)
		return mpcc_plan_damaged(d, NULL, "section 'IOUT': %zu trailing bytes",
		                         r->size - r->pos);
	/* Every tensor flagged INPUT must be listed, so none goes unbound. */
	int n_flagged = 0;
	for (int i = 0; i < p->n_tensors; i++)
		n_flagged += (p->tensors[i].flags & MPCC_TENSOR_INPUT) != 0;
	for (int i = 0; i < p->n_inputs; i++)
		for (int j = 0; j < i; j++)
			if (p->inputs[i] == p->inputs[j])
				return mpcc_plan_damaged(
				    d, NULL, "section 'IOUT': input %d listed twice", i);
	if (n_flagged != p->n_inputs)
		return mpcc_plan_damaged(d, NULL,
		                         "section 'IOUT': %d tensors flagged input, %d listed",
		                         n_flagged, p->n_inputs);
	return MPCC_OK;
}

static mpcc_status
check_kernel(const mpcc_plan *p, int k, const kir_kernel *kk, mpcc_diag *d)
{
	for (int b = 0; b < kk->n_bufs; b++) {
		const kir_buf *buf = &kk->bufs[b];
		if (buf->kind != KIR_BUF_PARAM)
			continue;
		if (buf->value < 0 || buf->value >= p->n_tensors)
			return mpcc_plan_damaged(
			    d, NULL, "section 'KERN': kernel %d buffer %d names tensor %d of %d", k,
			    b, (int)buf->value, p->n_tensors);
		const mpcc_plan_tensor *t = &p->tensors[buf->value];
		if (t->t.dtype != buf->dtype)
			return mpcc_plan_damaged(
			    d, NULL, "section 'KERN': kernel %d buffer %d is %s, tensor '%s' is %s",
			    k, b, mpcc_dtype_name(buf->dtype), t->t.name,
			    mpcc_dtype_name(t->t.dtype));
		if (buf->n_elems < 0 ||
		    (uint64_t)buf->n_elems * mpcc_dtype_size(t->t.dtype) != t->t.nbytes)
			return mpcc_plan_damaged(
			    d, NULL,
			    "section 'KERN': kernel %d buffer %d has %lld elements, tensor '%s' "
			    "%zu bytes",
			    k, b, (long long)buf->n_elems, t->t.name, t->t.nbytes);
		if (buf->written && (t->flags & (MPCC_TENSOR_WEIGHT | MPCC_TENSOR_INPUT)))
			return mpcc_plan_damaged(
			    d, NULL, "section 'KERN': kernel %d writes %s '%s'", k,
			    (t->flags & MPCC_TENSOR_WEIGHT) ? "weight" : "input", t->t.name);
	}
	return MPCC_OK;
}

static mpcc_status
read_kernels(mpcc_plan *p, mpcc_plan_reader *r, mpcc_diag *d)
{
	uint32_t n = mpcc_plan_get_u32(r);

	if (r->short_read)
		return mpcc_plan_damaged(d, NULL, "section 'KERN': truncated kernel count");
	if (n > (r->size - r->pos) / 8)
		return mpcc_plan_damaged(d, NULL,
		                         "section 'KERN': kernel count %u exceeds the section", n);
	p->kernels = calloc((size_t)n + 1, sizeof(kir_kernel *));
	if (!p->kernels)
		return mpcc_diag_error(d, MPCC_ERR_NOMEM, "out of memory loading the plan");
	for (uint32_t k = 0; k < n; k++) {
		uint64_t len = mpcc_plan_get_u64(r);
		if (r->short_read || len > r->size - r->pos)
			return mpcc_plan_damaged(
			    d, NULL, "section 'KERN': kernel %u length out of bounds", k);
		size_t used = 0;
		mpcc_diag kd;
		mpcc_diag_init(&kd);
		mpcc_status st = kir_deserialize(r->p + r->pos, (size_t)len, &used, &p->kernels[k], &kd);
		if (st == MPCC_ERR_NOMEM)
			return mpcc_diag_error(d, st, "out of memory loading the plan");
		if (st != MPCC_OK)
			return mpcc_plan_damaged(d, NULL, "section 'KERN': kernel %u: %s", k,
			                         kd.msg);
		p->n_kernels = (int)k + 1;
		if (used != len)
			return mpcc_plan_damaged(
			    d, NULL, "section 'KERN': kernel %u: %zu of %llu bytes used", k, used,
			    (unsigned long long)len);
		r->pos += (size_t)len;
		if (check_kernel(p, (int)k, p->kernels[k], d) != MPCC_OK)
			return d->status;
	}
	if (r->pos != r->size)
		return mpcc_plan_damaged(d, NULL, "section 'KERN': %zu trailing bytes",
		                         r->size - r->pos);
	return MPCC_OK;
}

/* Section KNOD (see write_knodes); optional, but checked when present. */
static mpcc_status
read_knodes(mpcc_plan *p, mpcc_plan_reader *r, mpcc_diag *d)
{
	uint32_t n = mpcc_plan_get_u32(r);

	if (r->short_read || n != (uint32_t)p->n_kernels)
		return mpcc_plan_damaged(d, NULL,
		                         "section 'KNOD': kernel count does not match 'KERN'");
	p->kernel_nodes = mpcc_arena_alloc(&p->arena, sizeof(char *) * ((size_t)n + 1));
	if (!p->kernel_nodes)
		return mpcc_diag_error(d, MPCC_ERR_NOMEM, "out of memory loading the plan");
	for (uint32_t k = 0; k < n; k++) {
		uint32_t len = mpcc_plan_get_u32(r);
		const uint8_t *b = r->short_read ? NULL : mpcc_plan_get_bytes(r, len);
		if (!b)
			return mpcc_plan_damaged(
			    d, NULL, "section 'KNOD': kernel %u names out of bounds", k);
		char *s = mpcc_arena_alloc(&p->arena, (size_t)len + 1);
		if (!s)
			return mpcc_diag_error(d, MPCC_ERR_NOMEM, "out of memory loading the plan");
		memcpy(s, b, len);
		s[len] = 0;
		if (strlen(s) != len)
			return mpcc_plan_damaged(
			    d, NULL, "section 'KNOD': kernel %u names hold a NUL byte", k);
		p->kernel_nodes[k] = s;
	}
	if (r->pos != r->size)
		return mpcc_plan_damaged(d, NULL, "section 'KNOD': %zu trailing bytes",
		                         r->size - r->pos);
	return MPCC_OK;
}

/* Section PRND (see write_prnd); optional, but checked when present. */
static mpcc_status
read_prnd(mpcc_plan *p, mpcc_plan_reader *r, mpcc_diag *d)
{
	mpcc_diag rd;
	mpcc_status st;

	mpcc_diag_init(&rd);
	st = mpcc_prec_report_deserialize(r->p, r->size, p->precision, &p->prec_report, &rd);
	if (st == MPCC_ERR_NOMEM)
		return mpcc_diag_error(d, st, "out of memory loading the plan");
	if (st != MPCC_OK)
		return mpcc_plan_damaged(d, NULL, "section 'PRND': %s", rd.msg);
	return MPCC_OK;
}

static const char *
tag_name(uint32_t tag, char buf[5])
{
	for (int i = 0; i < 4; i++) {
		char c = (char)(tag >> (8 * i));
		buf[i] = (c >= 32 && c < 127) ? c : '?';
	}
	buf[4] = 0;
	return buf;
}

/*
 * Why the checks come in this order: the header and checksum first, so that
 * random damage is caught with one clear message; then the sections in
 * dependency order (weights size before tensors, tensors before the I/O
 * lists and kernels), each parsed only within its own bounds.
 */
mpcc_status
mpcc_plan_deserialize(const void *buf, size_t size, mpcc_plan **out, mpcc_diag *d)
{
	const uint8_t *b = buf;
	mpcc_plan_reader hr = {b, size, 0, false};
	mpcc_plan_reader sec[N_WRITTEN];
	static const uint32_t tags[N_WRITTEN] = {TAG_WEIGHTS, TAG_TENSORS, TAG_IO, TAG_PRECISION,
	                                         TAG_KERNELS, TAG_KNODES, TAG_PRND, TAG_TRAN,
	                                         TAG_ONNX, TAG_CUDA};
	bool found[N_WRITTEN] = {false};
	mpcc_plan *p;
	char tn[5];

	*out = NULL;
	if (size < HEADER_SIZE)
		return mpcc_plan_damaged(d, NULL,
		                         "file is %zu bytes, shorter than the %d-byte header", size,
		                         HEADER_SIZE);
	if (memcmp(b, plan_magic, 8) != 0)
		return mpcc_diag_error(d, MPCC_ERR_INVALID, "not an mpcc plan (bad magic)");
	hr.pos = 8;
	uint32_t version = mpcc_plan_get_u32(&hr);
	uint32_t n_sec = mpcc_plan_get_u32(&hr);
	uint64_t sum = mpcc_plan_get_u64(&hr);
	uint64_t fsize = mpcc_plan_get_u64(&hr);
	if (version > MPCC_PLAN_VERSION)
		return mpcc_diag_error(d, MPCC_ERR_INVALID,
		                       "plan format version %u is newer than this mpcc (%d)", version,
		                       MPCC_PLAN_VERSION);
	if (version == 0)
		return mpcc_plan_damaged(d, NULL, "header: version 0");
	for (size_t i = hr.pos; i < HEADER_SIZE; i++)
		if (b[i] != 0)
			return mpcc_plan_damaged(d, NULL, "header: reserved byte %zu is not zero",
			                         i);
	if (fsize != size)
		return mpcc_plan_damaged(d, NULL,
		                         "header: file size %llu recorded, %zu read (truncated?)",
		                         (unsigned long long)fsize, size);
	if (n_sec == 0 || n_sec > 64 || (size - HEADER_SIZE) / SECTION_ENTRY < n_sec)
		return mpcc_plan_damaged(d, NULL, "header: section count %u out of range", n_sec);
	if (mpcc_fnv1a64(b + HEADER_SIZE, size - HEADER_SIZE) != sum)
		return mpcc_plan_damaged(d, NULL, "checksum mismatch");

	hr.pos = HEADER_SIZE;
	for (uint32_t i = 0; i < n_sec; i++) {
		uint32_t tag = mpcc_plan_get_u32(&hr), zero = mpcc_plan_get_u32(&hr);
		uint64_t off = mpcc_plan_get_u64(&hr), len = mpcc_plan_get_u64(&hr);
		int slot = -1;
		for (int k = 0; k < N_WRITTEN; k++)
			if (tags[k] == tag)
				slot = k;
		if (zero != 0)
			return mpcc_plan_damaged(
			    d, NULL, "section table entry %u: reserved field not zero", i);
		if (off < HEADER_SIZE + (uint64_t)n_sec * SECTION_ENTRY || off > size ||
		    len > size - off)
			return mpcc_plan_damaged(
			    d, NULL, "section '%s': bounds %llu+%llu outside the %zu-byte file",
			    tag_name(tag, tn), (unsigned long long)off, (unsigned long long)len,
			    size);
		if (slot < 0)
			continue; /* unknown sections are skipped (documented) */
		if (found[slot])
			return mpcc_plan_damaged(d, NULL, "section '%s' appears twice",
			                         tag_name(tag, tn));
		found[slot] = true;
		sec[slot] = (mpcc_plan_reader){b + off, (size_t)len, 0, false};
	}
	for (int k = 0; k < N_SECTIONS; k++)
		if (!found[k])
			return mpcc_plan_damaged(d, NULL, "section '%s' missing",
			                         tag_name(tags[k], tn));
	if ((uintptr_t)(sec[0].p - b) % WEIGHT_ALIGN)
		return mpcc_plan_damaged(d, NULL, "section 'WGHT': offset not 64-byte aligned");

	p = plan_alloc();
	if (!p)
		return mpcc_diag_error(d, MPCC_ERR_NOMEM, "out of memory loading the plan");
	p->weights = weights_alloc(sec[0].size);
	if (!p->weights) {
		mpcc_plan_free(p);
		return mpcc_diag_error(d, MPCC_ERR_NOMEM, "out of memory for %zu bytes of weights",
		                       sec[0].size);
	}
	memcpy(p->weights, sec[0].p, sec[0].size);
	p->weights_size = sec[0].size;
	if (read_tensors(p, &sec[1], p->weights_size, d) != MPCC_OK ||
	    read_io(p, &sec[2], d) != MPCC_OK)
		goto fail;
	uint32_t prec = mpcc_plan_get_u32(&sec[3]);
	if (sec[3].short_read || sec[3].pos != sec[3].size || prec > MPCC_PRECISION_AUTO) {
		mpcc_plan_damaged(d, NULL, "section 'PREC': invalid precision");
		goto fail;
	}
	p->precision = (mpcc_precision)prec;
	if (read_kernels(p, &sec[4], d) != MPCC_OK ||
	    (found[5] && read_knodes(p, &sec[5], d) != MPCC_OK) ||
	    (found[6] && read_prnd(p, &sec[6], d) != MPCC_OK) ||
	    (found[7] && mpcc_plan_train_read(p, sec[7].p, sec[7].size, d) != MPCC_OK) ||
	    (found[8] && mpcc_plan_source_read(p, sec[8].p, sec[8].size, d) != MPCC_OK) ||
	    (found[9] && mpcc_plan_cuda_read(p, sec[9].p, sec[9].size, d) != MPCC_OK) ||
	    plan_finish(p, d) != MPCC_OK)
		goto fail;
	*out = p;
	return MPCC_OK;
fail:
	mpcc_plan_free(p);
	return d->status != MPCC_OK ? d->status : MPCC_ERR_INVALID;
}
