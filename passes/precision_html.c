/*
 * precision_html.c - the precision report as one self-contained HTML page:
 * inline CSS, an inline SVG of the graph coloured by compute dtype, the
 * totals, and the table of decisions with range and error beside it. No
 * script, no external reference: the page opens offline, and hovering a
 * node shows its reason through SVG <title>; clicking it jumps to its row.
 *
 * Layout is a layered DAG drawn top to bottom: a record's layer is one
 * more than its deepest producer's (records come in schedule order, so
 * producers are always placed first). Within a layer each node wants the
 * mean x of its producers; nodes are sorted by that wish and pushed right
 * just enough not to overlap, which keeps chains vertical and fans compact
 * without a crossing-minimisation pass. Edges are cubic curves coloured by
 * the dtype the value is stored in, so casts show where the colour changes.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "passes/precision_report.h"

#define NODE_W 176
#define NODE_H 40
#define CAST_W 96
#define CAST_H 22
#define COL_W 196 /* horizontal slot of a node */
#define ROW_H 76  /* vertical distance of two layers */
#define MARGIN 16
#define LABEL_MAX 24 /* characters of a name drawn in a node */

typedef struct place {
	int layer;
	double x, want; /* left edge, and the wished centre */
	int w, h;
} place;

static void
html_escn(mpcc_strbuf *b, const char *s, size_t n)
{
	for (size_t i = 0; i < n && s[i]; i++) {
		switch (s[i]) {
		case '&': mpcc_strbuf_puts(b, "&amp;"); break;
		case '<': mpcc_strbuf_puts(b, "&lt;"); break;
		case '>': mpcc_strbuf_puts(b, "&gt;"); break;
		case '"': mpcc_strbuf_puts(b, "&quot;"); break;
		case '\'': mpcc_strbuf_puts(b, "&#39;"); break;
		default: mpcc_strbuf_putn(b, &s[i], 1); break;
		}
	}
}

static void
html_esc(mpcc_strbuf *b, const char *s)
{
	html_escn(b, s, strlen(s));
}

/* A name cut to LABEL_MAX characters (not inside a UTF-8 sequence), with
 * "…" in front when cut: the end of an exporter's path is the telling part. */
static void
html_label(mpcc_strbuf *b, const char *s)
{
	size_t n = strlen(s);
	if (n <= LABEL_MAX) {
		html_esc(b, s);
		return;
	}
	const char *t = s + n - (LABEL_MAX - 1);
	while (*t && ((unsigned char)*t & 0xc0) == 0x80)
		t++;
	mpcc_strbuf_puts(b, "&#8230;");
	html_esc(b, t);
}

static const char *
dtype_class(mpcc_dtype t)
{
	switch (t) {
	case MPCC_DTYPE_F32: return "f32";
	case MPCC_DTYPE_F16: return "f16";
	case MPCC_DTYPE_BF16: return "bf16";
	default: return "oth";
	}
}

/* Orders a layer by wished centre, ties by schedule position. */
static bool
before(const place *pl, int x, int y)
{
	if (pl[x].want != pl[y].want)
		return pl[x].want < pl[y].want;
	return x < y;
}

/* Insertion sort: layers are short, and it keeps the order stable. */
static void
sort_layer(int *ids, int n, const place *pl)
{
	for (int i = 1; i < n; i++) {
		int v = ids[i], j = i - 1;
		while (j >= 0 && before(pl, v, ids[j])) {
			ids[j + 1] = ids[j];
			j--;
		}
		ids[j + 1] = v;
	}
}

/* Places every record; returns the number of layers, -1 when out of
 * memory. *width gets the drawing's width. */
