/*
 * backend_cuda.c - the cuda backend: the plan's kernels as GPU code, run
 * through the CUDA driver API as one CUDA graph per session.
 *
 * Driver. libcuda.so.1 is opened with dlopen when a session is created, so
 * mpcc has no link dependency on it and runs unchanged where no NVIDIA
 * driver is installed: session creation then fails with one line saying
 * so. Entry points are looked up by the versioned names cuda.h (CUDA 13)
 * maps the plain names to (cuMemAlloc -> cuMemAlloc_v2, ...), without the
 * per-thread-default-stream variants, as every call names its stream.
 * Every driver call is checked; a failure names the call and the driver's
 * error name ("cuda backend: cuMemAlloc_v2 failed: CUDA_ERROR_OUT_OF_MEMORY
 * (2)").
 *
 * Code. The kernels are printed as CUDA C (codegen/cuda/emit.c) at prepare
 * and compared with the source stored in the plan (section CUDA,
 * runtime/plan_cuda.c). Only when they are equal are the stored binaries
 * trusted (stage names and launch shapes come from this mpcc, so binaries
 * another emitter made must not be used); then the cubin for the device's
 * architecture is loaded, else a compatible cubin, else the PTX
 * (mpcc_plan_cuda_candidates). When none fits or loads, the source is
 * compiled with NVRTC for the device, through the per-user cache
 * (runtime/cuda_cache.h). mpcc_session_backend() says which.
 *
 * Memory. One device allocation per session holds the weights (uploaded
 * once, at their plan offsets), the graph inputs and the outputs (each at
 * its own offset) and the arena in which runtime/memplan.c places every
 * intermediate and TEMP buffer by liveness, exactly as the host executor
 * does. One pinned host block (cuMemHostAlloc) stages inputs and outputs.
 *
 * Running. Everything goes on one stream. At prepare the whole schedule's
 * launches are captured once into a CUDA graph and instantiated; a run
 * copies the inputs into the pinned block, enqueues their uploads, the
 * graph launch and the output downloads, synchronises once, and copies
 * the outputs out of the pinned block into the session's buffers. Where
 * capture or instantiation fails, the same launches are enqueued one by
 * one instead and the description says why, once.
 *
 * Profiling (mpcc_session_profile). launches() describes the schedule's
 * launches; run_timed() is a run whose launches are enqueued one by one,
 * each between two CUDA events, and reads every launch's device time.
 *
 * Testing. No GPU was at hand when this was written: every driver path,
 * failures included, runs against tests/unit/fake_libcuda.c, a stand-in
 * driver that checks the calls as strictly as the real one and runs the
 * kernels on the host (tests/unit/test_cuda_fake.c); test_cuda_run and
 * scripts/gpu-check.sh are the checks on a real GPU.
 */
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/cuda/emit.h"
#include "codegen/cuda/nvrtc.h"
#include "runtime/backend.h"
#include "runtime/cuda_cache.h"
#include "runtime/memplan.h"

/* The driver API types and constants used, as cuda.h (CUDA 13) defines them. */
typedef int CUresult;
typedef int CUdevice;
typedef struct CUctx_st *CUcontext;
typedef struct CUmod_st *CUmodule;
typedef struct CUfunc_st *CUfunction;
typedef struct CUstream_st *CUstream;
typedef struct CUgraph_st *CUgraph;
typedef struct CUgraphExec_st *CUgraphExec;
typedef struct CUevent_st *CUevent;
typedef unsigned long long CUdeviceptr;
typedef int CUjit_option;

#define CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR 75
#define CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR 76
#define CU_STREAM_NON_BLOCKING 0x1
#define CU_STREAM_CAPTURE_MODE_THREAD_LOCAL 1
#define CU_EVENT_DEFAULT 0
#define CU_JIT_ERROR_LOG_BUFFER 5
#define CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES 6

#define DEVICE_ALIGN 256 /* what cuMemAlloc guarantees; regions keep it */
#define HOST_ALIGN 64
#define MAX_CANDIDATES 16

