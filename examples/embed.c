/*
 * embed.c - embedding mpcc through its public header alone: load a plan,
 * make a session, fill every input with a deterministic pattern, run, and
 * print each output's name, shape and first values.
 *
 * usage: embed PLAN [BACKEND]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpcc.h"

/* Element i of a pattern that is the same on every run and every machine:
 * small values of both signs for numbers, alternating for booleans. */
static void
fill(void *data, mpcc_dtype t, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int v = (int)(i % 7) - 3;
		switch (t) {
		case MPCC_DTYPE_F32: ((float *)data)[i] = (float)v * 0.25f; break;
		case MPCC_DTYPE_F64: ((double *)data)[i] = v * 0.25; break;
		case MPCC_DTYPE_I8: ((int8_t *)data)[i] = (int8_t)v; break;
		case MPCC_DTYPE_I16: ((int16_t *)data)[i] = (int16_t)v; break;
		case MPCC_DTYPE_I32: ((int32_t *)data)[i] = v; break;
		case MPCC_DTYPE_I64: ((int64_t *)data)[i] = v; break;
		case MPCC_DTYPE_U8: ((uint8_t *)data)[i] = (uint8_t)(i % 7); break;
		case MPCC_DTYPE_U16: ((uint16_t *)data)[i] = (uint16_t)(i % 7); break;
		case MPCC_DTYPE_U32: ((uint32_t *)data)[i] = (uint32_t)(i % 7); break;
		case MPCC_DTYPE_U64: ((uint64_t *)data)[i] = i % 7; break;
		case MPCC_DTYPE_BOOL: ((uint8_t *)data)[i] = (uint8_t)(i % 2); break;
		default: memset(data, 0, n * mpcc_dtype_size(t)); return; /* f16/bf16: zeros */
		}
	}
}

static double
get(const mpcc_tensor *t, size_t i)
{
	switch (t->dtype) {
	case MPCC_DTYPE_F32: return ((const float *)t->data)[i];
	case MPCC_DTYPE_F64: return ((const double *)t->data)[i];
	case MPCC_DTYPE_I8: return ((const int8_t *)t->data)[i];
	case MPCC_DTYPE_I16: return ((const int16_t *)t->data)[i];
	case MPCC_DTYPE_I32: return ((const int32_t *)t->data)[i];
	case MPCC_DTYPE_I64: return (double)((const int64_t *)t->data)[i];
	case MPCC_DTYPE_U8: case MPCC_DTYPE_BOOL: return ((const uint8_t *)t->data)[i];
	case MPCC_DTYPE_U16: return ((const uint16_t *)t->data)[i];
	case MPCC_DTYPE_U32: return ((const uint32_t *)t->data)[i];
	case MPCC_DTYPE_U64: return (double)((const uint64_t *)t->data)[i];
	default: return 0;
	}
}

static int
die(mpcc_context *cx, const char *what)
{
	fprintf(stderr, "embed: %s: %s\n", what, mpcc_context_last_error(cx));
	return 1;
}

int
main(int argc, char **argv)
{
	mpcc_context *cx;
	mpcc_plan *plan;
	mpcc_session *s;

	if (argc < 2) {
		fprintf(stderr, "usage: embed PLAN [cpu|interp]\n");
		return 2;
	}
	if (mpcc_context_create(&cx) != MPCC_OK)
		return 1;
	if (mpcc_plan_load(cx, argv[1], &plan) != MPCC_OK)
		return die(cx, "load");
	if (mpcc_session_create(cx, plan, argc > 2 ? argv[2] : NULL, &s) != MPCC_OK)
		return die(cx, "session");
	for (int i = 0; i < mpcc_plan_n_inputs(plan); i++) {
		const mpcc_tensor *in = mpcc_plan_input(plan, i);
		size_t esz = mpcc_dtype_size(in->dtype);
		void *data = malloc(in->nbytes ? in->nbytes : 1);
		if (!data)
			return 1;
		fill(data, in->dtype, esz ? in->nbytes / esz : 0);
		mpcc_status st = mpcc_session_set_input(s, in->name, in->dtype, in->rank, in->dims, data,
		                                        in->nbytes);
		free(data);
		if (st != MPCC_OK)
			return die(cx, "input");
	}
	if (mpcc_session_run(s) != MPCC_OK)
		return die(cx, "run");
	for (int i = 0; i < mpcc_plan_n_outputs(plan); i++) {
		mpcc_tensor out;
		if (mpcc_session_output(s, i, &out) != MPCC_OK)
			return die(cx, "output");
		printf("%s %s [", out.name, mpcc_dtype_name(out.dtype));
		for (int k = 0; k < out.rank; k++)
			printf("%s%lld", k ? "," : "", (long long)out.dims[k]);
		printf("]:");
		size_t esz = mpcc_dtype_size(out.dtype), n = esz ? out.nbytes / esz : 0;
		for (size_t k = 0; k < n && k < 8; k++)
			printf(" %g", get(&out, k));
		printf("%s\n", n > 8 ? " ..." : "");
	}
	mpcc_session_destroy(s);
	mpcc_plan_destroy(plan);
	mpcc_context_destroy(cx);
	return 0;
}
