/*
 * plan_cuda.c - section CUDA of the plan: the kernels' CUDA source and the
 * GPU binaries NVRTC made of it at compile time (docs/plan-format.md), and
 * the rules for which binary runs on which GPU.
 *
 * The section is what lets a plan start on a GPU without compiling: the
 * cuda backend (runtime/backend_cuda.c) loads the stored cubin for the
 * device, or the PTX, and only when neither fits compiles the source with
 * NVRTC (through runtime/cuda_cache.c). Everything here is host code with
 * no CUDA dependency, so every build reads, checks and lists the section,
 * also one without the toolkit; only mpcc_plan_cuda_build needs NVRTC
 * (runtime/plan_cuda_build.c, or the no-toolkit variant in runtime/backend_cuda_none.c).
 *
 * The loader checks the layout and each image's self-description (a cubin
 * is an ELF file, PTX is text), not that the images were compiled from the
 * stored source: the checksum of the file covers accidents, and the cuda
 * backend compares the stored source with what this mpcc emits for the
 * plan's kernels before it trusts any image.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/plan.h"

#define CUDA_VERSION_LAYOUT 1
#define MAX_IMAGES 64
#define IMAGE_HEADER 24 /* kind, arch, NVRTC version, reserved, size */

static const uint8_t elf_magic[4] = {0x7f, 'E', 'L', 'F'};

/* ---------------------------------------------------------------- rules */

const char *
mpcc_cuda_image_name(char *buf, size_t n, mpcc_cuda_image_kind kind, int arch)
{
	snprintf(buf, n, "%s %s_%d", kind == MPCC_CUDA_IMAGE_PTX ? "PTX" : "cubin",
	         kind == MPCC_CUDA_IMAGE_PTX ? "compute" : "sm", arch);
	return buf;
}

/*
 * Why the cubin rule is "same major, minor at least": NVIDIA's binary
 * compatibility guarantee runs forward within a major version only (an
 * sm_80 cubin runs on 8.6 and 8.9, never on 9.0), and a cubin for a
 * higher minor uses instructions the lower one lacks. PTX is forward
 * compatible across majors because the driver compiles it for the device.
 */
bool
mpcc_cuda_image_runs_on(mpcc_cuda_image_kind kind, int arch, int device_arch)
{
	if (arch <= 0 || device_arch <= 0)
		return false;
	if (kind == MPCC_CUDA_IMAGE_PTX)
		return arch <= device_arch;
	return kind == MPCC_CUDA_IMAGE_CUBIN && arch / 10 == device_arch / 10 &&
	       arch % 10 <= device_arch % 10;
}

/* Preference of a fitting image: lower is better. */
static int
rank(const mpcc_plan_cuda_image *im, int device_arch)
{
	if (im->kind == MPCC_CUDA_IMAGE_CUBIN)
		return im->arch == device_arch ? 0 : 1000 - im->arch;
	return 2000 - im->arch;
}

int
mpcc_plan_cuda_candidates(const mpcc_plan_cuda *c, int device_arch, int *out, int max)
{
	int n = 0;

	for (int i = 0; c && i < c->n_images && n < max; i++) {
		const mpcc_plan_cuda_image *im = &c->images[i];
		if (!mpcc_cuda_image_runs_on(im->kind, im->arch, device_arch))
			continue;
		/* insertion by rank; ties (no duplicates are loaded) keep order */
		int at = n++;
		while (at > 0 &&
		       rank(&c->images[out[at - 1]], device_arch) > rank(im, device_arch)) {
			out[at] = out[at - 1];
			at--;
		}
		out[at] = i;
	}
	return n;
}

/* One item of a --cuda-archs list: "80", "sm_80" or "compute_90". */
static bool
parse_target(const char *s, size_t len, mpcc_cuda_target *t)
{
	char buf[32], *end;
	const char *num = buf;
	long v;

	if (len == 0 || len >= sizeof(buf))
		return false;
	memcpy(buf, s, len);
	buf[len] = 0;
	t->kind = MPCC_CUDA_IMAGE_CUBIN;
	if (strncmp(buf, "sm_", 3) == 0) {
		num = buf + 3;
	} else if (strncmp(buf, "compute_", 8) == 0) {
		num = buf + 8;
		t->kind = MPCC_CUDA_IMAGE_PTX;
	}
	if (*num < '1' || *num > '9')
		return false;
	v = strtol(num, &end, 10);
	if (*end || v < 10 || v > 999)
		return false;
	t->arch = (int)v;
	return true;
}

