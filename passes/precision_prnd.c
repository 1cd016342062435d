/*
 * precision_prnd.c - section PRND of the plan: the precision report's
 * records written as bytes and read back (layout in docs/plan-format.md).
 *
 * The reader checks every count against the bytes left before allocating,
 * every string's length, dtypes, flags, ranks, that producers are earlier
 * records, that the evidence ends with the reason and that ids are unique,
 * so a damaged section is refused with a message naming the record and the
 * field instead of being printed wrong. Derived numbers (operand and node
 * bytes) are recomputed, not stored, so they cannot disagree with the dims.
 */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "passes/precision_report.h"

static void
w_u32(mpcc_strbuf *b, uint32_t v)
{
	char x[4] = {(char)v, (char)(v >> 8), (char)(v >> 16), (char)(v >> 24)};
	mpcc_strbuf_putn(b, x, 4);
}

static void
w_u64(mpcc_strbuf *b, uint64_t v)
{
	w_u32(b, (uint32_t)v);
	w_u32(b, (uint32_t)(v >> 32));
}

static void
w_f64(mpcc_strbuf *b, double v)
{
	uint64_t bits;
	memcpy(&bits, &v, 8);
	w_u64(b, bits);
}

static void
w_str(mpcc_strbuf *b, const char *s)
{
	size_t n = strlen(s);
	if (n > UINT32_MAX) {
		b->failed = true;
		return;
	}
	w_u32(b, (uint32_t)n);
	mpcc_strbuf_putn(b, s, n);
}

static void
w_io(mpcc_strbuf *b, const mpcc_prec_io *io, bool input)
{
	w_u32(b, (uint32_t)io->dtype);
	w_u32(b, io->flags);
	if (input)
		w_u32(b, (uint32_t)io->producer);
	w_u32(b, (uint32_t)io->rank);
	for (int a = 0; a < io->rank; a++)
		w_u64(b, (uint64_t)io->dims[a]);
	w_str(b, io->value);
}

/* Layout in docs/plan-format.md, section PRND. */
mpcc_status
mpcc_prec_report_serialize(const mpcc_prec_report *r, void **out, size_t *out_size)
{
	mpcc_strbuf b = {0};

	*out = NULL;
	*out_size = 0;
	w_u32(&b, MPCC_PREC_REPORT_VERSION);
	w_str(&b, r->summary);
	w_u32(&b, (uint32_t)r->n_records);
	for (int i = 0; i < r->n_records; i++) {
		const mpcc_prec_record *rec = &r->records[i];
		w_u32(&b, rec->flags);
		w_str(&b, rec->id);
		w_str(&b, rec->name);
		w_str(&b, rec->op);
		w_u32(&b, (uint32_t)rec->compute);
		w_u32(&b, (uint32_t)rec->accum);
		w_u32(&b, (uint32_t)rec->n_in);
		for (int k = 0; k < rec->n_in; k++)
			w_io(&b, &rec->in[k], true);
		w_u32(&b, (uint32_t)rec->n_out);
		for (int k = 0; k < rec->n_out; k++)
			w_io(&b, &rec->out[k], false);
		w_str(&b, rec->reason);
		w_str(&b, rec->evidence);
		w_f64(&b, rec->range_absmax);
		w_f64(&b, rec->err);
		w_u64(&b, rec->flops);
		w_str(&b, rec->kernel);
	}
	size_t size = b.len;
	char *data = mpcc_strbuf_finish(&b);
	if (!data)
		return MPCC_ERR_NOMEM;
	*out = data;
	*out_size = size;
	return MPCC_OK;
}

typedef struct rd {
	const uint8_t *p;
	size_t size, pos;
	bool short_read;
} rd;

static size_t
left(const rd *r)
{
	return r->size - r->pos;
}

