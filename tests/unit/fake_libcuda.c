/*
 * fake_libcuda.c - a stand-in for the NVIDIA driver (built as
 * libcuda.so.1 in BUILD/fakecuda/), so the cuda backend's driver code runs
 * and is checked on machines without a GPU (tests/unit/test_cuda_fake.c).
 *
 * It implements the driver entry points runtime/backend_cuda.c resolves,
 * under the same versioned names, with "device" memory in host memory, and
 * is strict where the real driver is: calls before cuInit, device ranges
 * outside an allocation, a cubin whose architecture does not run on the
 * device (the sm_XY rule, read from the ELF header as NVRTC 12/13 write
 * it), PTX for a newer target or a newer PTX ISA than it accepts, a
 * function the module lacks, stream-ordered calls during capture (which
 * invalidate it), resources leaked or freed twice. Kernels run on the host
 * through a runner the test installs (test_cuda_fake.c runs the plan's
 * kernel IR with the interpreter), called with the function's name and its
 * arguments; without one, launches only check their arguments. A captured
 * graph records each launch's argument values and replays them at
 * cuGraphLaunch, as the real one does.
 *
 * The test steers it through fakecuda_* functions (found with dlsym):
 * the device's compute capability, the number of devices, the newest PTX
 * ISA accepted, and a call to fail (by name, or the Nth call counted) with
 * a given error. It counts what the test asserts on: resources alive,
 * synchronisations, graph launches, asynchronous copies from memory that
 * is not pinned, and what image the last module was loaded from.
 *
 * Conventions the fake relies on: kernel parameter arrays end with a NULL
 * (mpcc's do), so it can read the arguments without knowing the kernel.
 * Not thread safe; one test process, one thread.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define API __attribute__((visibility("default")))

typedef int CUresult;
typedef unsigned long long CUdeviceptr;

enum {
	OK = 0,
	INVALID_VALUE = 1,
	OUT_OF_MEMORY = 2,
	NOT_INITIALIZED = 3,
	NO_DEVICE = 100,
	INVALID_DEVICE = 101,
	INVALID_IMAGE = 200,
	INVALID_CONTEXT = 201,
	NO_BINARY_FOR_GPU = 209,
	INVALID_PTX = 218,
	UNSUPPORTED_PTX_VERSION = 222,
	INVALID_HANDLE = 400,
	NOT_FOUND = 500,
	LAUNCH_FAILED = 719,
	NOT_SUPPORTED = 801,
	CAPTURE_UNSUPPORTED = 900,
	CAPTURE_INVALIDATED = 901,
	CAPTURE_UNMATCHED = 903,
	UNKNOWN = 999,
};

#define MAX_ARGS 64
#define MAX_LIVE 4096

/* Runs function `name` on args (device pointers, which are host memory
 * here); nonzero means the launch failed. */
typedef int (*fakecuda_runner)(void *user, const char *name, void **args, int n_args);

typedef struct fn {
	char name[128];
	struct fn *next;
} fn;

typedef struct module {
	char *image; /* a copy, NUL-terminated */
	size_t size;
	fn *fns;
} module;

typedef struct rec { /* one launch: a function and its argument values */
	fn *f;
	int n_args;
	void *args[MAX_ARGS];
} rec;

typedef struct graph {
	rec *recs;
	int n;
} graph;

typedef struct stream {
	unsigned flags;
	int capturing; /* 0 none, 1 capturing, 2 invalidated */
	int mode;
	graph cap;
} stream;

typedef struct range {
	uint8_t *p;
	size_t n;
} range;

/* What the test reads (keep in step with test_cuda_fake.c). */
typedef struct fakecuda_stats {
	int calls; /* counted calls so far */
	int live_device, live_host, live_modules, live_streams, live_graphs, live_execs;
	int ctx_refs;
	int syncs, graph_launches, launches, pageable_async, capture_mode;
	char loaded[64]; /* "cubin sm_90" or "PTX compute_90": the last module's image */
	char failed[64]; /* the call last failed on purpose */
	int live_events, event_records;
} fakecuda_stats;