static int
layout(const mpcc_prec_report *r, place *pl, double *width)
{
	int n = r->n_records, layers = 0;
	int *ids = malloc(sizeof(int) * (size_t)(n + 1));
	int *start = calloc((size_t)n + 2, sizeof(int));

	if (!ids || !start) {
		free(ids);
		free(start);
		return -1;
	}
	for (int i = 0; i < n; i++) {
		const mpcc_prec_record *rec = &r->records[i];
		bool cast = rec->flags & MPCC_PREC_REC_CAST;
		pl[i].layer = 0;
		for (int k = 0; k < rec->n_in; k++)
			if (rec->in[k].producer >= 0 && pl[rec->in[k].producer].layer + 1 > pl[i].layer)
				pl[i].layer = pl[rec->in[k].producer].layer + 1;
		pl[i].w = cast ? CAST_W : NODE_W;
		pl[i].h = cast ? CAST_H : NODE_H;
		if (pl[i].layer + 1 > layers)
			layers = pl[i].layer + 1;
		start[pl[i].layer + 1]++;
	}
	/* records bucketed by layer, in schedule order within each */
	for (int L = 0; L < layers; L++)
		start[L + 1] += start[L];
	for (int i = 0; i < n; i++)
		ids[start[pl[i].layer]++] = i;
	*width = 0;
	for (int L = 0, first = 0; L < layers; L++) {
		int m = start[L] - first, *row = ids + first;
		first = start[L];
		for (int k = 0; k < m; k++) {
			const mpcc_prec_record *rec = &r->records[row[k]];
			double sum = 0;
			int cnt = 0;
			for (int j = 0; j < rec->n_in; j++) {
				int p = rec->in[j].producer;
				if (p >= 0) {
					sum += pl[p].x + pl[p].w / 2.0;
					cnt++;
				}
			}
			pl[row[k]].want = cnt ? sum / cnt : 0;
		}
		sort_layer(row, m, pl);
		double next = MARGIN;
		for (int k = 0; k < m; k++) {
			place *p = &pl[row[k]];
			double x = p->want - p->w / 2.0;
			p->x = x > next ? x : next;
			next = p->x + p->w + (COL_W - NODE_W);
			if (next > *width)
				*width = next;
		}
	}
	free(ids);
	free(start);
	return layers;
}

static double
node_y(const place *p)
{
	return MARGIN + p->layer * ROW_H + (NODE_H - p->h) / 2.0;
}

static void
put_title(mpcc_strbuf *b, const mpcc_prec_record *rec)
{
	mpcc_strbuf_puts(b, "<title>");
	html_esc(b, rec->name);
	mpcc_strbuf_puts(b, " (");
	html_esc(b, rec->op);
	mpcc_strbuf_printf(b, ", %s)&#10;%s: ", rec->id, mpcc_dtype_name(rec->compute));
	html_esc(b, rec->reason);
	if (!isnan(rec->range_absmax))
		mpcc_strbuf_printf(b, "&#10;range %.3g", rec->range_absmax);
	if (!isnan(rec->err))
		mpcc_strbuf_printf(b, "&#10;error %.3g", rec->err);
	mpcc_strbuf_puts(b, "</title>");
}

static void
put_svg(mpcc_strbuf *b, const mpcc_prec_report *r, const place *pl, int layers, double width)
{
	double height = 2 * MARGIN + (layers > 0 ? layers : 1) * ROW_H - (ROW_H - NODE_H);

	mpcc_strbuf_printf(b, "<svg width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
	                   "role=\"img\" aria-label=\"graph coloured by precision\">\n",
	                   width + MARGIN, height, width + MARGIN, height);
	for (int i = 0; i < r->n_records; i++) {
		const mpcc_prec_record *rec = &r->records[i];
		for (int k = 0; k < rec->n_in; k++) {
			int p = rec->in[k].producer;
			if (p < 0)
				continue;
			double x1 = pl[p].x + pl[p].w / 2.0, y1 = node_y(&pl[p]) + pl[p].h;
			double x2 = pl[i].x + pl[i].w / 2.0, y2 = node_y(&pl[i]);
			mpcc_strbuf_printf(b, "<path class=\"e %s\" d=\"M%.1f %.1fC%.1f %.1f %.1f %.1f "
			                   "%.1f %.1f\"/>\n",
			                   dtype_class(rec->in[k].dtype), x1, y1, x1, y1 + 24, x2, y2 - 24,
			                   x2, y2);
		}
	}
	for (int i = 0; i < r->n_records; i++) {
		const mpcc_prec_record *rec = &r->records[i];
		const place *p = &pl[i];
		bool cast = rec->flags & MPCC_PREC_REC_CAST;
		double y = node_y(p);
		mpcc_strbuf_printf(b, "<a href=\"#r%d\"><g class=\"n %s%s\">", i,
		                   dtype_class(rec->compute), cast ? " cast" : "");
		put_title(b, rec);
		mpcc_strbuf_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%d\" height=\"%d\" "
		                   "rx=\"%d\"/>", p->x, y, p->w, p->h, cast ? 10 : 4);
		if (cast) {
			mpcc_strbuf_printf(b, "<text x=\"%.1f\" y=\"%.1f\">cast &#8594; %s</text>",
			                   p->x + p->w / 2.0, y + 15, mpcc_dtype_name(rec->compute));
		} else {
			mpcc_strbuf_printf(b, "<text x=\"%.1f\" y=\"%.1f\">", p->x + p->w / 2.0, y + 16);
			html_label(b, rec->name);
			mpcc_strbuf_printf(b, "</text><text class=\"s\" x=\"%.1f\" y=\"%.1f\">",
			                   p->x + p->w / 2.0, y + 32);
			html_esc(b, rec->op);
			mpcc_strbuf_printf(b, " &#183; %s", mpcc_dtype_name(rec->compute));
			if (rec->accum != rec->compute)
				mpcc_strbuf_printf(b, "/%s", mpcc_dtype_name(rec->accum));
			mpcc_strbuf_puts(b, "</text>");
		}
		mpcc_strbuf_puts(b, "</g></a>\n");
	}
	mpcc_strbuf_puts(b, "</svg>\n");
}

