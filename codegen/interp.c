/*
 * interp.c - the reference interpreter of the kernel IR.
 *
 * It is the statement, in code, of what kir.h says a kernel means; constant
 * folding runs it and the emitters are tested against it bit for bit. Each
 * stage walks its parallel domain in row-major order; when it reduces, it
 * initialises the accumulator, visits the reduction points in row-major order
 * and folds them one after another; then it evaluates the store trees and
 * performs the stores in order. Only the expressions a tree reaches are
 * evaluated, in pool order (operands come first).
 *
 * Values are a union: floats as double holding a value of their format (F32
 * ops are computed in float, F16/BF16 in float then rounded), integers as
 * int64 sign- or zero-extended from their width, BOOL as 0/1. Every memory
 * access is bounds-checked and reported rather than performed out of range.
 */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/kir.h"
#include "codegen/kir_impl.h"

typedef union val {
	double f;
	int64_t i;
	uint64_t u;
} val;

enum { C_FLOAT, C_SINT, C_UINT, C_BOOL };

static int
dclass(int t)
{
	switch (t) {
	case MPCC_DTYPE_F32:
	case MPCC_DTYPE_F16:
	case MPCC_DTYPE_BF16:
	case MPCC_DTYPE_F64: return C_FLOAT;
	case MPCC_DTYPE_U8:
	case MPCC_DTYPE_U16:
	case MPCC_DTYPE_U32:
	case MPCC_DTYPE_U64: return C_UINT;
	case MPCC_DTYPE_BOOL: return C_BOOL;
	default: return C_SINT;
	}
}

static int
bits(int t)
{
	switch (t) {
	case MPCC_DTYPE_I8:
	case MPCC_DTYPE_U8:
	case MPCC_DTYPE_BOOL: return 8;
	case MPCC_DTYPE_I16:
	case MPCC_DTYPE_U16: return 16;
	case MPCC_DTYPE_I32:
	case MPCC_DTYPE_U32: return 32;
	default: return 64;
	}
}

/* Integer wrap to the width of t, from any 64-bit pattern. */
static int64_t
wrap(int t, uint64_t v)
{
	switch (t) {
	case MPCC_DTYPE_I8: return (int8_t)(uint8_t)v;
	case MPCC_DTYPE_I16: return (int16_t)(uint16_t)v;
	case MPCC_DTYPE_I32: return (int32_t)(uint32_t)v;
	case MPCC_DTYPE_U8: return (uint8_t)v;
	case MPCC_DTYPE_U16: return (uint16_t)v;
	case MPCC_DTYPE_U32: return (uint32_t)v;
	case MPCC_DTYPE_BOOL: return v != 0;
	default: return (int64_t)v;
	}
}

/* Rounds a float result to the format of t. */
static double
fround(int t, double r)
{
	switch (t) {
	case MPCC_DTYPE_F32: return (float)r;
	case MPCC_DTYPE_F16: return mpcc_f16_to_f32(mpcc_f32_to_f16((float)r));
	case MPCC_DTYPE_BF16: return mpcc_bf16_to_f32(mpcc_f32_to_bf16((float)r));
	default: return r;
	}
}

static int64_t
int_min(int t)
{
	return dclass(t) == C_SINT ? (int64_t)((uint64_t)-1 << (bits(t) - 1)) : 0;
}

static int64_t
int_max(int t)
{
	if (dclass(t) == C_BOOL)
		return 1;
	if (dclass(t) == C_UINT)
		return bits(t) == 64 ? -1 : (int64_t)(((uint64_t)1 << bits(t)) - 1);
	return (int64_t)(((uint64_t)1 << (bits(t) - 1)) - 1);
}

/* ---------------------------------------------------------------- casts */

/* Why the explicit limits: C leaves out-of-range float->int conversion
 * undefined, while kir.h defines it as saturation with NaN giving 0; the
 * comparisons below are against exactly representable powers of two. */
