/*
 * precision_format.c - the precision report as text and JSON, and the
 * chain of evidence for one node (`mpcc explain`).
 *
 * Both forms are written from the records alone, so a report read from a
 * plan prints byte for byte what the compile printed. The text table sizes
 * its columns to their longest cell and puts the reason last, where it may
 * run as long as it needs. The JSON (docs/precision-json.md) has one node a
 * line so that `diff` of two builds shows one line per changed decision;
 * numbers are %.6g, counts plain integers.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "passes/precision_report.h"

#define N_COLS 10

/* The dtypes a totals line lists: f32, f16 and bf16 always, then any other
 * with something to show, in enum order. */
static bool
dtype_listed(mpcc_dtype t, const mpcc_prec_totals *tot)
{
	if (t == MPCC_DTYPE_F32 || t == MPCC_DTYPE_F16 || t == MPCC_DTYPE_BF16)
		return true;
	return tot->by_compute[t] || tot->flops[t] || tot->bytes[t];
}

static const mpcc_dtype listed_first[3] = {MPCC_DTYPE_F32, MPCC_DTYPE_F16, MPCC_DTYPE_BF16};

/* Calls in order of listing: f32, f16, bf16, then the others. */
static int
listed_order(mpcc_dtype out[MPCC_DTYPE_COUNT], const mpcc_prec_totals *tot)
{
	int n = 0;
	for (int i = 0; i < 3; i++)
		out[n++] = listed_first[i];
	for (int t = 0; t < MPCC_DTYPE_COUNT; t++) {
		if (t == MPCC_DTYPE_F32 || t == MPCC_DTYPE_F16 || t == MPCC_DTYPE_BF16)
			continue;
		if (dtype_listed((mpcc_dtype)t, tot))
			out[n++] = (mpcc_dtype)t;
	}
	return n;
}

static void
put_dtypes(mpcc_strbuf *b, const mpcc_prec_io *io, int n)
{
	if (n == 0)
		mpcc_strbuf_puts(b, "-");
	for (int k = 0; k < n; k++)
		mpcc_strbuf_printf(b, "%s%s", k ? "," : "", mpcc_dtype_name(io[k].dtype));
}

static void
put_measure(mpcc_strbuf *b, double v)
{
	if (isnan(v))
		mpcc_strbuf_puts(b, "-");
	else
		mpcc_strbuf_printf(b, "%.3g", v);
}

static double
pct(uint64_t part, uint64_t total)
{
	return total ? 100.0 * (double)part / (double)total : 0.0;
}

/* One cell of row i (i = -1: the header) into b. */
static void
put_cell(mpcc_strbuf *b, const mpcc_prec_report *r, int i, int col)
{
	static const char *const head[N_COLS] = {"id",     "name",  "op",    "inputs", "compute",
	                                         "accum",  "outputs", "range", "error", "reason"};
	if (i < 0) {
		mpcc_strbuf_puts(b, head[col]);
		return;
	}
	const mpcc_prec_record *rec = &r->records[i];
	switch (col) {
	case 0: mpcc_strbuf_puts(b, rec->id); break;
	case 1: mpcc_strbuf_puts(b, rec->name); break;
	case 2: mpcc_strbuf_puts(b, rec->op); break;
	case 3: put_dtypes(b, rec->in, rec->n_in); break;
	case 4: mpcc_strbuf_puts(b, mpcc_dtype_name(rec->compute)); break;
	case 5: mpcc_strbuf_puts(b, mpcc_dtype_name(rec->accum)); break;
	case 6: put_dtypes(b, rec->out, rec->n_out); break;
	case 7: put_measure(b, rec->range_absmax); break;
	case 8: put_measure(b, rec->err); break;
	default: mpcc_strbuf_puts(b, rec->reason); break;
	}
}

