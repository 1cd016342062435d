/*
 * kir.c - the kernel IR's builders, checker, printer and serialised form.
 *
 * Builders append to growable arrays and never fail visibly: an allocation
 * failure sets k->failed and makes every later builder return 0, so a
 * lowering checks kir_kernel_ok() once. Constants are normalised when built
 * (integers wrapped to their width, floats rounded to their format) so every
 * consumer sees representable values. kir_validate is the single statement of
 * what a well-formed kernel is; the interpreter, the emitters and the plan
 * loader all rely on it. The serialised form is explicit little-endian, field
 * by field, and the reader trusts no count it has not checked against the
 * bytes that remain.
 */
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/kir.h"
#include "codegen/kir_impl.h"

#define KIR_MAGIC 0x3152494bu /* "KIR1" */

/* ---------------------------------------------------------------- kernels */

static void
set_name(char *dst, const char *name)
{
	size_t n = 0;

	if (!name)
		name = "";
	if (name[0] >= '0' && name[0] <= '9')
		dst[n++] = '_';
	for (const char *p = name; *p && n < 63; p++) {
		char c = *p;
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		          (c >= '0' && c <= '9') || c == '_';
		dst[n++] = ok ? c : '_';
	}
	if (n == 0)
		dst[n++] = 'k';
	dst[n] = '\0';
}

kir_kernel *
kir_kernel_create(const char *name)
{
	kir_kernel *k = calloc(1, sizeof(*k));

	if (!k)
		return NULL;
	set_name(k->name, name);
	k->node = MPCC_NONE;
	return k;
}

void
kir_kernel_destroy(kir_kernel *k)
{
	if (!k)
		return;
	free(k->bufs);
	free(k->exprs);
	free(k->stages);
	free(k->cover);
	free(k);
}

bool
kir_kernel_ok(const kir_kernel *k)
{
	return k && !k->failed;
}

/* Grows an array to hold one more element; false (and k->failed) when the
 * allocation fails. */
static bool
grow(kir_kernel *k, void **arr, int *cap, int n, size_t elem)
{
	if (n < *cap)
		return true;
	int ncap = *cap ? *cap * 2 : 16;
	void *p = realloc(*arr, (size_t)ncap * elem);
	if (!p) {
		k->failed = true;
		return false;
	}
	*arr = p;
	*cap = ncap;
	return true;
}

int
kir_buf_add(kir_kernel *k, mpcc_dtype dtype, kir_buf_kind kind, int32_t value, int64_t n_elems)
{
	if (k->failed || !grow(k, (void **)&k->bufs, &k->cap_bufs, k->n_bufs, sizeof(kir_buf)))
		return 0;
	kir_buf *b = &k->bufs[k->n_bufs];
	memset(b, 0, sizeof(*b));
	b->dtype = (uint8_t)dtype;
	b->kind = (uint8_t)kind;
	b->value = value;
	b->n_elems = n_elems;
	return k->n_bufs++;
}

/* ---------------------------------------------------------------- expressions */

static int32_t
push(kir_kernel *k, kir_op op, mpcc_dtype dtype, int32_t a, int32_t b, int32_t c)
{
	if (k->failed || !grow(k, (void **)&k->exprs, &k->cap_exprs, k->n_exprs, sizeof(kir_expr)))
		return 0;
	kir_expr *e = &k->exprs[k->n_exprs];
	memset(e, 0, sizeof(*e));
	e->op = (uint8_t)op;
	e->dtype = (uint8_t)dtype;
	e->a = a;
	e->b = b;
	e->c = c;
	return k->n_exprs++;
}

static bool
is_float(mpcc_dtype t)
{
	return t == MPCC_DTYPE_F32 || t == MPCC_DTYPE_F16 || t == MPCC_DTYPE_BF16 ||
	       t == MPCC_DTYPE_F64;
}

/* Wraps an integer to the width of dtype t (sign- or zero-extended). */
static int64_t
wrap_int(mpcc_dtype t, int64_t v)
{
	switch (t) {
	case MPCC_DTYPE_I8: return (int8_t)(uint8_t)v;
	case MPCC_DTYPE_I16: return (int16_t)(uint16_t)v;
	case MPCC_DTYPE_I32: return (int32_t)(uint32_t)v;
	case MPCC_DTYPE_U8: return (uint8_t)v;
	case MPCC_DTYPE_U16: return (uint16_t)v;
	case MPCC_DTYPE_U32: return (uint32_t)v;
	case MPCC_DTYPE_BOOL: return v != 0;
	default: return v;
	}
}

/* Rounds a double to the value set of float dtype t. */
static double
round_float(mpcc_dtype t, double v)
{
	switch (t) {
	case MPCC_DTYPE_F32: return (float)v;
	case MPCC_DTYPE_F16: return mpcc_f16_to_f32(mpcc_f32_to_f16((float)v));
	case MPCC_DTYPE_BF16: return mpcc_bf16_to_f32(mpcc_f32_to_bf16((float)v));
	default: return v;
	}
}

int32_t
kir_const_f(kir_kernel *k, mpcc_dtype dtype, double v)
{
	int32_t e = push(k, KIR_CONST, dtype, MPCC_NONE, MPCC_NONE, MPCC_NONE);

	if (k->failed)
		return 0;
	if (is_float(dtype)) {
		k->exprs[e].imm.f = round_float(dtype, v);
	} else {
		/* a float constant of an integer type: saturating conversion */
		int64_t i;
		if (isnan(v))
			i = 0;
		else if (v >= 9223372036854775807.0)
			i = INT64_MAX;
		else if (v <= -9223372036854775808.0)
			i = INT64_MIN;
		else
			i = (int64_t)v;
		k->exprs[e].imm.i = dtype == MPCC_DTYPE_BOOL ? v != 0 : wrap_int(dtype, i);
	}
	return e;
}

