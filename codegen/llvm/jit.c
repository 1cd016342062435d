/*
 * jit.c - the LLVM backend's driver: module for the host, O2, ORC LLJIT.
 *
 * One mpcc_jit_compile call builds one module holding every stage of every
 * kernel (emit.c), stamps it with the host's triple and data layout, checks
 * it, runs the new pass manager's default<O2> pipeline with the loop and SLP
 * vectorisers on, and hands it to an LLJIT. The optimiser and the LLJIT get
 * target machines made the same way, for the host CPU name and its feature
 * string, so the cost models and the backend agree on what may be used
 * (AVX-512, F16C's vcvtps2ph); the emitter is told whether F16C is there.
 * The stage addresses are looked up once, here, and kept in a flat table.
 * Symbols the module does not define (libm) are resolved from the process.
 *
 * LLVM's target registry must be initialised once per process; that is the
 * only process-wide state and it is guarded by pthread_once.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <llvm-c/Analysis.h>
#include <llvm-c/Core.h>
#include <llvm-c/Error.h>
#include <llvm-c/LLJIT.h>
#include <llvm-c/Orc.h>
#include <llvm-c/Target.h>
#include <llvm-c/TargetMachine.h>
#include <llvm-c/Transforms/PassBuilder.h>

#include "codegen/llvm/emit.h"
#include "codegen/llvm/jit.h"

struct mpcc_jit {
	LLVMOrcLLJITRef lljit;
	bool native_f16; /* the emitter used fptrunc/fpext for f16 */
	int n_kernels;
	int *first; /* index in fns of each kernel's stage 0; n_kernels + 1 entries */
	mpcc_stage_fn *fns;
};

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static bool init_ok;

static void
init_llvm(void) {
	init_ok = !LLVMInitializeNativeTarget() && !LLVMInitializeNativeAsmPrinter();
}

/* Moves an LLVM error's message into the sink and consumes the error. */
static mpcc_status
llvm_error(mpcc_diag *d, LLVMErrorRef err, const char *what) {
	char *msg = LLVMGetErrorMessage(err);

	mpcc_diag_error(d, MPCC_ERR_BACKEND, "llvm: %s: %s", what, msg ? msg : "unknown error");
	LLVMDisposeErrorMessage(msg);
	return MPCC_ERR_BACKEND;
}

/* A target machine for the host CPU with all its features; NULL on error. */
static LLVMTargetMachineRef
host_machine(mpcc_diag *d) {
	char *triple = LLVMGetDefaultTargetTriple();
	char *cpu = LLVMGetHostCPUName();
	char *features = LLVMGetHostCPUFeatures();
	char *err = NULL;
	LLVMTargetRef target;
	LLVMTargetMachineRef tm = NULL;

	if (LLVMGetTargetFromTriple(triple, &target, &err)) {
		mpcc_diag_error(d, MPCC_ERR_BACKEND, "llvm: no target for %s: %s", triple,
		                err ? err : "");
		LLVMDisposeMessage(err);
	} else {
		tm = LLVMCreateTargetMachine(target, triple, cpu, features, LLVMCodeGenLevelDefault,
		                             LLVMRelocDefault, LLVMCodeModelJITDefault);
		if (!tm)
			mpcc_diag_error(d, MPCC_ERR_BACKEND,
			                "llvm: cannot create a target machine");
	}
	LLVMDisposeMessage(triple);
	LLVMDisposeMessage(cpu);
	LLVMDisposeMessage(features);
	return tm;
}

/* Whether tm's feature string enables feature name ("+f16c" among
 * comma-separated "+x" / "-x" entries). */
static bool
has_feature(LLVMTargetMachineRef tm, const char *name) {
	char *fs = LLVMGetTargetMachineFeatureString(tm);
	size_t n = strlen(name);
	bool found = false;

	for (const char *p = fs; p && *p && !found;) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);

		found = len == n + 1 && p[0] == '+' && !strncmp(p + 1, name, n);
		p += end ? len + 1 : len;
	}
	LLVMDisposeMessage(fs);
	return found;
}

/*
 * Why LLVM's loop unroller is not always on: it triples the optimiser's time
 * (1.6 s against 0.35 s for the model test's CNN, whose run takes 0.1 ms),
 * while on plans that do real work it buys some 20-40% (the 224x224 CNN:
 * 5.6 ms against 7-13 ms a run). So it runs when the plan's work estimate
 * (kir_stage_work summed over stages) says a
 * run takes milliseconds.
 */
#define UNROLL_MIN_WORK 1e9

static double
plan_work(kir_kernel *const *kernels, int n_kernels)
{
	double work = 0;

	for (int k = 0; k < n_kernels; k++) {
		const kir_kernel *kk = kernels[k];
		for (int s = 0; s < kk->n_stages; s++)
			work += kir_stage_work(kk, &kk->stages[s]);
	}
	return work;
}

/*
 * Verifies and optimises the module in place. The new pass manager is used
 * rather than the legacy PassManagerBuilder because its C API can switch on
 * both vectorisers and takes the target machine, so the cost models see the
 * real vector width; the legacy builder's C API cannot enable SLP.
 */