mpcc_status
mpcc_cuda_targets_parse(const char *spec, mpcc_cuda_target *out, int *out_n, mpcc_diag *d)
{
	int n = 0;

	*out_n = 0;
	if (!spec || strcmp(spec, "none") == 0)
		return MPCC_OK;
	if (strcmp(spec, "default") == 0) {
		out[0] = (mpcc_cuda_target){MPCC_CUDA_IMAGE_CUBIN, 80};
		out[1] = (mpcc_cuda_target){MPCC_CUDA_IMAGE_CUBIN, 90};
		out[2] = (mpcc_cuda_target){MPCC_CUDA_IMAGE_PTX, 90};
		*out_n = 3;
		return MPCC_OK;
	}
	for (const char *s = spec;;) {
		const char *comma = strchr(s, ',');
		size_t len = comma ? (size_t)(comma - s) : strlen(s);
		mpcc_cuda_target t;
		if (!parse_target(s, len, &t))
			return mpcc_diag_error(d, MPCC_ERR_INVALID,
			                       "--cuda-archs: '%.*s' is no architecture (want e.g. "
			                       "80, sm_90 or compute_90; or default, none)",
			                       (int)len, s);
		for (int i = 0; i < n; i++)
			if (out[i].kind == t.kind && out[i].arch == t.arch)
				return mpcc_diag_error(d, MPCC_ERR_INVALID,
				                       "--cuda-archs: '%.*s' given twice", (int)len,
				                       s);
		if (n == MPCC_CUDA_MAX_TARGETS)
			return mpcc_diag_error(d, MPCC_ERR_INVALID,
			                       "--cuda-archs: more than %d architectures",
			                       MPCC_CUDA_MAX_TARGETS);
		out[n++] = t;
		if (!comma)
			break;
		s = comma + 1;
	}
	*out_n = n;
	return MPCC_OK;
}

/* ---------------------------------------------------------------- memory */

void
mpcc_plan_cuda_free(mpcc_plan_cuda *c)
{
	if (!c)
		return;
	for (int i = 0; i < c->n_images; i++)
		free(c->images[i].data);
	free(c->images);
	free(c->source);
	free(c);
}

/* ---------------------------------------------------------------- writing */

void
mpcc_plan_cuda_write(kir_writer *w, const mpcc_plan *p)
{
	const mpcc_plan_cuda *c = p->cuda;
	size_t len = strlen(c->source);

	mpcc_plan_put_u32(w, CUDA_VERSION_LAYOUT);
	mpcc_plan_put_u64(w, len);
	kir_write_bytes(w, c->source, len);
	mpcc_plan_put_u32(w, (uint32_t)c->n_images);
	for (int i = 0; i < c->n_images; i++) {
		const mpcc_plan_cuda_image *im = &c->images[i];
		mpcc_plan_put_u32(w, (uint32_t)im->kind);
		mpcc_plan_put_u32(w, (uint32_t)im->arch);
		mpcc_plan_put_u32(w, (uint32_t)im->nvrtc_version);
		mpcc_plan_put_u32(w, 0);
		mpcc_plan_put_u64(w, im->size);
		kir_write_bytes(w, im->data, im->size);
	}
}

/* ---------------------------------------------------------------- reading */

#define DAMAGED(...) mpcc_plan_damaged(d, "CUDA", __VA_ARGS__)