int32_t
kir_const_i(kir_kernel *k, mpcc_dtype dtype, int64_t v)
{
	if (is_float(dtype))
		return kir_const_f(k, dtype, (double)v);
	int32_t e = push(k, KIR_CONST, dtype, MPCC_NONE, MPCC_NONE, MPCC_NONE);
	if (k->failed)
		return 0;
	k->exprs[e].imm.i = wrap_int(dtype, v);
	return e;
}

int32_t
kir_iconst(kir_kernel *k, int64_t v)
{
	return kir_const_i(k, MPCC_DTYPE_I64, v);
}

int32_t
kir_var(kir_kernel *k, int var)
{
	return push(k, KIR_VAR, MPCC_DTYPE_I64, var, MPCC_NONE, MPCC_NONE);
}

int32_t
kir_load(kir_kernel *k, int buf, int32_t index)
{
	mpcc_dtype t = buf >= 0 && buf < k->n_bufs ? k->bufs[buf].dtype : MPCC_DTYPE_UNDEF;
	return push(k, KIR_LOAD, t, buf, index, MPCC_NONE);
}

int32_t
kir_acc(kir_kernel *k, mpcc_dtype dtype)
{
	return push(k, KIR_ACC, dtype, MPCC_NONE, MPCC_NONE, MPCC_NONE);
}

mpcc_dtype
kir_expr_dtype(const kir_kernel *k, int32_t e)
{
	if (e < 0 || e >= k->n_exprs)
		return MPCC_DTYPE_UNDEF;
	return (mpcc_dtype)k->exprs[e].dtype;
}

int32_t
kir_cast(kir_kernel *k, mpcc_dtype dtype, int32_t a)
{
	if (k->failed)
		return 0;
	if (kir_expr_dtype(k, a) == dtype)
		return a;
	return push(k, KIR_CAST, dtype, a, MPCC_NONE, MPCC_NONE);
}

int32_t
kir_unary(kir_kernel *k, kir_op op, int32_t a)
{
	mpcc_dtype t = op == KIR_ISNAN ? MPCC_DTYPE_BOOL : kir_expr_dtype(k, a);
	return push(k, op, t, a, MPCC_NONE, MPCC_NONE);
}

int32_t
kir_binary(kir_kernel *k, kir_op op, int32_t a, int32_t b)
{
	mpcc_dtype t = kir_op_is_compare(op) ? MPCC_DTYPE_BOOL : kir_expr_dtype(k, a);
	return push(k, op, t, a, b, MPCC_NONE);
}

int32_t
kir_select(kir_kernel *k, int32_t cond, int32_t a, int32_t b)
{
	return push(k, KIR_SELECT, kir_expr_dtype(k, a), cond, a, b);
}

static bool
is_iconst(const kir_kernel *k, int32_t e, int64_t *v)
{
	if (e < 0 || e >= k->n_exprs)
		return false;
	const kir_expr *x = &k->exprs[e];
	if (x->op != KIR_CONST || x->dtype != MPCC_DTYPE_I64)
		return false;
	*v = x->imm.i;
	return true;
}

int32_t
kir_imul(kir_kernel *k, int32_t a, int64_t s)
{
	int64_t c = 0;

	if (k->failed)
		return 0;
	if (s == 1)
		return a;
	if (s == 0)
		return kir_iconst(k, 0);
	if (is_iconst(k, a, &c))
		return kir_iconst(k, (int64_t)((uint64_t)c * (uint64_t)s));
	return kir_binary(k, KIR_MUL, a, kir_iconst(k, s));
}

int32_t
kir_iadd(kir_kernel *k, int32_t a, int32_t b)
{
	int64_t ca = 0, cb = 0;
	bool ka = is_iconst(k, a, &ca), kb = is_iconst(k, b, &cb);

	if (k->failed)
		return 0;
	if (ka && kb)
		return kir_iconst(k, (int64_t)((uint64_t)ca + (uint64_t)cb));
	if (ka && ca == 0)
		return b;
	if (kb && cb == 0)
		return a;
	return kir_binary(k, KIR_ADD, a, b);
}

/* ---------------------------------------------------------------- stages */

static bool
red_is_arg(int r)
{
	return r == KIR_RED_ARGMAX || r == KIR_RED_ARGMIN || r == KIR_RED_ARGMAX_LAST ||
	       r == KIR_RED_ARGMIN_LAST;
}

/* Why NULL is possible: the caller's arrays are copied into a new slot, and
 * that slot may not be allocatable, or the dims may exceed KIR_MAX_DIMS. In
 * both cases k->failed is set and kir_stage_store accepts the NULL. ARG*
 * reductions get acc_dtype I64 whatever the caller passed, and a stage that
 * does not reduce gets acc_dtype UNDEF and red_value MPCC_NONE. */