static val
cast_val(int from, int to, val x)
{
	int cf = dclass(from), ct = dclass(to);
	val r;

	if (ct == C_FLOAT) {
		double d;
		if (cf == C_FLOAT)
			d = x.f;
		else if (cf == C_UINT)
			d = to == MPCC_DTYPE_F64 ? (double)x.u : (double)(float)x.u;
		else
			d = to == MPCC_DTYPE_F64 ? (double)x.i : (double)(float)x.i;
		r.f = fround(to, d);
		return r;
	}
	if (ct == C_BOOL) {
		r.i = cf == C_FLOAT ? x.f != 0 : x.i != 0;
		return r;
	}
	if (cf == C_FLOAT) {
		double t = trunc(x.f);
		if (isnan(t)) {
			r.i = 0;
		} else if (ct == C_UINT && bits(to) == 64) {
			if (t <= 0)
				r.u = 0;
			else if (t >= 18446744073709551616.0)
				r.u = UINT64_MAX;
			else
				r.u = (uint64_t)t;
		} else if (ct == C_SINT && bits(to) == 64) {
			if (t >= 9223372036854775808.0)
				r.i = INT64_MAX;
			else if (t <= -9223372036854775808.0)
				r.i = INT64_MIN;
			else
				r.i = (int64_t)t;
		} else {
			double lo = (double)int_min(to), hi = (double)int_max(to);
			r.i = t <= lo ? int_min(to) : t >= hi ? int_max(to) : (int64_t)t;
		}
		return r;
	}
	r.i = wrap(to, x.u);
	return r;
}

/* ---------------------------------------------------------------- arithmetic */

static double
funary(kir_op op, int t, double x)
{
	if (t == MPCC_DTYPE_F64) {
		switch (op) {
		case KIR_NEG: return -x;
		case KIR_ABS: return fabs(x);
		case KIR_SQRT: return sqrt(x);
		case KIR_EXP: return exp(x);
		case KIR_LOG: return log(x);
		case KIR_SIN: return sin(x);
		case KIR_COS: return cos(x);
		case KIR_TAN: return tan(x);
		case KIR_ASIN: return asin(x);
		case KIR_ACOS: return acos(x);
		case KIR_ATAN: return atan(x);
		case KIR_SINH: return sinh(x);
		case KIR_COSH: return cosh(x);
		case KIR_TANH: return tanh(x);
		case KIR_ASINH: return asinh(x);
		case KIR_ACOSH: return acosh(x);
		case KIR_ATANH: return atanh(x);
		case KIR_ERF: return erf(x);
		case KIR_FLOOR: return floor(x);
		case KIR_CEIL: return ceil(x);
		case KIR_RINT: return nearbyint(x);
		case KIR_TRUNC: return trunc(x);
		default: return 0;
		}
	}
	float f = (float)x, r;
	switch (op) {
	case KIR_NEG: r = -f; break;
	case KIR_ABS: r = fabsf(f); break;
	case KIR_SQRT: r = sqrtf(f); break;
	case KIR_EXP: r = expf(f); break;
	case KIR_LOG: r = logf(f); break;
	case KIR_SIN: r = sinf(f); break;
	case KIR_COS: r = cosf(f); break;
	case KIR_TAN: r = tanf(f); break;
	case KIR_ASIN: r = asinf(f); break;
	case KIR_ACOS: r = acosf(f); break;
	case KIR_ATAN: r = atanf(f); break;
	case KIR_SINH: r = sinhf(f); break;
	case KIR_COSH: r = coshf(f); break;
	case KIR_TANH: r = tanhf(f); break;
	case KIR_ASINH: r = asinhf(f); break;
	case KIR_ACOSH: r = acoshf(f); break;
	case KIR_ATANH: r = atanhf(f); break;
	case KIR_ERF: r = erff(f); break;
	case KIR_FLOOR: r = floorf(f); break;
	case KIR_CEIL: r = ceilf(f); break;
	case KIR_RINT: r = nearbyintf(f); break;
	case KIR_TRUNC: r = truncf(f); break;
	default: r = 0; break;
	}
	return fround(t, r);
}

/* Python's modulo: the remainder takes the divisor's sign. */
static double
ffloormod(double a, double b, bool single)
{
	double r = single ? (double)fmodf((float)a, (float)b) : fmod(a, b);
	if (r != 0 && ((r < 0) != (b < 0)))
		r = single ? (double)((float)r + (float)b) : r + b;
	return r;
}

