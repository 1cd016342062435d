/*
 * emit.c - kernel IR -> CUDA C, one __global__ function per stage.
 *
 * The approach mirrors the LLVM emitter (codegen/llvm/emit.c) line for line
 * in meaning: a stage is a grid-stride loop over its flattened parallel
 * domain (each point decoded into the loop vars, row-major), then for a
 * reduction an accumulator folded by nested sequential loops over the
 * reduction dims, then the stores. Every needed expression of a region is
 * printed as one `const` local in index order (operands come first in the
 * pool, so this is a topological order); the regions are the reduction body
 * and the stores, and nvcc hoists what does not depend on inner vars.
 *
 * Numerics follow codegen/kir.h: F16/BF16 values live in float registers and
 * are rounded after every producing op by the PTX conversions that
 * __float2half_rn / __float2bfloat16_rn compile to (cvt.rn.f16.f32,
 * cvt.rn.bf16.f32: nearest even, overflow to inf), written as inline PTX and
 * stored as 16-bit integers, so the source needs no header at all: NVRTC 13
 * ships no cuda_fp16.h of its own and a GPU host need not have the toolkit's
 * headers. Signed integer arithmetic is done in unsigned long
 * long and truncated, which wraps without undefined behaviour; division by
 * zero yields 0; float->int casts saturate with NaN -> 0; float min/max
 * propagate NaN.
 *
 * Fast paths are separate stage printers chosen per stage in emit_stage:
 * matrix-product stages (codegen/kir_matrix.h) that codegen/cuda/matrix.c
 * plans go to emit_matrix.c's tiled kernels (tensor cores for f16/bf16,
 * SIMT for f32), long reductions to emit_reduce.c (a warp or a block per
 * point), unit-stride elementwise stages to emit_vec.c (16-byte accesses).
 * The generic printer stays the reference they fall back to, and the tiled
 * and cooperative kernels carry it for launches of another block size.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/cuda/emit_impl.h"
#include "codegen/kir_matrix.h"

static void
vput(sbuf *o, const char *fmt, va_list ap0)
{
	va_list ap;
	int n;

	if (o->failed)
		return;
	for (;;) {
		va_copy(ap, ap0);
		n = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			o->failed = true;
			return;
		}
		if ((size_t)n < o->cap - o->len)
			break;
		size_t cap = o->cap * 2 + (size_t)n + 1;
		char *q = realloc(o->p, cap);
		if (!q) {
			o->failed = true;
			return;
		}
		o->p = q;
		o->cap = cap;
	}
	o->len += (size_t)n;
}

void
mpcc_cuda_put(sbuf *o, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vput(o, fmt, ap);
	va_end(ap);
}

/* This file's short name for it. */
#define put mpcc_cuda_put

mpcc_status
mpcc_cuda_fail(emitter *e, mpcc_status st, const char *fmt, ...)
{
	va_list ap;

	if (e->st == MPCC_OK) {
		e->st = st;
		va_start(ap, fmt);
		mpcc_diag_verror(e->d, st, fmt, ap);
		va_end(ap);
	}
	return st;
}

bool
mpcc_cuda_stage_name(char *buf, size_t n, const kir_kernel *k, int stage)
{
	int r = snprintf(buf, n, "%s_s%d", k->name, stage);

	return r > 0 && (size_t)r < n;
}

static int64_t
par_total(const kir_stage *st)
{
	int64_t n = 1;

	for (int i = 0; i < st->n_par; i++)
		n *= st->par_ext[i];
	return n;
}

void
mpcc_cuda_stage_launch(const kir_kernel *k, int stage, unsigned *grid, unsigned *block)
{
	const kir_stage *st = &k->stages[stage];
	int64_t n = par_total(st), blocks = (n + MPCC_CUDA_BLOCK - 1) / MPCC_CUDA_BLOCK;
	mpcc_cuda_matrix m;

	if (mpcc_cuda_matrix_plan(k, stage, -1, &m)) {
		mpcc_cuda_matrix_launch(&m, grid, block);
		return;
	}
	if (st->serial) {
		*grid = *block = 1;
		return;
	}
	if (mpcc_cuda_row_launch(k, stage, grid, block) ||
	    mpcc_cuda_reduce_launch(k, st, grid, block) || mpcc_cuda_vec_launch(k, st, grid, block))
		return;
	*block = MPCC_CUDA_BLOCK;
	*grid = blocks < 1 ? 1 : blocks > 65535 ? 65535 : (unsigned)blocks;
}

void
mpcc_cuda_stage_describe(const kir_kernel *k, int stage, char *buf, size_t n)
{
	const kir_stage *st = &k->stages[stage];
	int span = mpcc_cuda_stage_span(k, stage), w;
	unsigned grid, block;
	mpcc_cuda_matrix m;
	char what[192];

	if (mpcc_cuda_matrix_plan(k, stage, -1, &m)) {
		char d[160];

		mpcc_cuda_matrix_describe(&m, d, sizeof(d));
		snprintf(what, sizeof(what), "tiled matrix product, %s%s", d,
		         m.kind == MPCC_CUDA_MX_MMA ? ", tensor cores" : "");
	} else if (span > 1) {
		int mode = mpcc_cuda_row_mode(k, stage);

		snprintf(what, sizeof(what), "row kernel of stages %d-%d, %s per row", stage,
		         stage + span - 1,
		         mode == MPCC_CUDA_RED_BLOCK  ? "a block"
		         : mode == MPCC_CUDA_RED_WARP ? "a warp"
		                                      : "a thread");
	} else if (st->serial) {
		snprintf(what, sizeof(what), "serial, one thread in order");
	} else if (mpcc_cuda_reduce_mode(k, st) == MPCC_CUDA_RED_WARP) {
		snprintf(what, sizeof(what), "cooperative reduction, a warp per point");
	} else if (mpcc_cuda_reduce_mode(k, st) == MPCC_CUDA_RED_BLOCK) {
		snprintf(what, sizeof(what), "cooperative reduction, a block per point");
	} else if ((w = mpcc_cuda_vec_width(k, st)) > 1) {
		snprintf(what, sizeof(what), "vectorised, %d points a thread in 16-byte accesses", w);
	} else {
		snprintf(what, sizeof(what), "%s, a thread per point",
		         st->red_op != KIR_RED_NONE ? "sequential reduction" : "elementwise");
	}
	mpcc_cuda_stage_launch(k, stage, &grid, &block);
	snprintf(buf, n, "%s; grid %u x %u threads", what, grid, block);
}