typedef struct driver {
	void *lib;
	CUresult (*cuGetErrorName)(CUresult, const char **);
	CUresult (*cuInit)(unsigned);
	CUresult (*cuDriverGetVersion)(int *);
	CUresult (*cuDeviceGetCount)(int *);
	CUresult (*cuDeviceGet)(CUdevice *, int);
	CUresult (*cuDeviceGetAttribute)(int *, int, CUdevice);
	CUresult (*cuDeviceGetName)(char *, int, CUdevice);
	CUresult (*cuDevicePrimaryCtxRetain)(CUcontext *, CUdevice);
	CUresult (*cuDevicePrimaryCtxRelease)(CUdevice);
	CUresult (*cuCtxSetCurrent)(CUcontext);
	CUresult (*cuStreamCreate)(CUstream *, unsigned);
	CUresult (*cuStreamDestroy)(CUstream);
	CUresult (*cuStreamSynchronize)(CUstream);
	CUresult (*cuMemAlloc)(CUdeviceptr *, size_t);
	CUresult (*cuMemFree)(CUdeviceptr);
	CUresult (*cuMemHostAlloc)(void **, size_t, unsigned);
	CUresult (*cuMemFreeHost)(void *);
	CUresult (*cuMemsetD8Async)(CUdeviceptr, unsigned char, size_t, CUstream);
	CUresult (*cuMemcpyHtoDAsync)(CUdeviceptr, const void *, size_t, CUstream);
	CUresult (*cuMemcpyDtoHAsync)(void *, CUdeviceptr, size_t, CUstream);
	CUresult (*cuModuleLoadDataEx)(CUmodule *, const void *, unsigned, CUjit_option *, void **);
	CUresult (*cuModuleUnload)(CUmodule);
	CUresult (*cuModuleGetFunction)(CUfunction *, CUmodule, const char *);
	CUresult (*cuLaunchKernel)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned,
	                           unsigned, unsigned, CUstream, void **, void **);
	/* CUDA graphs: optional, runs go kernel by kernel without them */
	CUresult (*cuStreamBeginCapture)(CUstream, int);
	CUresult (*cuStreamEndCapture)(CUstream, CUgraph *);
	CUresult (*cuGraphInstantiateWithFlags)(CUgraphExec *, CUgraph, unsigned long long);
	CUresult (*cuGraphLaunch)(CUgraphExec, CUstream);
	CUresult (*cuGraphExecDestroy)(CUgraphExec);
	CUresult (*cuGraphDestroy)(CUgraph);
	/* events: optional, only mpcc_session_profile needs them */
	CUresult (*cuEventCreate)(CUevent *, unsigned);
	CUresult (*cuEventRecord)(CUevent, CUstream);
	CUresult (*cuEventElapsedTime)(float *, CUevent, CUevent);
	CUresult (*cuEventDestroy)(CUevent);
	const char *elapsed_sym; /* the name cuEventElapsedTime was found by */
} driver;

/* One kernel launch of the schedule: stage `stage` of kernel `kernel`. */
typedef struct launch {
	CUfunction fn;
	unsigned grid, block;
	void **args; /* the kernel's, one per buffer and a NULL */
	int kernel, stage;
} launch;

/* One input upload or output download: the host side is the session's
 * buffer bufs[kernel][buf] of the run, staged at pinned + pin_off. */
typedef struct xfer {
	int kernel, buf;
	size_t dev_off, pin_off, n;
} xfer;

typedef struct cuda_state {
	driver drv;
	const mpcc_plan *plan;
	CUdevice dev;
	CUcontext ctx; /* the device's primary context, retained; NULL until then */
	CUstream stream;
	CUmodule mod;
	CUgraphExec exec; /* NULL: launches are enqueued one by one */
	CUdeviceptr mem;  /* weights, inputs, outputs, then the planned arena */
	size_t mem_size;
	uint8_t *pinned; /* staging for inputs and outputs */
	size_t pinned_size;
	CUdeviceptr *ptr; /* per kernel buffer, kernel after kernel: its device address */
	void **args;      /* per kernel: &ptr of each buffer, then NULL */
	launch *launches;
	int n_launches;
	CUevent *events; /* profiling: a start and a stop per launch, made at first use */
	int n_events;    /* created so far */
	xfer *up, *down;
	int n_up, n_down;
	int arch;           /* compute capability, 90 for 9.0 */
	int driver_version; /* 13000 for CUDA 13.0 */
	char device[128];
	char code[768];  /* which GPU code runs, for describe() */
	char graph[200]; /* graph or why not */
	char line[1280]; /* describe()'s */
} cuda_state;

/* ---------------------------------------------------------------- driver */

static const char *
error_name(const cuda_state *s, CUresult r)
{
	const char *name = NULL;

	if (!s->drv.cuGetErrorName || s->drv.cuGetErrorName(r, &name) != 0 || !name)
		name = "unknown error";
	return name;
}

/* Checks a driver call; on failure reports "cuda backend: CALL failed:
 * ERROR_NAME (CODE)". */
static mpcc_status
check(const cuda_state *s, CUresult r, const char *call, mpcc_diag *d)
{
	if (r == 0)
		return MPCC_OK;
	return mpcc_diag_error(d, MPCC_ERR_BACKEND, "cuda backend: %s failed: %s (%d)", call,
	                       error_name(s, r), r);
}

/* CHECK(s, cuFoo(...), "cuFoo_v2", d): returns from the caller on failure. */
#define CHECK(s, call, name, d)                                                                    \
	do {                                                                                       \
		mpcc_status st_ = check((s), (s)->drv.call, (name), (d));                          \
		if (st_ != MPCC_OK)                                                                \
			return st_;                                                                \
	} while (0)

/*
 * Resolves the driver's entry points by the exact symbols cuda.h binds
 * the plain names to in CUDA 12 and 13: _v2 where cuda.h says so
 * (cuMemAlloc_v2, cuStreamBeginCapture_v2, cuDevicePrimaryCtxRelease_v2,
 * ...), and never the _ptsz/_ptds variants of the per-thread default
 * stream, which would change the meaning of a stream argument. The graph
 * calls are optional: a driver without them (older than CUDA 11.4) runs
 * kernel by kernel.
 */
