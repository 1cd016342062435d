/*
 * npy.c - reading and writing NumPy .npy files.
 *
 * The header is a Python dict literal; rather than accept anything that
 * looks like one, a small recursive-descent parser reads exactly the three
 * keys NumPy writes ('descr', 'fortran_order', 'shape') with their literal
 * forms, and refuses anything else with a message naming the problem. The
 * data that follows must hold exactly the bytes the shape needs.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/api_internal.h"
#include "runtime/npy.h"

static const struct {
	const char *code; /* without the byte-order character */
	mpcc_dtype dtype;
} codes[] = {
	{"f2", MPCC_DTYPE_F16}, {"f4", MPCC_DTYPE_F32}, {"f8", MPCC_DTYPE_F64},
	{"i1", MPCC_DTYPE_I8},  {"i2", MPCC_DTYPE_I16}, {"i4", MPCC_DTYPE_I32},
	{"i8", MPCC_DTYPE_I64}, {"u1", MPCC_DTYPE_U8},  {"u2", MPCC_DTYPE_U16},
	{"u4", MPCC_DTYPE_U32}, {"u8", MPCC_DTYPE_U64}, {"b1", MPCC_DTYPE_BOOL},
	{"?", MPCC_DTYPE_BOOL},
};

typedef struct hdr_parser {
	const char *s, *end;
	mpcc_diag *d;
} hdr_parser;

static void
skip_ws(hdr_parser *p)
{
	while (p->s < p->end && (*p->s == ' ' || *p->s == '\t' || *p->s == '\n' || *p->s == '\r'))
		p->s++;
}

static bool
eat(hdr_parser *p, char c)
{
	skip_ws(p);
	if (p->s < p->end && *p->s == c) {
		p->s++;
		return true;
	}
	return false;
}

/* A quoted string ('...' or "...") without escapes, into buf. */
static bool
parse_string(hdr_parser *p, char *buf, size_t n)
{
	char q;
	size_t len = 0;

	skip_ws(p);
	if (p->s >= p->end || (*p->s != '\'' && *p->s != '"'))
		return false;
	q = *p->s++;
	while (p->s < p->end && *p->s != q) {
		if (*p->s == '\\' || len + 1 >= n)
			return false;
		buf[len++] = *p->s++;
	}
	if (p->s >= p->end)
		return false;
	p->s++;
	buf[len] = 0;
	return true;
}

static bool
parse_word(hdr_parser *p, const char *w)
{
	size_t n = strlen(w);

	skip_ws(p);
	if ((size_t)(p->end - p->s) >= n && memcmp(p->s, w, n) == 0) {
		p->s += n;
		return true;
	}
	return false;
}

/* (d0, d1, ...) with an optional trailing comma; () is a scalar. */
static bool
parse_shape(hdr_parser *p, mpcc_tensor *t)
{
	if (!eat(p, '('))
		return false;
	t->rank = 0;
	for (;;) {
		if (eat(p, ')'))
			return true;
		skip_ws(p);
		if (p->s >= p->end || !isdigit((unsigned char)*p->s) || t->rank >= MPCC_MAX_RANK)
			return false;
		int64_t v = 0;
		while (p->s < p->end && isdigit((unsigned char)*p->s)) {
			if (v > (INT64_MAX - 9) / 10)
				return false;
			v = v * 10 + (*p->s++ - '0');
		}
		if (p->s < p->end && *p->s == 'L')
			p->s++;
		t->dims[t->rank++] = v;
		if (!eat(p, ',')) {
			return eat(p, ')');
		}
	}
}

static mpcc_status
parse_descr(const char *descr, mpcc_tensor *t, mpcc_diag *d)
{
	char order = descr[0];
	const char *code = descr + 1;

	if (order != '<' && order != '>' && order != '|' && order != '=') {
		order = '|';
		code = descr;
	}
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		if (strcmp(code, codes[i].code) != 0)
			continue;
		if (order == '>' && mpcc_dtype_size(codes[i].dtype) > 1)
			return mpcc_diag_error(d, MPCC_ERR_UNSUPPORTED,
			                       ".npy: big-endian dtype '%s' is not supported", descr);
		t->dtype = codes[i].dtype;
		return MPCC_OK;
	}
	return mpcc_diag_error(d, MPCC_ERR_UNSUPPORTED, ".npy: dtype '%s' is not supported", descr);
}