/* ---------------------------------------------------------------- types */

static bool
is_f(mpcc_dtype t)
{
	return t == MPCC_DTYPE_F32 || t == MPCC_DTYPE_F16 || t == MPCC_DTYPE_BF16 ||
	       t == MPCC_DTYPE_F64;
}

static bool
is_unsigned(mpcc_dtype t)
{
	return t == MPCC_DTYPE_U8 || t == MPCC_DTYPE_U16 || t == MPCC_DTYPE_U32 ||
	       t == MPCC_DTYPE_U64 || t == MPCC_DTYPE_BOOL;
}

static unsigned
int_bits(mpcc_dtype t)
{
	switch (t) {
	case MPCC_DTYPE_BOOL:
		return 1;
	case MPCC_DTYPE_I8:
	case MPCC_DTYPE_U8:
		return 8;
	case MPCC_DTYPE_I16:
	case MPCC_DTYPE_U16:
		return 16;
	case MPCC_DTYPE_I32:
	case MPCC_DTYPE_U32:
		return 32;
	case MPCC_DTYPE_I64:
	case MPCC_DTYPE_U64:
		return 64;
	default:
		return 0;
	}
}

/* The C type a value of dtype t has in a register; NULL for UNDEF. */
static const char *
reg_type(mpcc_dtype t)
{
	switch (t) {
	case MPCC_DTYPE_F32:
	case MPCC_DTYPE_F16:
	case MPCC_DTYPE_BF16:
		return "float";
	case MPCC_DTYPE_F64:
		return "double";
	case MPCC_DTYPE_I8:
		return "signed char";
	case MPCC_DTYPE_I16:
		return "short";
	case MPCC_DTYPE_I32:
		return "int";
	case MPCC_DTYPE_I64:
		return "long long";
	case MPCC_DTYPE_U8:
		return "unsigned char";
	case MPCC_DTYPE_U16:
		return "unsigned short";
	case MPCC_DTYPE_U32:
		return "unsigned int";
	case MPCC_DTYPE_U64:
		return "unsigned long long";
	case MPCC_DTYPE_BOOL:
		return "bool";
	default:
		return NULL;
	}
}

/* The C type of an element of dtype t in memory. */
const char *
mpcc_cuda_mem_type(mpcc_dtype t)
{
	if (t == MPCC_DTYPE_F16 || t == MPCC_DTYPE_BF16)
		return "unsigned short";
	if (t == MPCC_DTYPE_BOOL)
		return "unsigned char";
	return reg_type(t);
}

/* The rounding wrapper for a float result of dtype t ("" when none). */
static const char *
fix(mpcc_dtype t)
{
	return t == MPCC_DTYPE_F16 ? "mpcc_rh" : t == MPCC_DTYPE_BF16 ? "mpcc_rbf" : "";
}

/* ---------------------------------------------------------------- prelude */

/*
 * Device helpers shared by every kernel. Saturating casts go through double,
 * which holds every f32 exactly and whose comparisons against the bounds
 * (exact powers of two for 64-bit types) decide the saturation.
 */
static const char prelude[] =
    "/* generated by mpcc: kernel IR -> CUDA C */\n"
    "typedef unsigned long long mpcc_u64;\n"
    "#ifndef MPCC_HOST_SHIM /* tests/unit/test_cuda_host.c runs this source on the CPU */\n"
    "__device__ __forceinline__ unsigned short mpcc_f2h(float x)"
    " { unsigned short h; asm(\"cvt.rn.f16.f32 %0, %1;\" : \"=h\"(h) : \"f\"(x)); return h; }\n"
    "__device__ __forceinline__ float mpcc_h2f(unsigned short h)"
    " { float x; asm(\"cvt.f32.f16 %0, %1;\" : \"=f\"(x) : \"h\"(h)); return x; }\n"
    "__device__ __forceinline__ unsigned short mpcc_f2bf(float x)"
    " { unsigned short h; asm(\"cvt.rn.bf16.f32 %0, %1;\" : \"=h\"(h) : \"f\"(x)); return h; }\n"
    "__device__ __forceinline__ float mpcc_bf2f(unsigned short h)"
    " { return __int_as_float((int)((unsigned)h << 16)); }\n"
    "#endif\n"
    "__device__ __forceinline__ float mpcc_rh(float x) { return mpcc_h2f(mpcc_f2h(x)); }\n"
    "__device__ __forceinline__ float mpcc_rbf(float x) { return mpcc_bf2f(mpcc_f2bf(x)); }\n"
    "template <typename T> __device__ __forceinline__ T mpcc_fmin(T a, T b)"
    " { return a != a ? a : b != b ? b : a < b ? a : b; }\n"
    "template <typename T> __device__ __forceinline__ T mpcc_fmax(T a, T b)"
    " { return a != a ? a : b != b ? b : a > b ? a : b; }\n"
    "template <typename T> __device__ __forceinline__ T mpcc_ffloormod(T a, T b, T r)"
    " { return (((r < 0) != (b < 0)) && r != 0) ? r + b : r; }\n"
    "template <typename T> __device__ __forceinline__ bool mpcc_signed()"
    " { return (T)-1 < (T)0; }\n"
    "template <typename T> __device__ __forceinline__ T mpcc_idiv(T a, T b) {\n"
    "\tif (b == 0) return (T)0;\n"
    "\tif (mpcc_signed<T>() && b == (T)-1) return (T)(0ULL - (mpcc_u64)a);\n"
    "\treturn (T)(a / b);\n}\n"
    "template <typename T> __device__ __forceinline__ T mpcc_irem(T a, T b) {\n"
    "\tif (b == 0 || (mpcc_signed<T>() && b == (T)-1)) return (T)0;\n"
    "\treturn (T)(a % b);\n}\n"
    "template <typename T> __device__ __forceinline__ T mpcc_ifloormod(T a, T b) {\n"
    "\tT r = mpcc_irem<T>(a, b);\n"
    "\tif (mpcc_signed<T>() && r != 0 && (((long long)r < 0) != ((long long)b < 0)))\n"
    "\t\tr = (T)((mpcc_u64)r + (mpcc_u64)b);\n"
    "\treturn r;\n}\n"
    "#define MPCC_SAT(name, T, LO, HI) __device__ __forceinline__ T name(double x)"
    " { return x != x ? (T)0 : x <= (double)(LO) ? (T)(LO) : x >= (double)(HI) ? (T)(HI)"
    " : (T)x; }\n"
    "MPCC_SAT(mpcc_sat_i8, signed char, -128, 127)\n"
    "MPCC_SAT(mpcc_sat_i16, short, -32768, 32767)\n"
    "MPCC_SAT(mpcc_sat_i32, int, -2147483647 - 1, 2147483647)\n"
    "MPCC_SAT(mpcc_sat_i64, long long, -9223372036854775807LL - 1, 9223372036854775807LL)\n"
    "MPCC_SAT(mpcc_sat_u8, unsigned char, 0, 255)\n"
    "MPCC_SAT(mpcc_sat_u16, unsigned short, 0, 65535)\n"
    "MPCC_SAT(mpcc_sat_u32, unsigned int, 0, 4294967295U)\n"
    "MPCC_SAT(mpcc_sat_u64, unsigned long long, 0, 18446744073709551615ULL)\n"
    "\n";