static mpcc_status
optimise(LLVMModuleRef mod, LLVMTargetMachineRef tm, bool unroll, mpcc_diag *d) {
	char *msg = NULL;
	LLVMPassBuilderOptionsRef opt;
	LLVMErrorRef err;

	if (LLVMVerifyModule(mod, LLVMReturnStatusAction, &msg)) {
		mpcc_diag_error(d, MPCC_ERR_INTERNAL, "llvm: emitted module is invalid: %s",
		                msg ? msg : "");
		LLVMDisposeMessage(msg);
		return MPCC_ERR_INTERNAL;
	}
	LLVMDisposeMessage(msg);
	opt = LLVMCreatePassBuilderOptions();
	if (!opt)
		return mpcc_diag_error(d, MPCC_ERR_NOMEM, "llvm: out of memory");
	LLVMPassBuilderOptionsSetLoopVectorization(opt, 1);
	LLVMPassBuilderOptionsSetSLPVectorization(opt, 1);
	LLVMPassBuilderOptionsSetLoopInterleaving(opt, 1);
	LLVMPassBuilderOptionsSetLoopUnrolling(opt, unroll);
	err = LLVMRunPasses(mod, "default<O2>", tm, opt);
	LLVMDisposePassBuilderOptions(opt);
	return err ? llvm_error(d, err, "optimising") : MPCC_OK;
}

/*
 * An LLJIT whose main dylib falls back to the process's symbols (libm).
 * Its target machine is copied from host_machine's rather than detected by
 * ORC, so the code generator is sure to see the same CPU name and features
 * the optimiser and the emitter planned for.
 */
static mpcc_status
create_lljit(LLVMOrcLLJITRef *out, mpcc_diag *d) {
	LLVMTargetMachineRef tm = host_machine(d);
	LLVMOrcJITTargetMachineBuilderRef jtmb;
	LLVMOrcLLJITBuilderRef builder;
	LLVMOrcDefinitionGeneratorRef gen = NULL;
	LLVMErrorRef err;

	*out = NULL;
	if (!tm)
		return MPCC_ERR_BACKEND;
	jtmb = LLVMOrcJITTargetMachineBuilderCreateFromTargetMachine(tm); /* disposes tm */
	builder = LLVMOrcCreateLLJITBuilder();
	LLVMOrcLLJITBuilderSetJITTargetMachineBuilder(builder, jtmb);
	if ((err = LLVMOrcCreateLLJIT(out, builder))) {
		*out = NULL;
		return llvm_error(d, err, "creating the JIT");
	}
	err = LLVMOrcCreateDynamicLibrarySearchGeneratorForProcess(
	    &gen, LLVMOrcLLJITGetGlobalPrefix(*out), NULL, NULL);
	if (err) {
		LLVMConsumeError(LLVMOrcDisposeLLJIT(*out));
		*out = NULL;
		return llvm_error(d, err, "adding process symbols");
	}
	LLVMOrcJITDylibAddGenerator(LLVMOrcLLJITGetMainJITDylib(*out), gen);
	return MPCC_OK;
}

/* Emits, optimises and adds the module; the JIT owns it afterwards. */
static mpcc_status
add_module(mpcc_jit *j, kir_kernel *const *kernels, int n_kernels, const mpcc_jit_options *opt,
           mpcc_diag *d) {
	LLVMOrcThreadSafeContextRef tsc = LLVMOrcCreateNewThreadSafeContext();
	LLVMContextRef cx = LLVMOrcThreadSafeContextGetContext(tsc);
	LLVMModuleRef mod = LLVMModuleCreateWithNameInContext("mpcc", cx);
	LLVMTargetMachineRef tm = host_machine(d);
	LLVMOrcThreadSafeModuleRef tsm;
	LLVMErrorRef err;
	mpcc_llvm_target tgt = {0};
	mpcc_status st = MPCC_OK;

	if (!tm)
		st = MPCC_ERR_BACKEND;
	if (st == MPCC_OK) {
		LLVMTargetDataRef td = LLVMCreateTargetDataLayout(tm);
		char *triple = LLVMGetTargetMachineTriple(tm);

		LLVMSetModuleDataLayout(mod, td);
		LLVMSetTarget(mod, triple);
		LLVMDisposeMessage(triple);
		LLVMDisposeTargetData(td);
		tgt.f16c = !opt->soft_f16 && has_feature(tm, "f16c");
		j->native_f16 = tgt.f16c;
		tgt.vec_bits = has_feature(tm, "avx512f") ? 512 : has_feature(tm, "avx") ? 256 : 128;
		tgt.matrix = !opt->no_matrix;
	}
	for (int i = 0; i < n_kernels && st == MPCC_OK; i++)
		st = mpcc_llvm_emit_kernel(mod, kernels[i], &tgt, d);
	if (st == MPCC_OK)
		st = optimise(mod, tm, plan_work(kernels, n_kernels) >= UNROLL_MIN_WORK, d);
	if (tm)
		LLVMDisposeTargetMachine(tm);
	if (st != MPCC_OK) {
		LLVMDisposeModule(mod);
		LLVMOrcDisposeThreadSafeContext(tsc);
		return st;
	}
	tsm = LLVMOrcCreateNewThreadSafeModule(mod, tsc);
	LLVMOrcDisposeThreadSafeContext(tsc);
	err = LLVMOrcLLJITAddLLVMIRModule(j->lljit, LLVMOrcLLJITGetMainJITDylib(j->lljit), tsm);
	if (err) {
		LLVMOrcDisposeThreadSafeModule(tsm);
		return llvm_error(d, err, "adding the module");
	}
	return MPCC_OK;
}