static uint32_t
r_u32(rd *r)
{
	if (left(r) < 4) {
		r->short_read = true;
		r->pos = r->size;
		return 0;
	}
	const uint8_t *b = r->p + r->pos;
	r->pos += 4;
	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static uint64_t
r_u64(rd *r)
{
	uint64_t lo = r_u32(r);
	return lo | (uint64_t)r_u32(r) << 32;
}

static double
r_f64(rd *r)
{
	uint64_t bits = r_u64(r);
	double v;
	memcpy(&v, &bits, 8);
	return v;
}

/* A length-prefixed string into the arena: NULL (with *why set) when it
 * runs past the section or holds a NUL byte. */
static const char *
r_str(rd *r, mpcc_arena *a, const char **why)
{
	uint32_t n = r_u32(r);
	if (r->short_read || n > left(r)) {
		r->short_read = true;
		*why = "length runs past the section";
		return NULL;
	}
	if (memchr(r->p + r->pos, 0, n)) {
		*why = "holds a NUL byte";
		return NULL;
	}
	char *s = mpcc_arena_alloc(a, (size_t)n + 1);
	if (!s) {
		*why = "out of memory";
		return NULL;
	}
	memcpy(s, r->p + r->pos, n);
	r->pos += n;
	return s;
}

static mpcc_status
damaged(mpcc_diag *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static mpcc_status
damaged(mpcc_diag *d, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	mpcc_diag_verror(d, MPCC_ERR_INVALID, fmt, ap);
	va_end(ap);
	return MPCC_ERR_INVALID;
}

static bool
measure_ok(double v)
{
	return isnan(v) || v >= 0; /* +inf allowed: an overflow measured */
}

/* One operand; returns NULL on success, else what is wrong. */
static const char *
r_io(rd *r, mpcc_arena *a, mpcc_prec_io *io, bool input, uint32_t self)
{
	const char *why = NULL;
	uint32_t dtype = r_u32(r), flags = r_u32(r);
	int32_t producer = input ? (int32_t)r_u32(r) : -1;
	uint32_t rank = r_u32(r);

	if (r->short_read)
		return "truncated";
	if (dtype >= MPCC_DTYPE_COUNT)
		return "invalid dtype";
	if (flags & ~(uint32_t)(MPCC_PREC_IO_INPUT | MPCC_PREC_IO_CONST | MPCC_PREC_IO_OUTPUT))
		return "unknown flags";
	if (producer < -1 || (producer >= 0 && (uint32_t)producer >= self))
		return "producer is not an earlier record";
	if (rank > MPCC_MAX_RANK)
		return "rank exceeds 8";
	io->dtype = (mpcc_dtype)dtype;
	io->flags = flags;
	io->producer = producer;
	io->rank = (int)rank;
	for (uint32_t k = 0; k < rank; k++) {
		uint64_t v = r_u64(r);
		if (v > (uint64_t)INT64_MAX)
			return "negative dim";
		io->dims[k] = (int64_t)v;
	}
	if (r->short_read)
		return "truncated";
	io->nbytes = mpcc_prec_io_nbytes(io);
	if (!(io->value = r_str(r, a, &why)))
		return why;
	return NULL;
}

static const char *
r_ios(rd *r, mpcc_arena *a, bool input, uint32_t self, int *out_n, mpcc_prec_io **out,
      uint32_t *bad_k)
{
	uint32_t n = r_u32(r);
	*bad_k = 0;
	if (r->short_read)
		return "count truncated";
	/* each operand takes at least 20 bytes (16 for an output) */
	if (n > left(r) / (input ? 20 : 16))
		return "count exceeds the section";
	*out = mpcc_arena_alloc(a, sizeof(**out) * ((size_t)n + 1));
	if (!*out)
		return "out of memory";
	for (uint32_t k = 0; k < n; k++) {
		const char *why = r_io(r, a, &(*out)[k], input, self);
		if (why) {
			*bad_k = k;
			return why;
		}
	}
	*out_n = (int)n;
	return NULL;
}

/* The reason must be the last line of the evidence (or both empty). */
static bool
evidence_ends_with_reason(const char *ev, const char *reason)
{
	const char *last = strrchr(ev, '\n');
	last = last ? last + 1 : ev;
	return strcmp(last, reason) == 0;
}

static mpcc_status
read_record(rd *r, mpcc_prec_report *rep, uint32_t i, mpcc_diag *d)
{
	mpcc_prec_record *rec = &rep->records[i];
	mpcc_arena *a = &rep->arena;
	const char *why = NULL;
	uint32_t bad_k;

	rec->flags = r_u32(r);
	if (r->short_read)
		return damaged(d, "record %u: truncated", i);
	if (rec->flags & ~(uint32_t)MPCC_PREC_REC_CAST)
		return damaged(d, "record %u: unknown flags 0x%x", i, rec->flags);
	if (!(rec->id = r_str(r, a, &why)))
		return damaged(d, "record %u: id %s", i, why);
	if (!rec->id[0])
		return damaged(d, "record %u: empty id", i);
	if (!(rec->name = r_str(r, a, &why)))
		return damaged(d, "record %u (%s): name %s", i, rec->id, why);
	if (!(rec->op = r_str(r, a, &why)))
		return damaged(d, "record %u (%s): op %s", i, rec->id, why);
	uint32_t compute = r_u32(r), accum = r_u32(r);
	if (r->short_read)
		return damaged(d, "record %u (%s): truncated", i, rec->id);
	if (compute >= MPCC_DTYPE_COUNT || accum >= MPCC_DTYPE_COUNT)
		return damaged(d, "record %u (%s): invalid compute or accumulate dtype %u/%u", i,
		               rec->id, compute, accum);
	rec->compute = (mpcc_dtype)compute;
	rec->accum = (mpcc_dtype)accum;
	if ((why = r_ios(r, a, true, i, &rec->n_in, &rec->in, &bad_k)))
		return damaged(d, "record %u (%s): input %u: %s", i, rec->id, bad_k, why);
	if ((why = r_ios(r, a, false, i, &rec->n_out, &rec->out, &bad_k)))
		return damaged(d, "record %u (%s): output %u: %s", i, rec->id, bad_k, why);
	if (!(rec->reason = r_str(r, a, &why)))
		return damaged(d, "record %u (%s): reason %s", i, rec->id, why);
	if (!(rec->evidence = r_str(r, a, &why)))
		return damaged(d, "record %u (%s): evidence %s", i, rec->id, why);
	if (!evidence_ends_with_reason(rec->evidence, rec->reason))
		return damaged(d, "record %u (%s): evidence does not end with the reason", i, rec->id);
	rec->range_absmax = r_f64(r);
	rec->err = r_f64(r);
	rec->flops = r_u64(r);
	if (r->short_read)
		return damaged(d, "record %u (%s): truncated", i, rec->id);
	if (!measure_ok(rec->range_absmax) || !measure_ok(rec->err))
		return damaged(d, "record %u (%s): negative range or error", i, rec->id);
	if (!(rec->kernel = r_str(r, a, &why)))
		return damaged(d, "record %u (%s): kernel %s", i, rec->id, why);
	rec->bytes = 0;
	for (int k = 0; k < rec->n_in + rec->n_out; k++) {
		uint64_t nb = k < rec->n_in ? rec->in[k].nbytes : rec->out[k - rec->n_in].nbytes;
		rec->bytes = rec->bytes > UINT64_MAX - nb ? UINT64_MAX : rec->bytes + nb;
	}
	return MPCC_OK;
}

/*
 * Why every count is bounded by the bytes left before anything is
 * allocated: a flipped count must not turn into a huge allocation, and a
 * record takes at least 68 bytes, an operand 16, so the bounds are tight
 * enough that a damaged count fails on its own line.
 */
mpcc_status
mpcc_prec_report_deserialize(const void *buf, size_t size, mpcc_precision mode,
                             mpcc_prec_report **out, mpcc_diag *d)
{
	rd r = {buf, size, 0, false};
	mpcc_prec_report *rep;
	const char *why = NULL;
	mpcc_status st = MPCC_ERR_INVALID;

	*out = NULL;
	uint32_t version = r_u32(&r);
	if (r.short_read)
		return damaged(d, "truncated version");
	if (version == 0)
		return damaged(d, "version 0 is invalid");
	if (version > MPCC_PREC_REPORT_VERSION)
		return damaged(d, "version %u is newer than this mpcc (%d)", version,
		               MPCC_PREC_REPORT_VERSION);
	rep = calloc(1, sizeof(*rep));
	if (!rep)
		return mpcc_diag_error(d, MPCC_ERR_NOMEM, "out of memory loading the plan");
	mpcc_arena_init(&rep->arena);
	rep->mode = mode;
	if (!(rep->summary = r_str(&r, &rep->arena, &why))) {
		damaged(d, "summary %s", why);
		goto fail;
	}
	uint32_t n = r_u32(&r);
	if (r.short_read) {
		damaged(d, "truncated record count");
		goto fail;
	}
	if (n > left(&r) / 68) {
		damaged(d, "record count %u exceeds the section", n);
		goto fail;
	}
	rep->records = mpcc_arena_alloc(&rep->arena, sizeof(*rep->records) * ((size_t)n + 1));
	if (!rep->records) {
		st = mpcc_diag_error(d, MPCC_ERR_NOMEM, "out of memory loading the plan");
		goto fail;
	}
	for (uint32_t i = 0; i < n; i++) {
		if (read_record(&r, rep, i, d) != MPCC_OK)
			goto fail;
		rep->n_records = (int)i + 1;
	}
	if (left(&r)) {
		damaged(d, "%zu trailing bytes", left(&r));
		goto fail;
	}
	int dup = mpcc_prec_report_duplicate_id(rep);
	if (dup == -2) {
		st = mpcc_diag_error(d, MPCC_ERR_NOMEM, "out of memory loading the plan");
		goto fail;
	}
	if (dup >= 0) {
		damaged(d, "id '%s' appears twice", rep->records[dup].id);
		goto fail;
	}
	*out = rep;
	return MPCC_OK;
fail:
	mpcc_prec_report_destroy(rep);
	return d->status != MPCC_OK ? d->status : st;
}