static mpcc_status
load_driver(driver *drv, mpcc_diag *d)
{
	static const struct {
		size_t off;
		const char *sym;
		bool optional;
	} syms[] = {
#define SYM(field, name, opt) {offsetof(driver, field), name, opt}
	    SYM(cuGetErrorName, "cuGetErrorName", false),
	    SYM(cuInit, "cuInit", false),
	    SYM(cuDriverGetVersion, "cuDriverGetVersion", false),
	    SYM(cuDeviceGetCount, "cuDeviceGetCount", false),
	    SYM(cuDeviceGet, "cuDeviceGet", false),
	    SYM(cuDeviceGetAttribute, "cuDeviceGetAttribute", false),
	    SYM(cuDeviceGetName, "cuDeviceGetName", false),
	    SYM(cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain", false),
	    SYM(cuDevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2", false),
	    SYM(cuCtxSetCurrent, "cuCtxSetCurrent", false),
	    SYM(cuStreamCreate, "cuStreamCreate", false),
	    SYM(cuStreamDestroy, "cuStreamDestroy_v2", false),
	    SYM(cuStreamSynchronize, "cuStreamSynchronize", false),
	    SYM(cuMemAlloc, "cuMemAlloc_v2", false),
	    SYM(cuMemFree, "cuMemFree_v2", false),
	    SYM(cuMemHostAlloc, "cuMemHostAlloc", false),
	    SYM(cuMemFreeHost, "cuMemFreeHost", false),
	    SYM(cuMemsetD8Async, "cuMemsetD8Async", false),
	    SYM(cuMemcpyHtoDAsync, "cuMemcpyHtoDAsync_v2", false),
	    SYM(cuMemcpyDtoHAsync, "cuMemcpyDtoHAsync_v2", false),
	    SYM(cuModuleLoadDataEx, "cuModuleLoadDataEx", false),
	    SYM(cuModuleUnload, "cuModuleUnload", false),
	    SYM(cuModuleGetFunction, "cuModuleGetFunction", false),
	    SYM(cuLaunchKernel, "cuLaunchKernel", false),
	    SYM(cuStreamBeginCapture, "cuStreamBeginCapture_v2", true),
	    SYM(cuStreamEndCapture, "cuStreamEndCapture", true),
	    SYM(cuGraphInstantiateWithFlags, "cuGraphInstantiateWithFlags", true),
	    SYM(cuGraphLaunch, "cuGraphLaunch", true),
	    SYM(cuGraphExecDestroy, "cuGraphExecDestroy", true),
	    SYM(cuGraphDestroy, "cuGraphDestroy", true),
	    SYM(cuEventCreate, "cuEventCreate", true),
	    SYM(cuEventRecord, "cuEventRecord", true),
	    SYM(cuEventElapsedTime, "cuEventElapsedTime_v2", true),
	    SYM(cuEventDestroy, "cuEventDestroy_v2", true),
#undef SYM
	};

	drv->lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
	if (!drv->lib)
		return mpcc_diag_error(d, MPCC_ERR_UNSUPPORTED,
		                       "cuda backend: libcuda.so.1 not found (no NVIDIA driver)");
	for (size_t i = 0; i < sizeof(syms) / sizeof(syms[0]); i++) {
		void *p = dlsym(drv->lib, syms[i].sym);
		if (!p && !syms[i].optional)
			return mpcc_diag_error(
			    d, MPCC_ERR_UNSUPPORTED,
			    "cuda backend: libcuda.so.1 lacks %s (driver too old)", syms[i].sym);
		memcpy((char *)drv + syms[i].off, &p, sizeof(p));
	}
	/* cuda.h binds cuEventElapsedTime to _v2 from CUDA 12.8 on; older
	 * drivers have the first version, with the same arguments */
	drv->elapsed_sym = "cuEventElapsedTime_v2";
	if (!drv->cuEventElapsedTime) {
		*(void **)&drv->cuEventElapsedTime = dlsym(drv->lib, "cuEventElapsedTime");
		drv->elapsed_sym = "cuEventElapsedTime";
	}
	return MPCC_OK;
}

static bool
has_graphs(const driver *drv)
{
	return drv->cuStreamBeginCapture && drv->cuStreamEndCapture &&
	       drv->cuGraphInstantiateWithFlags && drv->cuGraphLaunch && drv->cuGraphExecDestroy &&
	       drv->cuGraphDestroy;
}

/*
 * Why release synchronises first: a run that failed half-way may have left
 * copies on the stream that read the pinned block, and freeing memory a
 * queued operation uses is undefined. Errors here have nowhere to go.
 */
static void
release(void *state)
{
	cuda_state *s = state;

	if (!s)
		return;
	if (s->ctx && s->drv.cuCtxSetCurrent(s->ctx) == 0) {
		if (s->stream)
			s->drv.cuStreamSynchronize(s->stream);
		if (s->exec)
			s->drv.cuGraphExecDestroy(s->exec);
		for (int i = 0; i < s->n_events; i++)
			s->drv.cuEventDestroy(s->events[i]);
		if (s->mod)
			s->drv.cuModuleUnload(s->mod);
		if (s->mem)
			s->drv.cuMemFree(s->mem);
		if (s->pinned)
			s->drv.cuMemFreeHost(s->pinned);
		if (s->stream)
			s->drv.cuStreamDestroy(s->stream);
	}
	if (s->ctx)
		s->drv.cuDevicePrimaryCtxRelease(s->dev);
	free(s->ptr);
	free(s->args);
	free(s->launches);
	free(s->events);
	free(s->up);
	free(s->down);
	if (s->drv.lib)
		dlclose(s->drv.lib);
	free(s);
}

/* ---------------------------------------------------------------- memory */

static size_t
align_up(size_t n, size_t a)
{
	return (n + a - 1) / a * a;
}

/* a + b into *sum; false on overflow. */
static bool
add_size(size_t a, size_t b, size_t *sum)
{
	return !__builtin_add_overflow(a, b, sum);
}

/*
 * Places every tensor and TEMP buffer in the one device allocation (as
 * offsets into it, in s->ptr; build_memory adds the base) and plans the
 * transfers. Layout: the weights at their offsets in the plan's blob, then
 * each input, then each tensor the memory plan leaves out (the outputs),
 * then the planned arena at mp's offsets. A run uploads every input some
 * kernel reads and downloads every output some kernel writes; an input or
 * weight that is also an output already holds its value on the host side.
 */
static mpcc_status
lay_out(cuda_state *s, const mpcc_memplan *mp, mpcc_diag *d)
{
	const mpcc_plan *p = s->plan;
	size_t *off = calloc((size_t)p->n_tensors + 1, sizeof(size_t));
	bool *up = calloc((size_t)p->n_tensors + 1, sizeof(bool));
	bool *down = calloc((size_t)p->n_tensors + 1, sizeof(bool));
	size_t pos = align_up(p->weights_size, DEVICE_ALIGN), arena, pin = 0;
	int n_bufs = 0, slot = 0, at = 0;
	mpcc_status st = MPCC_OK;

	for (int k = 0; k < p->n_kernels; k++)
		n_bufs += p->kernels[k]->n_bufs;
	s->ptr = calloc((size_t)n_bufs + 1, sizeof(CUdeviceptr));
	s->args = calloc((size_t)(n_bufs + p->n_kernels) + 1, sizeof(void *));
	s->up = calloc((size_t)p->n_tensors + 1, sizeof(xfer));
	s->down = calloc((size_t)p->n_tensors + 1, sizeof(xfer));
	if (!off || !up || !down || !s->ptr || !s->args || !s->up || !s->down) {
		st = mpcc_diag_error(d, MPCC_ERR_NOMEM, "cuda backend: out of memory");
		goto done;
	}
	/* pass 0 places the inputs, pass 1 the tensors left out of the plan */
	for (int pass = 0; pass < 2; pass++) {
		for (int i = 0; i < p->n_tensors; i++) {
			const mpcc_plan_tensor *t = &p->tensors[i];
			bool is_input = t->flags & MPCC_TENSOR_INPUT;
			if (t->flags & MPCC_TENSOR_WEIGHT)
				off[i] = t->offset;
			if ((t->flags & MPCC_TENSOR_WEIGHT) || is_input != (pass == 0) ||
			    (!is_input && mp->tensor_off[i] >= 0))
				continue;
			off[i] = pos;
			if (!add_size(pos, align_up(t->t.nbytes, DEVICE_ALIGN), &pos))
				goto too_big;
		}
	}
	arena = pos;
	if (!add_size(arena, align_up(mp->arena_size, DEVICE_ALIGN), &s->mem_size))
		goto too_big;
	for (int i = 0; i < p->n_tensors; i++)
		if (!(p->tensors[i].flags & (MPCC_TENSOR_WEIGHT | MPCC_TENSOR_INPUT)) &&
		    mp->tensor_off[i] >= 0)
			off[i] = arena + (size_t)mp->tensor_off[i];

	for (int k = 0; k < p->n_kernels; k++) {
		const kir_kernel *kk = p->kernels[k];
		int temp = mp->temp_first[k];
		for (int b = 0; b < kk->n_bufs; b++) {
			const kir_buf *bf = &kk->bufs[b];
			s->args[at++] = &s->ptr[slot];
			if (bf->kind != KIR_BUF_PARAM) {
				s->ptr[slot++] = arena + (size_t)mp->temp_off[temp++];
				continue;
			}
			const mpcc_plan_tensor *t = &p->tensors[bf->value];
			int32_t v = bf->value;
			s->ptr[slot++] = off[v];
			if (!t->t.nbytes)
				continue;
			if ((t->flags & MPCC_TENSOR_INPUT) && !up[v]) {
				up[v] = true;
				s->up[s->n_up++] = (xfer){k, b, off[v], pin, t->t.nbytes};
				pin = align_up(pin + t->t.nbytes, HOST_ALIGN);
			}
			if ((t->flags & MPCC_TENSOR_OUTPUT) &&
			    !(t->flags & (MPCC_TENSOR_INPUT | MPCC_TENSOR_WEIGHT)) && bf->written &&
			    !down[v]) {
				down[v] = true;
				s->down[s->n_down++] = (xfer){k, b, off[v], pin, t->t.nbytes};
				pin = align_up(pin + t->t.nbytes, HOST_ALIGN);
			}
		}
		s->args[at++] = NULL;
	}
	s->pinned_size = pin;
	goto done;
too_big:
	st = mpcc_diag_error(d, MPCC_ERR_NOMEM,
	                     "cuda backend: the plan needs more device memory than can be "
	                     "addressed");
done:
	free(off);
	free(up);
	free(down);
	return st;
}

/*
 * The device allocation and the pinned block, zeroed and with the weights
 * uploaded, all on the session's stream and waited for once; then the
 * buffers' offsets become addresses.
 */
static mpcc_status
build_memory(cuda_state *s, mpcc_diag *d)
{
	const mpcc_plan *p = s->plan;
	size_t size = s->mem_size ? s->mem_size : 1;
	int n_bufs = 0;

	CHECK(s, cuMemAlloc(&s->mem, size), "cuMemAlloc_v2", d);
	for (int k = 0; k < p->n_kernels; k++)
		n_bufs += p->kernels[k]->n_bufs;
	for (int i = 0; i < n_bufs; i++)
		s->ptr[i] += s->mem;
	CHECK(s, cuMemsetD8Async(s->mem, 0, size, s->stream), "cuMemsetD8Async", d);
	if (p->weights_size)
		CHECK(s, cuMemcpyHtoDAsync(s->mem, p->weights, p->weights_size, s->stream),
		      "cuMemcpyHtoDAsync_v2", d);
	if (s->pinned_size) {
		void *h = NULL;
		CHECK(s, cuMemHostAlloc(&h, s->pinned_size, 0), "cuMemHostAlloc", d);
		s->pinned = h;
	}
	CHECK(s, cuStreamSynchronize(s->stream), "cuStreamSynchronize", d);
	return MPCC_OK;
}

/* ---------------------------------------------------------------- code */

/* Loads image as the session's module; on failure says why in why (the
 * driver's error and the first line of its JIT log). */
static bool
load_image(cuda_state *s, const void *image, char *why, size_t why_n)
{
	char log[1024] = "";
	CUjit_option opt[2] = {CU_JIT_ERROR_LOG_BUFFER, CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES};
	void *val[2] = {log, (void *)(uintptr_t)sizeof(log)};
	CUresult r = s->drv.cuModuleLoadDataEx(&s->mod, image, 2, opt, val);

	if (r == 0)
		return true;
	s->mod = NULL;
	log[sizeof(log) - 1] = 0;
	if (strchr(log, '\n'))
		*strchr(log, '\n') = 0;
	snprintf(why, why_n, "cuModuleLoadDataEx failed: %s (%d)%s%s", error_name(s, r), r,
	         log[0] ? ": " : "", log);
	return false;
}

/* Appends to s->code (what describe() says about the GPU code), cut to fit. */
static void note(cuda_state *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
note(cuda_state *s, const char *fmt, ...)
{
	size_t used = strlen(s->code);
	va_list ap;

	va_start(ap, fmt);
	if (used + 1 < sizeof(s->code))
		vsnprintf(s->code + used, sizeof(s->code) - used, fmt, ap);
	va_end(ap);
}

/*
 * Compiles src for the device with NVRTC, or takes the result from the
 * cache, and loads it. For a GPU newer than this NVRTC knows, PTX for the
 * newest architecture it does know is made instead, which the driver
 * compiles for the device. The cache is keyed by the device's
 * architecture, so either kind is found again; it never fails a session
 * (runtime/cuda_cache.h).
 */
static mpcc_status
compile_for_device(cuda_state *s, const char *src, mpcc_diag *d)
{
	mpcc_cuda_cache_key key = {s->arch, s->driver_version, mpcc_nvrtc_version_number(), {0}};
	char dir[4096], why[400], img[48], nvrtc[32];
	mpcc_nvrtc_result r = {0};
	mpcc_cuda_cache_result got = MPCC_CUDA_CACHE_MISS;
	void *image = NULL;
	size_t size = 0;
	bool have_dir;
	int arch = s->arch;
	mpcc_diag first;
	mpcc_status st;

	mpcc_nvrtc_version(nvrtc, sizeof(nvrtc));
	mpcc_cuda_cache_hash_source(mpcc_nvrtc_options(), src, key.source_hash);
	have_dir = mpcc_cuda_cache_dir(dir, sizeof(dir), why, sizeof(why));
	if (have_dir)
		got = mpcc_cuda_cache_get(dir, &key, &image, &size);
	if (got == MPCC_CUDA_CACHE_HIT) {
		bool ok = load_image(s, image, why, sizeof(why));
		free(image);
		if (ok) {
			note(s, "%s binary for sm_%d from the cache", nvrtc, s->arch);
			return MPCC_OK;
		}
		note(s, "the cached binary did not load (%s), ", why);
	} else if (got == MPCC_CUDA_CACHE_DAMAGED) {
		note(s, "a damaged cache entry was deleted, ");
	}
	mpcc_cuda_image_name(img, sizeof(img), MPCC_CUDA_IMAGE_CUBIN, arch);
	mpcc_diag_init(&first);
	st = mpcc_nvrtc_compile(src, "mpcc_plan.cu", arch, false, false, &r, &first);
	if (st == MPCC_ERR_UNSUPPORTED && (arch = mpcc_nvrtc_newest_arch(s->arch)) > 0) {
		mpcc_cuda_image_name(img, sizeof(img), MPCC_CUDA_IMAGE_PTX, arch);
		st = mpcc_nvrtc_compile(src, "mpcc_plan.cu", arch, true, false, &r, d);
	} else if (st != MPCC_OK) {
		mpcc_diag_error(d, st, "%s", first.msg);
	}
	if (st == MPCC_OK && !load_image(s, r.image, why, sizeof(why)))
		st = mpcc_diag_error(d, MPCC_ERR_BACKEND, "cuda backend: %s compiled by %s: %s",
		                     img, nvrtc, why);
	if (st != MPCC_OK) {
		mpcc_nvrtc_result_fini(&r);
		return st;
	}
	note(s, "%s compiled by %s", img, nvrtc);
	if (!have_dir)
		note(s, " (not cached: %s)", why);
	else if (!mpcc_cuda_cache_put(dir, &key, r.image, r.image_size))
		note(s, " (not cached: cannot write to %s)", dir);
	else
		note(s, ", now cached");
	mpcc_nvrtc_result_fini(&r);
	return MPCC_OK;
}

/*
 * Chooses and loads the GPU code (see the file comment), then resolves
 * every stage's function. s->code records the choice and anything passed
 * over on the way.
 */
static mpcc_status
load_code(cuda_state *s, mpcc_diag *d)
{
	const mpcc_plan *p = s->plan;
	const mpcc_plan_cuda *c = p->cuda;
	char *src = NULL, name[96], why[400];
	int cand[MAX_CANDIDATES], n_cand = 0;
	mpcc_status st;

	st = mpcc_cuda_emit(p->kernels, p->n_kernels, true, &src, d);
	if (st != MPCC_OK)
		return st;
	if (!c)
		note(s, "the plan stores no GPU binaries, ");
	else if (strcmp(c->source, src) != 0)
		note(s, "the plan's GPU binaries are another mpcc's (its CUDA source differs), ");
	else if (!(n_cand = mpcc_plan_cuda_candidates(c, s->arch, cand, MAX_CANDIDATES)))
		note(s, "no GPU binary in the plan fits sm_%d, ", s->arch);
	for (int i = 0; i < n_cand && !s->mod; i++) {
		const mpcc_plan_cuda_image *im = &c->images[cand[i]];
		mpcc_cuda_image_name(name, sizeof(name), im->kind, im->arch);
		if (load_image(s, im->data, why, sizeof(why)))
			note(s, "%s from the plan", name);
		else
			note(s, "%s from the plan did not load (%s), ", name, why);
	}
	if (!s->mod)
		st = compile_for_device(s, src, d);
	free(src);
	if (st != MPCC_OK)
		return st;

	int n = 0;
	for (int k = 0; k < p->n_kernels; k++)
		n += p->kernels[k]->n_stages;
	s->launches = calloc((size_t)n + 1, sizeof(launch));
	if (!s->launches)
		return mpcc_diag_error(d, MPCC_ERR_NOMEM, "cuda backend: out of memory");
	void **args = s->args;
	for (int k = 0; k < p->n_kernels; k++) {
		const kir_kernel *kk = p->kernels[k];
		for (int i = 0; i < kk->n_stages; i += mpcc_cuda_stage_span(kk, i)) {
			launch *l = &s->launches[s->n_launches++];
			if (!mpcc_cuda_stage_name(name, sizeof(name), kk, i))
				return mpcc_diag_error(d, MPCC_ERR_INVALID,
				                       "cuda backend: kernel %s: name too long",
				                       kk->name);
			CHECK(s, cuModuleGetFunction(&l->fn, s->mod, name), "cuModuleGetFunction",
			      d);
			mpcc_cuda_stage_launch(kk, i, &l->grid, &l->block);
			l->args = args;
			l->kernel = k;
			l->stage = i;
		}
		args += kk->n_bufs + 1;
	}
	return MPCC_OK;
}

/* ---------------------------------------------------------------- running */

/* Enqueues every launch of the schedule; with ev (profiling), launch i
 * between records of ev[2i] and ev[2i+1]. */
static mpcc_status
enqueue_launches(cuda_state *s, const CUevent *ev, mpcc_diag *d)
{
	for (int i = 0; i < s->n_launches; i++) {
		const launch *l = &s->launches[i];
		if (ev)
			CHECK(s, cuEventRecord(ev[2 * i], s->stream), "cuEventRecord", d);
		CUresult r = s->drv.cuLaunchKernel(l->fn, l->grid, 1, 1, l->block, 1, 1, 0,
		                                   s->stream, l->args, NULL);
		if (r == 0 && ev)
			CHECK(s, cuEventRecord(ev[2 * i + 1], s->stream), "cuEventRecord", d);
		if (r != 0)
			return mpcc_diag_error(
			    d, MPCC_ERR_BACKEND,
			    "cuda backend: cuLaunchKernel failed for %s_s%d: %s (%d)",
			    s->plan->kernels[l->kernel]->name, l->stage, error_name(s, r), r);
	}
	return MPCC_OK;
}

/*
 * Captures the schedule's launches into a graph and instantiates it.
 * Thread-local capture mode: other threads (other sessions) may allocate
 * or synchronise meanwhile without invalidating this capture, and this
 * thread makes no such call until the capture ends. A capture that fails
 * is always ended, so the stream leaves capture mode; then runs enqueue
 * the launches one by one and s->graph says why.
 */
static void
capture(cuda_state *s)
{
	CUgraph graph = NULL;
	mpcc_diag d;
	CUresult r;

	mpcc_diag_init(&d);
	if (s->n_launches == 0) {
		snprintf(s->graph, sizeof(s->graph), "no kernels to launch");
		return;
	}
	if (!has_graphs(&s->drv)) {
		snprintf(s->graph, sizeof(s->graph),
		         "kernel by kernel (the driver has no CUDA graphs)");
		return;
	}
	r = s->drv.cuStreamBeginCapture(s->stream, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL);
	if (r != 0) {
		snprintf(s->graph, sizeof(s->graph),
		         "kernel by kernel (cuStreamBeginCapture_v2 failed: %s)", error_name(s, r));
		return;
	}
	mpcc_status st = enqueue_launches(s, NULL, &d);
	r = s->drv.cuStreamEndCapture(s->stream, &graph);
	if (st != MPCC_OK || r != 0) {
		/* a launch failed, so the driver had no reason to invalidate the
		 * capture; the graph it ended with is of no use */
		if (r == 0 && graph)
			s->drv.cuGraphDestroy(graph);
		snprintf(s->graph, sizeof(s->graph), "kernel by kernel (graph capture failed: %s)",
		         st != MPCC_OK ? d.msg : error_name(s, r));
		return;
	}
	r = s->drv.cuGraphInstantiateWithFlags(&s->exec, graph, 0);
	CUresult r_destroy = s->drv.cuGraphDestroy(graph); /* the instance is independent */
	if (r != 0) {
		s->exec = NULL;
		snprintf(s->graph, sizeof(s->graph),
		         "kernel by kernel (cuGraphInstantiateWithFlags failed: %s)",
		         error_name(s, r));
		return;
	}
	snprintf(s->graph, sizeof(s->graph), "one CUDA graph of %d launch%s", s->n_launches,
	         s->n_launches == 1 ? "" : "es");
	if (r_destroy != 0)
		snprintf(s->graph + strlen(s->graph), sizeof(s->graph) - strlen(s->graph),
		         " (cuGraphDestroy failed: %s)", error_name(s, r_destroy));
}

/*
 * One run: inputs into the pinned block and up, the graph (or the
 * launches), outputs down, one synchronisation, outputs out of the pinned
 * block. The host buffers are read from bufs each time, as the trainer
 * rebinds its state between steps. A failure waits for what was enqueued
 * before returning, so the pinned block is free again.
 */
static mpcc_status
run_enqueue(cuda_state *s, void **const *bufs, const CUevent *ev, mpcc_diag *d)
{
	for (int i = 0; i < s->n_up; i++) {
		const xfer *x = &s->up[i];
		memcpy(s->pinned + x->pin_off, bufs[x->kernel][x->buf], x->n);
		CHECK(
		    s,
		    cuMemcpyHtoDAsync(s->mem + x->dev_off, s->pinned + x->pin_off, x->n, s->stream),
		    "cuMemcpyHtoDAsync_v2", d);
	}
	if (s->exec && !ev)
		CHECK(s, cuGraphLaunch(s->exec, s->stream), "cuGraphLaunch", d);
	else if (enqueue_launches(s, ev, d) != MPCC_OK)
		return d->status;
	for (int i = 0; i < s->n_down; i++) {
		const xfer *x = &s->down[i];
		CHECK(
		    s,
		    cuMemcpyDtoHAsync(s->pinned + x->pin_off, s->mem + x->dev_off, x->n, s->stream),
		    "cuMemcpyDtoHAsync_v2", d);
	}
	return MPCC_OK;
}

/* A run as run() describes, with ev: launch by launch between events. */
static mpcc_status
run_with(cuda_state *s, void **const *bufs, const CUevent *ev, mpcc_diag *d)
{
	CHECK(s, cuCtxSetCurrent(s->ctx), "cuCtxSetCurrent", d);
	if (run_enqueue(s, bufs, ev, d) != MPCC_OK) {
		s->drv.cuStreamSynchronize(s->stream);
		return d->status;
	}
	CHECK(s, cuStreamSynchronize(s->stream), "cuStreamSynchronize", d);
	for (int i = 0; i < s->n_down; i++) {
		const xfer *x = &s->down[i];
		memcpy(bufs[x->kernel][x->buf], s->pinned + x->pin_off, x->n);
	}
	return MPCC_OK;
}

static mpcc_status
run(void *state, void **const *bufs, mpcc_diag *d)
{
	return run_with(state, bufs, NULL, d);
}

/* ---------------------------------------------------------------- profiling */

static int
launches(void *state, mpcc_launch_time *out)
{
	const cuda_state *s = state;

	for (int i = 0; out && i < s->n_launches; i++) {
		const launch *l = &s->launches[i];
		out[i] = (mpcc_launch_time){s->plan->kernels[l->kernel]->name,
		                            l->kernel,
		                            l->stage,
		                            l->grid,
		                            l->block,
		                            0,
		                            0,
		                            0};
	}
	return s->n_launches;
}

/*
 * A profiled run: the launches enqueued one by one (never the graph: an
 * event inside a replayed graph would time the graph's nodes, not these
 * launches), each between two events recorded on the session's stream, so
 * ms[i] is launch i's time on the device, queueing gaps excluded. The
 * events are made at the first profiled run and live with the session;
 * the stream's synchronisation at the end of the run completes them all.
 */
static mpcc_status
run_timed(void *state, void **const *bufs, double *ms, mpcc_diag *d)
{
	cuda_state *s = state;
	const driver *drv = &s->drv;

	if (!drv->cuEventCreate || !drv->cuEventRecord || !drv->cuEventElapsedTime ||
	    !drv->cuEventDestroy)
		return mpcc_diag_error(d, MPCC_ERR_UNSUPPORTED,
		                       "cuda backend: profiling needs CUDA events, and libcuda.so.1 "
		                       "lacks %s",
		                       !drv->cuEventCreate        ? "cuEventCreate"
		                       : !drv->cuEventRecord      ? "cuEventRecord"
		                       : !drv->cuEventElapsedTime ? "cuEventElapsedTime_v2"
		                                                  : "cuEventDestroy_v2");
	CHECK(s, cuCtxSetCurrent(s->ctx), "cuCtxSetCurrent", d);
	if (!s->events) {
		s->events = calloc((size_t)s->n_launches * 2 + 1, sizeof(CUevent));
		if (!s->events)
			return mpcc_diag_error(d, MPCC_ERR_NOMEM, "cuda backend: out of memory");
	}
	while (s->n_events < 2 * s->n_launches) {
		CHECK(s, cuEventCreate(&s->events[s->n_events], CU_EVENT_DEFAULT), "cuEventCreate",
		      d);
		s->n_events++;
	}
	mpcc_status st = run_with(s, bufs, s->events, d);
	if (st != MPCC_OK)
		return st;
	for (int i = 0; i < s->n_launches; i++) {
		float t = 0;
		CUresult r = drv->cuEventElapsedTime(&t, s->events[2 * i], s->events[2 * i + 1]);
		if ((st = check(s, r, drv->elapsed_sym, d)) != MPCC_OK)
			return st;
		ms[i] = t;
	}
	return MPCC_OK;
}

/* ---------------------------------------------------------------- session */

/* The device: first one, its architecture, name and the driver version. */
static mpcc_status
open_device(cuda_state *s, mpcc_diag *d)
{
	int n_dev = 0, major = 0, minor = 0;

	CHECK(s, cuInit(0), "cuInit", d);
	CHECK(s, cuDriverGetVersion(&s->driver_version), "cuDriverGetVersion", d);
	CHECK(s, cuDeviceGetCount(&n_dev), "cuDeviceGetCount", d);
	if (n_dev == 0)
		return mpcc_diag_error(d, MPCC_ERR_UNSUPPORTED,
		                       "cuda backend: no CUDA device found");
	CHECK(s, cuDeviceGet(&s->dev, 0), "cuDeviceGet", d);
	CHECK(s, cuDeviceGetAttribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, s->dev),
	      "cuDeviceGetAttribute", d);
	CHECK(s, cuDeviceGetAttribute(&minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, s->dev),
	      "cuDeviceGetAttribute", d);
	CHECK(s, cuDeviceGetName(s->device, (int)sizeof(s->device) - 1, s->dev), "cuDeviceGetName",
	      d);
	s->device[sizeof(s->device) - 1] = 0;
	s->arch = major * 10 + minor;
	CUcontext ctx = NULL;
	CHECK(s, cuDevicePrimaryCtxRetain(&ctx, s->dev), "cuDevicePrimaryCtxRetain", d);
	s->ctx = ctx;
	CHECK(s, cuCtxSetCurrent(s->ctx), "cuCtxSetCurrent", d);
	CHECK(s, cuStreamCreate(&s->stream, CU_STREAM_NON_BLOCKING), "cuStreamCreate", d);
	return MPCC_OK;
}

static const char *
describe(void *state)
{
	return ((cuda_state *)state)->line;
}

static mpcc_status
prepare(const mpcc_plan *plan, void **out_state, mpcc_diag *d)
{
	mpcc_memplan mp = {0};
	cuda_state *s;
	mpcc_status st;

	*out_state = NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return mpcc_diag_error(d, MPCC_ERR_NOMEM, "cuda backend: out of memory");
	s->plan = plan;
	st = load_driver(&s->drv, d);
	if (st == MPCC_OK)
		st = open_device(s, d);
	if (st == MPCC_OK && (st = mpcc_memplan_build(plan, &mp)) != MPCC_OK)
		mpcc_diag_error(d, st, "cuda backend: cannot plan device memory");
	if (st == MPCC_OK)
		st = lay_out(s, &mp, d);
	mpcc_memplan_fini(&mp);
	if (st == MPCC_OK)
		st = build_memory(s, d);
	if (st == MPCC_OK)
		st = load_code(s, d);
	if (st != MPCC_OK) {
		release(s);
		return st;
	}
	capture(s);
	char mem[32];
	if (s->mem_size < (1 << 20))
		snprintf(mem, sizeof(mem), "%zu KiB", (s->mem_size + 1023) / 1024);
	else
		snprintf(mem, sizeof(mem), "%.1f MiB", (double)s->mem_size / (1 << 20));
	snprintf(s->line, sizeof(s->line), "cuda: %s (sm_%d), driver %d.%d; %s; %s; %s device",
	         s->device, s->arch, s->driver_version / 1000, s->driver_version % 1000 / 10,
	         s->code, s->graph, mem);
	*out_state = s;
	return MPCC_OK;
}

const mpcc_backend mpcc_backend_cuda = {
    .name = "cuda",
    .prepare = prepare,
    .release = release,
    .run = run,
    .describe = describe,
    .launches = launches,
    .run_timed = run_timed,
};
