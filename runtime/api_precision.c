/*
 * api_precision.c - the public calls that print a plan's precision
 * decisions: the report in text, JSON or HTML, and one node's chain of
 * evidence. They read the records the plan carries (section PRND), so the
 * CLI's compile-time dumps, `mpcc inspect --precision` and an embedding
 * program all get the same text from the same code.
 */
#include <stdlib.h>

#include "runtime/api_internal.h"
#include "runtime/plan.h"

static mpcc_status
need_records(const mpcc_plan *plan, mpcc_diag *d)
{
	if (!plan)
		return mpcc_diag_error(d, MPCC_ERR_INVALID, "no plan given");
	if (!plan->prec_report)
		return mpcc_diag_error(d, MPCC_ERR_UNSUPPORTED,
		                       "the plan has no precision records (section PRND); it was "
		                       "written by an older mpcc: recompile the model");
	return MPCC_OK;
}

MPCC_API mpcc_status
mpcc_plan_precision_dump(mpcc_context *cx, const mpcc_plan *plan, mpcc_dump_format fmt,
                         char **out)
{
	mpcc_diag d;
	mpcc_status st;

	mpcc_diag_init(&d);
	*out = NULL;
	if ((st = need_records(plan, &d)) != MPCC_OK)
		return mpcc_context_fail(cx, &d, st);
	switch (fmt) {
	case MPCC_DUMP_TEXT:
		*out = mpcc_prec_report_text(plan->prec_report);
		break;
	case MPCC_DUMP_JSON:
		*out = mpcc_prec_report_json(plan->prec_report);
		break;
	case MPCC_DUMP_HTML:
		*out = mpcc_prec_report_html(plan->prec_report);
		break;
	default:
		st = mpcc_diag_error(&d, MPCC_ERR_INVALID, "dump format %d is not one of text, json, "
		                     "html", (int)fmt);
		return mpcc_context_fail(cx, &d, st);
	}
	if (!*out)
		st = mpcc_diag_error(&d, MPCC_ERR_NOMEM, "out of memory printing the precision report");
	return mpcc_context_fail(cx, &d, st);
}

MPCC_API mpcc_status
mpcc_plan_explain(mpcc_context *cx, const mpcc_plan *plan, const char *node, char **out)
{
	mpcc_diag d;
	mpcc_status st;

	mpcc_diag_init(&d);
	*out = NULL;
	if (!node)
		return mpcc_context_fail(cx, &d,
		                         mpcc_diag_error(&d, MPCC_ERR_INVALID, "no node name given"));
	if ((st = need_records(plan, &d)) == MPCC_OK)
		st = mpcc_prec_report_explain(plan->prec_report, node, out, &d);
	return mpcc_context_fail(cx, &d, st);
}

MPCC_API void
mpcc_free(void *p)
{
	free(p);
}