static struct {
	bool inited;
	int cc, n_devices, driver_version, ptx_isa; /* ptx_isa: 90 for 9.0 */
	int fail_at, fail_code;
	char fail_name[64];
	fakecuda_runner runner; /* runs launches; NULL: they only check */
	void *runner_user;
	range dev[MAX_LIVE], host[MAX_LIVE];
	fakecuda_stats st;
} F = {false, 90, 1, 13000, 90, 0, 0, "", NULL, NULL, {{0}}, {{0}}, {0}};

static int ctx_token; /* the primary context's handle is its address */

/* The device's clock, in ms: advanced by the host time each executed
 * launch takes, plus 1 us, so events around a launch see a plausible,
 * positive duration. */
static double clock_ms;

typedef struct event {
	bool recorded;
	double at; /* clock_ms when recorded */
} event;

/* ---------------------------------------------------------------- control */

API void
fakecuda_reset(void)
{
	F.inited = false;
	F.cc = 90;
	F.n_devices = 1;
	F.driver_version = 13000;
	F.ptx_isa = 90;
	F.fail_at = 0;
	F.fail_code = 0;
	F.fail_name[0] = 0;
	memset(&F.st, 0, sizeof(F.st));
	clock_ms = 0;
}

API void
fakecuda_set_device(int cc, int n_devices, int ptx_isa)
{
	F.cc = cc;
	F.n_devices = n_devices;
	F.ptx_isa = ptx_isa;
}

/* Fails the call named name (any, if NULL) when it is the nth counted call
 * (every one, if nth is 0), with code. name NULL and nth 0: no failures. */
API void
fakecuda_set_fail(const char *name, int nth, int code)
{
	snprintf(F.fail_name, sizeof(F.fail_name), "%s", name ? name : "");
	F.fail_at = nth;
	F.fail_code = code;
	F.st.calls = 0;
}

/* What runs the kernels (NULL: nothing, launches only check). */
API void
fakecuda_set_runner(fakecuda_runner runner, void *user)
{
	F.runner = runner;
	F.runner_user = user;
}

API const fakecuda_stats *
fakecuda_stats_get(void)
{
	return &F.st;
}

/* ---------------------------------------------------------------- helpers */

/* Counts the call and says whether it is the one to fail. */
static bool
failing(const char *name)
{
	F.st.calls++;
	if (F.fail_name[0] && strcmp(F.fail_name, name) != 0)
		return false;
	if (!F.fail_name[0] && !F.fail_at)
		return false;
	if (F.fail_at != 0 && F.st.calls != F.fail_at)
		return false;
	snprintf(F.st.failed, sizeof(F.st.failed), "%s", name);
	return true;
}

#define ENTER(name)                                                                                \
	do {                                                                                       \
		if (failing(name))                                                                 \
			return F.fail_code;                                                        \
		if (!F.inited)                                                                     \
			return NOT_INITIALIZED;                                                    \
	} while (0)

static bool
track(range *set, void *p, size_t n)
{
	for (int i = 0; i < MAX_LIVE; i++) {
		if (!set[i].p) {
			set[i] = (range){p, n};
			return true;
		}
	}
	return false;
}

static bool
untrack(range *set, void *p)
{
	for (int i = 0; i < MAX_LIVE; i++) {
		if (set[i].p == p) {
			set[i].p = NULL;
			return true;
		}
	}
	return false;
}

/* Whether [p, p+n) lies inside one live range of set. */
static bool
inside(const range *set, const void *p, size_t n)
{
	const uint8_t *b = p;

	for (int i = 0; i < MAX_LIVE; i++)
		if (set[i].p && b >= set[i].p && n <= set[i].n &&
		    b - set[i].p <= (ptrdiff_t)(set[i].n - n))
			return true;
	return false;
}

/* A stream-ordered call on s: refused, and the capture invalidated, while
 * s captures (the real driver captures some of these; mpcc must not make
 * them during capture). */