kir_stage *
kir_stage_add(kir_kernel *k, int n_par, const int64_t *par_ext, int n_red, const int64_t *red_ext,
              kir_red red_op, mpcc_dtype acc_dtype, int32_t red_value)
{
	if (k->failed)
		return NULL;
	if (n_par < 0 || n_par > KIR_MAX_DIMS || n_red < 0 || n_red > KIR_MAX_DIMS) {
		k->failed = true;
		return NULL;
	}
	if (!grow(k, (void **)&k->stages, &k->cap_stages, k->n_stages, sizeof(kir_stage)))
		return NULL;
	kir_stage *st = &k->stages[k->n_stages++];
	memset(st, 0, sizeof(*st));
	st->n_par = n_par;
	for (int i = 0; i < n_par; i++)
		st->par_ext[i] = par_ext[i];
	st->n_red = n_red;
	for (int i = 0; i < n_red; i++)
		st->red_ext[i] = red_ext[i];
	st->red_op = (uint8_t)red_op;
	if (red_op == KIR_RED_NONE) {
		st->acc_dtype = MPCC_DTYPE_UNDEF;
		st->red_value = MPCC_NONE;
	} else {
		st->acc_dtype = (uint8_t)(red_is_arg(red_op) ? MPCC_DTYPE_I64 : acc_dtype);
		st->red_value = red_value;
	}
	return st;
}

void
kir_stage_store(kir_kernel *k, kir_stage *st, int buf, int32_t index, int32_t value)
{
	if (k->failed || !st)
		return;
	if (st->n_store >= KIR_MAX_STORES) {
		k->failed = true;
		return;
	}
	st->store[st->n_store++] = (kir_store){.buf = buf, .index = index, .value = value};
	if (buf >= 0 && buf < k->n_bufs)
		k->bufs[buf].written = true;
}

/* ---------------------------------------------------------------- op classes */

static const char *const op_names[KIR_OP_COUNT] = {
	[KIR_CONST] = "const", [KIR_VAR] = "var",       [KIR_LOAD] = "load",
	[KIR_ACC] = "acc",     [KIR_CAST] = "cast",     [KIR_SELECT] = "select",
	[KIR_NEG] = "neg",     [KIR_ABS] = "abs",       [KIR_SQRT] = "sqrt",
	[KIR_EXP] = "exp",     [KIR_LOG] = "log",       [KIR_SIN] = "sin",
	[KIR_COS] = "cos",     [KIR_TAN] = "tan",       [KIR_ASIN] = "asin",
	[KIR_ACOS] = "acos",   [KIR_ATAN] = "atan",     [KIR_SINH] = "sinh",
	[KIR_COSH] = "cosh",   [KIR_TANH] = "tanh",     [KIR_ASINH] = "asinh",
	[KIR_ACOSH] = "acosh", [KIR_ATANH] = "atanh",   [KIR_ERF] = "erf",
	[KIR_FLOOR] = "floor", [KIR_CEIL] = "ceil",     [KIR_RINT] = "rint",
	[KIR_TRUNC] = "trunc", [KIR_NOT] = "not",       [KIR_BNOT] = "bnot",
	[KIR_ISNAN] = "isnan", [KIR_ADD] = "add",       [KIR_SUB] = "sub",
	[KIR_MUL] = "mul",     [KIR_DIV] = "div",       [KIR_REM] = "rem",
	[KIR_FLOORMOD] = "floormod", [KIR_MIN] = "min", [KIR_MAX] = "max",
	[KIR_POW] = "pow",     [KIR_AND] = "and",       [KIR_OR] = "or",
	[KIR_XOR] = "xor",     [KIR_SHL] = "shl",       [KIR_SHR] = "shr",
	[KIR_EQ] = "eq",       [KIR_NE] = "ne",         [KIR_LT] = "lt",
	[KIR_LE] = "le",       [KIR_GT] = "gt",         [KIR_GE] = "ge",
};

const char *
kir_op_name(kir_op op)
{
	if ((int)op < 0 || op >= KIR_OP_COUNT || !op_names[op])
		return "?";
	return op_names[op];
}

static const char *const red_names[] = {
	"none", "sum", "prod", "max", "min", "argmax", "argmin", "argmax_last", "argmin_last",
};
#define N_RED ((int)(sizeof(red_names) / sizeof(red_names[0])))

bool
kir_op_is_unary(kir_op op)
{
	return op >= KIR_NEG && op <= KIR_ISNAN;
}

bool
kir_op_is_binary(kir_op op)
{
	return op >= KIR_ADD && op <= KIR_GE;
}

bool
kir_op_is_compare(kir_op op)
{
	return op >= KIR_EQ && op <= KIR_GE;
}

bool
kir_stage_reduces(const kir_stage *st)
{
	return st->red_op != KIR_RED_NONE;
}

int
kir_expr_operands(const kir_expr *e, int32_t out[3])
{
	kir_op op = (kir_op)e->op;

	switch (op) {
	case KIR_CONST:
	case KIR_VAR:
	case KIR_ACC:
		return 0;
	case KIR_LOAD:
		out[0] = e->b;
		return 1;
	case KIR_CAST:
		out[0] = e->a;
		return 1;
	case KIR_SELECT:
		out[0] = e->a;
		out[1] = e->b;
		out[2] = e->c;
		return 3;
	default:
		break;
	}
	if (kir_op_is_unary(op)) {
		out[0] = e->a;
		return 1;
	}
	if (kir_op_is_binary(op)) {
		out[0] = e->a;
		out[1] = e->b;
		return 2;
	}
	return 0;
}

