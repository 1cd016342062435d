/*
 * npz.c - reading NumPy's .npz archives: a zip file of .npy members.
 *
 * The central directory is the authority, as in every zip reader: find the
 * end-of-central-directory record at the end of the file, walk the
 * directory's entries, and for each follow its offset to the local header,
 * which only says where the data starts (its sizes may be zero, with a
 * data descriptor after the data, or 0xffffffff with a zip64 extra field,
 * which NumPy always writes since gh-10776). Only stored members are read;
 * their bytes go to runtime/npy.c. Every record is bounds-checked before
 * it is read and every member's CRC-32 is verified, so a damaged archive is
 * refused with one line naming the member, never read out of bounds.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/api_internal.h"
#include "runtime/npy.h"
#include "runtime/npz.h"

#define SIG_LOCAL 0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_END 0x06054b50u
#define SIG_END64_LOC 0x07064b50u
#define SIG_DESCRIPTOR 0x08074b50u
#define END_SIZE 22
#define CENTRAL_SIZE 46
#define LOCAL_SIZE 30
#define FLAG_ENCRYPTED 0x0001
#define FLAG_DESCRIPTOR 0x0008
#define METHOD_STORED 0
#define METHOD_DEFLATE 8

static uint32_t
rd16(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8;
}

static uint32_t
rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* CRC-32 (zip, reflected polynomial 0xedb88320), four bits at a time. */
static uint32_t
crc32(const uint8_t *p, size_t n)
{
	static const uint32_t t[16] = {
		0x00000000, 0x1db71064, 0x3b6e20c8, 0x26d930ac, 0x76dc4190, 0x6b6b51f4,
		0x4db26158, 0x5005713c, 0xedb88320, 0xf00f9344, 0xd6d6a3e8, 0xcb61b38c,
		0x9b64c2b0, 0x86d3d2d4, 0xa00ae278, 0xbdbdf21c,
	};
	uint32_t c = 0xffffffffu;

	for (size_t i = 0; i < n; i++) {
		c = (c >> 4) ^ t[(c ^ p[i]) & 15];
		c = (c >> 4) ^ t[(c ^ (p[i] >> 4)) & 15];
	}
	return c ^ 0xffffffffu;
}

void
mpcc_npz_fini(mpcc_npz *z)
{
	for (int i = 0; z->t && i < z->n; i++) {
		free((char *)z->t[i].name);
		free(z->t[i].data);
	}
	free(z->t);
	z->t = NULL;
	z->n = 0;
}

const mpcc_tensor *
mpcc_npz_find(const mpcc_npz *z, const char *name)
{
	for (int i = 0; i < z->n; i++)
		if (strcmp(z->t[i].name, name) == 0)
			return &z->t[i];
	return NULL;
}

/* The end record: the last signature from which the record and its comment
 * reach exactly the end of the file. */
static mpcc_status
find_end(const uint8_t *b, size_t size, size_t *out, mpcc_diag *d)
{
	if (size < END_SIZE)
		return mpcc_diag_error(d, MPCC_ERR_INVALID, "not a .npz (zip) file: too short");
	size_t lo = size - END_SIZE > 0xffff ? size - END_SIZE - 0xffff : 0;
	for (size_t pos = size - END_SIZE + 1; pos-- > lo;) {
		if (rd32(b + pos) == SIG_END && pos + END_SIZE + rd16(b + pos + 20) == size) {
			*out = pos;
			return MPCC_OK;
		}
	}
	if (size >= 4 && rd32(b) == SIG_LOCAL)
		return mpcc_diag_error(d, MPCC_ERR_INVALID,
		                       "damaged .npz: no end-of-central-directory record (truncated?)");
	return mpcc_diag_error(d, MPCC_ERR_INVALID, "not a .npz (zip) file");
}

/* A zip64 extra field (id 1) among the local header's extra fields. */
static bool
has_zip64_extra(const uint8_t *e, size_t n)
{
	for (size_t pos = 0; pos < n && n - pos >= 4;) {
		uint32_t id = rd16(e + pos), len = rd16(e + pos + 2);
		if (id == 1)
			return true;
		pos += 4 + (size_t)len;
	}
	return false;
}

/* One central directory entry, already bounds-checked, with its name. */
typedef struct entry {
	const uint8_t *name;
	uint32_t name_len, flags, method, crc, csize, usize, local;
} entry;

static mpcc_status
member_error(mpcc_diag *d, mpcc_status st, const entry *e, const char *what)
{
	return mpcc_diag_error(d, st, "%s.npz member '%.*s': %s",
	                       st == MPCC_ERR_INVALID ? "damaged " : "",
	                       (int)(e->name_len > 200 ? 200 : e->name_len), (const char *)e->name,
	                       what);
}