static double
fbinary(kir_op op, int t, double a, double b)
{
	if (op == KIR_MIN || op == KIR_MAX) {
		if (isnan(a))
			return a;
		if (isnan(b))
			return b;
		return op == KIR_MIN ? (a < b ? a : b) : (a > b ? a : b);
	}
	if (t == MPCC_DTYPE_F64) {
		switch (op) {
		case KIR_ADD: return a + b;
		case KIR_SUB: return a - b;
		case KIR_MUL: return a * b;
		case KIR_DIV: return a / b;
		case KIR_REM: return fmod(a, b);
		case KIR_FLOORMOD: return ffloormod(a, b, false);
		case KIR_POW: return pow(a, b);
		default: return 0;
		}
	}
	float x = (float)a, y = (float)b, r;
	switch (op) {
	case KIR_ADD: r = x + y; break;
	case KIR_SUB: r = x - y; break;
	case KIR_MUL: r = x * y; break;
	case KIR_DIV: r = x / y; break;
	case KIR_REM: r = fmodf(x, y); break;
	case KIR_FLOORMOD: r = (float)ffloormod(x, y, true); break;
	case KIR_POW: r = powf(x, y); break;
	default: r = 0; break;
	}
	return fround(t, r);
}

/* Why every case is spelled out: signed overflow, division by zero,
 * INT_MIN / -1 and over-wide shifts are undefined in C but defined in kir.h
 * (wrap, 0, INT_MIN and 0, 0), so arithmetic runs on uint64 patterns and the
 * edge cases are decided before any C operator could trap. */
static int64_t
ibinary(kir_op op, int t, int64_t a, int64_t b)
{
	bool sgn = dclass(t) == C_SINT;
	uint64_t ua = (uint64_t)a, ub = (uint64_t)b;

	switch (op) {
	case KIR_ADD: return wrap(t, ua + ub);
	case KIR_SUB: return wrap(t, ua - ub);
	case KIR_MUL: return wrap(t, ua * ub);
	case KIR_DIV:
		if (b == 0)
			return 0;
		if (!sgn)
			return wrap(t, ua / ub);
		if (b == -1)
			return wrap(t, 0 - ua);
		return wrap(t, (uint64_t)(a / b));
	case KIR_REM:
		if (b == 0)
			return 0;
		if (!sgn)
			return wrap(t, ua % ub);
		if (b == -1)
			return 0;
		return wrap(t, (uint64_t)(a % b));
	case KIR_FLOORMOD: {
		if (b == 0)
			return 0;
		if (!sgn)
			return wrap(t, ua % ub);
		if (b == -1)
			return 0;
		int64_t r = a % b;
		if (r != 0 && ((r < 0) != (b < 0)))
			r += b;
		return wrap(t, (uint64_t)r);
	}
	case KIR_MIN: return sgn ? (a < b ? a : b) : (ua < ub ? a : b);
	case KIR_MAX: return sgn ? (a > b ? a : b) : (ua > ub ? a : b);
	case KIR_AND: return wrap(t, ua & ub);
	case KIR_OR: return wrap(t, ua | ub);
	case KIR_XOR: return wrap(t, ua ^ ub);
	case KIR_SHL:
		if (ub >= (uint64_t)bits(t))
			return 0;
		return wrap(t, ua << ub);
	case KIR_SHR:
		if (ub >= (uint64_t)bits(t))
			return 0;
		if (sgn)
			return a < 0 ? (int64_t)~(~ua >> ub) : (int64_t)(ua >> ub);
		return wrap(t, ua >> ub);
	default: return 0;
	}
}

static bool
compare(kir_op op, int t, val a, val b)
{
	int c = dclass(t);

	if (c == C_FLOAT) {
		switch (op) {
		case KIR_EQ: return a.f == b.f;
		case KIR_NE: return a.f != b.f;
		case KIR_LT: return a.f < b.f;
		case KIR_LE: return a.f <= b.f;
		case KIR_GT: return a.f > b.f;
		default: return a.f >= b.f;
		}
	}
	if (c == C_UINT) {
		switch (op) {
		case KIR_EQ: return a.u == b.u;
		case KIR_NE: return a.u != b.u;
		case KIR_LT: return a.u < b.u;
		case KIR_LE: return a.u <= b.u;
		case KIR_GT: return a.u > b.u;
		default: return a.u >= b.u;
		}
	}
	switch (op) {
	case KIR_EQ: return a.i == b.i;
	case KIR_NE: return a.i != b.i;
	case KIR_LT: return a.i < b.i;
	case KIR_LE: return a.i <= b.i;
	case KIR_GT: return a.i > b.i;
	default: return a.i >= b.i;
	}
}