void
kir_stage_reach(const kir_kernel *k, const kir_stage *st, uint8_t *mark)
{
	int n = k->n_exprs;

	memset(mark, 0, (size_t)n);
	if (kir_stage_reduces(st) && st->red_value >= 0 && st->red_value < n)
		mark[st->red_value] |= KIR_REACH_RED;
	for (int s = 0; s < st->n_store && s <= KIR_MAX_STORES; s++) {
		const kir_store *so = &st->store[s];
		if (so->index >= 0 && so->index < n)
			mark[so->index] |= KIR_REACH_STORE;
		if (so->value >= 0 && so->value < n)
			mark[so->value] |= KIR_REACH_STORE;
	}
	for (int i = n - 1; i >= 0; i--) {
		int32_t ops[3];
		if (!mark[i])
			continue;
		int no = kir_expr_operands(&k->exprs[i], ops);
		for (int j = 0; j < no; j++)
			if (ops[j] >= 0 && ops[j] < i)
				mark[ops[j]] |= mark[i];
	}
}

/* ---------------------------------------------------------------- validation */

static bool
dtype_ok(int t)
{
	return t > MPCC_DTYPE_UNDEF && t < MPCC_DTYPE_COUNT;
}

static bool
is_intlike(int t)
{
	return dtype_ok(t) && !is_float((mpcc_dtype)t) && t != MPCC_DTYPE_BOOL;
}

/* The dtype rules of one expression whose operands are known to be in
 * range. Returns NULL when fine, else what is wrong. */
static const char *
check_expr_types(const kir_kernel *k, const kir_expr *e)
{
	kir_op op = (kir_op)e->op;
	int t = e->dtype;
	int ta = e->a >= 0 && e->a < k->n_exprs ? k->exprs[e->a].dtype : 0;
	int tb = e->b >= 0 && e->b < k->n_exprs ? k->exprs[e->b].dtype : 0;
	int tc = e->c >= 0 && e->c < k->n_exprs ? k->exprs[e->c].dtype : 0;

	if (!dtype_ok(t))
		return "invalid dtype";
	switch (op) {
	case KIR_CONST:
	case KIR_ACC:
		return NULL;
	case KIR_VAR:
		if (t != MPCC_DTYPE_I64)
			return "var must be i64";
		if (e->a < 0 || e->a >= 2 * KIR_MAX_DIMS)
			return "var number out of range";
		return NULL;
	case KIR_LOAD:
		if (e->a < 0 || e->a >= k->n_bufs)
			return "load of a buffer out of range";
		if (tb != MPCC_DTYPE_I64)
			return "load index must be i64";
		if (t != k->bufs[e->a].dtype)
			return "load dtype differs from its buffer";
		return NULL;
	case KIR_CAST:
		return NULL;
	case KIR_SELECT:
		if (ta != MPCC_DTYPE_BOOL)
			return "select condition must be bool";
		if (tb != t || tc != t)
			return "select arms must have the select's dtype";
		return NULL;
	default:
		break;
	}
	if (kir_op_is_unary(op)) {
		switch (op) {
		case KIR_NOT:
			return ta == MPCC_DTYPE_BOOL && t == ta ? NULL : "not needs bool";
		case KIR_BNOT:
			return is_intlike(ta) && t == ta ? NULL : "bnot needs an integer";
		case KIR_ISNAN:
			return is_float((mpcc_dtype)ta) && t == MPCC_DTYPE_BOOL
			               ? NULL
			               : "isnan needs a float operand and gives bool";
		case KIR_NEG:
		case KIR_ABS:
			return (is_float((mpcc_dtype)ta) || is_intlike(ta)) && t == ta
			               ? NULL
			               : "neg/abs need a number of the result's dtype";
		default:
			return is_float((mpcc_dtype)ta) && t == ta
			               ? NULL
			               : "float unary op needs a float operand of the result's dtype";
		}
	}
	if (kir_op_is_binary(op)) {
		if (ta != tb)
			return "binary operands differ in dtype";
		if (kir_op_is_compare(op))
			return t == MPCC_DTYPE_BOOL ? NULL : "comparison must give bool";
		if (t != ta)
			return "binary result dtype differs from its operands";
		switch (op) {
		case KIR_AND:
		case KIR_OR:
		case KIR_XOR:
			return ta == MPCC_DTYPE_BOOL || is_intlike(ta) ? NULL
			                                               : "and/or/xor need bool or integers";
		case KIR_SHL:
		case KIR_SHR:
			return is_intlike(ta) ? NULL : "shifts need integers";
		case KIR_POW:
			return is_float((mpcc_dtype)ta) ? NULL : "pow needs floats";
		default:
			return ta != MPCC_DTYPE_BOOL ? NULL : "arithmetic on bool";
		}
	}
	return "invalid op";
}

static mpcc_status
bad(mpcc_diag *d, const kir_kernel *k, const char *fmt, ...)
{
	char msg[384];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return mpcc_diag_error(d, MPCC_ERR_INVALID, "kernel '%s': %s", k->name, msg);
}

static bool
name_ok(const char *s)
{
	size_t n = strnlen(s, 64);

	if (n == 0 || n == 64 || (s[0] >= '0' && s[0] <= '9'))
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_'))
			return false;
	}
	return true;
}

/* Why per stage reachability: a VAR is only meaningful in the stages whose
 * trees reach it (reduction vars only inside red_value trees) and ACC only
 * in the stores of a reducing stage, so the same expression pool may be
 * shared across stages yet each stage is checked for what it evaluates. */
