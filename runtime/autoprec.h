/*
 * autoprec.h - auto precision mode's driver (runtime/autoprec.c,
 * docs/precision.md): calibrates the model on the f32 plan, keeps out of
 * f16 what would overflow or underflow, and searches for the nodes whose
 * f32 compute brings every output within the error budget.
 *
 * It builds and runs plans itself, so it lives in runtime/ and not in
 * passes/: the passes only read its result, a hint per node
 * (mpcc_prec_hint, passes/passes.h), through mpcc_pass_ctx.
 */
#ifndef MPCC_AUTOPREC_H
#define MPCC_AUTOPREC_H

#include "passes/passes.h"

/* Thresholds and limits of auto mode, stated in docs/precision.md. */
#define MPCC_AUTO_F16_MAX 65504.0
#define MPCC_AUTO_ACT_LIMIT (MPCC_AUTO_F16_MAX / 2) /* activations: headroom for the next op */
#define MPCC_AUTO_INIT_LIMIT MPCC_AUTO_F16_MAX     /* initializers: converted once, exactly */
#define MPCC_AUTO_UNDERFLOW_SHARE 0.10 /* of nonzero |x| below 2^-14, f16's smallest normal */
#define MPCC_AUTO_DEFAULT_TOLERANCE 1e-3
#define MPCC_AUTO_MAX_EVALS 32     /* candidate configurations compiled and run */
#define MPCC_AUTO_INT_RANGE 8      /* random integer inputs: [0, 8) unless an index */

typedef struct mpcc_autoprec mpcc_autoprec;

/* What the search did, for tests and the CLI. */
typedef struct mpcc_autoprec_stats {
	bool calibrated;      /* false: no calibration run; the policy alone decides */
	int evaluations;      /* candidate configurations compiled and run */
	double seconds;       /* calibration and search, wall clock */
	double tolerance;
	mpcc_error_metric metric;
	double base_error;    /* worst output after stages a and b */
	double final_error;   /* worst output of the chosen configuration */
	int n_candidates;     /* nodes low after stages a and b */
	int n_raised;         /* of those, kept in f32 by stage c */
	int n_bf16;           /* nodes whose hint chose bf16 (stage b) */
} mpcc_autoprec_stats;

/*
 * Runs calibration and search for the model held in model/size (external
 * data resolved in base_dir, may be NULL) under opts (precision AUTO).
 * On success *out holds the hints for the final build; a calibration or
 * search build that cannot run leaves the policy in place and says so in
 * the summary, never failing. Errors: MPCC_ERR_INVALID for options auto
 * mode cannot honour (a calibration tensor naming no input, or of the
 * wrong dtype or shape; a negative tolerance), MPCC_ERR_NOMEM.
 */
mpcc_status mpcc_autoprec_search(const void *model, size_t size, const char *base_dir,
                                 const mpcc_compile_options *opts, mpcc_autoprec **out,
                                 mpcc_diag *d);
/* Points pcx at the hints and the summary (owned by ap, which must outlive
 * the pipeline run). */
void mpcc_autoprec_apply(const mpcc_autoprec *ap, mpcc_pass_ctx *pcx);
const mpcc_autoprec_stats *mpcc_autoprec_get_stats(const mpcc_autoprec *ap);
/* The summary lines (also stored in mpcc_graph.prec_summary). */
const char *mpcc_autoprec_summary(const mpcc_autoprec *ap);
void mpcc_autoprec_destroy(mpcc_autoprec *ap);

/* Reads the model at path and runs the passes on it as mpcc_compile_file
 * does, auto mode's search included (for `mpcc --dump-ir`). *out is the
 * graph after the passes, or NULL on failure. */
mpcc_status mpcc_autoprec_pipeline_file(const char *path, const mpcc_compile_options *opts,
                                        mpcc_graph **out, mpcc_diag *d);

#endif