static val
binary(kir_op op, int t, val a, val b)
{
	val r;

	if (kir_op_is_compare(op)) {
		r.i = compare(op, t, a, b);
	} else if (dclass(t) == C_FLOAT) {
		r.f = fbinary(op, t, a.f, b.f);
	} else {
		r.i = ibinary(op, t, a.i, b.i);
	}
	return r;
}

static val
unary(kir_op op, int t, int ta, val a)
{
	val r;

	switch (op) {
	case KIR_NOT: r.i = !a.i; return r;
	case KIR_BNOT: r.i = wrap(t, ~a.u); return r;
	case KIR_ISNAN: r.i = isnan(a.f) ? 1 : 0; return r;
	default: break;
	}
	if (dclass(ta) == C_FLOAT) {
		r.f = funary(op, t, a.f);
	} else if (op == KIR_NEG) {
		r.i = wrap(t, 0 - a.u);
	} else if (op == KIR_ABS && dclass(t) == C_SINT && a.i < 0) {
		r.i = wrap(t, 0 - a.u);
	} else {
		r = a;
	}
	return r;
}

/* ---------------------------------------------------------------- memory */

static val
load_elem(int t, const void *p, int64_t i)
{
	val r;

	switch (t) {
	case MPCC_DTYPE_F32: r.f = ((const float *)p)[i]; break;
	case MPCC_DTYPE_F64: r.f = ((const double *)p)[i]; break;
	case MPCC_DTYPE_F16: r.f = mpcc_f16_to_f32(((const uint16_t *)p)[i]); break;
	case MPCC_DTYPE_BF16: r.f = mpcc_bf16_to_f32(((const uint16_t *)p)[i]); break;
	case MPCC_DTYPE_I8: r.i = ((const int8_t *)p)[i]; break;
	case MPCC_DTYPE_I16: r.i = ((const int16_t *)p)[i]; break;
	case MPCC_DTYPE_I32: r.i = ((const int32_t *)p)[i]; break;
	case MPCC_DTYPE_I64: r.i = ((const int64_t *)p)[i]; break;
	case MPCC_DTYPE_U8: r.i = ((const uint8_t *)p)[i]; break;
	case MPCC_DTYPE_U16: r.i = ((const uint16_t *)p)[i]; break;
	case MPCC_DTYPE_U32: r.i = ((const uint32_t *)p)[i]; break;
	case MPCC_DTYPE_U64: r.u = ((const uint64_t *)p)[i]; break;
	case MPCC_DTYPE_BOOL: r.i = ((const uint8_t *)p)[i] != 0; break;
	default: r.i = 0; break;
	}
	return r;
}

static void
store_elem(int t, void *p, int64_t i, val v)
{
	switch (t) {
	case MPCC_DTYPE_F32: ((float *)p)[i] = (float)v.f; break;
	case MPCC_DTYPE_F64: ((double *)p)[i] = v.f; break;
	case MPCC_DTYPE_F16: ((uint16_t *)p)[i] = mpcc_f32_to_f16((float)v.f); break;
	case MPCC_DTYPE_BF16: ((uint16_t *)p)[i] = mpcc_f32_to_bf16((float)v.f); break;
	case MPCC_DTYPE_I8:
	case MPCC_DTYPE_U8: ((uint8_t *)p)[i] = (uint8_t)v.u; break;
	case MPCC_DTYPE_I16:
	case MPCC_DTYPE_U16: ((uint16_t *)p)[i] = (uint16_t)v.u; break;
	case MPCC_DTYPE_I32:
	case MPCC_DTYPE_U32: ((uint32_t *)p)[i] = (uint32_t)v.u; break;
	case MPCC_DTYPE_I64:
	case MPCC_DTYPE_U64: ((uint64_t *)p)[i] = v.u; break;
	case MPCC_DTYPE_BOOL: ((uint8_t *)p)[i] = v.i != 0; break;
	default: break;
	}
}

/* ---------------------------------------------------------------- evaluation */

typedef struct interp {
	const kir_kernel *k;
	void **bufs;
	mpcc_diag *d;
	val *v;              /* one slot per expr */
	int64_t var[2 * KIR_MAX_DIMS];
	val acc;             /* SUM..MIN: the value; ARG*: .i the index */
	int stage;
	mpcc_status status;
} interp;

static mpcc_status
oob(interp *in, const char *what, int buf, int64_t idx)
{
	in->status = mpcc_diag_error(in->d, MPCC_ERR_INTERNAL,
	                             "kernel '%s' stage %d: %s of buffer %d at index %" PRId64
	                             " outside [0, %" PRId64 ")",
	                             in->k->name, in->stage, what, buf, idx,
	                             in->k->bufs[buf].n_elems);
	return in->status;
}