static CUresult
ordered(stream *s)
{
	if (s && s->capturing) {
		s->capturing = 2;
		return CAPTURE_UNSUPPORTED;
	}
	return OK;
}

/* ---------------------------------------------------------------- init */

API CUresult
cuGetErrorName(CUresult r, const char **out)
{
	static const struct {
		int code;
		const char *name;
	} names[] = {
	    {OK, "CUDA_SUCCESS"},
	    {INVALID_VALUE, "CUDA_ERROR_INVALID_VALUE"},
	    {OUT_OF_MEMORY, "CUDA_ERROR_OUT_OF_MEMORY"},
	    {NOT_INITIALIZED, "CUDA_ERROR_NOT_INITIALIZED"},
	    {NO_DEVICE, "CUDA_ERROR_NO_DEVICE"},
	    {INVALID_DEVICE, "CUDA_ERROR_INVALID_DEVICE"},
	    {INVALID_IMAGE, "CUDA_ERROR_INVALID_IMAGE"},
	    {INVALID_CONTEXT, "CUDA_ERROR_INVALID_CONTEXT"},
	    {NO_BINARY_FOR_GPU, "CUDA_ERROR_NO_BINARY_FOR_GPU"},
	    {INVALID_PTX, "CUDA_ERROR_INVALID_PTX"},
	    {UNSUPPORTED_PTX_VERSION, "CUDA_ERROR_UNSUPPORTED_PTX_VERSION"},
	    {INVALID_HANDLE, "CUDA_ERROR_INVALID_HANDLE"},
	    {NOT_FOUND, "CUDA_ERROR_NOT_FOUND"},
	    {LAUNCH_FAILED, "CUDA_ERROR_LAUNCH_FAILED"},
	    {NOT_SUPPORTED, "CUDA_ERROR_NOT_SUPPORTED"},
	    {CAPTURE_UNSUPPORTED, "CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED"},
	    {CAPTURE_INVALIDATED, "CUDA_ERROR_STREAM_CAPTURE_INVALIDATED"},
	    {CAPTURE_UNMATCHED, "CUDA_ERROR_STREAM_CAPTURE_UNMATCHED"},
	    {UNKNOWN, "CUDA_ERROR_UNKNOWN"},
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (names[i].code == r) {
			*out = names[i].name;
			return OK;
		}
	}
	*out = NULL;
	return INVALID_VALUE;
}

/* NVRTC looks for the driver too and asks it for a private table; the
 * fake has none to give, which NVRTC takes as "no driver features". */
API CUresult
cuGetExportTable(const void **table, const void *id)
{
	if (table)
		*table = NULL;
	return NOT_SUPPORTED;
}

API CUresult
cuInit(unsigned flags)
{
	if (failing("cuInit"))
		return F.fail_code;
	if (flags != 0)
		return INVALID_VALUE;
	F.inited = true;
	return OK;
}

API CUresult
cuDriverGetVersion(int *v)
{
	if (failing("cuDriverGetVersion"))
		return F.fail_code;
	*v = F.driver_version;
	return OK;
}

API CUresult
cuDeviceGetCount(int *n)
{
	ENTER("cuDeviceGetCount");
	*n = F.n_devices;
	return OK;
}

API CUresult
cuDeviceGet(int *dev, int ordinal)
{
	ENTER("cuDeviceGet");
	if (ordinal < 0 || ordinal >= F.n_devices)
		return INVALID_DEVICE;
	*dev = ordinal;
	return OK;
}

API CUresult
cuDeviceGetAttribute(int *v, int attr, int dev)
{
	ENTER("cuDeviceGetAttribute");
	if (dev < 0 || dev >= F.n_devices)
		return INVALID_DEVICE;
	if (attr == 75)
		*v = F.cc / 10;
	else if (attr == 76)
		*v = F.cc % 10;
	else
		return INVALID_VALUE;
	return OK;
}

API CUresult
cuDeviceGetName(char *name, int len, int dev)
{
	ENTER("cuDeviceGetName");
	if (dev < 0 || dev >= F.n_devices || len <= 0)
		return INVALID_VALUE;
	snprintf(name, (size_t)len, "Fake GPU %d.%d", F.cc / 10, F.cc % 10);
	return OK;
}