static void
put_totals_text(mpcc_strbuf *b, const mpcc_prec_totals *t)
{
	mpcc_dtype order[MPCC_DTYPE_COUNT];
	int n = listed_order(order, t);

	mpcc_strbuf_puts(b, "totals:\n  nodes by compute:");
	for (int k = 0; k < n; k++)
		mpcc_strbuf_printf(b, "%s %s %d", k ? "," : "", mpcc_dtype_name(order[k]),
		                   t->by_compute[order[k]]);
	mpcc_strbuf_printf(b, "\n  casts inserted: %d\n  FLOPs:", t->casts);
	for (int k = 0; k < n; k++)
		mpcc_strbuf_printf(b, "%s %s %llu (%.1f%%)", k ? "," : "", mpcc_dtype_name(order[k]),
		                   (unsigned long long)t->flops[order[k]],
		                   pct(t->flops[order[k]], t->flops_total));
	mpcc_strbuf_printf(b, "; total %llu\n  bytes:", (unsigned long long)t->flops_total);
	for (int k = 0; k < n; k++)
		mpcc_strbuf_printf(b, "%s %s %llu (%.1f%%)", k ? "," : "", mpcc_dtype_name(order[k]),
		                   (unsigned long long)t->bytes[order[k]],
		                   pct(t->bytes[order[k]], t->bytes_total));
	mpcc_strbuf_printf(b, "; total %llu\n", (unsigned long long)t->bytes_total);
	mpcc_strbuf_printf(b, "  low precision (f16, bf16): %.1f%% of FLOPs, %.1f%% of bytes\n",
	                   100.0 * t->low_flops_share, 100.0 * t->low_bytes_share);
}

/* The summary's lines, each indented, blank lines dropped. */
static void
put_notes_text(mpcc_strbuf *b, const char *s)
{
	if (!s[0])
		return;
	mpcc_strbuf_puts(b, "notes:\n");
	while (*s) {
		const char *e = strchr(s, '\n');
		size_t n = e ? (size_t)(e - s) : strlen(s);
		if (n) {
			mpcc_strbuf_puts(b, "  ");
			mpcc_strbuf_putn(b, s, n);
			mpcc_strbuf_puts(b, "\n");
		}
		s += n + (e != NULL);
	}
}

/*
 * Why each cell is printed twice (once to measure, once to emit): the
 * cells are short and the records few, and measuring with the same
 * function that prints guarantees the widths match what is printed.
 */
char *
mpcc_prec_report_text(const mpcc_prec_report *r)
{
	mpcc_strbuf b = {0}, cell = {0};
	size_t width[N_COLS] = {0};
	mpcc_prec_totals t;

	mpcc_prec_report_totals(r, &t);
	for (int i = -1; i < r->n_records; i++) {
		for (int c = 0; c < N_COLS - 1; c++) {
			cell.len = 0;
			put_cell(&cell, r, i, c);
			if (cell.len > width[c])
				width[c] = cell.len;
		}
	}
	mpcc_strbuf_printf(&b, "precision report: mode %s, %d nodes, %d casts inserted\n",
	                   mpcc_precision_mode_name(r->mode), t.nodes, t.casts);
	for (int i = -1; i < r->n_records; i++) {
		for (int c = 0; c < N_COLS; c++) {
			cell.len = 0;
			put_cell(&cell, r, i, c);
			mpcc_strbuf_putn(&b, cell.p ? cell.p : "", cell.len);
			if (c == N_COLS - 1)
				break;
			for (size_t k = cell.len; k < width[c] + 2; k++)
				mpcc_strbuf_putn(&b, " ", 1);
		}
		mpcc_strbuf_puts(&b, "\n");
	}
	b.failed |= cell.failed;
	free(cell.p);
	put_totals_text(&b, &t);
	put_notes_text(&b, r->summary);
	return mpcc_strbuf_finish(&b);
}

/* ---------------------------------------------------------------- JSON */

/* Length of the valid UTF-8 sequence at s, 0 when invalid. */
static int
utf8_len(const unsigned char *s)
{
	int n = s[0] >= 0xf0 && s[0] <= 0xf4 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc2 ? 2 : 0;
	if (s[0] >= 0xf8)
		return 0;
	for (int k = 1; k < n; k++)
		if ((s[k] & 0xc0) != 0x80)
			return 0;
	return n;
}