static const char *
sat_name(mpcc_dtype t)
{
	switch (t) {
	case MPCC_DTYPE_I8:
		return "mpcc_sat_i8";
	case MPCC_DTYPE_I16:
		return "mpcc_sat_i16";
	case MPCC_DTYPE_I32:
		return "mpcc_sat_i32";
	case MPCC_DTYPE_I64:
		return "mpcc_sat_i64";
	case MPCC_DTYPE_U8:
		return "mpcc_sat_u8";
	case MPCC_DTYPE_U16:
		return "mpcc_sat_u16";
	case MPCC_DTYPE_U32:
		return "mpcc_sat_u32";
	case MPCC_DTYPE_U64:
		return "mpcc_sat_u64";
	default:
		return NULL;
	}
}

/* ---------------------------------------------------------------- expressions */

/* Prints a float constant of register type exactly (bit pattern). */
static void
put_float(emitter *e, mpcc_dtype t, double v)
{
	if (t == MPCC_DTYPE_F64) {
		uint64_t u;
		memcpy(&u, &v, sizeof(u));
		put(e->o, "__longlong_as_double(0x%llxLL)", (unsigned long long)u);
	} else {
		float f = (float)v;
		uint32_t u;
		memcpy(&u, &f, sizeof(u));
		put(e->o, "%s(__int_as_float((int)0x%08xU))", fix(t), u);
	}
}

static void
emit_const(emitter *e, const kir_expr *x)
{
	mpcc_dtype t = x->dtype;

	if (is_f(t))
		put_float(e, t, x->imm.f);
	else if (t == MPCC_DTYPE_BOOL)
		put(e->o, "%s", x->imm.i ? "true" : "false");
	else
		put(e->o, "(%s)0x%llxULL", reg_type(t), (unsigned long long)x->imm.i);
}

static void
emit_cast(emitter *e, mpcc_dtype from, mpcc_dtype to, int32_t a)
{
	if (from == to) {
		put(e->o, "e%d", a);
	} else if (to == MPCC_DTYPE_BOOL) {
		put(e->o, "(e%d != 0)", a);
	} else if (is_f(to)) {
		if (to == MPCC_DTYPE_F64)
			put(e->o, "(double)e%d", a);
		else
			put(e->o, "%s((float)e%d)", fix(to), a);
	} else if (is_f(from)) {
		put(e->o, "%s((double)e%d)", sat_name(to), a);
	} else {
		put(e->o, "(%s)e%d", reg_type(to), a);
	}
}

static bool
unary_float(emitter *e, kir_op op, mpcc_dtype t, mpcc_dtype ta, int32_t a)
{
	static const struct {
		kir_op op;
		const char *fn;
	} fns[] = {
	    {KIR_ABS, "fabs"},    {KIR_SQRT, "sqrt"},   {KIR_EXP, "exp"},     {KIR_LOG, "log"},
	    {KIR_SIN, "sin"},     {KIR_COS, "cos"},     {KIR_TAN, "tan"},     {KIR_ASIN, "asin"},
	    {KIR_ACOS, "acos"},   {KIR_ATAN, "atan"},   {KIR_SINH, "sinh"},   {KIR_COSH, "cosh"},
	    {KIR_TANH, "tanh"},   {KIR_ASINH, "asinh"}, {KIR_ACOSH, "acosh"}, {KIR_ATANH, "atanh"},
	    {KIR_ERF, "erf"},     {KIR_FLOOR, "floor"}, {KIR_CEIL, "ceil"},   {KIR_RINT, "rint"},
	    {KIR_TRUNC, "trunc"},
	};
	const char *sfx = ta == MPCC_DTYPE_F64 ? "" : "f";

	if (op == KIR_ISNAN) {
		put(e->o, "(e%d != e%d)", a, a);
		return true;
	}
	if (op == KIR_NEG) {
		put(e->o, "%s(-e%d)", fix(t), a);
		return true;
	}
	for (size_t i = 0; i < sizeof(fns) / sizeof(fns[0]); i++) {
		if (fns[i].op == op) {
			put(e->o, "%s(%s%s(e%d))", fix(t), fns[i].fn, sfx, a);
			return true;
		}
	}
	return false;
}