/* Looks every stage up once; the first lookup compiles the whole module. */
static mpcc_status
lookup_stages(mpcc_jit *j, kir_kernel *const *kernels, mpcc_diag *d) {
	for (int k = 0; k < j->n_kernels; k++) {
		for (int s = 0; s < kernels[k]->n_stages; s++) {
			char name[96];
			LLVMOrcExecutorAddress addr = 0;
			LLVMErrorRef err;

			mpcc_llvm_stage_name(name, sizeof(name), kernels[k], s);
			if ((err = LLVMOrcLLJITLookup(j->lljit, &addr, name)))
				return llvm_error(d, err, "looking up a stage");
			j->fns[j->first[k] + s] = (mpcc_stage_fn)(uintptr_t)addr;
		}
	}
	return MPCC_OK;
}

void
mpcc_jit_options_init(mpcc_jit_options *o) {
	const char *soft = getenv("MPCC_SOFT_F16");

	const char *nomx = getenv("MPCC_NO_MATRIX");

	memset(o, 0, sizeof(*o));
	o->soft_f16 = soft && *soft && strcmp(soft, "0") != 0;
	o->no_matrix = nomx && *nomx && strcmp(nomx, "0") != 0;
}

mpcc_status
mpcc_jit_compile(kir_kernel *const *kernels, int n_kernels, mpcc_jit **out, mpcc_diag *d) {
	return mpcc_jit_compile_with(kernels, n_kernels, NULL, out, d);
}

mpcc_status
mpcc_jit_compile_with(kir_kernel *const *kernels, int n_kernels, const mpcc_jit_options *opt,
                      mpcc_jit **out, mpcc_diag *d) {
	mpcc_jit_options defaults;
	mpcc_jit *j;
	mpcc_status st;
	int n_fns = 0;

	*out = NULL;
	if (!opt) {
		mpcc_jit_options_init(&defaults);
		opt = &defaults;
	}
	if (n_kernels < 0 || (n_kernels > 0 && !kernels))
		return mpcc_diag_error(d, MPCC_ERR_INVALID, "llvm: bad kernel list");
	pthread_once(&init_once, init_llvm);
	if (!init_ok)
		return mpcc_diag_error(d, MPCC_ERR_BACKEND, "llvm: native target unavailable");
	j = calloc(1, sizeof(*j));
	if (!j)
		return mpcc_diag_error(d, MPCC_ERR_NOMEM, "llvm: out of memory");
	j->n_kernels = n_kernels;
	j->first = calloc((size_t)n_kernels + 1, sizeof(*j->first));
	if (!j->first) {
		free(j);
		return mpcc_diag_error(d, MPCC_ERR_NOMEM, "llvm: out of memory");
	}
	for (int k = 0; k < n_kernels; k++) {
		j->first[k] = n_fns;
		n_fns += kernels[k]->n_stages;
	}
	j->first[n_kernels] = n_fns;
	j->fns = calloc(n_fns > 0 ? (size_t)n_fns : 1, sizeof(*j->fns));
	if (!j->fns) {
		mpcc_jit_destroy(j);
		return mpcc_diag_error(d, MPCC_ERR_NOMEM, "llvm: out of memory");
	}
	st = create_lljit(&j->lljit, d);
	if (st == MPCC_OK)
		st = add_module(j, kernels, n_kernels, opt, d);
	if (st == MPCC_OK && n_fns > 0)
		st = lookup_stages(j, kernels, d);
	if (st != MPCC_OK) {
		mpcc_jit_destroy(j);
		return st;
	}
	*out = j;
	return MPCC_OK;
}

mpcc_stage_fn
mpcc_jit_stage(const mpcc_jit *j, int k, int s) {
	if (!j || k < 0 || k >= j->n_kernels || s < 0 || s >= j->first[k + 1] - j->first[k])
		return NULL;
	return j->fns[j->first[k] + s];
}

bool
mpcc_jit_has_native_f16(const mpcc_jit *j) {
	return j && j->native_f16;
}

void
mpcc_jit_destroy(mpcc_jit *j) {
	if (!j)
		return;
	if (j->lljit)
		LLVMConsumeError(LLVMOrcDisposeLLJIT(j->lljit));
	free(j->first);
	free(j->fns);
	free(j);
}