/* A JSON string of n bytes: quotes, backslashes and controls escaped;
 * bytes that are no valid UTF-8 written as \u00XX (read as Latin-1). */
static void
json_strn(mpcc_strbuf *b, const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + n;

	mpcc_strbuf_putn(b, "\"", 1);
	while (p < end) {
		if (*p == '"' || *p == '\\') {
			mpcc_strbuf_printf(b, "\\%c", *p++);
		} else if (*p == '\n') {
			mpcc_strbuf_puts(b, "\\n");
			p++;
		} else if (*p < 0x20 || *p == 0x7f) {
			mpcc_strbuf_printf(b, "\\u%04x", *p++);
		} else if (*p < 0x80) {
			mpcc_strbuf_putn(b, (const char *)p++, 1);
		} else {
			/* a valid sequence holds no NUL or newline, so it
			 * never runs past the end of the line */
			int k = utf8_len(p);
			if (k && k <= end - p) {
				mpcc_strbuf_putn(b, (const char *)p, (size_t)k);
				p += k;
			} else {
				mpcc_strbuf_printf(b, "\\u%04x", *p++);
			}
		}
	}
	mpcc_strbuf_putn(b, "\"", 1);
}

static void
json_str(mpcc_strbuf *b, const char *s)
{
	json_strn(b, s, strlen(s));
}

/* %.6g, null for NaN, the largest double for infinity (JSON has none). */
static void
json_num(mpcc_strbuf *b, double v)
{
	if (isnan(v))
		mpcc_strbuf_puts(b, "null");
	else if (isinf(v))
		mpcc_strbuf_puts(b, v > 0 ? "1.79769e+308" : "-1.79769e+308");
	else
		mpcc_strbuf_printf(b, "%.6g", v);
}

static void
json_dtypes(mpcc_strbuf *b, const mpcc_prec_io *io, int n)
{
	mpcc_strbuf_puts(b, "[");
	for (int k = 0; k < n; k++) {
		if (k)
			mpcc_strbuf_puts(b, ",");
		json_str(b, mpcc_dtype_name(io[k].dtype));
	}
	mpcc_strbuf_puts(b, "]");
}

static void
json_lines(mpcc_strbuf *b, const char *s)
{
	bool first = true;

	mpcc_strbuf_puts(b, "[");
	while (*s) {
		const char *e = strchr(s, '\n');
		size_t n = e ? (size_t)(e - s) : strlen(s);
		if (n) {
			mpcc_strbuf_puts(b, first ? "" : ",");
			json_strn(b, s, n);
			first = false;
		}
		s += n + (e != NULL);
	}
	mpcc_strbuf_puts(b, "]");
}

/* {"f32":x,"f16":y,"bf16":z,...} over the listed dtypes. */
static void
json_by_dtype(mpcc_strbuf *b, const mpcc_prec_totals *t, const uint64_t *v, const int *iv)
{
	mpcc_dtype order[MPCC_DTYPE_COUNT];
	int n = listed_order(order, t);

	mpcc_strbuf_puts(b, "{");
	for (int k = 0; k < n; k++) {
		mpcc_strbuf_printf(b, "%s\"%s\":", k ? "," : "", mpcc_dtype_name(order[k]));
		if (v)
			mpcc_strbuf_printf(b, "%llu", (unsigned long long)v[order[k]]);
		else
			mpcc_strbuf_printf(b, "%d", iv[order[k]]);
	}
	mpcc_strbuf_puts(b, "}");
}