static mpcc_status
parse_header(const char *s, size_t n, mpcc_tensor *t, mpcc_diag *d)
{
	hdr_parser p = {s, s + n, d};
	char key[32], descr[32] = "";
	bool have_descr = false, have_order = false, have_shape = false, fortran = false;

	if (!eat(&p, '{'))
		return mpcc_diag_error(d, MPCC_ERR_INVALID, ".npy: header is not a dict");
	while (!eat(&p, '}')) {
		if (!parse_string(&p, key, sizeof(key)) || !eat(&p, ':'))
			return mpcc_diag_error(d, MPCC_ERR_INVALID, ".npy: malformed header key");
		if (strcmp(key, "descr") == 0) {
			if (!parse_string(&p, descr, sizeof(descr)))
				return mpcc_diag_error(d, MPCC_ERR_UNSUPPORTED,
				                       ".npy: 'descr' is not a simple dtype string");
			have_descr = true;
		} else if (strcmp(key, "fortran_order") == 0) {
			if (parse_word(&p, "True"))
				fortran = true;
			else if (!parse_word(&p, "False"))
				return mpcc_diag_error(d, MPCC_ERR_INVALID,
				                       ".npy: 'fortran_order' is not True or False");
			have_order = true;
		} else if (strcmp(key, "shape") == 0) {
			if (!parse_shape(&p, t))
				return mpcc_diag_error(d, MPCC_ERR_INVALID,
				                       ".npy: 'shape' is not a tuple of at most %d sizes",
				                       MPCC_MAX_RANK);
			have_shape = true;
		} else {
			return mpcc_diag_error(d, MPCC_ERR_INVALID, ".npy: unknown header key '%s'", key);
		}
		if (!eat(&p, ',')) {
			if (!eat(&p, '}'))
				return mpcc_diag_error(d, MPCC_ERR_INVALID, ".npy: malformed header dict");
			break;
		}
	}
	skip_ws(&p);
	if (p.s != p.end)
		return mpcc_diag_error(d, MPCC_ERR_INVALID, ".npy: junk after the header dict");
	if (!have_descr || !have_order || !have_shape)
		return mpcc_diag_error(d, MPCC_ERR_INVALID, ".npy: header lacks '%s'",
		                       !have_descr ? "descr" : !have_order ? "fortran_order" : "shape");
	if (fortran)
		return mpcc_diag_error(d, MPCC_ERR_UNSUPPORTED,
		                       ".npy: fortran_order arrays are not supported (save C order)");
	return parse_descr(descr, t, d);
}

/*
 * Why the size check multiplies with overflow checks: the shape comes from
 * the file, and a crafted one must not wrap into a small allocation.
 */
mpcc_status
mpcc_npy_read_buffer(const void *buf, size_t size, mpcc_tensor *out, mpcc_diag *d)
{
	const uint8_t *b = buf;
	size_t hlen, hstart;
	mpcc_tensor t;
	mpcc_status st;

	memset(out, 0, sizeof(*out));
	memset(&t, 0, sizeof(t));
	if (size < 10 || memcmp(b, "\x93NUMPY", 6) != 0)
		return mpcc_diag_error(d, MPCC_ERR_INVALID, "not a .npy file (bad magic)");
	if (b[6] == 1) {
		hlen = (size_t)b[8] | (size_t)b[9] << 8;
		hstart = 10;
	} else if (b[6] == 2 || b[6] == 3) {
		if (size < 12)
			return mpcc_diag_error(d, MPCC_ERR_INVALID, ".npy: truncated header");
		hlen = (size_t)b[8] | (size_t)b[9] << 8 | (size_t)b[10] << 16 | (size_t)b[11] << 24;
		hstart = 12;
	} else {
		return mpcc_diag_error(d, MPCC_ERR_UNSUPPORTED, ".npy: format version %d.%d unknown",
		                       b[6], b[7]);
	}
	if (hlen > size - hstart)
		return mpcc_diag_error(d, MPCC_ERR_INVALID, ".npy: header runs past the end");
	for (size_t i = 0; i < hlen; i++)
		if (b[hstart + i] == 0 || b[hstart + i] >= 0x80)
			return mpcc_diag_error(d, MPCC_ERR_INVALID, ".npy: header is not plain text");
	st = parse_header((const char *)b + hstart, hlen, &t, d);
	if (st != MPCC_OK)
		return st;
	size_t n = mpcc_dtype_size(t.dtype);
	for (int i = 0; i < t.rank; i++)
		if (__builtin_mul_overflow(n, (size_t)t.dims[i], &n))
			return mpcc_diag_error(d, MPCC_ERR_INVALID, ".npy: shape too large");
	size_t have = size - hstart - hlen;
	if (have != n)
		return mpcc_diag_error(d, MPCC_ERR_INVALID,
		                       ".npy: shape and dtype need %zu data bytes, file holds %zu", n,
		                       have);
	t.data = malloc(n ? n : 1);
	if (!t.data)
		return mpcc_diag_error(d, MPCC_ERR_NOMEM, ".npy: out of memory for %zu bytes", n);
	memcpy(t.data, b + hstart + hlen, n);
	t.nbytes = n;
	if (t.dtype == MPCC_DTYPE_BOOL) {
		for (size_t i = 0; i < n; i++)
			((uint8_t *)t.data)[i] = ((uint8_t *)t.data)[i] != 0;
	}
	*out = t;
	return MPCC_OK;
}

