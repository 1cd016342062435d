/*
 * backend_cuda.c - the cuda backend: the plan's kernels printed as CUDA C
 * (codegen/cuda/emit.c), compiled by NVRTC for the device at prepare time,
 * and run through the CUDA driver API.
 *
 * The driver is loaded with dlopen("libcuda.so.1") when a session is
 * created, so mpcc has no link dependency on it and runs unchanged where no
 * NVIDIA driver is installed: session creation then fails with a message
 * saying so. Every driver call is checked and a failure names the call and
 * the driver's error name.
 *
 * Memory. The executor hands run_kernel host pointers (runtime/backend.h).
 * Rather than copying every buffer per kernel, the backend keeps a device
 * mirror of every plan tensor, indexed by tensor number (a kernel's PARAM
 * buffer names its tensor, which is more robust than keying by host pointer:
 * zero-sized tensors may share an address) and one device block per TEMP
 * buffer, all allocated at prepare. Weights are uploaded once at prepare;
 * graph inputs are uploaded at their first use in each run (a run starts
 * with kernel 0); tensors that are graph outputs are copied back to the
 * host after the kernel that writes them; intermediates and TEMPs never
 * leave the device. One device arena, a CUDA graph and pinned staging
 * buffers are the next steps of issue 6.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/cuda/emit.h"
#include "codegen/cuda/nvrtc.h"
#include "runtime/backend.h"

/* The few driver API types used, as cuda.h defines them. */
typedef int CUresult;
typedef int CUdevice;
typedef struct CUctx_st *CUcontext;
typedef struct CUmod_st *CUmodule;
typedef struct CUfunc_st *CUfunction;
typedef struct CUstream_st *CUstream;
typedef unsigned long long CUdeviceptr;

#define CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR 75
#define CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR 76

typedef struct driver {
	void *lib;
	CUresult (*cuInit)(unsigned);
	CUresult (*cuDeviceGetCount)(int *);
	CUresult (*cuDeviceGet)(CUdevice *, int);
	CUresult (*cuDeviceGetAttribute)(int *, int, CUdevice);
	CUresult (*cuDevicePrimaryCtxRetain)(CUcontext *, CUdevice);
	CUresult (*cuDevicePrimaryCtxRelease)(CUdevice);
	CUresult (*cuCtxSetCurrent)(CUcontext);
	CUresult (*cuModuleLoadData)(CUmodule *, const void *);
	CUresult (*cuModuleUnload)(CUmodule);
	CUresult (*cuModuleGetFunction)(CUfunction *, CUmodule, const char *);
	CUresult (*cuLaunchKernel)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned,
	                           unsigned, unsigned, CUstream, void **, void **);
	CUresult (*cuMemAlloc)(CUdeviceptr *, size_t);
	CUresult (*cuMemFree)(CUdeviceptr);
	CUresult (*cuMemsetD8)(CUdeviceptr, unsigned char, size_t);
	CUresult (*cuMemcpyHtoD)(CUdeviceptr, const void *, size_t);
	CUresult (*cuMemcpyDtoH)(void *, CUdeviceptr, size_t);
	CUresult (*cuStreamSynchronize)(CUstream);
	CUresult (*cuGetErrorName)(CUresult, const char **);
} driver;

typedef struct cuda_state {
	driver drv;
	const mpcc_plan *plan;
	CUdevice dev;
	CUcontext ctx; /* the device's primary context, retained */
	CUmodule mod;
	CUfunction **fn;     /* per kernel, per stage */
	CUdeviceptr *tensor; /* per plan tensor */
	CUdeviceptr **temp;  /* per kernel, per buffer (TEMP only, else 0) */
	void ***args;        /* per kernel: pointers to its buffers' device pointers */
	uint64_t run;        /* runs started, counted at kernel 0 */
	uint64_t *input_run; /* per tensor: the run its input was last uploaded in */
} cuda_state;

/* Checks a driver call; on failure reports "cuda backend: CALL: ERROR_NAME". */
static mpcc_status
check(cuda_state *s, CUresult r, const char *call, mpcc_diag *d)
{
	const char *name = NULL;

	if (r == 0)
		return MPCC_OK;
	if (!s->drv.cuGetErrorName || s->drv.cuGetErrorName(r, &name) != 0 || !name)
		name = "unknown error";
	return mpcc_diag_error(d, MPCC_ERR_BACKEND, "cuda backend: %s failed: %s (%d)", call, name,
	                       r);
}