static void
json_record(mpcc_strbuf *b, const mpcc_prec_record *rec)
{
	mpcc_strbuf_puts(b, "{\"id\":");
	json_str(b, rec->id);
	mpcc_strbuf_puts(b, ",\"name\":");
	json_str(b, rec->name);
	mpcc_strbuf_puts(b, ",\"op\":");
	json_str(b, rec->op);
	mpcc_strbuf_puts(b, ",\"inputs\":");
	json_dtypes(b, rec->in, rec->n_in);
	mpcc_strbuf_printf(b, ",\"compute\":\"%s\",\"accumulate\":\"%s\",\"outputs\":",
	                   mpcc_dtype_name(rec->compute), mpcc_dtype_name(rec->accum));
	json_dtypes(b, rec->out, rec->n_out);
	mpcc_strbuf_puts(b, ",\"reason\":");
	json_str(b, rec->reason);
	mpcc_strbuf_puts(b, ",\"evidence\":");
	json_lines(b, rec->evidence);
	mpcc_strbuf_puts(b, ",\"range_absmax\":");
	json_num(b, rec->range_absmax);
	mpcc_strbuf_puts(b, ",\"error\":");
	json_num(b, rec->err);
	mpcc_strbuf_printf(b, ",\"flops\":%llu,\"bytes\":%llu,\"kernel\":",
	                   (unsigned long long)rec->flops, (unsigned long long)rec->bytes);
	if (rec->kernel[0])
		json_str(b, rec->kernel);
	else
		mpcc_strbuf_puts(b, "null");
	mpcc_strbuf_puts(b, "}");
}

char *
mpcc_prec_report_json(const mpcc_prec_report *r)
{
	mpcc_strbuf b = {0};
	mpcc_prec_totals t;

	mpcc_prec_report_totals(r, &t);
	mpcc_strbuf_printf(&b, "{\"schema\":\"mpcc-precision/1\",\"mode\":\"%s\",\n",
	                   mpcc_precision_mode_name(r->mode));
	mpcc_strbuf_printf(&b, "\"summary\":{\"nodes\":%d,\"casts\":%d,\"nodes_by_compute\":",
	                   t.nodes, t.casts);
	json_by_dtype(&b, &t, NULL, t.by_compute);
	mpcc_strbuf_puts(&b, ",\"flops\":");
	json_by_dtype(&b, &t, t.flops, NULL);
	mpcc_strbuf_puts(&b, ",\"bytes\":");
	json_by_dtype(&b, &t, t.bytes, NULL);
	mpcc_strbuf_puts(&b, ",\"low_flops_share\":");
	json_num(&b, t.low_flops_share);
	mpcc_strbuf_puts(&b, ",\"low_bytes_share\":");
	json_num(&b, t.low_bytes_share);
	mpcc_strbuf_puts(&b, ",\"notes\":");
	json_lines(&b, r->summary);
	mpcc_strbuf_puts(&b, "},\n\"nodes\":[");
	for (int i = 0; i < r->n_records; i++) {
		mpcc_strbuf_puts(&b, i ? ",\n" : "\n");
		json_record(&b, &r->records[i]);
	}
	mpcc_strbuf_puts(&b, "\n]}\n");
	return mpcc_strbuf_finish(&b);
}

/* ---------------------------------------------------------------- explain */

static void
put_shape(mpcc_strbuf *b, const mpcc_prec_io *io)
{
	mpcc_strbuf_printf(b, "%s[", mpcc_dtype_name(io->dtype));
	for (int k = 0; k < io->rank; k++)
		mpcc_strbuf_printf(b, "%s%lld", k ? "," : "", (long long)io->dims[k]);
	mpcc_strbuf_puts(b, "]");
}

static void
put_operands(mpcc_strbuf *b, const mpcc_prec_report *r, const char *what,
             const mpcc_prec_io *io, int n)
{
	mpcc_strbuf_printf(b, "  %s:%s\n", what, n ? "" : " nothing");
	for (int k = 0; k < n; k++) {
		mpcc_strbuf_printf(b, "    %s ", io[k].value);
		put_shape(b, &io[k]);
		if (io[k].producer >= 0)
			mpcc_strbuf_printf(b, " from %s '%s'", r->records[io[k].producer].id,
			                   r->records[io[k].producer].name);
		if (io[k].flags & MPCC_PREC_IO_INPUT)
			mpcc_strbuf_puts(b, " (graph input)");
		if (io[k].flags & MPCC_PREC_IO_CONST)
			mpcc_strbuf_puts(b, " (constant)");
		if (io[k].flags & MPCC_PREC_IO_OUTPUT)
			mpcc_strbuf_puts(b, " (graph output)");
		mpcc_strbuf_puts(b, "\n");
	}
}