mpcc_status
mpcc_npy_read_file(const char *path, mpcc_tensor *out, mpcc_diag *d)
{
	void *buf;
	size_t size;
	mpcc_status st;

	memset(out, 0, sizeof(*out));
	st = mpcc_read_whole_file(path, &buf, &size, d);
	if (st != MPCC_OK)
		return st;
	st = mpcc_npy_read_buffer(buf, size, out, d);
	free(buf);
	if (st != MPCC_OK && d->msg[0] == '.') {
		mpcc_diag_prefix(d, path);
	}
	return st;
}

mpcc_status
mpcc_npy_write_buffer(const mpcc_tensor *t, void **out, size_t *out_size, mpcc_diag *d)
{
	const char *code = NULL;
	char hdr[400];
	size_t used, n = mpcc_dtype_size(t->dtype);

	*out = NULL;
	*out_size = 0;
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		if (codes[i].dtype == t->dtype) {
			code = codes[i].code;
			break;
		}
	if (!code)
		return mpcc_diag_error(d, MPCC_ERR_UNSUPPORTED, ".npy has no dtype for %s",
		                       mpcc_dtype_name(t->dtype));
	if (t->rank < 0 || t->rank > MPCC_MAX_RANK)
		return mpcc_diag_error(d, MPCC_ERR_INVALID, ".npy: rank %d out of range", t->rank);
	for (int i = 0; i < t->rank; i++)
		if (t->dims[i] < 0 || __builtin_mul_overflow(n, (size_t)t->dims[i], &n))
			return mpcc_diag_error(d, MPCC_ERR_INVALID, ".npy: bad shape");
	if (n != t->nbytes || (n && !t->data))
		return mpcc_diag_error(d, MPCC_ERR_INVALID, ".npy: %zu bytes given, shape needs %zu",
		                       t->nbytes, n);
	used = (size_t)snprintf(hdr, sizeof(hdr), "{'descr': '%c%s', 'fortran_order': False, "
	                        "'shape': (", mpcc_dtype_size(t->dtype) == 1 ? '|' : '<', code);
	for (int i = 0; i < t->rank; i++)
		used += (size_t)snprintf(hdr + used, sizeof(hdr) - used, "%lld,%s",
		                         (long long)t->dims[i], i + 1 < t->rank ? " " : "");
	if (t->rank > 1)
		used--; /* NumPy writes (2, 3) but (3,) */
	used += (size_t)snprintf(hdr + used, sizeof(hdr) - used, "), }");
	/* Magic, version, length, header padded with spaces to a multiple of
	 * 64 bytes in all, ending in '\n'. */
	size_t pre = 10, total = (pre + used + 1 + 63) / 64 * 64;
	size_t hlen = total - pre;
	uint8_t *b = malloc(total + n);
	if (!b)
		return mpcc_diag_error(d, MPCC_ERR_NOMEM, ".npy: out of memory");
	memcpy(b, "\x93NUMPY\x01\x00", 8);
	b[8] = (uint8_t)hlen;
	b[9] = (uint8_t)(hlen >> 8);
	memcpy(b + pre, hdr, used);
	memset(b + pre + used, ' ', hlen - used - 1);
	b[total - 1] = '\n';
	if (n)
		memcpy(b + total, t->data, n);
	*out = b;
	*out_size = total + n;
	return MPCC_OK;
}

mpcc_status
mpcc_npy_write_file(const char *path, const mpcc_tensor *t, mpcc_diag *d)
{
	void *buf;
	size_t size;
	mpcc_status st = mpcc_npy_write_buffer(t, &buf, &size, d);

	if (st != MPCC_OK)
		return st;
	st = mpcc_write_whole_file(path, buf, size, d);
	free(buf);
	return st;
}