static void
put_measure(mpcc_strbuf *b, double v)
{
	if (isnan(v))
		mpcc_strbuf_puts(b, "&#8211;");
	else
		mpcc_strbuf_printf(b, "%.3g", v);
}

static void
put_dtypes(mpcc_strbuf *b, const mpcc_prec_io *io, int n)
{
	for (int k = 0; k < n; k++)
		mpcc_strbuf_printf(b, "%s<span class=\"d %s\">%s</span>", k ? " " : "",
		                   dtype_class(io[k].dtype), mpcc_dtype_name(io[k].dtype));
}

static void
put_row(mpcc_strbuf *b, const mpcc_prec_record *rec, int i)
{
	mpcc_strbuf_printf(b, "<tr id=\"r%d\" class=\"%s%s\"><td>", i, dtype_class(rec->compute),
	                   (rec->flags & MPCC_PREC_REC_CAST) ? " cast" : "");
	html_esc(b, rec->id);
	mpcc_strbuf_puts(b, "</td><td>");
	html_esc(b, rec->name);
	mpcc_strbuf_puts(b, "</td><td>");
	html_esc(b, rec->op);
	mpcc_strbuf_puts(b, "</td><td>");
	put_dtypes(b, rec->in, rec->n_in);
	mpcc_strbuf_printf(b, "</td><td class=\"c\">%s</td><td>%s</td><td>",
	                   mpcc_dtype_name(rec->compute), mpcc_dtype_name(rec->accum));
	put_dtypes(b, rec->out, rec->n_out);
	mpcc_strbuf_puts(b, "</td><td class=\"num\">");
	put_measure(b, rec->range_absmax);
	mpcc_strbuf_puts(b, "</td><td class=\"num\">");
	put_measure(b, rec->err);
	mpcc_strbuf_printf(b, "</td><td class=\"num\">%llu</td><td class=\"num\">%llu</td><td>",
	                   (unsigned long long)rec->flops, (unsigned long long)rec->bytes);
	html_esc(b, rec->kernel);
	mpcc_strbuf_puts(b, "</td><td>");
	if (strchr(rec->evidence, '\n')) {
		mpcc_strbuf_puts(b, "<details><summary>");
		html_esc(b, rec->reason);
		mpcc_strbuf_puts(b, "</summary><ol>");
		for (const char *s = rec->evidence; *s;) {
			const char *e = strchr(s, '\n');
			size_t n = e ? (size_t)(e - s) : strlen(s);
			mpcc_strbuf_puts(b, "<li>");
			html_escn(b, s, n);
			mpcc_strbuf_puts(b, "</li>");
			s += n + (e != NULL);
		}
		mpcc_strbuf_puts(b, "</ol></details>");
	} else {
		html_esc(b, rec->reason);
	}
	mpcc_strbuf_puts(b, "</td></tr>\n");
}

static const char css[] =
	"body{font:13px/1.35 system-ui,sans-serif;margin:12px;color:#222}\n"
	"h1{font-size:18px;margin:0 0 6px}\n"
	".wrap{display:flex;gap:12px;align-items:flex-start}\n"
	".graph{flex:0 0 auto;max-width:48vw;max-height:88vh;overflow:auto;border:1px solid #ccc}\n"
	".table{flex:1 1 auto;max-height:88vh;overflow:auto}\n"
	"table{border-collapse:collapse}\n"
	"th,td{border-bottom:1px solid #e4e4e4;padding:2px 6px;text-align:left;"
	"vertical-align:top}\n"
	"th{position:sticky;top:0;background:#f4f4f4}\n"
	"td.num{text-align:right;font-variant-numeric:tabular-nums}\n"
	"tr:target{outline:2px solid #333}\n"
	"tr.cast td{color:#666;font-style:italic}\n"
	"tr.f32 td.c,.d.f32,.key.f32{background:#9ecae1}\n"
	"tr.f16 td.c,.d.f16,.key.f16{background:#fdae6b}\n"
	"tr.bf16 td.c,.d.bf16,.key.bf16{background:#a1d99b}\n"
	"tr.oth td.c,.d.oth,.key.oth{background:#d9d9d9}\n"
	".d,.key{padding:0 3px;border-radius:3px}\n"
	"details summary{cursor:pointer}\n"
	"ol{margin:2px 0;padding-left:18px}\n"
	"svg text{font-size:11px;text-anchor:middle;pointer-events:none}\n"
	"svg text.s{fill:#333;font-size:10px}\n"
	".n rect{stroke:#555;stroke-width:1}\n"
	".n.f32 rect{fill:#9ecae1}.n.f16 rect{fill:#fdae6b}.n.bf16 rect{fill:#a1d99b}"
	".n.oth rect{fill:#d9d9d9}\n"
	".n.cast rect{stroke-dasharray:4 2;stroke:#000;stroke-width:1.5}\n"
	"a:hover .n rect{stroke-width:2.5}\n"
	".e{fill:none;stroke-width:1.4;opacity:.8}\n"
	".e.f32{stroke:#3182bd}.e.f16{stroke:#e6550d}.e.bf16{stroke:#31a354}"
	".e.oth{stroke:#999}\n"
	".bar{display:inline-block;width:240px;height:10px;background:#9ecae1;"
	"vertical-align:middle}\n"
	".bar i{display:block;height:100%;background:#fdae6b}\n";