/* Evaluates the listed expressions in order; false after a bad access. */
static bool
eval(interp *in, const int32_t *list, int n)
{
	const kir_kernel *k = in->k;
	val *v = in->v;

	for (int j = 0; j < n; j++) {
		int i = list[j];
		const kir_expr *e = &k->exprs[i];
		kir_op op = (kir_op)e->op;
		int t = e->dtype;

		switch (op) {
		case KIR_CONST:
			if (dclass(t) == C_FLOAT)
				v[i].f = e->imm.f;
			else
				v[i].i = e->imm.i;
			break;
		case KIR_VAR: v[i].i = in->var[e->a]; break;
		case KIR_ACC: v[i] = in->acc; break;
		case KIR_LOAD: {
			int64_t idx = v[e->b].i;
			if (idx < 0 || idx >= k->bufs[e->a].n_elems) {
				oob(in, "load", e->a, idx);
				return false;
			}
			v[i] = load_elem(k->bufs[e->a].dtype, in->bufs[e->a], idx);
			break;
		}
		case KIR_CAST: v[i] = cast_val(k->exprs[e->a].dtype, t, v[e->a]); break;
		case KIR_SELECT: v[i] = v[e->a].i ? v[e->b] : v[e->c]; break;
		default:
			if (kir_op_is_unary(op))
				v[i] = unary(op, t, k->exprs[e->a].dtype, v[e->a]);
			else
				v[i] = binary(op, k->exprs[e->a].dtype, v[e->a], v[e->b]);
			break;
		}
	}
	return true;
}

/* Odometer step over n dims starting at var first; false after the last
 * point. */
static bool
step(int64_t *var, int first, int n, const int64_t *ext)
{
	for (int d = n - 1; d >= 0; d--) {
		if (++var[first + d] < ext[d])
			return true;
		var[first + d] = 0;
	}
	return false;
}

static bool
domain_empty(int n, const int64_t *ext)
{
	for (int d = 0; d < n; d++)
		if (ext[d] == 0)
			return true;
	return false;
}

static void
acc_init(interp *in, const kir_stage *st)
{
	int t = st->acc_dtype;
	bool fl = dclass(t) == C_FLOAT;

	switch (st->red_op) {
	case KIR_RED_SUM:
		if (fl)
			in->acc.f = 0;
		else
			in->acc.i = 0;
		break;
	case KIR_RED_PROD:
		if (fl)
			in->acc.f = 1;
		else
			in->acc.i = 1;
		break;
	case KIR_RED_MAX:
		if (fl)
			in->acc.f = -INFINITY;
		else
			in->acc.i = int_min(t);
		break;
	case KIR_RED_MIN:
		if (fl)
			in->acc.f = INFINITY;
		else
			in->acc.i = int_max(t);
		break;
	default: in->acc.i = 0; break;
	}
}

/* Folds the reduction of the current parallel point into in->acc. */
static bool
reduce(interp *in, const kir_stage *st, const int32_t *list, int n)
{
	static const kir_op fold_op[] = {
		[KIR_RED_SUM] = KIR_ADD, [KIR_RED_PROD] = KIR_MUL,
		[KIR_RED_MAX] = KIR_MAX, [KIR_RED_MIN] = KIR_MIN,
	};
	int vt = in->k->exprs[st->red_value].dtype;
	bool arg = st->red_op >= KIR_RED_ARGMAX;
	kir_op cmp = KIR_GT;
	val best = {0};
	int64_t pos = 0;

	acc_init(in, st);
	if (domain_empty(st->n_red, st->red_ext))
		return true;
	switch (st->red_op) {
	case KIR_RED_ARGMAX: cmp = KIR_GT; break;
	case KIR_RED_ARGMIN: cmp = KIR_LT; break;
	case KIR_RED_ARGMAX_LAST: cmp = KIR_GE; break;
	case KIR_RED_ARGMIN_LAST: cmp = KIR_LE; break;
	default: break;
	}
	for (int d = 0; d < st->n_red; d++)
		in->var[st->n_par + d] = 0;
	do {
		if (!eval(in, list, n))
			return false;
		val x = in->v[st->red_value];
		if (!arg) {
			in->acc = binary(fold_op[st->red_op], st->acc_dtype, in->acc, x);
		} else if (pos == 0 || compare(cmp, vt, x, best)) {
			best = x;
			in->acc.i = pos;
		}
		pos++;
	} while (step(in->var, st->n_par, st->n_red, st->red_ext));
	return true;
}