static bool
unary_int(emitter *e, kir_op op, mpcc_dtype t, int32_t a)
{
	const char *ty = reg_type(t);

	switch (op) {
	case KIR_NEG:
		if (t == MPCC_DTYPE_BOOL)
			return false;
		put(e->o, "(%s)(0ULL - (mpcc_u64)e%d)", ty, a);
		return true;
	case KIR_ABS:
		if (is_unsigned(t))
			put(e->o, "e%d", a);
		else
			put(e->o, "(e%d < 0 ? (%s)(0ULL - (mpcc_u64)e%d) : e%d)", a, ty, a, a);
		return true;
	case KIR_NOT:
	case KIR_BNOT:
		if (t == MPCC_DTYPE_BOOL)
			put(e->o, "(!e%d)", a);
		else
			put(e->o, "(%s)~e%d", ty, a);
		return true;
	case KIR_ISNAN:
		put(e->o, "false");
		return true;
	default:
		return false;
	}
}

static const char *
unsigned_of(mpcc_dtype t)
{
	switch (int_bits(t)) {
	case 8:
		return "unsigned char";
	case 16:
		return "unsigned short";
	case 32:
		return "unsigned int";
	default:
		return "unsigned long long";
	}
}

static const char *
cmp_op(kir_op op)
{
	static const char *ops[] = {"==", "!=", "<", "<=", ">", ">="};

	return ops[op - KIR_EQ];
}

static bool
binary_float(emitter *e, kir_op op, mpcc_dtype t, mpcc_dtype ta, int32_t a, int32_t b)
{
	const char *sfx = ta == MPCC_DTYPE_F64 ? "" : "f";
	const char *f = fix(t);

	switch (op) {
	case KIR_ADD:
		put(e->o, "%s(e%d + e%d)", f, a, b);
		return true;
	case KIR_SUB:
		put(e->o, "%s(e%d - e%d)", f, a, b);
		return true;
	case KIR_MUL:
		put(e->o, "%s(e%d * e%d)", f, a, b);
		return true;
	case KIR_DIV:
		put(e->o, "%s(e%d / e%d)", f, a, b);
		return true;
	case KIR_REM:
		put(e->o, "%s(fmod%s(e%d, e%d))", f, sfx, a, b);
		return true;
	case KIR_FLOORMOD:
		put(e->o, "%s(mpcc_ffloormod(e%d, e%d, fmod%s(e%d, e%d)))", f, a, b, sfx, a, b);
		return true;
	case KIR_MIN:
		put(e->o, "%s(mpcc_fmin(e%d, e%d))", f, a, b);
		return true;
	case KIR_MAX:
		put(e->o, "%s(mpcc_fmax(e%d, e%d))", f, a, b);
		return true;
	case KIR_POW:
		put(e->o, "%s(pow%s(e%d, e%d))", f, sfx, a, b);
		return true;
	default:
		if (op >= KIR_EQ && op <= KIR_GE) {
			put(e->o, "(e%d %s e%d)", a, cmp_op(op), b);
			return true;
		}
		return false;
	}
}

/* t is the operands' dtype (the result's, except for comparisons). */
static bool
binary_int(emitter *e, kir_op op, mpcc_dtype t, int32_t a, int32_t b)
{
	const char *ty = reg_type(t);
	bool bl = t == MPCC_DTYPE_BOOL;

	switch (op) {
	case KIR_ADD:
	case KIR_SUB:
	case KIR_MUL:
		put(e->o, "(%s)((mpcc_u64)e%d %c (mpcc_u64)e%d)", ty, a,
		    op == KIR_ADD   ? '+'
		    : op == KIR_SUB ? '-'
		                    : '*',
		    b);
		return true;
	case KIR_DIV:
	case KIR_REM:
	case KIR_FLOORMOD:
		if (bl)
			return false;
		put(e->o, "mpcc_%s<%s>(e%d, e%d)",
		    op == KIR_DIV   ? "idiv"
		    : op == KIR_REM ? "irem"
		                    : "ifloormod",
		    ty, a, b);
		return true;
	case KIR_MIN:
		put(e->o, "(e%d < e%d ? e%d : e%d)", b, a, b, a);
		return true;
	case KIR_MAX:
		put(e->o, "(e%d > e%d ? e%d : e%d)", b, a, b, a);
		return true;
	case KIR_AND:
	case KIR_OR:
	case KIR_XOR:
		put(e->o, "(%s)(e%d %c e%d)", ty, a,
		    op == KIR_AND  ? '&'
		    : op == KIR_OR ? '|'
		                   : '^',
		    b);
		return true;
	case KIR_SHL:
	case KIR_SHR:
		if (bl)
			return false;
		/* the shift amount's bits read as unsigned, as the LLVM emitter compares */
		put(e->o, "((mpcc_u64)(%s)e%d >= %uULL ? (%s)0 : ", unsigned_of(t), b, int_bits(t),
		    ty);
		if (op == KIR_SHL)
			put(e->o, "(%s)((mpcc_u64)e%d << e%d))", ty, a, b);
		else
			put(e->o, "(%s)(e%d >> e%d))", ty, a, b);
		return true;
	default:
		if (op >= KIR_EQ && op <= KIR_GE) {
			put(e->o, "(e%d %s e%d)", a, cmp_op(op), b);
			return true;
		}
		return false;
	}
}

/* A load: the element b<a>[e<b>], or in a vectorised lane (emit_vec.c) the
 * lane's element of the 16 bytes loaded for expression i. */
