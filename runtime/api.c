/*
 * api.c - the public entry points of include/mpcc.h other than sessions:
 * contexts, compiling, and loading plans (status and dtype names live in
 * ir/dtype.c).
 *
 * Every call works on a local diagnostics sink and, on failure, copies its
 * message into the context, which holds only the last error. A successful
 * call leaves the context's message alone, so the message always describes
 * the most recent failure (mpcc.h: "the message of the last failed call").
 * Compiling is the pipeline in a row: read ONNX, run the passes, lower to
 * kernel IR, build the plan, compile its GPU images when asked, and
 * serialise it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/fuse.h"
#include "codegen/lower.h"
#include "frontend/onnx.h"
#include "passes/passes.h"
#include "passes/train.h"
#include "runtime/api_internal.h"
#include "runtime/autoprec.h"
#include "runtime/plan.h"

MPCC_API mpcc_status
mpcc_context_create(mpcc_context **out)
{
	mpcc_context *cx = calloc(1, sizeof(*cx));

	*out = cx;
	return cx ? MPCC_OK : MPCC_ERR_NOMEM;
}

MPCC_API void
mpcc_context_destroy(mpcc_context *cx)
{
	free(cx);
}

MPCC_API const char *
mpcc_context_last_error(const mpcc_context *cx)
{
	return cx ? cx->last_error : "";
}

mpcc_status
mpcc_context_fail(mpcc_context *cx, const mpcc_diag *d, mpcc_status st)
{
	if (st == MPCC_OK)
		return st;
	if (cx) {
		const char *msg = d && d->msg[0] ? d->msg : mpcc_status_name(st);
		snprintf(cx->last_error, sizeof(cx->last_error), "%s", msg);
	}
	return st;
}

MPCC_API void
mpcc_compile_options_init(mpcc_compile_options *opts)
{
	memset(opts, 0, sizeof(*opts));
	opts->precision = MPCC_PRECISION_AUTO;
}

MPCC_API void
mpcc_train_options_init(mpcc_train_options *o)
{
	memset(o, 0, sizeof(*o));
	o->loss = MPCC_LOSS_SOFTMAX_CROSS_ENTROPY;
	o->optimizer = MPCC_OPTIMIZER_SGD;
	o->lr = 0.01;
	o->momentum = 0.9;
	o->beta1 = 0.9;
	o->beta2 = 0.999;
	o->eps = 1e-8;
	o->loss_scaling = MPCC_LOSS_SCALING_DEFAULT;
	o->loss_scale = 65536;
	o->growth_factor = 2;
	o->backoff_factor = 0.5;
	o->growth_interval = 2000;
}

static const char *
precision_name(mpcc_precision p)
{
	switch (p) {
	case MPCC_PRECISION_FP32: return "fp32";
	case MPCC_PRECISION_FP16: return "fp16";
	case MPCC_PRECISION_BF16: return "bf16";
	case MPCC_PRECISION_AUTO: return "auto";
	}
	return "unknown";
}

/*
 * Why the graph is taken by pointer and always destroyed here: both entry
 * points (file and buffer) read the model differently but share everything
 * after, and owning the graph in one place keeps the error paths leak-free.
 */
static mpcc_status
compile_graph(mpcc_graph *g, const void *model, size_t model_size, const char *base_dir,
              const mpcc_compile_options *opts, void **out, size_t *out_size, mpcc_diag *d)
{
	mpcc_pass_ctx pcx = {.d = d, .opts = opts};
	mpcc_autoprec *ap = NULL;
	mpcc_lower lx;
	mpcc_plan *plan = NULL;
	mpcc_status st = MPCC_OK;

	/* auto mode: calibrate and search on builds of its own, then hand the
	 * decisions to this build's precision pass; a training compile's are
	 * builds of the inference model (the forward nodes get hints, the
	 * backward pass the policy) */
	if (opts->precision == MPCC_PRECISION_AUTO) {
		mpcc_compile_options inference = *opts;
		inference.train = NULL;
		st = mpcc_autoprec_search(model, model_size, base_dir, &inference, &ap, d);
		mpcc_autoprec_apply(ap, &pcx);
	}
	if (st == MPCC_OK)
		st = mpcc_run_pipeline(g, &pcx);
	if (st == MPCC_OK) {
		mpcc_lower_init(&lx, g, d);
		st = mpcc_lower_graph(&lx);
		if (st == MPCC_OK && !opts->no_fuse)
			st = mpcc_fuse_kernels(&lx, NULL);
		if (st == MPCC_OK)
			st = mpcc_plan_build(g, &lx, opts->precision, &plan, d);
		mpcc_lower_fini(&lx);
	}
	/* a training plan keeps its source model, for mpcc_trainer_export */
	if (st == MPCC_OK && plan->train)
		st = mpcc_plan_source_build(plan, g, model, model_size, d);
	/* and any plan its GPU binaries, when asked for */
	if (st == MPCC_OK)
		st = mpcc_plan_cuda_build(plan, opts->cuda_archs, d);
	if (st == MPCC_OK)
		st = mpcc_plan_serialize(plan, out, out_size, d);
	mpcc_plan_free(plan);
	mpcc_graph_destroy(g);
	mpcc_autoprec_destroy(ap);
	if (st != MPCC_OK && d->status == MPCC_OK)
		mpcc_diag_error(d, st, "compilation failed (%s)", mpcc_status_name(st));
	return st;
}