/* True when the ", "-joined list holds name as a whole item. */
static bool
list_has(const char *list, const char *name, size_t n)
{
	for (const char *s = list; *s;) {
		const char *e = strstr(s, ", ");
		size_t len = e ? (size_t)(e - s) : strlen(s);
		if (len == n && memcmp(s, name, n) == 0)
			return true;
		s += len + (e ? 2 : 0);
	}
	return false;
}

/* Each kernel of rec and the other records it computes (fusion). */
static void
put_kernels(mpcc_strbuf *b, const mpcc_prec_report *r, const mpcc_prec_record *rec)
{
	if (!rec->kernel[0]) {
		mpcc_strbuf_puts(b, "  kernel: none (folded, or computed by no kernel of its own)\n");
		return;
	}
	for (const char *s = rec->kernel; *s;) {
		const char *e = strstr(s, ", ");
		size_t len = e ? (size_t)(e - s) : strlen(s);
		int others = 0;
		mpcc_strbuf_puts(b, "  kernel: ");
		mpcc_strbuf_putn(b, s, len);
		for (int i = 0; i < r->n_records; i++) {
			const mpcc_prec_record *o = &r->records[i];
			if (o == rec || !list_has(o->kernel, s, len))
				continue;
			mpcc_strbuf_printf(b, "%s%s", others++ ? ", " : " (fused with ", o->name);
		}
		mpcc_strbuf_puts(b, others ? ")\n" : "\n");
		s += len + (e ? 2 : 0);
	}
}

static void
explain_one(mpcc_strbuf *b, const mpcc_prec_report *r, const mpcc_prec_record *rec)
{
	mpcc_strbuf_printf(b, "node '%s' (%s, id %s)%s\n", rec->name, rec->op, rec->id,
	                   (rec->flags & MPCC_PREC_REC_CAST) ? ", inserted by the precision pass"
	                                                     : "");
	/* "f32: policy ...": the dtype first, unless the reason starts so */
	const char *dt = mpcc_dtype_name(rec->compute);
	size_t dl = strlen(dt);
	if (strncmp(rec->reason, dt, dl) == 0 && rec->reason[dl] == ':')
		mpcc_strbuf_printf(b, "  decision: %s\n", rec->reason);
	else
		mpcc_strbuf_printf(b, "  decision: %s: %s\n", dt, rec->reason);
	mpcc_strbuf_printf(b, "  compute %s, accumulate %s\n", mpcc_dtype_name(rec->compute),
	                   mpcc_dtype_name(rec->accum));
	mpcc_strbuf_puts(b, "  evidence:\n");
	for (const char *s = rec->evidence; *s;) {
		const char *e = strchr(s, '\n');
		size_t n = e ? (size_t)(e - s) : strlen(s);
		mpcc_strbuf_puts(b, "    ");
		mpcc_strbuf_putn(b, s, n);
		mpcc_strbuf_puts(b, "\n");
		s += n + (e != NULL);
	}
	if (isnan(rec->range_absmax) && isnan(rec->err)) {
		mpcc_strbuf_puts(b, "  measured: nothing (auto mode measures range and error)\n");
	} else {
		mpcc_strbuf_puts(b, "  measured: max |value| ");
		put_measure(b, rec->range_absmax);
		mpcc_strbuf_puts(b, ", relative error ");
		put_measure(b, rec->err);
		mpcc_strbuf_puts(b, "\n");
	}
	put_operands(b, r, "reads", rec->in, rec->n_in);
	put_operands(b, r, "writes", rec->out, rec->n_out);
	put_kernels(b, r, rec);
	mpcc_strbuf_printf(b, "  cost: %llu FLOPs, %llu bytes\n", (unsigned long long)rec->flops,
	                   (unsigned long long)rec->bytes);
}