static void
emit_load(emitter *e, int32_t i, const kir_expr *x)
{
	mpcc_dtype t = e->k->bufs[x->a].dtype;
	char ref[64];

	if (e->vec_load && e->vec_load[i] && mpcc_dtype_size(t) == 1)
		snprintf(ref, sizeof(ref), "(%s)mpcc_vget8(vl%d[w >> 4], w & 15)",
		         mpcc_cuda_mem_type(t), i);
	else if (e->vec_load && e->vec_load[i] && mpcc_dtype_size(t) == 2)
		snprintf(ref, sizeof(ref), "(%s)mpcc_vget16(vl%d[w >> 3], w & 7)",
		         mpcc_cuda_mem_type(t), i);
	else if (e->vec_load && e->vec_load[i] && t == MPCC_DTYPE_F32)
		snprintf(ref, sizeof(ref), "__int_as_float((int)vl%d[w >> 2].w[w & 3])", i);
	else if (e->vec_load && e->vec_load[i])
		snprintf(ref, sizeof(ref), "(%s)vl%d[w >> 2].w[w & 3]", mpcc_cuda_mem_type(t), i);
	else
		snprintf(ref, sizeof(ref), "b%d[e%d]", x->a, x->b);
	if (t == MPCC_DTYPE_F16)
		put(e->o, "mpcc_h2f(%s)", ref);
	else if (t == MPCC_DTYPE_BF16)
		put(e->o, "mpcc_bf2f(%s)", ref);
	else if (t == MPCC_DTYPE_BOOL)
		put(e->o, "(%s != 0)", ref);
	else
		put(e->o, "%s", ref);
}

/* Prints `const T e<i> = ...;` for expression i, whose operands are printed. */
static mpcc_status
emit_one(emitter *e, int32_t i)
{
	const kir_kernel *k = e->k;
	const kir_expr *x = &k->exprs[i];
	mpcc_dtype t = x->dtype, ta;
	bool ok = true;

	if (!reg_type(t))
		return mpcc_cuda_fail(e, MPCC_ERR_INVALID, "kernel %s: expr %d has no dtype", k->name, i);
	put(e->o, "\t\tconst %s e%d = ", reg_type(t), i);
	switch (x->op) {
	case KIR_CONST:
		emit_const(e, x);
		break;
	case KIR_VAR:
		if (x->a < 0 || x->a >= 2 * KIR_MAX_DIMS || !e->vars[x->a])
			return mpcc_cuda_fail(e, MPCC_ERR_INVALID,
			            "kernel %s: expr %d uses var %d outside its loop", k->name, i,
			            x->a);
		put(e->o, "v%d", x->a);
		break;
	case KIR_LOAD:
		if (x->a < 0 || x->a >= k->n_bufs)
			return mpcc_cuda_fail(e, MPCC_ERR_INVALID, "kernel %s: expr %d loads buffer %d of %d",
			            k->name, i, x->a, k->n_bufs);
		emit_load(e, i, x);
		break;
	case KIR_ACC:
		if (!e->acc)
			return mpcc_cuda_fail(e, MPCC_ERR_INVALID,
			            "kernel %s: expr %d reads ACC outside the stores", k->name, i);
		put(e->o, "acc");
		break;
	case KIR_CAST:
		emit_cast(e, k->exprs[x->a].dtype, t, x->a);
		break;
	case KIR_SELECT:
		put(e->o, "e%d ? e%d : e%d", x->a, x->b, x->c);
		break;
	default:
		ta = k->exprs[x->a].dtype;
		if (x->op < KIR_ADD)
			ok = is_f(ta) ? unary_float(e, x->op, t, ta, x->a)
			              : unary_int(e, x->op, t, x->a);
		else if (x->op < KIR_OP_COUNT)
			ok = is_f(ta) ? binary_float(e, x->op, t, ta, x->a, x->b)
			              : binary_int(e, x->op, ta, x->a, x->b);
		else
			ok = false;
		if (!ok)
			return mpcc_cuda_fail(
			    e, MPCC_ERR_UNSUPPORTED,
			    "kernel %s: expr %d: op %s on dtype %s not supported by the cuda "
			    "emitter",
			    k->name, i, kir_op_name(x->op), mpcc_dtype_name(ta));
	}
	put(e->o, ";\n");
	return MPCC_OK;
}

/*
 * Prints expression root and whatever it needs that the current region has
 * not printed yet: mark the needed set downward from root, print upward, so
 * deep chains need no recursion.
 */
mpcc_status
mpcc_cuda_expr(emitter *e, int32_t root)
{
	const kir_kernel *k = e->k;

	if (root < 0 || root >= k->n_exprs)
		return mpcc_cuda_fail(e, MPCC_ERR_INVALID, "kernel %s: expression index %d out of range",
		            k->name, root);
	if (e->done[root])
		return MPCC_OK;
	memset(e->mark, 0, (size_t)root + 1);
	e->mark[root] = 1;
	for (int32_t i = root; i >= 0; i--) {
		const kir_expr *x = &k->exprs[i];
		int32_t ops[3] = {x->a, x->b, x->c};
		unsigned m = kir_operand_mask(x);

		if (!e->mark[i] || e->done[i])
			continue;
		if (e->vec_load && e->vec_load[i])
			m = 0; /* its index is not printed: the lane reads a register */
		for (int j = 0; j < 3; j++) {
			if (!(m & (1u << j)))
				continue;
			if (ops[j] < 0 || ops[j] >= i)
				return mpcc_cuda_fail(e, MPCC_ERR_INVALID,
				            "kernel %s: expr %d has operand %d", k->name, i,
				            ops[j]);
			e->mark[ops[j]] = 1;
		}
	}
	for (int32_t i = 0; i <= root; i++) {
		if (!e->mark[i] || e->done[i])
			continue;
		if (emit_one(e, i))
			return e->st;
		e->done[i] = 1;
	}
	return MPCC_OK;
}