static mpcc_status
check_options(const mpcc_compile_options *opts, mpcc_diag *d)
{
	if ((unsigned)opts->precision > (unsigned)MPCC_PRECISION_AUTO)
		return mpcc_diag_error(d, MPCC_ERR_INVALID, "precision %s is not a mode",
		                       precision_name(opts->precision));
	if (opts->n_shapes < 0 || (opts->n_shapes > 0 && !opts->shapes))
		return mpcc_diag_error(d, MPCC_ERR_INVALID, "shape bindings: bad count or pointer");
	mpcc_cuda_target targets[MPCC_CUDA_MAX_TARGETS];
	int n_targets;
	if (mpcc_cuda_targets_parse(opts->cuda_archs, targets, &n_targets, d) != MPCC_OK)
		return d->status;
	if (opts->train)
		return mpcc_train_check_options(opts->train, d);
	return MPCC_OK;
}

MPCC_API mpcc_status
mpcc_compile_buffer(mpcc_context *cx, const void *model, size_t model_size, const char *base_dir,
                    const mpcc_compile_options *opts, void **out_plan, size_t *out_plan_size)
{
	mpcc_compile_options defaults;
	mpcc_graph *g = NULL;
	mpcc_diag d;
	mpcc_status st;

	mpcc_diag_init(&d);
	*out_plan = NULL;
	*out_plan_size = 0;
	if (!opts) {
		mpcc_compile_options_init(&defaults);
		opts = &defaults;
	}
	st = check_options(opts, &d);
	if (st == MPCC_OK)
		st = mpcc_onnx_read_buffer(model, model_size, base_dir, &g, &d);
	if (st == MPCC_OK)
		st = compile_graph(g, model, model_size, base_dir, opts, out_plan, out_plan_size, &d);
	return mpcc_context_fail(cx, &d, st);
}

void
mpcc_diag_prefix(mpcc_diag *d, const char *prefix)
{
	size_t plen = strlen(prefix), cap = sizeof(d->msg), mlen = strlen(d->msg);

	if (plen + 2 >= cap)
		return;
	if (mlen > cap - 1 - plen - 2)
		mlen = cap - 1 - plen - 2;
	memmove(d->msg + plen + 2, d->msg, mlen);
	memcpy(d->msg, prefix, plen);
	memcpy(d->msg + plen, ": ", 2);
	d->msg[plen + 2 + mlen] = 0;
}

/* Reads a whole file into a malloc'd buffer. */
mpcc_status
mpcc_read_whole_file(const char *path, void **out, size_t *out_size, mpcc_diag *d)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	size_t size = 0, cap = 0;

	*out = NULL;
	*out_size = 0;
	if (!f)
		return mpcc_diag_error(d, MPCC_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
	for (;;) {
		if (size == cap) {
			size_t ncap = cap ? cap * 2 : 1 << 16;
			uint8_t *nb = realloc(buf, ncap);
			if (!nb) {
				free(buf);
				fclose(f);
				return mpcc_diag_error(d, MPCC_ERR_NOMEM, "out of memory reading '%s'", path);
			}
			buf = nb;
			cap = ncap;
		}
		size_t n = fread(buf + size, 1, cap - size, f);
		size += n;
		if (n == 0)
			break;
	}
	if (ferror(f)) {
		free(buf);
		fclose(f);
		return mpcc_diag_error(d, MPCC_ERR_IO, "cannot read '%s'", path);
	}
	fclose(f);
	*out = buf;
	*out_size = size;
	return MPCC_OK;
}