#define CHECK(s, call, d)                                                                          \
	do {                                                                                       \
		mpcc_status st_ = check((s), (s)->drv.call, #call, (d));                           \
		if (st_ != MPCC_OK)                                                                \
			return st_;                                                                \
	} while (0)

/*
 * Resolves the driver entry points. Versioned symbols (_v2) are the ones
 * cuda.h maps the plain names to; resolving them by hand keeps cuda.h out
 * of the runtime.
 */
static mpcc_status
load_driver(driver *drv, mpcc_diag *d)
{
	static const struct {
		size_t off;
		const char *sym;
	} syms[] = {
#define SYM(field, name) {offsetof(driver, field), name}
	    SYM(cuInit, "cuInit"),
	    SYM(cuDeviceGetCount, "cuDeviceGetCount"),
	    SYM(cuDeviceGet, "cuDeviceGet"),
	    SYM(cuDeviceGetAttribute, "cuDeviceGetAttribute"),
	    SYM(cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain"),
	    SYM(cuDevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2"),
	    SYM(cuCtxSetCurrent, "cuCtxSetCurrent"),
	    SYM(cuModuleLoadData, "cuModuleLoadData"),
	    SYM(cuModuleUnload, "cuModuleUnload"),
	    SYM(cuModuleGetFunction, "cuModuleGetFunction"),
	    SYM(cuLaunchKernel, "cuLaunchKernel"),
	    SYM(cuMemAlloc, "cuMemAlloc_v2"),
	    SYM(cuMemFree, "cuMemFree_v2"),
	    SYM(cuMemsetD8, "cuMemsetD8_v2"),
	    SYM(cuMemcpyHtoD, "cuMemcpyHtoD_v2"),
	    SYM(cuMemcpyDtoH, "cuMemcpyDtoH_v2"),
	    SYM(cuStreamSynchronize, "cuStreamSynchronize"),
	    SYM(cuGetErrorName, "cuGetErrorName"),
#undef SYM
	};

	drv->lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
	if (!drv->lib)
		return mpcc_diag_error(d, MPCC_ERR_UNSUPPORTED,
		                       "cuda backend: libcuda.so.1 not found (no NVIDIA driver)");
	for (size_t i = 0; i < sizeof(syms) / sizeof(syms[0]); i++) {
		void *p = dlsym(drv->lib, syms[i].sym);
		if (!p)
			return mpcc_diag_error(
			    d, MPCC_ERR_UNSUPPORTED,
			    "cuda backend: libcuda.so.1 lacks %s (driver too old)", syms[i].sym);
		memcpy((char *)drv + syms[i].off, &p, sizeof(p));
	}
	return MPCC_OK;
}

static void
release(void *state)
{
	cuda_state *s = state;
	const mpcc_plan *p;

	if (!s)
		return;
	p = s->plan;
	if (s->ctx) {
		s->drv.cuCtxSetCurrent(s->ctx);
		for (int i = 0; s->tensor && i < p->n_tensors; i++)
			if (s->tensor[i])
				s->drv.cuMemFree(s->tensor[i]);
		for (int k = 0; s->temp && k < p->n_kernels; k++)
			for (int b = 0; s->temp[k] && b < p->kernels[k]->n_bufs; b++)
				if (s->temp[k][b])
					s->drv.cuMemFree(s->temp[k][b]);
		if (s->mod)
			s->drv.cuModuleUnload(s->mod);
		s->drv.cuDevicePrimaryCtxRelease(s->dev);
	}
	for (int k = 0; k < p->n_kernels; k++) {
		if (s->fn)
			free(s->fn[k]);
		if (s->temp)
			free(s->temp[k]);
		if (s->args)
			free(s->args[k]);
	}
	free(s->fn);
	free(s->temp);
	free(s->args);
	free(s->tensor);
	free(s->input_run);
	if (s->drv.lib)
		dlclose(s->drv.lib);
	free(s);
}

static mpcc_status
device_alloc(cuda_state *s, CUdeviceptr *out, size_t n, mpcc_diag *d)
{
	CHECK(s, cuMemAlloc(out, n ? n : 1), d);
	CHECK(s, cuMemsetD8(*out, 0, n ? n : 1), d);
	return MPCC_OK;
}

/* Compiles every kernel for the device and loads the module. */
static mpcc_status
build_module(cuda_state *s, int sm, mpcc_diag *d)
{
	const mpcc_plan *p = s->plan;
	mpcc_nvrtc_result r;
	char *src = NULL, name[96];
	mpcc_status st;

	st = mpcc_cuda_emit(p->kernels, p->n_kernels, true, &src, d);
	if (st != MPCC_OK)
		return st;
	st = mpcc_nvrtc_compile(src, "mpcc_plan.cu", sm, false, false, &r, d);
	free(src);
	if (st == MPCC_OK)
		st = check(s, s->drv.cuModuleLoadData(&s->mod, r.image), "cuModuleLoadData", d);
	mpcc_nvrtc_result_fini(&r);
	if (st != MPCC_OK)
		return st;
	for (int k = 0; k < p->n_kernels; k++) {
		const kir_kernel *kk = p->kernels[k];
		s->fn[k] = calloc((size_t)kk->n_stages + 1, sizeof(CUfunction));
		if (!s->fn[k])
			return mpcc_diag_error(d, MPCC_ERR_NOMEM, "cuda backend: out of memory");
		for (int i = 0; i < kk->n_stages; i++) {
			if (!mpcc_cuda_stage_name(name, sizeof(name), kk, i))
				return mpcc_diag_error(d, MPCC_ERR_INVALID,
				                       "kernel %s: name too long", kk->name);
			if (check(s, s->drv.cuModuleGetFunction(&s->fn[k][i], s->mod, name),
			          "cuModuleGetFunction", d))
				return MPCC_ERR_BACKEND;
		}
	}
	return MPCC_OK;
}

/* Device memory for every tensor and TEMP buffer; weights uploaded. */
static mpcc_status
build_memory(cuda_state *s, mpcc_diag *d)
{
	const mpcc_plan *p = s->plan;

	for (int i = 0; i < p->n_tensors; i++) {
		const mpcc_plan_tensor *t = &p->tensors[i];
		if (device_alloc(s, &s->tensor[i], t->t.nbytes, d))
			return MPCC_ERR_BACKEND;
		if ((t->flags & MPCC_TENSOR_WEIGHT) && t->t.nbytes)
			CHECK(s, cuMemcpyHtoD(s->tensor[i], p->weights + t->offset, t->t.nbytes),
			      d);
	}
	for (int k = 0; k < p->n_kernels; k++) {
		const kir_kernel *kk = p->kernels[k];
		s->temp[k] = calloc((size_t)kk->n_bufs + 1, sizeof(CUdeviceptr));
		s->args[k] = calloc((size_t)kk->n_bufs + 1, sizeof(void *));
		if (!s->temp[k] || !s->args[k])
			return mpcc_diag_error(d, MPCC_ERR_NOMEM, "cuda backend: out of memory");
		for (int b = 0; b < kk->n_bufs; b++) {
			const kir_buf *bf = &kk->bufs[b];
			if (bf->kind == KIR_BUF_PARAM) {
				if (bf->value < 0 || bf->value >= p->n_tensors)
					return mpcc_diag_error(
					    d, MPCC_ERR_INVALID,
					    "kernel %s: buffer %d names no tensor", kk->name, b);
				s->args[k][b] = &s->tensor[bf->value];
				continue;
			}
			if (device_alloc(s, &s->temp[k][b],
			                 (size_t)bf->n_elems * mpcc_dtype_size(bf->dtype), d))
				return MPCC_ERR_BACKEND;
			s->args[k][b] = &s->temp[k][b];
		}
	}
	return MPCC_OK;
}

static mpcc_status
prepare(const mpcc_plan *plan, void **out_state, mpcc_diag *d)
{
	cuda_state *s;
	int n_dev = 0, major = 0, minor = 0;
	mpcc_status st;

	*out_state = NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return mpcc_diag_error(d, MPCC_ERR_NOMEM, "cuda backend: out of memory");
	s->plan = plan;
	s->fn = calloc((size_t)plan->n_kernels + 1, sizeof(*s->fn));
	s->temp = calloc((size_t)plan->n_kernels + 1, sizeof(*s->temp));
	s->args = calloc((size_t)plan->n_kernels + 1, sizeof(*s->args));
	s->tensor = calloc((size_t)plan->n_tensors + 1, sizeof(*s->tensor));
	s->input_run = calloc((size_t)plan->n_tensors + 1, sizeof(*s->input_run));
	if (!s->fn || !s->temp || !s->args || !s->tensor || !s->input_run) {
		release(s);
		return mpcc_diag_error(d, MPCC_ERR_NOMEM, "cuda backend: out of memory");
	}
	st = load_driver(&s->drv, d);
	if (st == MPCC_OK)
		st = check(s, s->drv.cuInit(0), "cuInit", d);
	if (st == MPCC_OK)
		st = check(s, s->drv.cuDeviceGetCount(&n_dev), "cuDeviceGetCount", d);
	if (st == MPCC_OK && n_dev == 0)
		st = mpcc_diag_error(d, MPCC_ERR_UNSUPPORTED, "cuda backend: no CUDA device found");
	if (st == MPCC_OK)
		st = check(s, s->drv.cuDeviceGet(&s->dev, 0), "cuDeviceGet", d);
	if (st == MPCC_OK)
		st = check(s,
		           s->drv.cuDeviceGetAttribute(
		               &major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, s->dev),
		           "cuDeviceGetAttribute", d);
	if (st == MPCC_OK)
		st = check(s,
		           s->drv.cuDeviceGetAttribute(
		               &minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, s->dev),
		           "cuDeviceGetAttribute", d);
	if (st == MPCC_OK) {
		st = check(s, s->drv.cuDevicePrimaryCtxRetain(&s->ctx, s->dev),
		           "cuDevicePrimaryCtxRetain", d);
		if (st != MPCC_OK)
			s->ctx = NULL;
	}
	if (st == MPCC_OK)
		st = check(s, s->drv.cuCtxSetCurrent(s->ctx), "cuCtxSetCurrent", d);
	if (st == MPCC_OK)
		st = build_memory(s, d);
	if (st == MPCC_OK)
		st = build_module(s, major * 10 + minor, d);
	if (st != MPCC_OK) {
		release(s);
		return st;
	}
	*out_state = s;
	return MPCC_OK;
}

static mpcc_status
run_kernel(void *state, int kernel, void **bufs, mpcc_diag *d)
{
	cuda_state *s = state;
	const mpcc_plan *p = s->plan;
	const kir_kernel *k = p->kernels[kernel];
	unsigned grid, block;

	CHECK(s, cuCtxSetCurrent(s->ctx), d);
	if (kernel == 0)
		s->run++;
	for (int b = 0; b < k->n_bufs; b++) {
		const kir_buf *bf = &k->bufs[b];
		const mpcc_plan_tensor *t;
		if (bf->kind != KIR_BUF_PARAM)
			continue;
		t = &p->tensors[bf->value];
		if ((t->flags & MPCC_TENSOR_INPUT) && s->input_run[bf->value] != s->run) {
			if (t->t.nbytes)
				CHECK(s, cuMemcpyHtoD(s->tensor[bf->value], bufs[b], t->t.nbytes),
				      d);
			s->input_run[bf->value] = s->run;
		}
	}
	for (int i = 0; i < k->n_stages; i++) {
		mpcc_cuda_stage_launch(k, i, &grid, &block);
		CHECK(s,
		      cuLaunchKernel(s->fn[kernel][i], grid, 1, 1, block, 1, 1, 0, NULL,
		                     s->args[kernel], NULL),
		      d);
	}
	for (int b = 0; b < k->n_bufs; b++) {
		const kir_buf *bf = &k->bufs[b];
		const mpcc_plan_tensor *t;
		if (bf->kind != KIR_BUF_PARAM || !bf->written)
			continue;
		t = &p->tensors[bf->value];
		if ((t->flags & MPCC_TENSOR_OUTPUT) && t->t.nbytes)
			CHECK(s, cuMemcpyDtoH(bufs[b], s->tensor[bf->value], t->t.nbytes), d);
	}
	if (kernel == p->n_kernels - 1)
		CHECK(s, cuStreamSynchronize(NULL), d);
	return MPCC_OK;
}

const mpcc_backend mpcc_backend_cuda = {"cuda", prepare, run_kernel, release};