API CUresult
cuDevicePrimaryCtxRetain(void **ctx, int dev)
{
	ENTER("cuDevicePrimaryCtxRetain");
	if (dev < 0 || dev >= F.n_devices)
		return INVALID_DEVICE;
	*ctx = &ctx_token;
	F.st.ctx_refs++;
	return OK;
}

API CUresult
cuDevicePrimaryCtxRelease_v2(int dev)
{
	ENTER("cuDevicePrimaryCtxRelease_v2");
	if (F.st.ctx_refs <= 0)
		return INVALID_CONTEXT;
	F.st.ctx_refs--;
	return OK;
}

API CUresult
cuCtxSetCurrent(void *ctx)
{
	ENTER("cuCtxSetCurrent");
	return ctx == &ctx_token && F.st.ctx_refs > 0 ? OK : INVALID_CONTEXT;
}

/* ---------------------------------------------------------------- streams */

API CUresult
cuStreamCreate(stream **out, unsigned flags)
{
	ENTER("cuStreamCreate");
	stream *s = calloc(1, sizeof(*s));
	if (!s)
		return OUT_OF_MEMORY;
	s->flags = flags;
	F.st.live_streams++;
	*out = s;
	return OK;
}

API CUresult
cuStreamDestroy_v2(stream *s)
{
	ENTER("cuStreamDestroy_v2");
	if (!s)
		return INVALID_HANDLE;
	free(s->cap.recs);
	free(s);
	F.st.live_streams--;
	return OK;
}

API CUresult
cuStreamSynchronize(stream *s)
{
	ENTER("cuStreamSynchronize");
	if (!s)
		return INVALID_HANDLE; /* mpcc never uses the legacy stream */
	CUresult r = ordered(s);
	if (r == OK)
		F.st.syncs++;
	return r;
}

API CUresult
cuStreamBeginCapture_v2(stream *s, int mode)
{
	ENTER("cuStreamBeginCapture_v2");
	if (!s || s->capturing || mode < 0 || mode > 2)
		return INVALID_VALUE;
	s->capturing = 1;
	s->mode = mode;
	F.st.capture_mode = mode;
	s->cap.n = 0;
	return OK;
}

API CUresult
cuStreamEndCapture(stream *s, graph **out)
{
	bool invalid;

	*out = NULL;
	if (failing("cuStreamEndCapture")) {
		/* the real driver still ends the capture */
		if (s)
			s->capturing = 0;
		return F.fail_code;
	}
	if (!s || !s->capturing)
		return CAPTURE_UNMATCHED;
	invalid = s->capturing == 2;
	s->capturing = 0;
	if (invalid)
		return CAPTURE_INVALIDATED;
	graph *g = calloc(1, sizeof(*g));
	if (!g)
		return OUT_OF_MEMORY;
	g->recs = s->cap.recs;
	g->n = s->cap.n;
	s->cap.recs = NULL;
	s->cap.n = 0;
	F.st.live_graphs++;
	*out = g;
	return OK;
}

API CUresult
cuGraphInstantiateWithFlags(graph **out, graph *g, unsigned long long flags)
{
	ENTER("cuGraphInstantiateWithFlags");
	if (!g || flags != 0)
		return INVALID_VALUE;
	graph *e = calloc(1, sizeof(*e));
	if (!e)
		return OUT_OF_MEMORY;
	e->recs = malloc(sizeof(rec) * (size_t)(g->n + 1));
	if (!e->recs) {
		free(e);
		return OUT_OF_MEMORY;
	}
	memcpy(e->recs, g->recs, sizeof(rec) * (size_t)g->n);
	e->n = g->n;
	F.st.live_execs++;
	*out = e;
	return OK;
}

API CUresult
cuGraphDestroy(graph *g)
{
	ENTER("cuGraphDestroy");
	if (!g)
		return INVALID_VALUE;
	free(g->recs);
	free(g);
	F.st.live_graphs--;
	return OK;
}