/*
 * Where the member's bytes are. The local header repeats the method and
 * name (checked); its sizes are not trusted: with a data descriptor they are
 * zero, with NumPy's zip64 extra field 0xffffffff. A descriptor, when the
 * flag announces one, must agree with the directory.
 */
static mpcc_status
locate_data(const uint8_t *b, size_t cd_off, const entry *e, const uint8_t **out, mpcc_diag *d)
{
	if (e->local > cd_off || cd_off - e->local < LOCAL_SIZE)
		return member_error(d, MPCC_ERR_INVALID, e, "local header outside the archive");
	const uint8_t *h = b + e->local;
	if (rd32(h) != SIG_LOCAL)
		return member_error(d, MPCC_ERR_INVALID, e, "bad local header signature");
	uint32_t name_len = rd16(h + 26), extra_len = rd16(h + 28);
	size_t start = (size_t)e->local + LOCAL_SIZE + name_len + extra_len;
	if (start > cd_off || cd_off - start < e->csize)
		return member_error(d, MPCC_ERR_INVALID, e, "data runs past the central directory");
	if (rd16(h + 8) != e->method || name_len != e->name_len ||
	    memcmp(h + LOCAL_SIZE, e->name, name_len) != 0)
		return member_error(d, MPCC_ERR_INVALID, e,
		                    "local header disagrees with the central directory");
	bool zip64 = has_zip64_extra(h + LOCAL_SIZE + name_len, extra_len);
	uint32_t lc = rd32(h + 18), lu = rd32(h + 22);
	bool sizes_ok = (lc == e->csize && lu == e->usize) ||
	                (zip64 && lc == 0xffffffffu && lu == 0xffffffffu) ||
	                ((e->flags & FLAG_DESCRIPTOR) && lc == 0 && lu == 0);
	if (!sizes_ok)
		return member_error(d, MPCC_ERR_INVALID, e,
		                    "local header sizes disagree with the central directory");
	if (e->flags & FLAG_DESCRIPTOR) {
		size_t pos = start + e->csize, w = zip64 ? 8 : 4;
		if (cd_off - pos >= 4 && rd32(b + pos) == SIG_DESCRIPTOR)
			pos += 4;
		if (cd_off - pos < 4 + 2 * w)
			return member_error(d, MPCC_ERR_INVALID, e, "data descriptor truncated");
		uint64_t dc = rd32(b + pos + 4), du = rd32(b + pos + 4 + w);
		if (zip64) {
			dc |= (uint64_t)rd32(b + pos + 8) << 32;
			du |= (uint64_t)rd32(b + pos + 16) << 32;
		}
		if (rd32(b + pos) != e->crc || dc != e->csize || du != e->usize)
			return member_error(d, MPCC_ERR_INVALID, e,
			                    "data descriptor disagrees with the central directory");
	}
	*out = b + start;
	return MPCC_OK;
}

/* Reads directory entry e's array into t (name without ".npy"). */
static mpcc_status
read_member(const uint8_t *b, size_t cd_off, const entry *e, mpcc_tensor *t, mpcc_diag *d)
{
	const uint8_t *data = NULL;
	mpcc_diag md;
	mpcc_status st;
	char what[400];

	if (e->flags & FLAG_ENCRYPTED)
		return member_error(d, MPCC_ERR_UNSUPPORTED, e, "encrypted members are not supported");
	if (e->method == METHOD_DEFLATE)
		return member_error(d, MPCC_ERR_UNSUPPORTED, e,
		                    "compressed (deflate); write the file with np.savez, not "
		                    "np.savez_compressed");
	if (e->method != METHOD_STORED) {
		snprintf(what, sizeof(what), "compression method %u is not supported (use np.savez)",
		         e->method);
		return member_error(d, MPCC_ERR_UNSUPPORTED, e, what);
	}
	if (e->csize == 0xffffffffu || e->usize == 0xffffffffu || e->local == 0xffffffffu)
		return member_error(d, MPCC_ERR_UNSUPPORTED, e, "zip64 members (over 4 GiB) are not "
		                    "supported");
	if (e->csize != e->usize)
		return member_error(d, MPCC_ERR_INVALID, e, "stored size differs from its size");
	if (e->name_len <= 4 || memcmp(e->name + e->name_len - 4, ".npy", 4) != 0 ||
	    memchr(e->name, 0, e->name_len))
		return member_error(d, MPCC_ERR_INVALID, e, "not an .npy member (np.savez names "
		                    "them NAME.npy)");
	if ((st = locate_data(b, cd_off, e, &data, d)) != MPCC_OK)
		return st;
	if (crc32(data, e->csize) != e->crc)
		return member_error(d, MPCC_ERR_INVALID, e, "CRC-32 mismatch");
	mpcc_diag_init(&md);
	if ((st = mpcc_npy_read_buffer(data, e->csize, t, &md)) != MPCC_OK)
		return member_error(d, st, e, md.msg);
	char *name = strndup((const char *)e->name, e->name_len - 4);
	if (!name) {
		free(t->data);
		t->data = NULL;
		return mpcc_diag_error(d, MPCC_ERR_NOMEM, "out of memory reading a .npz");
	}
	t->name = name;
	return MPCC_OK;
}