static mpcc_status
validate_stage(const kir_kernel *k, int s, const uint8_t *mark, mpcc_diag *d)
{
	const kir_stage *st = &k->stages[s];
	bool reduces;

	if (st->n_par < 0 || st->n_par > KIR_MAX_DIMS || st->n_red < 0 || st->n_red > KIR_MAX_DIMS)
		return bad(d, k, "stage %d: dim counts %d/%d out of range", s, st->n_par, st->n_red);
	if (st->n_store < 0 || st->n_store > KIR_MAX_STORES)
		return bad(d, k, "stage %d: %d stores", s, st->n_store);
	for (int i = 0; i < st->n_par; i++)
		if (st->par_ext[i] < 0)
			return bad(d, k, "stage %d: negative extent", s);
	for (int i = 0; i < st->n_red; i++)
		if (st->red_ext[i] < 0)
			return bad(d, k, "stage %d: negative reduction extent", s);
	if (st->red_op >= N_RED)
		return bad(d, k, "stage %d: invalid reduction op %d", s, st->red_op);
	reduces = kir_stage_reduces(st);
	if (!reduces && st->n_red > 0)
		return bad(d, k, "stage %d: %d reduction dims but no reduction op", s, st->n_red);
	if (reduces) {
		if (st->red_value < 0 || st->red_value >= k->n_exprs)
			return bad(d, k, "stage %d: red_value out of range", s);
		int vt = k->exprs[st->red_value].dtype;
		if (red_is_arg(st->red_op)) {
			if (st->acc_dtype != MPCC_DTYPE_I64)
				return bad(d, k, "stage %d: arg reduction needs acc dtype i64", s);
		} else {
			if (!dtype_ok(st->acc_dtype) || vt != st->acc_dtype)
				return bad(d, k, "stage %d: red_value dtype differs from acc dtype", s);
			if ((st->red_op == KIR_RED_SUM || st->red_op == KIR_RED_PROD) &&
			    vt == MPCC_DTYPE_BOOL)
				return bad(d, k, "stage %d: sum/prod of bool", s);
		}
	}
	for (int i = 0; i < st->n_store; i++) {
		const kir_store *so = &st->store[i];
		if (so->buf < 0 || so->buf >= k->n_bufs)
			return bad(d, k, "stage %d store %d: buffer out of range", s, i);
		if (so->index < 0 || so->index >= k->n_exprs || so->value < 0 ||
		    so->value >= k->n_exprs)
			return bad(d, k, "stage %d store %d: expression out of range", s, i);
		if (k->exprs[so->index].dtype != MPCC_DTYPE_I64)
			return bad(d, k, "stage %d store %d: index must be i64", s, i);
		if (k->exprs[so->value].dtype != k->bufs[so->buf].dtype)
			return bad(d, k, "stage %d store %d: value dtype differs from buffer %d", s, i,
			           so->buf);
		if (!k->bufs[so->buf].written)
			return bad(d, k, "stage %d store %d: buffer %d not marked written", s, i,
			           so->buf);
	}
	for (int e = 0; e < k->n_exprs; e++) {
		const kir_expr *x = &k->exprs[e];
		if (!mark[e])
			continue;
		if (x->op == KIR_VAR) {
			int lim = (mark[e] & KIR_REACH_STORE) ? st->n_par : st->n_par + st->n_red;
			if (x->a >= lim)
				return bad(d, k, "stage %d: expr %d reads var %d, stage has %d here", s,
				           e, x->a, lim);
		} else if (x->op == KIR_ACC) {
			if (mark[e] & KIR_REACH_RED)
				return bad(d, k, "stage %d: expr %d: acc inside the reduced value", s, e);
			if (!reduces)
				return bad(d, k, "stage %d: expr %d: acc in a stage that does not reduce",
				           s, e);
			if (x->dtype != st->acc_dtype)
				return bad(d, k, "stage %d: expr %d: acc dtype differs from the stage's",
				           s, e);
		}
	}
	return MPCC_OK;
}

mpcc_status
kir_validate(const kir_kernel *k, mpcc_diag *d)
{
	mpcc_status st = MPCC_OK;
	uint8_t *mark;

	if (!k)
		return mpcc_diag_error(d, MPCC_ERR_INVALID, "kernel: missing");
	if (!name_ok(k->name))
		return mpcc_diag_error(d, MPCC_ERR_INVALID, "kernel name is not a C identifier");
	if (k->failed)
		return bad(d, k, "building it failed (out of memory)");
	if (k->n_bufs < 0 || k->n_exprs < 0 || k->n_stages < 0)
		return bad(d, k, "negative counts");
	if ((k->n_bufs && !k->bufs) || (k->n_exprs && !k->exprs) || (k->n_stages && !k->stages))
		return bad(d, k, "missing arrays");
	for (int i = 0; i < k->n_bufs; i++) {
		const kir_buf *b = &k->bufs[i];
		if (!dtype_ok(b->dtype))
			return bad(d, k, "buffer %d: invalid dtype %d", i, b->dtype);
		if (b->kind != KIR_BUF_PARAM && b->kind != KIR_BUF_TEMP)
			return bad(d, k, "buffer %d: invalid kind %d", i, b->kind);
		if (b->kind == KIR_BUF_PARAM && b->value < 0)
			return bad(d, k, "buffer %d: parameter bound to no value", i);
		if (b->n_elems < 0)
			return bad(d, k, "buffer %d: negative size %" PRId64, i, b->n_elems);
	}
	for (int i = 0; i < k->n_exprs; i++) {
		const kir_expr *e = &k->exprs[i];
		int32_t ops[3];
		if (e->op >= KIR_OP_COUNT)
			return bad(d, k, "expr %d: invalid op %d", i, e->op);
		int no = kir_expr_operands(e, ops);
		for (int j = 0; j < no; j++)
			if (ops[j] < 0 || ops[j] >= i)
				return bad(d, k, "expr %d (%s): operand %d is not an earlier expr", i,
				           kir_op_name((kir_op)e->op), ops[j]);
		const char *why = check_expr_types(k, e);
		if (why)
			return bad(d, k, "expr %d (%s): %s", i, kir_op_name((kir_op)e->op), why);
	}
	mark = malloc(k->n_exprs ? (size_t)k->n_exprs : 1);
	if (!mark)
		return mpcc_diag_error(d, MPCC_ERR_NOMEM, "out of memory validating a kernel");
	for (int s = 0; s < k->n_stages && st == MPCC_OK; s++) {
		kir_stage_reach(k, &k->stages[s], mark);
		st = validate_stage(k, s, mark, d);
	}
	free(mark);
	return st;
}