API CUresult
cuGraphExecDestroy(graph *e)
{
	ENTER("cuGraphExecDestroy");
	if (!e)
		return INVALID_VALUE;
	free(e->recs);
	free(e);
	F.st.live_execs--;
	return OK;
}

/* ---------------------------------------------------------------- memory */

API CUresult
cuMemAlloc_v2(CUdeviceptr *out, size_t n)
{
	ENTER("cuMemAlloc_v2");
	if (n == 0)
		return INVALID_VALUE;
	void *p = aligned_alloc(256, (n + 255) / 256 * 256);
	if (!p || !track(F.dev, p, n)) {
		free(p);
		return OUT_OF_MEMORY;
	}
	memset(p, 0xa5, n); /* device memory starts as garbage */
	F.st.live_device++;
	*out = (CUdeviceptr)(uintptr_t)p;
	return OK;
}

API CUresult
cuMemFree_v2(CUdeviceptr p)
{
	ENTER("cuMemFree_v2");
	if (!untrack(F.dev, (void *)(uintptr_t)p))
		return INVALID_VALUE;
	free((void *)(uintptr_t)p);
	F.st.live_device--;
	return OK;
}

API CUresult
cuMemHostAlloc(void **out, size_t n, unsigned flags)
{
	ENTER("cuMemHostAlloc");
	if (n == 0)
		return INVALID_VALUE;
	void *p = malloc(n);
	if (!p || !track(F.host, p, n)) {
		free(p);
		return OUT_OF_MEMORY;
	}
	F.st.live_host++;
	*out = p;
	return OK;
}

API CUresult
cuMemFreeHost(void *p)
{
	ENTER("cuMemFreeHost");
	if (!untrack(F.host, p))
		return INVALID_VALUE;
	free(p);
	F.st.live_host--;
	return OK;
}

API CUresult
cuMemsetD8Async(CUdeviceptr p, unsigned char v, size_t n, stream *s)
{
	ENTER("cuMemsetD8Async");
	CUresult r = ordered(s);
	if (r != OK)
		return r;
	if (!s || !inside(F.dev, (void *)(uintptr_t)p, n))
		return INVALID_VALUE;
	memset((void *)(uintptr_t)p, v, n);
	return OK;
}

API CUresult
cuMemcpyHtoDAsync_v2(CUdeviceptr dst, const void *src, size_t n, stream *s)
{
	ENTER("cuMemcpyHtoDAsync_v2");
	CUresult r = ordered(s);
	if (r != OK)
		return r;
	if (!s || !inside(F.dev, (void *)(uintptr_t)dst, n) || !src)
		return INVALID_VALUE;
	if (!inside(F.host, src, n))
		F.st.pageable_async++;
	memcpy((void *)(uintptr_t)dst, src, n);
	return OK;
}

API CUresult
cuMemcpyDtoHAsync_v2(void *dst, CUdeviceptr src, size_t n, stream *s)
{
	ENTER("cuMemcpyDtoHAsync_v2");
	CUresult r = ordered(s);
	if (r != OK)
		return r;
	if (!s || !inside(F.dev, (void *)(uintptr_t)src, n) || !dst)
		return INVALID_VALUE;
	if (!inside(F.host, dst, n))
		F.st.pageable_async++;
	memcpy(dst, (void *)(uintptr_t)src, n);
	return OK;
}

/* ---------------------------------------------------------------- modules */

