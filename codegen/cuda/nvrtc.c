/*
 * nvrtc.c - NVRTC driver: source -> cubin or PTX for one architecture.
 *
 * Creates a program, compiles it with mpcc's fixed options, and copies the
 * image and the log out so the program can be destroyed at once. The
 * architecture is checked against nvrtcGetSupportedArchs first, so an
 * unknown one is reported as unsupported rather than as a compile error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nvrtc.h>

#include "codegen/cuda/nvrtc.h"

void
mpcc_nvrtc_result_fini(mpcc_nvrtc_result *r)
{
	free(r->image);
	free(r->log);
	memset(r, 0, sizeof(*r));
}

void
mpcc_nvrtc_version(char *buf, size_t n)
{
	int major = 0, minor = 0;

	nvrtcVersion(&major, &minor);
	snprintf(buf, n, "NVRTC %d.%d", major, minor);
}

int
mpcc_nvrtc_version_number(void)
{
	int major = 0, minor = 0;

	if (nvrtcVersion(&major, &minor) != NVRTC_SUCCESS)
		return 0;
	return major * 1000 + minor * 10;
}

/*
 * Why the options are fixed: --fmad=false forbids contracting a*b+c into
 * an FMA, which would round once where the kernel IR rounds twice and break
 * agreement with the CPU backend; the precise division, square root and
 * denormal settings are NVRTC's defaults, restated so a change in defaults
 * cannot change results.
 */
#define OPT_FMAD "--fmad=false"
#define OPT_DIV "--prec-div=true"
#define OPT_SQRT "--prec-sqrt=true"
#define OPT_FTZ "--ftz=false"
#define OPT_STD "--std=c++17"
static const char *const fixed_opts[] = {OPT_FMAD, OPT_DIV, OPT_SQRT, OPT_FTZ, OPT_STD};
#define N_FIXED (sizeof(fixed_opts) / sizeof(fixed_opts[0]))

const char *
mpcc_nvrtc_options(void)
{
	return OPT_FMAD " " OPT_DIV " " OPT_SQRT " " OPT_FTZ " " OPT_STD;
}

static bool
arch_supported(int sm)
{
	int n = 0, *archs;
	bool ok = false;

	if (nvrtcGetNumSupportedArchs(&n) != NVRTC_SUCCESS || n <= 0)
		return false;
	archs = malloc(sizeof(int) * (size_t)n);
	if (!archs)
		return false;
	if (nvrtcGetSupportedArchs(archs) == NVRTC_SUCCESS)
		for (int i = 0; i < n; i++)
			ok |= archs[i] == sm;
	free(archs);
	return ok;
}

int
mpcc_nvrtc_newest_arch(int at_most)
{
	int n = 0, *archs, best = 0;

	if (nvrtcGetNumSupportedArchs(&n) != NVRTC_SUCCESS || n <= 0)
		return 0;
	archs = malloc(sizeof(int) * (size_t)n);
	if (!archs)
		return 0;
	if (nvrtcGetSupportedArchs(archs) == NVRTC_SUCCESS)
		for (int i = 0; i < n; i++)
			if (archs[i] <= at_most && archs[i] > best)
				best = archs[i];
	free(archs);
	return best;
}

/* The log's first line that reports an error, for a one-line message. */
static void
first_error(const char *log, char *buf, size_t n)
{
	const char *p = strstr(log, "error");
	const char *s, *e;

	if (!p) {
		snprintf(buf, n, "%s", log[0] ? log : "(empty log)");
	} else {
		for (s = p; s > log && s[-1] != '\n'; s--)
			;
		e = strchr(p, '\n');
		snprintf(buf, n, "%.*s", (int)(e ? e - s : (ptrdiff_t)strlen(s)), s);
	}
	if (strchr(buf, '\n'))
		*strchr(buf, '\n') = 0;
}

/* Compiles with the architecture option and fixed_opts (see above). */
mpcc_status
mpcc_nvrtc_compile(const char *src, const char *name, int sm, bool ptx, bool verbose,
                   mpcc_nvrtc_result *out, mpcc_diag *d)
{
	char arch[64], msg[400];
	const char *opts[8];
	int n_opts = 0;
	nvrtcProgram prog;
	nvrtcResult r;
	size_t size = 0;
	mpcc_status st = MPCC_OK;

	memset(out, 0, sizeof(*out));
	if (!arch_supported(sm))
		return mpcc_diag_error(d, MPCC_ERR_UNSUPPORTED,
		                       "nvrtc: architecture sm_%d is not supported by this NVRTC",
		                       sm);
	snprintf(arch, sizeof(arch), "--gpu-architecture=%s_%d", ptx ? "compute" : "sm", sm);
	opts[n_opts++] = arch;
	for (size_t i = 0; i < N_FIXED; i++)
		opts[n_opts++] = fixed_opts[i];
	if (verbose && !ptx)
		opts[n_opts++] = "--ptxas-options=-v";
	r = nvrtcCreateProgram(&prog, src, name, 0, NULL, NULL);
	if (r != NVRTC_SUCCESS)
		return mpcc_diag_error(
		    d, r == NVRTC_ERROR_OUT_OF_MEMORY ? MPCC_ERR_NOMEM : MPCC_ERR_BACKEND,
		    "nvrtc: creating program %s: %s", name, nvrtcGetErrorString(r));
	r = nvrtcCompileProgram(prog, n_opts, opts);
	if (nvrtcGetProgramLogSize(prog, &size) == NVRTC_SUCCESS && (out->log = malloc(size + 1))) {
		if (nvrtcGetProgramLog(prog, out->log) != NVRTC_SUCCESS)
			out->log[0] = 0;
		out->log[size] = 0;
	}
	if (!out->log) {
		st = mpcc_diag_error(d, MPCC_ERR_NOMEM, "nvrtc: out of memory reading the log");
		goto done;
	}
	if (r != NVRTC_SUCCESS) {
		first_error(out->log, msg, sizeof(msg));
		st = mpcc_diag_error(d, MPCC_ERR_BACKEND, "nvrtc: compiling %s for sm_%d: %s: %s",
		                     name, sm, nvrtcGetErrorString(r), msg);
		goto done;
	}
	r = ptx ? nvrtcGetPTXSize(prog, &size) : nvrtcGetCUBINSize(prog, &size);
	if (r == NVRTC_SUCCESS) {
		if (!(out->image = malloc(size + 1))) {
			st = mpcc_diag_error(d, MPCC_ERR_NOMEM,
			                     "nvrtc: out of memory for the image");
			goto done;
		}
		r = ptx ? nvrtcGetPTX(prog, out->image) : nvrtcGetCUBIN(prog, out->image);
		((char *)out->image)[size] = 0;
		out->image_size = size;
	}
	if (r != NVRTC_SUCCESS)
		st = mpcc_diag_error(d, MPCC_ERR_BACKEND, "nvrtc: reading the %s of %s: %s",
		                     ptx ? "PTX" : "cubin", name, nvrtcGetErrorString(r));
done:
	nvrtcDestroyProgram(&prog);
	return st;
}
