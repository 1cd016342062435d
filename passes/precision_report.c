/*
 * precision_report.c - building the precision report from the graph, the
 * FLOPs and bytes estimates, the totals, and the text buffer the
 * formatters share (section PRND of the plan: precision_prnd.c).
 *
 * The report is a flat copy of what the passes recorded on the nodes
 * (compute, accum, reason, evidence, range_absmax, err, src_index) plus what
 * only the graph knows (operand dtypes, producers, shapes turned into FLOPs
 * and bytes), so that it can be stored in the plan and printed without the
 * graph.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "passes/precision_report.h"

/* ---------------------------------------------------------------- text building */

static bool
strbuf_reserve(mpcc_strbuf *b, size_t n)
{
	if (b->failed)
		return false;
	if (b->cap - b->len > n)
		return true;
	size_t cap = b->cap ? b->cap : 256;
	while (cap - b->len <= n) {
		if (cap > SIZE_MAX / 2) {
			b->failed = true;
			return false;
		}
		cap *= 2;
	}
	char *p = realloc(b->p, cap);
	if (!p) {
		b->failed = true;
		return false;
	}
	b->p = p;
	b->cap = cap;
	return true;
}

void
mpcc_strbuf_printf(mpcc_strbuf *b, const char *fmt, ...)
{
	va_list ap;
	char small[256];

	va_start(ap, fmt);
	int n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->failed = true;
		return;
	}
	if ((size_t)n < sizeof(small)) {
		mpcc_strbuf_putn(b, small, (size_t)n);
		return;
	}
	if (!strbuf_reserve(b, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

void
mpcc_strbuf_putn(mpcc_strbuf *b, const char *s, size_t n)
{
	if (!strbuf_reserve(b, n))
		return;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = 0;
}

void
mpcc_strbuf_puts(mpcc_strbuf *b, const char *s)
{
	mpcc_strbuf_putn(b, s, strlen(s));
}

char *
mpcc_strbuf_finish(mpcc_strbuf *b)
{
	if (!b->failed && !b->p)
		strbuf_reserve(b, 1);
	if (b->failed) {
		free(b->p);
		b->p = NULL;
		return NULL;
	}
	b->p[b->len] = 0;
	return b->p;
}

const char *
mpcc_precision_mode_name(mpcc_precision p)
{
	switch (p) {
	case MPCC_PRECISION_FP32: return "fp32";
	case MPCC_PRECISION_FP16: return "fp16";
	case MPCC_PRECISION_BF16: return "bf16";
	case MPCC_PRECISION_AUTO: return "auto";
	}
	return "unknown";
}

/* ---------------------------------------------------------------- FLOPs */

static uint64_t
sat_mul(uint64_t a, uint64_t b)
{
	uint64_t r;
	return __builtin_mul_overflow(a, b, &r) ? UINT64_MAX : r;
}

static uint64_t
sat_add(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static const mpcc_value *
operand(const mpcc_graph *g, const int32_t *ids, int n, int j)
{
	if (j >= n || ids[j] < 0 || ids[j] >= g->n_values)
		return NULL;
	const mpcc_value *v = &g->values[ids[j]];
	return v->rank >= 0 && v->rank <= MPCC_MAX_RANK ? v : NULL;
}

static uint64_t
numel(const mpcc_value *v)
{
	int64_t n = v ? mpcc_value_numel(v) : -1;
	return n > 0 ? (uint64_t)n : 0;
}

static uint64_t
dim(const mpcc_value *v, int i)
{
	if (!v || i < 0 || i >= v->rank || v->dims[i] < 0)
		return 0;
	return (uint64_t)v->dims[i];
}

/* Product of dims [from, rank). */
static uint64_t
dims_from(const mpcc_value *v, int from)
{
	uint64_t p = 1;
	for (int i = from; v && i < v->rank; i++)
		p = sat_mul(p, dim(v, i));
	return v ? p : 0;
}

/* Size of index letter c in an Einsum term, or 0 when c is not in it.
 * Letters after an ellipsis align to the right of the operand's dims. */
static uint64_t
einsum_letter(const char *term, size_t len, const mpcc_value *v, char c)
{
	int letters = 0, pos = 0;
	for (size_t i = 0; i < len; i++)
		letters += term[i] != '.';
	for (size_t i = 0; i < len; i++) {
		if (term[i] == '.') {
			pos += v->rank - letters;
			i += 2;
			continue;
		}
		if (term[i] == c)
			return dim(v, pos);
		pos++;
	}
	return 0;
}

/*
 * Why Einsum counts only the contracted letters: every output element is a
 * sum over the contracted index space, one multiply-add per point, so the
 * cost is 2 * output elements * product of the contracted sizes for two or
 * more operands (attention's "bhqd,bhkd->bhqk" gives 2*B*H*Q*K*D).
 */
static uint64_t
einsum_flops(const mpcc_graph *g, const mpcc_node *n)
{
	const char *eq = mpcc_node_attr_string(n, "equation", NULL);
	const mpcc_value *y = operand(g, n->out, n->n_out, 0);
	char buf[256];
	size_t len = 0;

	if (!eq || !y)
		return numel(y);
	for (const char *p = eq; *p && len + 1 < sizeof(buf); p++)
		if (*p != ' ')
			buf[len++] = *p;
	buf[len] = 0;
	char *arrow = strstr(buf, "->");
	size_t in_len = arrow ? (size_t)(arrow - buf) : len;
	int count[128] = {0};
	for (size_t i = 0; i < in_len; i++)
		if ((unsigned char)buf[i] < 128 && buf[i] != ',' && buf[i] != '.')
			count[(unsigned char)buf[i]]++;
	uint64_t contracted = 1;
	for (int c = 'A'; c <= 'z'; c++) {
		if (!count[c])
			continue;
		bool in_out = arrow ? strchr(arrow + 2, c) != NULL : count[c] == 1;
		if (in_out)
			continue;
		/* the letter's size from the first term that has it */
		const char *t = buf;
		for (int j = 0; j < n->n_in && t < buf + in_len; j++) {
			const char *end = memchr(t, ',', (size_t)(buf + in_len - t));
			size_t tl = end ? (size_t)(end - t) : (size_t)(buf + in_len - t);
			const mpcc_value *v = operand(g, n->in, n->n_in, j);
			uint64_t s = v ? einsum_letter(t, tl, v, (char)c) : 0;
			if (s) {
				contracted = sat_mul(contracted, s);
				break;
			}
			t += tl + 1;
		}
	}
	return sat_mul(sat_mul(n->n_in >= 2 ? 2 : 1, numel(y)), contracted);
}

static uint64_t
kernel_window(const mpcc_node *n)
{
	const mpcc_attr *a = mpcc_node_attr(n, "kernel_shape");
	uint64_t w = 1;
	for (int i = 0; a && a->kind == MPCC_ATTR_INTS && i < a->n; i++)
		w = sat_mul(w, a->ints[i] > 0 ? (uint64_t)a->ints[i] : 0);
	return w;
}

uint64_t
mpcc_node_flops(const mpcc_graph *g, const mpcc_node *n)
{
	const mpcc_value *x = operand(g, n->in, n->n_in, 0);
	const mpcc_value *w = operand(g, n->in, n->n_in, 1);
	const mpcc_value *y = operand(g, n->out, n->n_out, 0);

	switch (n->op) {
	case MPCC_OP_MATMUL:
	case MPCC_OP_MATMULINTEGER:
	case MPCC_OP_QLINEARMATMUL:
		return x ? sat_mul(sat_mul(2, numel(y)), dim(x, x->rank - 1)) : 0;
	case MPCC_OP_GEMM:
		return sat_mul(sat_mul(2, numel(y)),
		               dim(x, mpcc_node_attr_int(n, "transA", 0) ? 0 : 1));
	case MPCC_OP_QLINEARCONV:
		w = operand(g, n->in, n->n_in, 3);
		/* fall through */
	case MPCC_OP_CONV:
	case MPCC_OP_CONVINTEGER:
		return sat_mul(sat_mul(2, numel(y)), dims_from(w, 1));
	case MPCC_OP_CONVTRANSPOSE:
		return sat_mul(sat_mul(2, numel(x)), dims_from(w, 1));
	case MPCC_OP_EINSUM:
		return einsum_flops(g, n);
	case MPCC_OP_RNN:
	case MPCC_OP_GRU:
	case MPCC_OP_LSTM: {
		const mpcc_value *r = operand(g, n->in, n->n_in, 2);
		uint64_t steps = sat_mul(dim(x, 0), dim(x, 1));
		uint64_t gates = sat_mul(dim(w, 0), dim(w, 1));
		return sat_mul(sat_mul(sat_mul(2, steps), gates), sat_add(dim(w, 2), dim(r, 2)));
	}
	case MPCC_OP_MAXPOOL:
	case MPCC_OP_AVERAGEPOOL:
	case MPCC_OP_LPPOOL:
		return sat_mul(numel(y), kernel_window(n));
	default:
		break;
	}
	switch (n->op) {
	case MPCC_OP_GLOBALAVERAGEPOOL:
	case MPCC_OP_GLOBALMAXPOOL:
	case MPCC_OP_REDUCESUM:
	case MPCC_OP_REDUCEMEAN:
	case MPCC_OP_REDUCEMAX:
	case MPCC_OP_REDUCEMIN:
	case MPCC_OP_REDUCEPROD:
	case MPCC_OP_REDUCEL1:
	case MPCC_OP_REDUCEL2:
	case MPCC_OP_REDUCELOGSUM:
	case MPCC_OP_REDUCELOGSUMEXP:
	case MPCC_OP_REDUCESUMSQUARE:
	case MPCC_OP_ARGMAX:
	case MPCC_OP_ARGMIN:
	case MPCC_OP_CUMSUM:
	case MPCC_OP_HARDMAX:
	case MPCC_OP_SOFTMAX:
	case MPCC_OP_LOGSOFTMAX:
	case MPCC_OP_TOPK:
	case MPCC_OP_BATCHNORMALIZATION:
	case MPCC_OP_INSTANCENORMALIZATION:
	case MPCC_OP_LAYERNORMALIZATION:
	case MPCC_OP_GROUPNORMALIZATION:
	case MPCC_OP_LRN:
	case MPCC_OP_MEANVARIANCENORMALIZATION:
	case MPCC_OP_LPNORMALIZATION:
	case MPCC_OP_DET:
	case MPCC_OP_SOFTMAXCROSSENTROPYLOSS:
	case MPCC_OP_NEGATIVELOGLIKELIHOODLOSS:
		return numel(x);
	/* data movement, shape and control flow: no arithmetic counted */
	case MPCC_OP_CAST:
	case MPCC_OP_CASTLIKE:
	case MPCC_OP_IDENTITY:
	case MPCC_OP_DROPOUT:
	case MPCC_OP_CONSTANT:
	case MPCC_OP_CONSTANTOFSHAPE:
	case MPCC_OP_SHAPE:
	case MPCC_OP_SIZE:
	case MPCC_OP_RESHAPE:
	case MPCC_OP_FLATTEN:
	case MPCC_OP_SQUEEZE:
	case MPCC_OP_UNSQUEEZE:
	case MPCC_OP_TRANSPOSE:
	case MPCC_OP_CONCAT:
	case MPCC_OP_SPLIT:
	case MPCC_OP_SLICE:
	case MPCC_OP_GATHER:
	case MPCC_OP_GATHERELEMENTS:
	case MPCC_OP_GATHERND:
	case MPCC_OP_SCATTER:
	case MPCC_OP_SCATTERELEMENTS:
	case MPCC_OP_SCATTERND:
	case MPCC_OP_EXPAND:
	case MPCC_OP_TILE:
	case MPCC_OP_PAD:
	case MPCC_OP_TRILU:
	case MPCC_OP_EYELIKE:
	case MPCC_OP_ONEHOT:
	case MPCC_OP_DEPTHTOSPACE:
	case MPCC_OP_SPACETODEPTH:
	case MPCC_OP_REVERSESEQUENCE:
	case MPCC_OP_COMPRESS:
	case MPCC_OP_NONZERO:
	case MPCC_OP_UNIQUE:
	case MPCC_OP_MAXUNPOOL:
	case MPCC_OP_IF:
	case MPCC_OP_LOOP:
	case MPCC_OP_SCAN:
		return 0;
	default:
		return numel(y); /* elementwise and the rest: one op an output */
	}
}

/* ---------------------------------------------------------------- building */

static const char *
dup(mpcc_prec_report *r, const char *s)
{
	return mpcc_arena_strdup(&r->arena, s ? s : "");
}

static const char *
dupf(mpcc_prec_report *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static const char *
dupf(mpcc_prec_report *r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return NULL;
	char *s = mpcc_arena_alloc(&r->arena, (size_t)n + 1);
	if (!s)
		return NULL;
	va_start(ap, fmt);
	vsnprintf(s, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return s;
}

static uint32_t
io_flags(const mpcc_value *v)
{
	uint32_t f = 0;
	if (v->flags & MPCC_VALUE_INPUT)
		f |= MPCC_PREC_IO_INPUT;
	if (v->flags & MPCC_VALUE_CONST)
		f |= MPCC_PREC_IO_CONST;
	if (v->flags & MPCC_VALUE_OUTPUT)
		f |= MPCC_PREC_IO_OUTPUT;
	return f;
}

static mpcc_dtype
storage_of(const mpcc_value *v)
{
	return v->storage != MPCC_DTYPE_UNDEF ? v->storage : v->dtype;
}

/* The evidence lines, ending with the reason: the passes promise that, and
 * the readers rely on it, so a chain that ends elsewhere gets the reason
 * appended rather than contradicting the decision it explains. */
static const char *
evidence_of(mpcc_prec_report *r, const mpcc_node *n, const char *reason)
{
	const char *ev = n->evidence;
	if (!ev || !ev[0])
		return reason;
	size_t len = strlen(ev), rl = strlen(reason);
	while (len > 0 && ev[len - 1] == '\n')
		len--;
	const char *last = ev + len;
	while (last > ev && last[-1] != '\n')
		last--;
	if (((size_t)(ev + len - last) == rl && memcmp(last, reason, rl) == 0) || !rl)
		return dupf(r, "%.*s", (int)len, ev);
	return dupf(r, "%.*s\n%s", (int)len, ev, reason);
}

uint64_t
mpcc_prec_io_nbytes(const mpcc_prec_io *io)
{
	uint64_t n = mpcc_dtype_size(io->dtype);
	for (int a = 0; a < io->rank && a < MPCC_MAX_RANK; a++)
		n = sat_mul(n, io->dims[a] > 0 ? (uint64_t)io->dims[a] : 0);
	return n;
}

/* Copies operands; omitted optional ones are left out. */
static mpcc_prec_io *
copy_ios(mpcc_prec_report *r, const mpcc_graph *g, const int32_t *ids, int n, bool inputs,
         const int32_t *rec_of, int *out_n, uint64_t *bytes)
{
	mpcc_prec_io *io = mpcc_arena_alloc(&r->arena, sizeof(*io) * (size_t)(n + 1));
	int k = 0;

	if (!io)
		return NULL;
	for (int j = 0; j < n; j++) {
		if (ids[j] < 0 || ids[j] >= g->n_values)
			continue;
		const mpcc_value *v = &g->values[ids[j]];
		io[k].value = dup(r, v->name);
		if (!io[k].value)
			return NULL;
		io[k].dtype = storage_of(v);
		io[k].flags = io_flags(v);
		io[k].producer = -1;
		if (inputs && v->producer >= 0 && v->producer < g->n_nodes)
			io[k].producer = rec_of[v->producer];
		io[k].rank = v->rank > 0 && v->rank <= MPCC_MAX_RANK ? v->rank : 0;
		for (int a = 0; a < io[k].rank; a++)
			io[k].dims[a] = v->dims[a] > 0 ? v->dims[a] : 0;
		io[k].nbytes = mpcc_prec_io_nbytes(&io[k]);
		*bytes = sat_add(*bytes, io[k].nbytes);
		k++;
	}
	*out_n = k;
	return io;
}

static int
cmp_id(const void *a, const void *b)
{
	const mpcc_prec_record *x = *(const mpcc_prec_record *const *)a;
	const mpcc_prec_record *y = *(const mpcc_prec_record *const *)b;
	return strcmp(x->id, y->id);
}

int
mpcc_prec_report_duplicate_id(const mpcc_prec_report *r)
{
	const mpcc_prec_record **s = malloc(sizeof(*s) * (size_t)(r->n_records + 1));
	int dup = -1;

	if (!s)
		return -2;
	for (int i = 0; i < r->n_records; i++)
		s[i] = &r->records[i];
	qsort(s, (size_t)r->n_records, sizeof(*s), cmp_id);
	for (int i = 1; i < r->n_records && dup < 0; i++)
		if (strcmp(s[i - 1]->id, s[i]->id) == 0)
			dup = (int)(s[i] - r->records);
	free(s);
	return dup;
}

/* Ids must be unique (explain finds a node by id). ONNX indices are, and
 * casts are shared per source and dtype, so a clash means a pass broke
 * that; it is repaired with a "#2" suffix in schedule order rather than
 * producing a plan that fails to load. */
static mpcc_status
make_ids_unique(mpcc_prec_report *r)
{
	for (int round = 0; round < 4; round++) {
		int dup = mpcc_prec_report_duplicate_id(r);
		if (dup == -2)
			return MPCC_ERR_NOMEM;
		if (dup == -1)
			return MPCC_OK;
		for (int i = 0; i < r->n_records; i++) {
			int seen = 1;
			for (int j = 0; j < i; j++)
				seen += strcmp(r->records[j].id, r->records[i].id) == 0;
			if (seen > 1 && !(r->records[i].id = dupf(r, "%s#%d", r->records[i].id, seen)))
				return MPCC_ERR_NOMEM;
		}
	}
	return MPCC_ERR_INTERNAL;
}

static mpcc_status
fill_record(mpcc_prec_report *r, const mpcc_graph *g, int i, const int32_t *rec_of,
            const char *kernel, mpcc_prec_record *rec)
{
	const mpcc_node *n = &g->nodes[i];
	bool cast = n->src_index < 0 && n->op == MPCC_OP_CAST;

	rec->flags = cast ? MPCC_PREC_REC_CAST : 0;
	if (n->src_index >= 0)
		rec->id = dupf(r, "n%d", (int)n->src_index);
	else if (cast && n->n_in > 0 && n->in[0] >= 0 && n->n_out > 0 && n->out[0] >= 0)
		rec->id = dupf(r, "cast:%s:%s", g->values[n->in[0]].name,
		               mpcc_dtype_name(storage_of(&g->values[n->out[0]])));
	else
		rec->id = dupf(r, "node:%s", n->name ? n->name : "");
	rec->name = dup(r, n->name);
	rec->op = dup(r, mpcc_op_name(n->op));
	rec->compute = n->compute;
	rec->accum = n->accum;
	rec->reason = dup(r, n->reason);
	rec->evidence = rec->reason ? evidence_of(r, n, rec->reason) : NULL;
	rec->range_absmax = n->range_absmax;
	rec->err = n->err;
	rec->flops = mpcc_node_flops(g, n);
	rec->bytes = 0;
	rec->in = copy_ios(r, g, n->in, n->n_in, true, rec_of, &rec->n_in, &rec->bytes);
	rec->out = copy_ios(r, g, n->out, n->n_out, false, rec_of, &rec->n_out, &rec->bytes);
	rec->kernel = dup(r, kernel);
	if (!rec->id || !rec->name || !rec->op || !rec->reason || !rec->evidence || !rec->in ||
	    !rec->out || !rec->kernel)
		return MPCC_ERR_NOMEM;
	return MPCC_OK;
}

mpcc_status
mpcc_prec_report_build(const mpcc_graph *g, mpcc_precision mode, const char *const *node_kernels,
                       mpcc_prec_report **out, mpcc_diag *d)
{
	mpcc_prec_report *r = calloc(1, sizeof(*r));
	int32_t *rec_of = malloc(sizeof(*rec_of) * (size_t)(g->n_nodes + 1));
	mpcc_status st = MPCC_ERR_NOMEM;
	int n_live = 0;

	*out = NULL;
	if (!r || !rec_of)
		goto fail;
	mpcc_arena_init(&r->arena);
	r->mode = mode;
	for (int i = 0; i < g->n_nodes; i++) {
		rec_of[i] = -1;
		n_live += !g->nodes[i].dead;
	}
	r->records = mpcc_arena_alloc(&r->arena, sizeof(*r->records) * (size_t)(n_live + 1));
	r->summary = dup(r, g->prec_summary);
	if (!r->records || !r->summary)
		goto fail;
	for (int i = 0; i < g->n_nodes; i++) {
		if (g->nodes[i].dead)
			continue;
		const char *k = node_kernels && node_kernels[i] ? node_kernels[i] : "";
		if ((st = fill_record(r, g, i, rec_of, k, &r->records[r->n_records])) != MPCC_OK)
			goto fail;
		rec_of[i] = r->n_records++;
	}
	if ((st = make_ids_unique(r)) != MPCC_OK)
		goto fail;
	free(rec_of);
	*out = r;
	return MPCC_OK;
fail:
	free(rec_of);
	mpcc_prec_report_destroy(r);
	if (st == MPCC_ERR_NOMEM)
		return mpcc_diag_error(d, st, "out of memory building the precision report");
	return mpcc_diag_error(d, st, "precision report: node ids are not unique");
}

void
mpcc_prec_report_destroy(mpcc_prec_report *r)
{
	if (!r)
		return;
	mpcc_arena_fini(&r->arena);
	free(r);
}

static bool
is_low(mpcc_dtype t)
{
	return t == MPCC_DTYPE_F16 || t == MPCC_DTYPE_BF16;
}

void
mpcc_prec_report_totals(const mpcc_prec_report *r, mpcc_prec_totals *t)
{
	uint64_t low_flops = 0, low_bytes = 0;

	memset(t, 0, sizeof(*t));
	for (int i = 0; i < r->n_records; i++) {
		const mpcc_prec_record *rec = &r->records[i];
		mpcc_dtype c = (unsigned)rec->compute < MPCC_DTYPE_COUNT ? rec->compute
		                                                        : MPCC_DTYPE_UNDEF;
		if (rec->flags & MPCC_PREC_REC_CAST) {
			t->casts++;
		} else {
			t->nodes++;
			t->by_compute[c]++;
		}
		t->flops[c] = sat_add(t->flops[c], rec->flops);
		t->flops_total = sat_add(t->flops_total, rec->flops);
		if (is_low(c))
			low_flops = sat_add(low_flops, rec->flops);
		for (int k = 0; k < rec->n_in + rec->n_out; k++) {
			const mpcc_prec_io *io = k < rec->n_in ? &rec->in[k] : &rec->out[k - rec->n_in];
			mpcc_dtype s = (unsigned)io->dtype < MPCC_DTYPE_COUNT ? io->dtype
			                                                      : MPCC_DTYPE_UNDEF;
			t->bytes[s] = sat_add(t->bytes[s], io->nbytes);
			t->bytes_total = sat_add(t->bytes_total, io->nbytes);
			if (is_low(s))
				low_bytes = sat_add(low_bytes, io->nbytes);
		}
	}
	t->low_flops_share = t->flops_total ? (double)low_flops / (double)t->flops_total : 0;
	t->low_bytes_share = t->bytes_total ? (double)low_bytes / (double)t->bytes_total : 0;
}