static int
lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

/* Edit distance ignoring case, both strings cut to 128 bytes. */
static int
distance(const char *a, const char *b)
{
	int la = (int)strnlen(a, 128), lb = (int)strnlen(b, 128);
	int row[129];

	for (int j = 0; j <= lb; j++)
		row[j] = j;
	for (int i = 1; i <= la; i++) {
		int diag = row[0];
		row[0] = i;
		for (int j = 1; j <= lb; j++) {
			int up = row[j];
			int best = diag + (lower(a[i - 1]) != lower(b[j - 1]));
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			if (up + 1 < best)
				best = up + 1;
			row[j] = best;
			diag = up;
		}
	}
	return row[lb];
}

/* True when needle occurs in hay, ignoring case. */
static bool
contains(const char *hay, const char *needle)
{
	size_t n = strlen(needle);
	for (; *hay; hay++)
		if (strncasecmp(hay, needle, n) == 0)
			return true;
	return n == 0;
}

/* "'a' (n3), 'b' (n7)": the three records closest to `node`: a name that
 * contains it first, then by edit distance to the name (or to the id,
 * when `node` looks like one: "n12", "cast:..."). */
static void
put_closest(mpcc_strbuf *b, const mpcc_prec_report *r, const char *node)
{
	int best[3] = {-1, -1, -1}, bd[3] = {0};
	bool id_like = (node[0] == 'n' && node[1] >= '0' && node[1] <= '9') ||
	               strncmp(node, "cast:", 5) == 0;

	for (int i = 0; i < r->n_records; i++) {
		const mpcc_prec_record *rec = &r->records[i];
		int dd = contains(rec->name, node) ? 0 : 1 + distance(node, rec->name);
		if (id_like) {
			int di = 1 + distance(node, rec->id);
			dd = di < dd ? di : dd;
		}
		for (int k = 0; k < 3; k++) {
			if (best[k] >= 0 && dd >= bd[k])
				continue;
			for (int m = 2; m > k; m--) {
				best[m] = best[m - 1];
				bd[m] = bd[m - 1];
			}
			best[k] = i;
			bd[k] = dd;
			break;
		}
	}
	for (int k = 0; k < 3 && best[k] >= 0; k++)
		mpcc_strbuf_printf(b, "%s'%s' (%s)", k ? ", " : "", r->records[best[k]].name,
		                   r->records[best[k]].id);
}

mpcc_status
mpcc_prec_report_explain(const mpcc_prec_report *r, const char *node, char **out, mpcc_diag *d)
{
	mpcc_strbuf b = {0};
	int found = 0;

	*out = NULL;
	for (int i = 0; i < r->n_records; i++) {
		const mpcc_prec_record *rec = &r->records[i];
		if (strcmp(rec->id, node) != 0 && strcmp(rec->name, node) != 0)
			continue;
		if (found++)
			mpcc_strbuf_puts(&b, "\n");
		explain_one(&b, r, rec);
	}
	if (!found) {
		mpcc_strbuf_printf(&b, "no node '%s' in the plan", node);
		if (r->n_records) {
			mpcc_strbuf_puts(&b, "; closest: ");
			put_closest(&b, r, node);
		}
		char *msg = mpcc_strbuf_finish(&b);
		if (!msg)
			return mpcc_diag_error(d, MPCC_ERR_NOMEM, "out of memory explaining '%s'", node);
		mpcc_diag_error(d, MPCC_ERR_INVALID, "%s", msg);
		free(msg);
		return MPCC_ERR_INVALID;
	}
	*out = mpcc_strbuf_finish(&b);
	if (!*out)
		return mpcc_diag_error(d, MPCC_ERR_NOMEM, "out of memory explaining '%s'", node);
	return MPCC_OK;
}