/* ---------------------------------------------------------------- printing */

typedef struct sbuf {
	char *p;
	size_t n, cap;
	bool failed;
} sbuf;

static void
sb_printf(sbuf *b, const char *fmt, ...)
{
	va_list ap;
	int len;

	if (b->failed)
		return;
	va_start(ap, fmt);
	len = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (len < 0) {
		b->failed = true;
		return;
	}
	if (b->n + (size_t)len + 1 > b->cap) {
		size_t ncap = b->cap ? b->cap : 256;
		while (ncap < b->n + (size_t)len + 1)
			ncap *= 2;
		char *np = realloc(b->p, ncap);
		if (!np) {
			b->failed = true;
			return;
		}
		b->p = np;
		b->cap = ncap;
	}
	va_start(ap, fmt);
	vsnprintf(b->p + b->n, (size_t)len + 1, fmt, ap);
	va_end(ap);
	b->n += (size_t)len;
}

static const char *
dname(int t)
{
	return dtype_ok(t) ? mpcc_dtype_name((mpcc_dtype)t) : "?";
}

static void
print_expr(sbuf *b, const kir_kernel *k, int i)
{
	const kir_expr *e = &k->exprs[i];
	kir_op op = (kir_op)e->op;

	sb_printf(b, "    e%d = %s.%s", i, kir_op_name(op), dname(e->dtype));
	switch (op) {
	case KIR_CONST:
		if (is_float((mpcc_dtype)e->dtype))
			sb_printf(b, " %.17g\n", e->imm.f);
		else
			sb_printf(b, " %" PRId64 "\n", e->imm.i);
		return;
	case KIR_VAR:
		sb_printf(b, " v%d\n", e->a);
		return;
	case KIR_LOAD:
		sb_printf(b, " b%d[e%d]\n", e->a, e->b);
		return;
	case KIR_ACC:
		sb_printf(b, "\n");
		return;
	default:
		break;
	}
	int32_t ops[3];
	int no = kir_expr_operands(e, ops);
	for (int j = 0; j < no; j++)
		sb_printf(b, "%s e%d", j ? "," : "", ops[j]);
	sb_printf(b, "\n");
}

static void
print_dims(sbuf *b, int n, const int64_t *ext)
{
	sb_printf(b, "[");
	for (int i = 0; i < n && i < KIR_MAX_DIMS; i++)
		sb_printf(b, "%s%" PRId64, i ? ", " : "", ext[i]);
	sb_printf(b, "]");
}

/* Why SSA lines rather than trees: shared subexpressions print once and the
 * numbers are the pool indices, so a dump lines up with kir_validate's
 * messages. Each stage lists only what its trees reach, in pool order. */
char *
kir_print(const kir_kernel *k)
{
	sbuf b = {0};
	uint8_t *mark = malloc(k->n_exprs > 0 ? (size_t)k->n_exprs : 1);

	if (!mark)
		return NULL;
	sb_printf(&b, "kernel %s", k->name);
	if (k->node != MPCC_NONE)
		sb_printf(&b, " node %d", k->node);
	sb_printf(&b, "\n");
	for (int i = 0; i < k->n_bufs; i++) {
		const kir_buf *bf = &k->bufs[i];
		sb_printf(&b, "  b%d: %s %s", i, dname(bf->dtype),
		          bf->kind == KIR_BUF_PARAM ? "param" : "temp");
		if (bf->kind == KIR_BUF_PARAM)
			sb_printf(&b, " v%d", bf->value);
		sb_printf(&b, " [%" PRId64 "]%s\n", bf->n_elems, bf->written ? " written" : "");
	}
	for (int s = 0; s < k->n_stages; s++) {
		const kir_stage *st = &k->stages[s];
		sb_printf(&b, "  stage %d: par ", s);
		print_dims(&b, st->n_par, st->par_ext);
		if (kir_stage_reduces(st)) {
			sb_printf(&b, " red %s.%s ", st->red_op < N_RED ? red_names[st->red_op] : "?",
			          dname(st->acc_dtype));
			print_dims(&b, st->n_red, st->red_ext);
		}
		sb_printf(&b, "%s\n", st->serial ? " serial" : "");
		kir_stage_reach(k, st, mark);
		for (int i = 0; i < k->n_exprs; i++)
			if (mark[i])
				print_expr(&b, k, i);
		if (kir_stage_reduces(st))
			sb_printf(&b, "    fold e%d\n", st->red_value);
		for (int i = 0; i < st->n_store && i < KIR_MAX_STORES; i++)
			sb_printf(&b, "    store b%d[e%d] = e%d\n", st->store[i].buf,
			          st->store[i].index, st->store[i].value);
	}
	free(mark);
	if (b.failed || !b.p) {
		free(b.p);
		return NULL;
	}
	return b.p;
}