/* Image i: its 24-byte header, then its bytes. */
static mpcc_status
read_image(mpcc_plan_cuda *c, mpcc_plan_reader *r, uint32_t i, mpcc_diag *d)
{
	uint32_t kind = mpcc_plan_get_u32(r), arch = mpcc_plan_get_u32(r),
	         nvrtc = mpcc_plan_get_u32(r), zero = mpcc_plan_get_u32(r);
	uint64_t size = mpcc_plan_get_u64(r);
	mpcc_plan_cuda_image *im = &c->images[i];
	const uint8_t *b;
	char name[48];

	if (r->short_read)
		return DAMAGED("image %u: truncated header", i);
	if (kind != MPCC_CUDA_IMAGE_CUBIN && kind != MPCC_CUDA_IMAGE_PTX)
		return DAMAGED("image %u: unknown kind %u", i, kind);
	if (arch < 10 || arch > 999)
		return DAMAGED("image %u: architecture %u out of range", i, arch);
	mpcc_cuda_image_name(name, sizeof(name), (mpcc_cuda_image_kind)kind, (int)arch);
	if (zero != 0)
		return DAMAGED("image %u (%s): reserved field not zero", i, name);
	if (size == 0 || size > r->size - r->pos)
		return DAMAGED("image %u (%s): %llu bytes, the section holds %zu more", i, name,
		               (unsigned long long)size, r->size - r->pos);
	for (uint32_t k = 0; k < i; k++)
		if (c->images[k].kind == (mpcc_cuda_image_kind)kind &&
		    c->images[k].arch == (int)arch)
			return DAMAGED("image %u (%s) appears twice", i, name);
	b = mpcc_plan_get_bytes(r, (size_t)size);
	if (kind == MPCC_CUDA_IMAGE_CUBIN && (size < 4 || memcmp(b, elf_magic, 4) != 0))
		return DAMAGED("image %u (%s): not an ELF file", i, name);
	if (kind == MPCC_CUDA_IMAGE_PTX && memchr(b, 0, (size_t)size))
		return DAMAGED("image %u (%s): PTX holds a NUL byte", i, name);
	im->data = malloc((size_t)size + 1);
	if (!im->data)
		return mpcc_diag_error(d, MPCC_ERR_NOMEM, "out of memory loading the plan");
	memcpy(im->data, b, (size_t)size);
	im->data[size] = 0;
	im->size = (size_t)size;
	im->kind = (mpcc_cuda_image_kind)kind;
	im->arch = (int)arch;
	im->nvrtc_version = (int)nvrtc;
	c->n_images = (int)i + 1;
	return MPCC_OK;
}

/*
 * Why images are copied out of the file's buffer: the loader frees that
 * buffer, and a private copy with a NUL after it is what
 * cuModuleLoadData wants for PTX (and harmless for a cubin).
 */
mpcc_status
mpcc_plan_cuda_read(mpcc_plan *p, const uint8_t *b, size_t size, mpcc_diag *d)
{
	mpcc_plan_reader r = {b, size, 0, false};
	uint32_t version = mpcc_plan_get_u32(&r), n;
	uint64_t len = mpcc_plan_get_u64(&r);
	const uint8_t *src;
	mpcc_plan_cuda *c;

	if (r.short_read)
		return DAMAGED("truncated header");
	if (version == 0 || version > CUDA_VERSION_LAYOUT)
		return DAMAGED("layout version %u, this mpcc reads %d", version,
		               CUDA_VERSION_LAYOUT);
	if (len == 0 || len > r.size - r.pos)
		return DAMAGED("source of %llu bytes, the section holds %zu more",
		               (unsigned long long)len, r.size - r.pos);
	src = mpcc_plan_get_bytes(&r, (size_t)len);
	if (memchr(src, 0, (size_t)len))
		return DAMAGED("source holds a NUL byte");
	n = mpcc_plan_get_u32(&r);
	if (r.short_read)
		return DAMAGED("truncated image count");
	if (n > MAX_IMAGES || n > (r.size - r.pos) / IMAGE_HEADER)
		return DAMAGED("image count %u exceeds the section (or %d)", n, MAX_IMAGES);
	c = calloc(1, sizeof(*c));
	if (c) {
		c->source = malloc((size_t)len + 1);
		c->images = calloc((size_t)n + 1, sizeof(*c->images));
	}
	if (!c || !c->source || !c->images) {
		mpcc_plan_cuda_free(c);
		return mpcc_diag_error(d, MPCC_ERR_NOMEM, "out of memory loading the plan");
	}
	memcpy(c->source, src, (size_t)len);
	c->source[len] = 0;
	p->cuda = c; /* owned by the plan from here, also on failure */
	for (uint32_t i = 0; i < n; i++)
		if (read_image(c, &r, i, d) != MPCC_OK)
			return d->status;
	if (r.pos != r.size)
		return DAMAGED("%zu trailing bytes", r.size - r.pos);
	return MPCC_OK;
}