static bool
run_stage(interp *in, const kir_stage *st, const int32_t *rl, int nr, const int32_t *sl, int ns)
{
	const kir_kernel *k = in->k;
	bool reduces = kir_stage_reduces(st);

	if (domain_empty(st->n_par, st->par_ext))
		return true;
	for (int d = 0; d < st->n_par; d++)
		in->var[d] = 0;
	do {
		if (reduces && !reduce(in, st, rl, nr))
			return false;
		if (!eval(in, sl, ns))
			return false;
		for (int s = 0; s < st->n_store; s++) {
			const kir_store *so = &st->store[s];
			int64_t idx = in->v[so->index].i;
			if (idx < 0 || idx >= k->bufs[so->buf].n_elems) {
				oob(in, "store", so->buf, idx);
				return false;
			}
			store_elem(k->bufs[so->buf].dtype, in->bufs[so->buf], idx, in->v[so->value]);
		}
	} while (step(in->var, 0, st->n_par, st->par_ext));
	return true;
}

/* Why the kernel is validated on every call: the interpreter indexes arrays
 * with values read from the kernel, and a kernel from a plan file or a
 * buggy lowering must produce a message, not a wild access. */
mpcc_status
kir_interpret(const kir_kernel *k, void **bufs, mpcc_diag *d)
{
	interp in = {.k = k, .d = d, .status = MPCC_OK};
	void **b = NULL;
	bool *owned = NULL;
	uint8_t *mark = NULL;
	int32_t *rl = NULL, *sl = NULL;
	mpcc_status st = kir_validate(k, d);

	if (st != MPCC_OK)
		return st;
	size_t ne = k->n_exprs > 0 ? (size_t)k->n_exprs : 1;
	size_t nb = k->n_bufs > 0 ? (size_t)k->n_bufs : 1;
	b = calloc(nb, sizeof(*b));
	owned = calloc(nb, sizeof(*owned));
	mark = malloc(ne);
	rl = malloc(ne * sizeof(*rl));
	sl = malloc(ne * sizeof(*sl));
	in.v = calloc(ne, sizeof(*in.v));
	if (!b || !owned || !mark || !rl || !sl || !in.v) {
		st = mpcc_diag_error(d, MPCC_ERR_NOMEM, "out of memory interpreting '%s'", k->name);
		goto out;
	}
	for (int i = 0; i < k->n_bufs; i++) {
		const kir_buf *kb = &k->bufs[i];
		b[i] = bufs ? bufs[i] : NULL;
		if (b[i] || kb->n_elems == 0)
			continue;
		if (kb->kind != KIR_BUF_TEMP) {
			st = mpcc_diag_error(d, MPCC_ERR_INVALID, "kernel '%s': buffer %d is not bound",
			                     k->name, i);
			goto out;
		}
		size_t es = mpcc_dtype_size((mpcc_dtype)kb->dtype);
		if ((uint64_t)kb->n_elems > SIZE_MAX / (es ? es : 1) ||
		    !(b[i] = calloc((size_t)kb->n_elems, es))) {
			st = mpcc_diag_error(d, MPCC_ERR_NOMEM, "out of memory for a temporary of '%s'",
			                     k->name);
			goto out;
		}
		owned[i] = true;
	}
	in.bufs = b;
	for (int s = 0; s < k->n_stages; s++) {
		const kir_stage *sg = &k->stages[s];
		int nr = 0, ns = 0;
		kir_stage_reach(k, sg, mark);
		for (int i = 0; i < k->n_exprs; i++) {
			if (mark[i] & KIR_REACH_RED)
				rl[nr++] = i;
			if (mark[i] & KIR_REACH_STORE)
				sl[ns++] = i;
		}
		in.stage = s;
		if (!run_stage(&in, sg, rl, nr, sl, ns)) {
			st = in.status;
			goto out;
		}
	}
out:
	if (b && owned)
		for (int i = 0; i < k->n_bufs; i++)
			if (owned[i])
				free(b[i]);
	free(b);
	free(owned);
	free(mark);
	free(rl);
	free(sl);
	free(in.v);
	return st;
}