void
mpcc_cuda_clear_region(emitter *e)
{
	memset(e->done, 0, (size_t)(e->k->n_exprs > 0 ? e->k->n_exprs : 1));
}

/* ---------------------------------------------------------------- stages */

bool
mpcc_cuda_is_arg(kir_red r)
{
	return r == KIR_RED_ARGMAX || r == KIR_RED_ARGMIN || r == KIR_RED_ARGMAX_LAST ||
	       r == KIR_RED_ARGMIN_LAST;
}

/* The identity a SUM/PROD/MAX/MIN accumulator of dtype t starts from. */
static bool
red_init(emitter *e, kir_red r, mpcc_dtype t)
{
	const char *ty = reg_type(t);
	unsigned w = int_bits(t);

	if (!ty)
		return false;
	if (r == KIR_RED_SUM || r == KIR_RED_PROD) {
		put(e->o, "(%s)%d", ty, r == KIR_RED_PROD);
	} else if (is_f(t)) {
		put_float(e, t == MPCC_DTYPE_F64 ? t : MPCC_DTYPE_F32,
		          r == KIR_RED_MAX ? -1.0 / 0.0 : 1.0 / 0.0);
	} else if (is_unsigned(t)) {
		put(e->o, "(%s)%s", ty, r == KIR_RED_MAX ? "0" : "~0ULL");
	} else {
		/* signed: MAX starts at the minimum 100..0, MIN at the maximum 011..1 */
		uint64_t v = r == KIR_RED_MAX ? 1ULL << (w - 1) : (1ULL << (w - 1)) - 1;
		put(e->o, "(%s)0x%llxULL", ty, (unsigned long long)v);
	}
	return true;
}

/* The helpers emit_reduce.c, emit_row.c and emit_vec.c share (emit_impl.h). */
int64_t
mpcc_cuda_par_total(const kir_stage *st)
{
	return par_total(st);
}

int64_t
mpcc_cuda_red_total(const kir_stage *st)
{
	int64_t n = 1;

	for (int i = 0; i < st->n_red; i++)
		n *= st->red_ext[i];
	return n;
}

bool
mpcc_cuda_is_float(mpcc_dtype t)
{
	return is_f(t);
}

const char *
mpcc_cuda_reg_type(mpcc_dtype t)
{
	return reg_type(t);
}

const char *
mpcc_cuda_round_fn(mpcc_dtype t)
{
	return fix(t);
}

bool
mpcc_cuda_red_init(emitter *e, kir_red r, mpcc_dtype t)
{
	return red_init(e, r, t);
}

/*
 * The reduction, as in the LLVM emitter: accumulator (and for ARG* the best
 * value and its linear index) reset per parallel point, folded over the
 * reduction dims in row-major order; point 0 always initialises ARG*'s best.
 */
static mpcc_status
emit_reduction(emitter *e, const kir_stage *st)
{
	const kir_kernel *k = e->k;
	kir_red red = st->red_op;
	mpcc_dtype vt = k->exprs[st->red_value].dtype, at = st->acc_dtype;
	int v = st->red_value;

	if (mpcc_cuda_is_arg(red)) {
		put(e->o, "\tlong long acc = 0;\n\t%s best = (%s)0;\n", reg_type(vt), reg_type(vt));
	} else {
		put(e->o, "\t%s acc = ", reg_type(at) ? reg_type(at) : "int");
		if (!red_init(e, red, at))
			return mpcc_cuda_fail(e, MPCC_ERR_UNSUPPORTED, "kernel %s: reduction on dtype %d",
			            k->name, at);
		put(e->o, ";\n");
	}
	for (int r = 0; r < st->n_red; r++) {
		int var = st->n_par + r;
		put(e->o, "\tfor (long long v%d = 0; v%d < %lldLL; v%d++)\n", var, var,
		    (long long)st->red_ext[r], var);
		e->vars[var] = true;
	}
	put(e->o, "\t{\n");
	if (mpcc_cuda_is_arg(red)) {
		put(e->o, "\t\tconst long long lin = ");
		if (st->n_red == 0)
			put(e->o, "0");
		for (int r = 0; r < st->n_red; r++) {
			long long stride = 1;
			for (int q = r + 1; q < st->n_red; q++)
				stride *= st->red_ext[q];
			put(e->o, "%sv%d * %lldLL", r ? " + " : "", st->n_par + r, stride);
		}
		put(e->o, ";\n");
	}
	if (mpcc_cuda_expr(e, v))
		return e->st;
	if (mpcc_cuda_is_arg(red)) {
		const char *op = red == KIR_RED_ARGMAX        ? ">"
		                 : red == KIR_RED_ARGMAX_LAST ? ">="
		                 : red == KIR_RED_ARGMIN      ? "<"
		                                              : "<=";
		put(e->o, "\t\tif ((e%d %s best) || lin == 0) { best = e%d; acc = lin; }\n", v, op,
		    v);
	} else if (is_f(at)) {
		const char *f = fix(at);
		if (red == KIR_RED_SUM)
			put(e->o, "\t\tacc = %s(acc + e%d);\n", f, v);
		else if (red == KIR_RED_PROD)
			put(e->o, "\t\tacc = %s(acc * e%d);\n", f, v);
		else
			put(e->o, "\t\tacc = %s(mpcc_f%s(acc, e%d));\n", f,
			    red == KIR_RED_MAX ? "max" : "min", v);
	} else {
		const char *ty = reg_type(at);
		if (red == KIR_RED_SUM || red == KIR_RED_PROD)
			put(e->o, "\t\tacc = (%s)((mpcc_u64)acc %c (mpcc_u64)e%d);\n", ty,
			    red == KIR_RED_SUM ? '+' : '*', v);
		else
			put(e->o, "\t\tacc = e%d %c acc ? e%d : acc;\n", v,
			    red == KIR_RED_MAX ? '>' : '<', v);
	}
	put(e->o, "\t}\n");
	for (int r = 0; r < st->n_red; r++)
		e->vars[st->n_par + r] = false;
	mpcc_cuda_clear_region(e);
	e->acc = true;
	return MPCC_OK;
}