static void
put_totals(mpcc_strbuf *b, const mpcc_prec_report *r, const mpcc_prec_totals *t)
{
	mpcc_strbuf_printf(b, "<p>mode <b>%s</b>: %d nodes, %d casts inserted "
	                   "(<span class=\"key f32\">f32</span> <span class=\"key f16\">f16</span> "
	                   "<span class=\"key bf16\">bf16</span> <span class=\"key oth\">other</span>;"
	                   " casts dashed).</p>\n<p>nodes by compute:",
	                   mpcc_precision_mode_name(r->mode), t->nodes, t->casts);
	for (int d = 0; d < MPCC_DTYPE_COUNT; d++)
		if (t->by_compute[d])
			mpcc_strbuf_printf(b, " %s %d", mpcc_dtype_name((mpcc_dtype)d), t->by_compute[d]);
	mpcc_strbuf_printf(b, "</p>\n<p>FLOPs in f16/bf16: <span class=\"bar\"><i style=\"width:"
	                   "%.1f%%\"></i></span> %.1f%% of %llu<br>\n",
	                   100 * t->low_flops_share, 100 * t->low_flops_share,
	                   (unsigned long long)t->flops_total);
	mpcc_strbuf_printf(b, "bytes in f16/bf16: <span class=\"bar\"><i style=\"width:%.1f%%\">"
	                   "</i></span> %.1f%% of %llu</p>\n",
	                   100 * t->low_bytes_share, 100 * t->low_bytes_share,
	                   (unsigned long long)t->bytes_total);
	if (r->summary[0]) {
		mpcc_strbuf_puts(b, "<ul>");
		for (const char *s = r->summary; *s;) {
			const char *e = strchr(s, '\n');
			size_t n = e ? (size_t)(e - s) : strlen(s);
			if (n) {
				mpcc_strbuf_puts(b, "<li>");
				html_escn(b, s, n);
				mpcc_strbuf_puts(b, "</li>");
			}
			s += n + (e != NULL);
		}
		mpcc_strbuf_puts(b, "</ul>\n");
	}
}

char *
mpcc_prec_report_html(const mpcc_prec_report *r)
{
	mpcc_strbuf b = {0};
	mpcc_prec_totals t;
	place *pl = calloc((size_t)r->n_records + 1, sizeof(*pl));
	double width;
	int layers;

	if (!pl || (layers = layout(r, pl, &width)) < 0) {
		free(pl);
		return NULL;
	}
	mpcc_prec_report_totals(r, &t);
	mpcc_strbuf_printf(&b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
	                   "<title>mpcc precision report (%s)</title>\n<style>\n%s</style></head>\n"
	                   "<body>\n<h1>mpcc precision report</h1>\n",
	                   mpcc_precision_mode_name(r->mode), css);
	put_totals(&b, r, &t);
	mpcc_strbuf_puts(&b, "<div class=\"wrap\"><div class=\"graph\">\n");
	put_svg(&b, r, pl, layers, width);
	mpcc_strbuf_puts(&b, "</div><div class=\"table\"><table>\n<tr><th>id</th><th>name</th>"
	                     "<th>op</th><th>inputs</th><th>compute</th><th>accum</th>"
	                     "<th>outputs</th><th>range</th><th>error</th><th>FLOPs</th>"
	                     "<th>bytes</th><th>kernel</th><th>reason</th></tr>\n");
	for (int i = 0; i < r->n_records; i++)
		put_row(&b, &r->records[i], i);
	mpcc_strbuf_puts(&b, "</table></div></div>\n</body></html>\n");
	free(pl);
	return mpcc_strbuf_finish(&b);
}