/* Writes to PATH.tmp and renames, so a reader never sees half a file. */
mpcc_status
mpcc_write_whole_file(const char *path, const void *buf, size_t size, mpcc_diag *d)
{
	size_t len = strlen(path);
	char *tmp = malloc(len + 5);
	FILE *f;

	if (!tmp)
		return mpcc_diag_error(d, MPCC_ERR_NOMEM, "out of memory");
	memcpy(tmp, path, len);
	memcpy(tmp + len, ".tmp", 5);
	f = fopen(tmp, "wb");
	if (!f) {
		mpcc_diag_error(d, MPCC_ERR_IO, "cannot write '%s': %s", tmp, strerror(errno));
		free(tmp);
		return MPCC_ERR_IO;
	}
	bool ok = fwrite(buf, 1, size, f) == size;
	ok = (fclose(f) == 0) && ok;
	if (!ok || rename(tmp, path) != 0) {
		mpcc_diag_error(d, MPCC_ERR_IO, "cannot write '%s': %s", path, strerror(errno));
		remove(tmp);
		free(tmp);
		return MPCC_ERR_IO;
	}
	free(tmp);
	return MPCC_OK;
}

MPCC_API mpcc_status
mpcc_compile_file(mpcc_context *cx, const char *model_path, const mpcc_compile_options *opts,
                  const char *plan_path)
{
	mpcc_compile_options defaults;
	mpcc_graph *g = NULL;
	void *plan = NULL, *model = NULL;
	size_t plan_size = 0, model_size = 0;
	char *dir = NULL;
	mpcc_diag d;
	mpcc_status st;

	mpcc_diag_init(&d);
	if (!opts) {
		mpcc_compile_options_init(&defaults);
		opts = &defaults;
	}
	st = check_options(opts, &d);
	if (st == MPCC_OK)
		st = mpcc_onnx_read_file(model_path, &g, &d);
	/* auto mode re-reads the model for its own builds, and a training plan
	 * stores it: keep its bytes and the folder external data is resolved
	 * in, as the frontend does */
	if (st == MPCC_OK && (opts->precision == MPCC_PRECISION_AUTO || opts->train)) {
		st = mpcc_read_whole_file(model_path, &model, &model_size, &d);
		const char *slash = strrchr(model_path, '/');
		if (st == MPCC_OK)
			dir = !slash ? strdup(".") : slash == model_path ? strdup("/")
			                                                  : strndup(model_path, (size_t)(slash - model_path));
		if (st == MPCC_OK && !dir)
			st = mpcc_diag_error(&d, MPCC_ERR_NOMEM, "out of memory");
		if (st != MPCC_OK)
			mpcc_graph_destroy(g);
	}
	if (st == MPCC_OK)
		st = compile_graph(g, model, model_size, dir, opts, &plan, &plan_size, &d);
	if (st == MPCC_OK)
		st = mpcc_write_whole_file(plan_path, plan, plan_size, &d);
	free(plan);
	free(model);
	free(dir);
	return mpcc_context_fail(cx, &d, st);
}

MPCC_API mpcc_status
mpcc_plan_load_buffer(mpcc_context *cx, const void *buf, size_t size, mpcc_plan **out)
{
	mpcc_diag d;

	mpcc_diag_init(&d);
	return mpcc_context_fail(cx, &d, mpcc_plan_deserialize(buf, size, out, &d));
}

MPCC_API mpcc_status
mpcc_plan_load(mpcc_context *cx, const char *path, mpcc_plan **out)
{
	void *buf;
	size_t size;
	mpcc_diag d;
	mpcc_status st;

	*out = NULL;
	mpcc_diag_init(&d);
	st = mpcc_read_whole_file(path, &buf, &size, &d);
	if (st == MPCC_OK) {
		st = mpcc_plan_deserialize(buf, size, out, &d);
		free(buf);
	}
	if (st != MPCC_OK && d.msg[0] && strncmp(d.msg, "cannot ", 7) != 0) {
		mpcc_diag_prefix(&d, path);
	}
	return mpcc_context_fail(cx, &d, st);
}

MPCC_API void
mpcc_plan_destroy(mpcc_plan *plan)
{
	mpcc_plan_free(plan);
}

MPCC_API int
mpcc_plan_n_inputs(const mpcc_plan *plan)
{
	return plan->n_inputs;
}

MPCC_API int
mpcc_plan_n_outputs(const mpcc_plan *plan)
{
	return plan->n_outputs;
}

MPCC_API const mpcc_tensor *
mpcc_plan_input(const mpcc_plan *plan, int i)
{
	return i >= 0 && i < plan->n_inputs ? &plan->input_desc[i] : NULL;
}

MPCC_API const mpcc_tensor *
mpcc_plan_output(const mpcc_plan *plan, int i)
{
	return i >= 0 && i < plan->n_outputs ? &plan->output_desc[i] : NULL;
}
