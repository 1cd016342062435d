/*
 * plan_cuda_build.c - filling section CUDA at compile time: the plan's
 * kernels printed as one CUDA translation unit (codegen/cuda/emit.c) and
 * compiled by NVRTC for each requested target (codegen/cuda/nvrtc.c).
 *
 * Built only with the CUDA toolkit (MPCC_WITH_CUDA); runtime/
 * backend_cuda_none.c has the no-toolkit variant, which compiles nothing.
 *
 * The targets compile in parallel, one thread each: NVRTC programs are
 * independent and NVRTC may be called from several threads at once, and
 * the front end, which every target repeats, is most of the time (a few
 * seconds per target for the model tests' larger plans), so the wall time
 * is that of the slowest target rather than the sum. Where a thread cannot
 * be started the target compiles on the calling thread instead.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/cuda/emit.h"
#include "codegen/cuda/nvrtc.h"
#include "passes/precision_report.h"
#include "runtime/plan.h"

#define THREAD_STACK (64u << 20) /* reserved, not committed, until used */

typedef struct job {
	const char *src;
	mpcc_cuda_target t;
	mpcc_nvrtc_result r;
	mpcc_status st;
	mpcc_diag d;
	pthread_t thread;
	bool started;
} job;

static void *
compile_job(void *arg)
{
	job *j = arg;

	mpcc_diag_init(&j->d);
	j->st = mpcc_nvrtc_compile(j->src, "mpcc_plan.cu", j->t.arch,
	                           j->t.kind == MPCC_CUDA_IMAGE_PTX, false, &j->r, &j->d);
	return NULL;
}

/* Moves job j's image into im: PTX without NVRTC's terminating NUL (the
 * section stores text; the loader adds the NUL back). */
static void
take_image(job *j, mpcc_plan_cuda_image *im, int nvrtc_version)
{
	im->kind = j->t.kind;
	im->arch = j->t.arch;
	im->nvrtc_version = nvrtc_version;
	im->data = j->r.image;
	im->size = j->t.kind == MPCC_CUDA_IMAGE_PTX ? strlen((char *)j->r.image) : j->r.image_size;
	j->r.image = NULL;
}

/* Runs every job, each on a thread of its own where one can be started. */
static void
run_jobs(job *jobs, int n)
{
	pthread_attr_t attr;
	bool have_attr = pthread_attr_init(&attr) == 0;

	/* NVRTC recurses deeply on large kernels: do not depend on the C
	 * library's default thread stack, which can be small */
	if (have_attr)
		pthread_attr_setstacksize(&attr, THREAD_STACK);
	for (int i = 0; i < n; i++)
		jobs[i].started = pthread_create(&jobs[i].thread, have_attr ? &attr : NULL,
		                                 compile_job, &jobs[i]) == 0;
	if (have_attr)
		pthread_attr_destroy(&attr);
	for (int i = 0; i < n; i++) {
		if (jobs[i].started)
			pthread_join(jobs[i].thread, NULL);
		else
			compile_job(&jobs[i]);
	}
}

/*
 * Why "default" is best effort and a list is not: every compile by the
 * mpcc tool asks for the default binaries, and a model that runs on the
 * CPU must not fail to compile because the CUDA emitter lacks one of its
 * ops or this NVRTC one of the architectures. So for "default" a target
 * this NVRTC does not know is left out, and an emitter or NVRTC failure
 * leaves the plan without section CUDA (the cuda backend then reports the
 * same failure at load, when it matters). Out of memory stays an error.
 * A list the user wrote is held to: any failure fails the compile.
 */
mpcc_status
mpcc_plan_cuda_build(mpcc_plan *p, const char *spec, mpcc_diag *d)
{
	mpcc_cuda_target t[MPCC_CUDA_MAX_TARGETS];
	job jobs[MPCC_CUDA_MAX_TARGETS];
	mpcc_plan_cuda *c = NULL;
	char *src = NULL;
	int n = 0, version = mpcc_nvrtc_version_number();
	bool strict = spec && strcmp(spec, "default") != 0;
	mpcc_diag ed;
	mpcc_status st;

	st = mpcc_cuda_targets_parse(spec, t, &n, d);
	if (st != MPCC_OK || n == 0)
		return st;
	mpcc_diag_init(&ed);
	st = mpcc_cuda_emit(p->kernels, p->n_kernels, true, &src, &ed);
	if (st != MPCC_OK && (strict || st == MPCC_ERR_NOMEM))
		return mpcc_diag_error(d, st, "%s", ed.msg);
	if (st != MPCC_OK)
		return MPCC_OK;
	memset(jobs, 0, sizeof(jobs));
	for (int i = 0; i < n; i++) {
		jobs[i].src = src;
		jobs[i].t = t[i];
	}
	run_jobs(jobs, n);
	int n_ok = 0;
	bool keep = true; /* default: any failure but an unknown architecture drops all */
	for (int i = 0; i < n && st == MPCC_OK; i++) {
		if (jobs[i].st == MPCC_OK)
			n_ok++;
		else if (strict || jobs[i].st == MPCC_ERR_NOMEM)
			st = mpcc_diag_error(d, jobs[i].st, "%s", jobs[i].d.msg);
		else if (jobs[i].st != MPCC_ERR_UNSUPPORTED)
			keep = false;
	}
	if (!keep)
		n_ok = 0;
	if (st == MPCC_OK && n_ok > 0) {
		c = calloc(1, sizeof(*c));
		if (c)
			c->images = calloc((size_t)n, sizeof(*c->images));
		if (!c || !c->images)
			st = mpcc_diag_error(d, MPCC_ERR_NOMEM, "out of memory building the plan");
	}
	if (st == MPCC_OK && n_ok > 0) {
		for (int i = 0; i < n; i++)
			if (jobs[i].st == MPCC_OK)
				take_image(&jobs[i], &c->images[c->n_images++], version);
		c->source = src;
		src = NULL;
		mpcc_plan_cuda_free(p->cuda);
		p->cuda = c;
		c = NULL;
	}
	for (int i = 0; i < n; i++)
		mpcc_nvrtc_result_fini(&jobs[i].r);
	mpcc_plan_cuda_free(c);
	free(src);
	return st;
}

mpcc_status
mpcc_plan_cuda_describe(const mpcc_plan *p, char **out, mpcc_diag *d)
{
	mpcc_strbuf b = {0};

	for (int k = 0; k < p->n_kernels; k++) {
		const kir_kernel *kk = p->kernels[k];

		for (int s = 0; s < kk->n_stages; s += mpcc_cuda_stage_span(kk, s)) {
			char what[400];

			mpcc_cuda_stage_describe(kk, s, what, sizeof(what));
			mpcc_strbuf_printf(&b, "cuda launch: kernel %s stage %d: %s\n", kk->name, s,
			                   what);
		}
	}
	*out = mpcc_strbuf_finish(&b);
	return *out ? MPCC_OK : mpcc_diag_error(d, MPCC_ERR_NOMEM, "out of memory");
}