static uint32_t
le32(const uint8_t *b)
{
	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static uint64_t
le64(const uint8_t *b)
{
	return le32(b) | (uint64_t)le32(b + 4) << 32;
}

/* Writes msg into the JIT error log the caller passed, if any. */
static void
jit_log(unsigned n, const int *opt, void **val, const char *msg)
{
	char *buf = NULL;
	size_t size = 0;

	for (unsigned i = 0; opt && val && i < n; i++) {
		if (opt[i] == 5)
			buf = val[i];
		else if (opt[i] == 6)
			size = (size_t)(uintptr_t)val[i];
	}
	if (buf && size)
		snprintf(buf, size, "%s", msg);
}

/*
 * The real driver's decision, as far as mpcc's images go: a cubin (64-bit
 * CUDA ELF) runs when its sm_XY has the device's major and a minor not
 * above the device's; PTX loads when its .version is one this driver
 * knows and its .target is not above the device.
 */
API CUresult
cuModuleLoadDataEx(module **out, const void *image, unsigned n_opt, int *opt, void **val)
{
	const uint8_t *b = image;
	char msg[200] = "";
	size_t size;
	int arch;

	ENTER("cuModuleLoadDataEx");
	jit_log(n_opt, opt, val, "");
	if (!image)
		return INVALID_VALUE;
	if (memcmp(b,
	           "\x7f"
	           "ELF",
	           4) == 0) {
		if (b[4] != 2 || le32(b + 18) % 65536 != 190)
			return INVALID_IMAGE;
		uint32_t flags = le32(b + 48);
		arch = b[8] >= 8 ? (int)((flags >> 8) & 0xff) : (int)(flags & 0xff);
		/* the section headers end the file as NVRTC writes it */
		size = (size_t)le64(b + 40) + (size_t)(b[60] | b[61] << 8) * (b[58] | b[59] << 8);
		if (arch / 10 != F.cc / 10 || arch % 10 > F.cc % 10)
			return NO_BINARY_FOR_GPU;
		snprintf(F.st.loaded, sizeof(F.st.loaded), "cubin sm_%d", arch);
	} else {
		const char *t = strstr((const char *)b, ".target sm_");
		const char *v = strstr((const char *)b, ".version ");
		int major = 0, minor = 0;
		if (!t || !v || sscanf(v, ".version %d.%d", &major, &minor) != 2)
			return INVALID_IMAGE;
		arch = atoi(t + 11);
		if (major * 10 + minor > F.ptx_isa) {
			jit_log(n_opt, opt, val,
			        "ptxas application ptx input, line 9; fatal   : "
			        "Unsupported .version; current version is older");
			return UNSUPPORTED_PTX_VERSION;
		}
		if (arch > F.cc) {
			snprintf(msg, sizeof(msg),
			         "ptxas fatal   : SM version specified by .target "
			         "is higher than default SM version assumed");
			jit_log(n_opt, opt, val, msg);
			return INVALID_PTX;
		}
		size = strlen((const char *)b);
		snprintf(F.st.loaded, sizeof(F.st.loaded), "PTX compute_%d", arch);
	}
	module *m = calloc(1, sizeof(*m));
	if (m)
		m->image = malloc(size + 1);
	if (!m || !m->image) {
		free(m);
		return OUT_OF_MEMORY;
	}
	memcpy(m->image, image, size);
	m->image[size] = 0;
	m->size = size;
	F.st.live_modules++;
	*out = m;
	return OK;
}

API CUresult
cuModuleUnload(module *m)
{
	ENTER("cuModuleUnload");
	if (!m)
		return INVALID_HANDLE;
	while (m->fns) {
		fn *f = m->fns;
		m->fns = f->next;
		free(f);
	}
	free(m->image);
	free(m);
	F.st.live_modules--;
	return OK;
}

/* Whether name appears in the image as a whole symbol (NUL or a PTX
 * delimiter after it). */
static bool
has_symbol(const module *m, const char *name)
{
	size_t n = strlen(name);

	for (const char *p = m->image; p < m->image + m->size;) {
		const char *hit = memmem(p, (size_t)(m->image + m->size - p), name, n);
		if (!hit)
			return false;
		char after = hit + n < m->image + m->size ? hit[n] : 0;
		if (after == 0 || after == '(' || after == ' ' || after == '\n')
			return true;
		p = hit + 1;
	}
	return false;
}

API CUresult
cuModuleGetFunction(fn **out, module *m, const char *name)
{
	ENTER("cuModuleGetFunction");
	if (!m || !name)
		return INVALID_HANDLE;
	if (!has_symbol(m, name))
		return NOT_FOUND;
	fn *f = calloc(1, sizeof(*f));
	if (!f)
		return OUT_OF_MEMORY;
	snprintf(f->name, sizeof(f->name), "%s", name);
	f->next = m->fns;
	m->fns = f;
	*out = f;
	return OK;
}

static double
host_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Runs one launch on the host (when a runner is installed). */
static CUresult
execute(const rec *r)
{
	for (int i = 0; i < r->n_args; i++)
		if (!inside(F.dev, r->args[i], 1)) /* every argument of mpcc's kernels */
			return LAUNCH_FAILED;      /* is a device pointer */
	F.st.launches++;
	double t0 = host_ms();
	int bad = F.runner && F.runner(F.runner_user, r->f->name, (void **)r->args, r->n_args) != 0;
	clock_ms += host_ms() - t0 + 1e-3;
	return bad ? LAUNCH_FAILED : OK;
}

API CUresult
cuLaunchKernel(fn *f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
               unsigned shared, stream *s, void **params, void **extra)
{
	rec r = {f, 0, {0}};

	ENTER("cuLaunchKernel");
	if (!f || !s || !params || extra || !gx || !gy || !gz || !bx || !by || !bz ||
	    bx * by * bz > 1024 || gy > 65535 || gz > 65535)
		return INVALID_VALUE;
	for (; params[r.n_args]; r.n_args++) {
		if (r.n_args == MAX_ARGS)
			return INVALID_VALUE;
		CUdeviceptr v;
		memcpy(&v, params[r.n_args], sizeof(v)); /* the value now, as the driver does */
		r.args[r.n_args] = (void *)(uintptr_t)v;
	}
	if (s->capturing) {
		if (s->capturing == 2)
			return CAPTURE_INVALIDATED;
		rec *grown = realloc(s->cap.recs, sizeof(rec) * (size_t)(s->cap.n + 1));
		if (!grown)
			return OUT_OF_MEMORY;
		s->cap.recs = grown;
		s->cap.recs[s->cap.n++] = r;
		return OK;
	}
	return execute(&r);
}

API CUresult
cuGraphLaunch(graph *e, stream *s)
{
	ENTER("cuGraphLaunch");
	CUresult r = ordered(s);
	if (r != OK)
		return r;
	if (!e || !s)
		return INVALID_VALUE;
	F.st.graph_launches++;
	for (int i = 0; i < e->n; i++)
		if ((r = execute(&e->recs[i])) != OK)
			return r;
	return OK;
}

/* ---------------------------------------------------------------- events */

API CUresult
cuEventCreate(event **out, unsigned flags)
{
	ENTER("cuEventCreate");
	if (!out || flags > 0xf)
		return INVALID_VALUE;
	event *e = calloc(1, sizeof(*e));
	if (!e)
		return OUT_OF_MEMORY;
	F.st.live_events++;
	*out = e;
	return OK;
}

API CUresult
cuEventDestroy_v2(event *e)
{
	ENTER("cuEventDestroy_v2");
	if (!e)
		return INVALID_HANDLE;
	free(e);
	F.st.live_events--;
	return OK;
}

/* Work is done when it is enqueued here, so an event records the clock at
 * once. mpcc records none while capturing (the driver would make it a
 * graph node). */
API CUresult
cuEventRecord(event *e, stream *s)
{
	ENTER("cuEventRecord");
	CUresult r = ordered(s);
	if (r != OK)
		return r;
	if (!e || !s)
		return INVALID_HANDLE;
	e->recorded = true;
	e->at = clock_ms;
	F.st.event_records++;
	return OK;
}

/* As the real one: both events recorded (else CUDA_ERROR_INVALID_HANDLE). */
API CUresult
cuEventElapsedTime_v2(float *ms, event *start, event *end)
{
	ENTER("cuEventElapsedTime_v2");
	if (!ms || !start || !end || !start->recorded || !end->recorded)
		return INVALID_HANDLE;
	*ms = (float)(end->at - start->at);
	return OK;
}