mpcc_status
mpcc_cuda_store(emitter *e, const kir_store *s)
{
	const kir_buf *bf;

	if (s->buf < 0 || s->buf >= e->k->n_bufs)
		return mpcc_cuda_fail(e, MPCC_ERR_INVALID, "kernel %s: store to buffer %d", e->k->name,
		            s->buf);
	bf = &e->k->bufs[s->buf];
	if (e->vec_store >= 0) {
		/* a lane of a 16-byte staging word (emit_vec.c) */
		int v = s->value;
		if (mpcc_cuda_expr(e, v))
			return e->st;
		if (mpcc_dtype_size(bf->dtype) == 1)
			put(e->o, "\t\tmpcc_vset8(vs%d[w >> 4], w & 15, (unsigned char)e%d);\n",
			    e->vec_store, v);
		else if (bf->dtype == MPCC_DTYPE_F16 || bf->dtype == MPCC_DTYPE_BF16)
			put(e->o, "\t\tmpcc_vset16(vs%d[w >> 3], w & 7, mpcc_f2%s(e%d));\n",
			    e->vec_store, bf->dtype == MPCC_DTYPE_F16 ? "h" : "bf", v);
		else if (mpcc_dtype_size(bf->dtype) == 2)
			put(e->o, "\t\tmpcc_vset16(vs%d[w >> 3], w & 7, (unsigned short)e%d);\n",
			    e->vec_store, v);
		else if (bf->dtype == MPCC_DTYPE_F32)
			put(e->o, "\t\tvs%d[w >> 2].w[w & 3] = (unsigned)__float_as_int(e%d);\n",
			    e->vec_store, v);
		else
			put(e->o, "\t\tvs%d[w >> 2].w[w & 3] = (unsigned)e%d;\n", e->vec_store, v);
		return MPCC_OK;
	} else {
		if (mpcc_cuda_expr(e, s->index) || mpcc_cuda_expr(e, s->value))
			return e->st;
		put(e->o, "\t\tb%d[e%d] = ", s->buf, s->index);
	}
	if (bf->dtype == MPCC_DTYPE_F16)
		put(e->o, "mpcc_f2h(e%d);\n", s->value);
	else if (bf->dtype == MPCC_DTYPE_BF16)
		put(e->o, "mpcc_f2bf(e%d);\n", s->value);
	else if (bf->dtype == MPCC_DTYPE_BOOL)
		put(e->o, "(unsigned char)e%d;\n", s->value);
	else
		put(e->o, "e%d;\n", s->value);
	return MPCC_OK;
}

mpcc_status
mpcc_cuda_signature(emitter *e, int si, bool one_block)
{
	const kir_kernel *k = e->k;
	char name[96];

	if (!mpcc_cuda_stage_name(name, sizeof(name), k, si))
		return mpcc_cuda_fail(e, MPCC_ERR_INVALID, "kernel %s: name too long", k->name);
	put(e->o, "extern \"C\" __global__ void __launch_bounds__(%d%s)\n%s(", MPCC_CUDA_BLOCK,
	    one_block ? ", 1" : "", name);
	for (int i = 0; i < k->n_bufs; i++) {
		const char *mt = mpcc_cuda_mem_type(k->bufs[i].dtype);
		if (!mt)
			return mpcc_cuda_fail(e, MPCC_ERR_INVALID, "kernel %s: buffer %d has no dtype",
			            k->name, i);
		put(e->o, "%s%s%s *b%d", i ? ", " : "", k->bufs[i].written ? "" : "const ", mt, i);
	}
	if (k->n_bufs == 0)
		put(e->o, "void");
	put(e->o, ")\n{\n");
	return MPCC_OK;
}

void
mpcc_cuda_decode_vars(emitter *e, int first, int n, const int64_t *ext, const char *flat)
{
	if (n > 1)
		put(e->o, "\tlong long rest%d = %s;\n", first, flat);
	for (int i = n - 1; i >= 0; i--) {
		int v = first + i;

		if (n == 1)
			put(e->o, "\tconst long long v%d = %s;\n", v, flat);
		else if (i > 0)
			put(e->o,
			    "\tconst long long v%d = rest%d %% %lldLL;\n\trest%d /= %lldLL;\n", v,
			    first, (long long)ext[i], first, (long long)ext[i]);
		else
			put(e->o, "\tconst long long v%d = rest%d;\n", v, first);
		put(e->o, "\t(void)v%d;\n", v);
		e->vars[v] = true;
	}
}

mpcc_status
mpcc_cuda_stores(emitter *e, const kir_stage *st)
{
	put(e->o, "\t{\n");
	for (int s = 0; s < st->n_store; s++)
		if (mpcc_cuda_store(e, &st->store[s]))
			return e->st;
	put(e->o, "\t}\n");
	e->acc = false;
	mpcc_cuda_clear_region(e);
	return MPCC_OK;
}

mpcc_status
mpcc_cuda_point_body(emitter *e, const kir_stage *st)
{
	put(e->o, "\t{\n");
	if (st->red_op != KIR_RED_NONE && emit_reduction(e, st))
		return e->st;
	if (mpcc_cuda_stores(e, st))
		return e->st;
	put(e->o, "\t}\n");
	return MPCC_OK;
}

/*
 * The generic body: one thread per point of the flattened parallel domain
 * (grid-stride), vars decoded innermost first. A serial stage runs every
 * point on thread 0 of block 0, in order.
 */