mpcc_status
mpcc_npz_read_buffer(const void *buf, size_t size, mpcc_npz *out, mpcc_diag *d)
{
	const uint8_t *b = buf;
	size_t end = 0;
	mpcc_status st;

	out->n = 0;
	out->t = NULL;
	if ((st = find_end(b, size, &end, d)) != MPCC_OK)
		return st;
	const uint8_t *e = b + end;
	uint32_t disk = rd16(e + 4), cd_disk = rd16(e + 6), n_here = rd16(e + 8), n = rd16(e + 10);
	uint32_t cd_size = rd32(e + 12), cd_off = rd32(e + 16);
	if (n == 0xffff || cd_size == 0xffffffffu || cd_off == 0xffffffffu ||
	    (end >= 20 && rd32(b + end - 20) == SIG_END64_LOC && (uint64_t)cd_off + cd_size != end))
		return mpcc_diag_error(d, MPCC_ERR_UNSUPPORTED,
		                       ".npz: zip64 archives (over 4 GiB or 65535 arrays) are not "
		                       "supported");
	if (disk != 0 || cd_disk != 0 || n_here != n)
		return mpcc_diag_error(d, MPCC_ERR_UNSUPPORTED,
		                       ".npz: multi-disk archives are not supported");
	/* The directory ends where its end record starts (nothing is prepended
	 * to an archive NumPy writes). */
	if (cd_off > end || (size_t)cd_off + cd_size != end)
		return mpcc_diag_error(d, MPCC_ERR_INVALID,
		                       "damaged .npz: the central directory (%u bytes at %u) does not "
		                       "end at its end record (%zu)", cd_size, cd_off, end);
	out->t = calloc((size_t)n + 1, sizeof(mpcc_tensor));
	if (!out->t)
		return mpcc_diag_error(d, MPCC_ERR_NOMEM, "out of memory reading a .npz");
	size_t pos = cd_off, cd_end = (size_t)cd_off + cd_size;
	for (uint32_t i = 0; i < n; i++) {
		if (cd_end - pos < CENTRAL_SIZE || rd32(b + pos) != SIG_CENTRAL) {
			st = mpcc_diag_error(d, MPCC_ERR_INVALID,
			                     "damaged .npz: central directory entry %u of %u is bad", i, n);
			goto fail;
		}
		const uint8_t *c = b + pos;
		entry en = {
			.name = c + CENTRAL_SIZE, .name_len = rd16(c + 28), .flags = rd16(c + 8),
			.method = rd16(c + 10), .crc = rd32(c + 16), .csize = rd32(c + 20),
			.usize = rd32(c + 24), .local = rd32(c + 42),
		};
		size_t len = CENTRAL_SIZE + (size_t)en.name_len + rd16(c + 30) + rd16(c + 32);
		if (cd_end - pos < len) {
			st = mpcc_diag_error(d, MPCC_ERR_INVALID,
			                     "damaged .npz: central directory entry %u of %u runs past "
			                     "the directory", i, n);
			goto fail;
		}
		pos += len;
		if ((st = read_member(b, cd_off, &en, &out->t[out->n], d)) != MPCC_OK)
			goto fail;
		out->n++;
		if (mpcc_npz_find(out, out->t[out->n - 1].name) != &out->t[out->n - 1]) {
			st = member_error(d, MPCC_ERR_INVALID, &en, "the archive holds it twice");
			goto fail;
		}
	}
	if (pos != cd_end) {
		st = mpcc_diag_error(d, MPCC_ERR_INVALID,
		                     "damaged .npz: %zu bytes after the central directory's %u "
		                     "entries", cd_end - pos, n);
		goto fail;
	}
	return MPCC_OK;
fail:
	mpcc_npz_fini(out);
	return st;
}

mpcc_status
mpcc_npz_read_file(const char *path, mpcc_npz *out, mpcc_diag *d)
{
	void *buf;
	size_t size;
	mpcc_status st;

	out->n = 0;
	out->t = NULL;
	st = mpcc_read_whole_file(path, &buf, &size, d);
	if (st != MPCC_OK)
		return st;
	st = mpcc_npz_read_buffer(buf, size, out, d);
	free(buf);
	if (st != MPCC_OK)
		mpcc_diag_prefix(d, path);
	return st;
}