/* ---------------------------------------------------------------- serialisation */

void
kir_write_bytes(kir_writer *w, const void *p, size_t n)
{
	if (w->failed || n == 0)
		return;
	if (w->size + n > w->cap) {
		size_t ncap = w->cap ? w->cap : 256;
		while (ncap < w->size + n)
			ncap *= 2;
		uint8_t *np = realloc(w->data, ncap);
		if (!np) {
			w->failed = true;
			return;
		}
		w->data = np;
		w->cap = ncap;
	}
	memcpy(w->data + w->size, p, n);
	w->size += n;
}

static void
put_u8(kir_writer *w, uint8_t v)
{
	kir_write_bytes(w, &v, 1);
}

static void
put_u32(kir_writer *w, uint32_t v)
{
	uint8_t b[4];
	for (int i = 0; i < 4; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	kir_write_bytes(w, b, 4);
}

static void
put_u64(kir_writer *w, uint64_t v)
{
	uint8_t b[8];
	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	kir_write_bytes(w, b, 8);
}

/* Layout (all little-endian): u32 magic "KIR1"; u32 name length, name bytes;
 * i32 node; u32 n_bufs, each {u8 dtype, u8 kind, u8 written, i32 value,
 * i64 n_elems}; u32 n_exprs, each {u8 op, u8 dtype, i32 a, b, c, u64 imm
 * bits}; u32 n_stages, each {u32 n_par, i64 x n_par, u32 n_red, i64 x n_red,
 * u8 red_op, u8 acc_dtype, u8 serial, i32 red_value, u32 n_store, n_store x
 * {i32 buf, index, value}}. */
void
kir_serialize(kir_writer *w, const kir_kernel *k)
{
	size_t nlen = strnlen(k->name, 63);

	put_u32(w, KIR_MAGIC);
	put_u32(w, (uint32_t)nlen);
	kir_write_bytes(w, k->name, nlen);
	put_u32(w, (uint32_t)k->node);
	put_u32(w, (uint32_t)k->n_bufs);
	for (int i = 0; i < k->n_bufs; i++) {
		const kir_buf *b = &k->bufs[i];
		put_u8(w, b->dtype);
		put_u8(w, b->kind);
		put_u8(w, b->written ? 1 : 0);
		put_u32(w, (uint32_t)b->value);
		put_u64(w, (uint64_t)b->n_elems);
	}
	put_u32(w, (uint32_t)k->n_exprs);
	for (int i = 0; i < k->n_exprs; i++) {
		const kir_expr *e = &k->exprs[i];
		uint64_t bits;
		memcpy(&bits, &e->imm, sizeof(bits));
		put_u8(w, e->op);
		put_u8(w, e->dtype);
		put_u32(w, (uint32_t)e->a);
		put_u32(w, (uint32_t)e->b);
		put_u32(w, (uint32_t)e->c);
		put_u64(w, bits);
	}
	put_u32(w, (uint32_t)k->n_stages);
	for (int s = 0; s < k->n_stages; s++) {
		const kir_stage *st = &k->stages[s];
		put_u32(w, (uint32_t)st->n_par);
		for (int i = 0; i < st->n_par; i++)
			put_u64(w, (uint64_t)st->par_ext[i]);
		put_u32(w, (uint32_t)st->n_red);
		for (int i = 0; i < st->n_red; i++)
			put_u64(w, (uint64_t)st->red_ext[i]);
		put_u8(w, st->red_op);
		put_u8(w, st->acc_dtype);
		put_u8(w, st->serial ? 1 : 0);
		put_u32(w, (uint32_t)st->red_value);
		put_u32(w, (uint32_t)st->n_store);
		for (int i = 0; i < st->n_store; i++) {
			put_u32(w, (uint32_t)st->store[i].buf);
			put_u32(w, (uint32_t)st->store[i].index);
			put_u32(w, (uint32_t)st->store[i].value);
		}
	}
}

typedef struct reader {
	const uint8_t *p;
	size_t size, pos;
	bool short_read;
} reader;

static size_t
left(const reader *r)
{
	return r->size - r->pos;
}

static bool
get_bytes(reader *r, void *out, size_t n)
{
	if (r->short_read || left(r) < n) {
		r->short_read = true;
		memset(out, 0, n);
		return false;
	}
	memcpy(out, r->p + r->pos, n);
	r->pos += n;
	return true;
}

static uint8_t
get_u8(reader *r)
{
	uint8_t v;
	get_bytes(r, &v, 1);
	return v;
}

static uint32_t
get_u32(reader *r)
{
	uint8_t b[4];
	uint32_t v = 0;
	get_bytes(r, b, 4);
	for (int i = 0; i < 4; i++)
		v |= (uint32_t)b[i] << (8 * i);
	return v;
}

static uint64_t
get_u64(reader *r)
{
	uint8_t b[8];
	uint64_t v = 0;
	get_bytes(r, b, 8);
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)b[i] << (8 * i);
	return v;
}

#define BUF_BYTES 15
#define EXPR_BYTES 22
#define STAGE_MIN_BYTES 19

static mpcc_status
corrupt(mpcc_diag *d, const char *what)
{
	return mpcc_diag_error(d, MPCC_ERR_INVALID, "damaged kernel: %s", what);
}

/* Reads one count and checks that at least count records of min_bytes each
 * can follow, before anything is allocated for them. */
static bool
get_count(reader *r, size_t min_bytes, int *out)
{
	uint32_t n = get_u32(r);
	if (r->short_read || n > INT32_MAX / 2 || (size_t)n > left(r) / min_bytes)
		return false;
	*out = (int)n;
	return true;
}