mpcc_status
mpcc_cuda_generic_body(emitter *e, const kir_stage *st)
{
	memset(e->vars, 0, sizeof(e->vars));
	e->acc = false;
	mpcc_cuda_clear_region(e);
	if (st->serial)
		put(e->o,
		    "\tif (blockIdx.x != 0 || threadIdx.x != 0)\n\t\treturn;\n"
		    "\tfor (long long p = 0; p < %lldLL; p++) {\n",
		    (long long)par_total(st));
	else
		put(e->o,
		    "\tfor (long long p = (long long)blockIdx.x * blockDim.x + threadIdx.x; "
		    "p < %lldLL;\n\t     p += (long long)gridDim.x * blockDim.x) {\n",
		    (long long)par_total(st));
	if (st->n_par > 1)
		put(e->o, "\tlong long rest = p;\n");
	for (int i = st->n_par - 1; i >= 0; i--) {
		if (st->n_par == 1)
			put(e->o, "\tconst long long v0 = p;\n");
		else if (i > 0)
			put(e->o, "\tconst long long v%d = rest %% %lldLL;\n\trest /= %lldLL;\n", i,
			    (long long)st->par_ext[i], (long long)st->par_ext[i]);
		else
			put(e->o, "\tconst long long v0 = rest;\n");
		put(e->o, "\t(void)v%d;\n", i);
		e->vars[i] = true;
	}
	if (mpcc_cuda_point_body(e, st))
		return e->st;
	put(e->o, "\t}\n");
	memset(e->vars, 0, sizeof(e->vars));
	e->acc = false;
	mpcc_cuda_clear_region(e);
	return MPCC_OK;
}

/*
 * One stage: a matrix-product stage that codegen/cuda/matrix.c plans as a
 * tiled kernel goes to emit_matrix.c; every other stage gets the generic
 * body, the reference the fast paths fall back to.
 */
static mpcc_status
emit_stage(emitter *e, int si)
{
	const kir_kernel *k = e->k;
	const kir_stage *st = &k->stages[si];
	mpcc_cuda_matrix m;

	if (st->n_par < 0 || st->n_par > KIR_MAX_DIMS || st->n_red < 0 ||
	    st->n_red > KIR_MAX_DIMS || st->n_store < 0 || st->n_store > KIR_MAX_STORES ||
	    (st->n_red > 0 && st->red_op == KIR_RED_NONE) || st->red_op > KIR_RED_ARGMIN_LAST ||
	    (st->red_op != KIR_RED_NONE && (st->red_value < 0 || st->red_value >= k->n_exprs)))
		return mpcc_cuda_fail(e, MPCC_ERR_INVALID, "kernel %s: stage %d is malformed", k->name, si);
	if (mpcc_cuda_matrix_plan(k, si, e->variant, &m))
		return mpcc_cuda_emit_matrix(e, si, &m);
	if (mpcc_cuda_stage_span(k, si) > 1)
		return mpcc_cuda_emit_row(e, si);
	if (mpcc_cuda_reduce_mode(k, st) != MPCC_CUDA_RED_GENERIC)
		return mpcc_cuda_emit_reduce(e, si);
	if (mpcc_cuda_vec_width(k, st) > 1)
		return mpcc_cuda_emit_vec(e, si);
	if (mpcc_cuda_signature(e, si, false))
		return e->st;
	/* an empty domain runs nothing (and must not divide by a zero extent) */
	if (par_total(st) != 0 && mpcc_cuda_generic_body(e, st))
		return e->st;
	put(e->o, "}\n\n");
	return MPCC_OK;
}

static mpcc_status
emit_kernel(emitter *e, const kir_kernel *k)
{
	size_t n = k->n_exprs > 0 ? (size_t)k->n_exprs : 1;

	e->k = k;
	e->done = calloc(n, 1);
	e->mark = calloc(n, 1);
	if (!e->done || !e->mark)
		mpcc_cuda_fail(e, MPCC_ERR_NOMEM, "cuda: out of memory emitting kernel %s", k->name);
	put(e->o, "/* kernel %s */\n", k->name);
	for (int s = 0; s < k->n_stages && e->st == MPCC_OK; s += mpcc_cuda_stage_span(k, s))
		emit_stage(e, s);
	free(e->done);
	free(e->mark);
	e->done = e->mark = NULL;
	return e->st;
}

mpcc_status
mpcc_cuda_emit(kir_kernel *const *kernels, int n_kernels, bool with_prelude, char **out,
               mpcc_diag *d)
{
	return mpcc_cuda_emit_variant(kernels, n_kernels, with_prelude, -1, out, d);
}

mpcc_status
mpcc_cuda_emit_variant(kir_kernel *const *kernels, int n_kernels, bool with_prelude, int variant,
                       char **out, mpcc_diag *d)
{
	sbuf o = {0};
	emitter e;

	*out = NULL;
	memset(&e, 0, sizeof(e));
	e.o = &o;
	e.d = d;
	e.variant = variant;
	e.vec_store = -1;
	o.cap = 1 << 16;
	o.p = malloc(o.cap);
	if (!o.p)
		return mpcc_diag_error(d, MPCC_ERR_NOMEM, "cuda: out of memory emitting source");
	o.p[0] = 0;
	if (with_prelude)
		put(&o, "%s%s%s", prelude, mpcc_cuda_matrix_prelude, mpcc_cuda_reduce_prelude);
	for (int i = 0; i < n_kernels && e.st == MPCC_OK; i++) {
		for (int j = 0; j < i; j++)
			if (strcmp(kernels[j]->name, kernels[i]->name) == 0)
				mpcc_cuda_fail(&e, MPCC_ERR_INVALID, "kernel name %s used twice",
				     kernels[i]->name);
		if (e.st == MPCC_OK)
			emit_kernel(&e, kernels[i]);
	}
	if (e.st == MPCC_OK && o.failed)
		mpcc_cuda_fail(&e, MPCC_ERR_NOMEM, "cuda: out of memory emitting source");
	if (e.st != MPCC_OK) {
		free(o.p);
		return e.st;
	}
	*out = o.p;
	return MPCC_OK;
}