static mpcc_status
read_stages(reader *r, kir_kernel *k, mpcc_diag *d)
{
	int n;

	if (!get_count(r, STAGE_MIN_BYTES, &n))
		return corrupt(d, "stage count exceeds the data");
	k->stages = calloc(n ? (size_t)n : 1, sizeof(kir_stage));
	if (!k->stages)
		return mpcc_diag_error(d, MPCC_ERR_NOMEM, "out of memory reading a kernel");
	k->cap_stages = n ? n : 1;
	for (int s = 0; s < n; s++) {
		kir_stage *st = &k->stages[s];
		uint32_t np = get_u32(r);
		if (np > KIR_MAX_DIMS)
			return corrupt(d, "too many parallel dims");
		st->n_par = (int)np;
		for (uint32_t i = 0; i < np; i++)
			st->par_ext[i] = (int64_t)get_u64(r);
		uint32_t nr = get_u32(r);
		if (nr > KIR_MAX_DIMS)
			return corrupt(d, "too many reduction dims");
		st->n_red = (int)nr;
		for (uint32_t i = 0; i < nr; i++)
			st->red_ext[i] = (int64_t)get_u64(r);
		st->red_op = get_u8(r);
		st->acc_dtype = get_u8(r);
		uint8_t serial = get_u8(r);
		if (serial > 1)
			return corrupt(d, "bad serial flag");
		st->serial = serial;
		st->red_value = (int32_t)get_u32(r);
		uint32_t ns = get_u32(r);
		if (ns > KIR_MAX_STORES)
			return corrupt(d, "too many stores");
		st->n_store = (int)ns;
		for (uint32_t i = 0; i < ns; i++) {
			st->store[i].buf = (int32_t)get_u32(r);
			st->store[i].index = (int32_t)get_u32(r);
			st->store[i].value = (int32_t)get_u32(r);
		}
		if (r->short_read)
			return corrupt(d, "truncated stage");
		k->n_stages = s + 1;
	}
	return MPCC_OK;
}

static mpcc_status
read_kernel(reader *r, kir_kernel *k, mpcc_diag *d)
{
	int n;

	if (get_u32(r) != KIR_MAGIC)
		return corrupt(d, "bad magic");
	uint32_t nlen = get_u32(r);
	if (r->short_read || nlen == 0 || nlen > 63 || nlen > left(r))
		return corrupt(d, "bad name length");
	get_bytes(r, k->name, nlen);
	k->name[nlen] = '\0';
	k->node = (int32_t)get_u32(r);

	if (!get_count(r, BUF_BYTES, &n))
		return corrupt(d, "buffer count exceeds the data");
	k->bufs = calloc(n ? (size_t)n : 1, sizeof(kir_buf));
	if (!k->bufs)
		return mpcc_diag_error(d, MPCC_ERR_NOMEM, "out of memory reading a kernel");
	k->cap_bufs = n ? n : 1;
	for (int i = 0; i < n; i++) {
		kir_buf *b = &k->bufs[i];
		b->dtype = get_u8(r);
		b->kind = get_u8(r);
		uint8_t wr = get_u8(r);
		if (wr > 1)
			return corrupt(d, "bad written flag");
		b->written = wr;
		b->value = (int32_t)get_u32(r);
		b->n_elems = (int64_t)get_u64(r);
	}
	k->n_bufs = n;

	if (!get_count(r, EXPR_BYTES, &n))
		return corrupt(d, "expression count exceeds the data");
	k->exprs = calloc(n ? (size_t)n : 1, sizeof(kir_expr));
	if (!k->exprs)
		return mpcc_diag_error(d, MPCC_ERR_NOMEM, "out of memory reading a kernel");
	k->cap_exprs = n ? n : 1;
	for (int i = 0; i < n; i++) {
		kir_expr *e = &k->exprs[i];
		e->op = get_u8(r);
		e->dtype = get_u8(r);
		e->a = (int32_t)get_u32(r);
		e->b = (int32_t)get_u32(r);
		e->c = (int32_t)get_u32(r);
		uint64_t bits = get_u64(r);
		memcpy(&e->imm, &bits, sizeof(bits));
	}
	k->n_exprs = n;
	if (r->short_read)
		return corrupt(d, "truncated");
	return read_stages(r, k, d);
}

mpcc_status
kir_deserialize(const uint8_t *p, size_t size, size_t *consumed, kir_kernel **out, mpcc_diag *d)
{
	reader r = {.p = p, .size = p ? size : 0};
	kir_kernel *k;
	mpcc_status st;

	*out = NULL;
	if (consumed)
		*consumed = 0;
	k = kir_kernel_create("k");
	if (!k)
		return mpcc_diag_error(d, MPCC_ERR_NOMEM, "out of memory reading a kernel");
	st = read_kernel(&r, k, d);
	if (st == MPCC_OK)
		st = kir_validate(k, d);
	if (st != MPCC_OK) {
		kir_kernel_destroy(k);
		return st;
	}
	if (consumed)
		*consumed = r.pos;
	*out = k;
	return MPCC_OK;
}

double
kir_stage_work(const kir_kernel *k, const kir_stage *st)
{
	double w = k->n_exprs > 0 ? k->n_exprs : 1;

	for (int i = 0; i < st->n_par; i++)
		w *= (double)st->par_ext[i];
	for (int i = 0; i < st->n_red; i++)
		w *= (double)st->red_ext[i];
	return w;
}
