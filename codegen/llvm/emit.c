/*
 * emit.c - kernel IR -> LLVM IR, one function per stage.
 *
 * A stage becomes `void <kernel>_s<i>(void **bufs, int64_t begin, int64_t end)`:
 * nested loops over the parallel dims (dim 0 over [begin, end)), then, for a
 * reduction, an accumulator in an alloca (mem2reg promotes it) folded by
 * nested loops over the reduction dims, then the stores. Expressions are
 * emitted lazily at their first use in a region and cached until the region
 * ends; values that do not depend on the inner loop vars are left for LICM
 * and GVN to hoist, which keeps this file free of scheduling decisions.
 *
 * Numerics follow codegen/kir.h to the bit: F16 and BF16 values live in
 * float registers and are rounded after every op that produces one. The
 * f16 conversions are the host's (vcvtps2ph/vcvtph2ps, through fptrunc and
 * fpext) where the target has F16C, and branch-free integer code elsewhere;
 * both give the same bits. bf16 is always integer code (see f32_to_bf16).
 * There are no half-precision libcalls. Integer division
 * selects a safe divisor; float->int casts use the saturating intrinsics;
 * functions LLVM has no intrinsic for are called in libm by name and resolved
 * from the process by the JIT.
 *
 * Stages shaped like a matrix product (MatMul, Gemm, Conv) go to
 * emit_matrix.c instead, which packs one operand and keeps a tile of sums
 * in vector registers; what does not qualify takes the path here, with
 * reductions blocked along the innermost parallel dim (block_width).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codegen/kir_matrix.h"
#include "codegen/llvm/emit.h"
#include "codegen/llvm/emit_impl.h"
#include "codegen/llvm/jit.h"

static mpcc_status
fail(emitter *e, mpcc_status st, const char *fmt, ...) {
	va_list ap;

	if (e->st == MPCC_OK)
		e->st = st;
	va_start(ap, fmt);
	mpcc_diag_verror(e->d, st, fmt, ap);
	va_end(ap);
	return st;
}

bool
mpcc_llvm_stage_name(char *buf, size_t n, const kir_kernel *k, int stage) {
	int r = snprintf(buf, n, "%s_s%d", k->name, stage);

	return r > 0 && (size_t)r < n;
}

/* ---------------------------------------------------------------- types */

static bool
is_f(mpcc_dtype t) {
	return t == MPCC_DTYPE_F32 || t == MPCC_DTYPE_F16 || t == MPCC_DTYPE_BF16 ||
	       t == MPCC_DTYPE_F64;
}

static bool
is_unsigned(mpcc_dtype t) {
	return t == MPCC_DTYPE_U8 || t == MPCC_DTYPE_U16 || t == MPCC_DTYPE_U32 ||
	       t == MPCC_DTYPE_U64 || t == MPCC_DTYPE_BOOL;
}

static unsigned
int_bits(mpcc_dtype t) {
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

/* The type a value of dtype t has in a register; NULL for UNDEF. */
static LLVMTypeRef
reg_type(emitter *e, mpcc_dtype t) {
	switch (t) {
	case MPCC_DTYPE_F32:
	case MPCC_DTYPE_F16:
	case MPCC_DTYPE_BF16:
		return e->t_f32;
	case MPCC_DTYPE_F64:
		return e->t_f64;
	default:
		break;
	}
	return int_bits(t) ? LLVMIntTypeInContext(e->cx, int_bits(t)) : NULL;
}

/* The type an element of dtype t has in memory. */
static LLVMTypeRef
mem_type(emitter *e, mpcc_dtype t) {
	if (t == MPCC_DTYPE_F16 || t == MPCC_DTYPE_BF16)
		return e->t_i16;
	if (t == MPCC_DTYPE_BOOL)
		return e->t_i8;
	return reg_type(e, t);
}

static LLVMValueRef
ci32(emitter *e, uint32_t v) {
	return LLVMConstInt(e->t_i32, v, 0);
}

static LLVMValueRef
ci64(emitter *e, int64_t v) {
	return LLVMConstInt(e->t_i64, (unsigned long long)v, 1);
}

/* ---------------------------------------------------------------- calls */

static LLVMValueRef
intrinsic(emitter *e, const char *name, LLVMTypeRef *tys, int n_tys, LLVMValueRef *args, int n) {
	unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
	LLVMValueRef fn;
	LLVMTypeRef fty;

	if (!id) {
		fail(e, MPCC_ERR_INTERNAL, "llvm: no intrinsic %s", name);
		return NULL;
	}
	fn = LLVMGetIntrinsicDeclaration(e->mod, id, tys, (size_t)n_tys);
	fty = LLVMIntrinsicGetType(e->cx, id, tys, (size_t)n_tys);
	return LLVMBuildCall2(e->b, fty, fn, args, (unsigned)n, "");
}

static LLVMValueRef
intrinsic1(emitter *e, const char *name, LLVMValueRef a) {
	LLVMTypeRef t = LLVMTypeOf(a);

	return intrinsic(e, name, &t, 1, &a, 1);
}

/* Calls the libm function fname (float form) or dname (double form). */
static LLVMValueRef
libm(emitter *e, const char *fname, const char *dname, LLVMValueRef *args, int n) {
	LLVMTypeRef t = LLVMTypeOf(args[0]);
	LLVMTypeRef params[2] = {t, t};
	LLVMTypeRef fty = LLVMFunctionType(t, params, (unsigned)n, 0);
	const char *name = t == e->t_f64 ? dname : fname;
	LLVMValueRef fn = LLVMGetNamedFunction(e->mod, name);

	if (!fn)
		fn = LLVMAddFunction(e->mod, name, fty);
	return LLVMBuildCall2(e->b, fty, fn, args, (unsigned)n, "");
}

/* ---------------------------------------------------------------- f16 and bf16 */

/*
 * float -> IEEE binary16 bits, round to nearest even, overflow to inf, NaN
 * kept NaN (quiet, top payload bits kept). Normal results round by adding
 * 0xfff plus the lowest kept bit; subnormal ones by adding 0.5f, whose ulp is
 * 2^-24, the f16 subnormal step, so the float adder does the rounding. Both
 * paths are computed and selected, which vectorises.
 */
static LLVMValueRef
f32_to_f16_soft(emitter *e, LLVMValueRef f) {
	LLVMBuilderRef b = e->b;
	LLVMValueRef u = LLVMBuildBitCast(b, f, e->t_i32, "");
	LLVMValueRef sign =
	    LLVMBuildAnd(b, LLVMBuildLShr(b, u, ci32(e, 16), ""), ci32(e, 0x8000), "");
	LLVMValueRef a = LLVMBuildAnd(b, u, ci32(e, 0x7fffffff), "");
	LLVMValueRef odd = LLVMBuildAnd(b, LLVMBuildLShr(b, a, ci32(e, 13), ""), ci32(e, 1), "");
	LLVMValueRef norm = LLVMBuildAdd(b, a, ci32(e, 0xc8000fffu), "");
	LLVMValueRef af, sub, nan, r;

	norm = LLVMBuildLShr(b, LLVMBuildAdd(b, norm, odd, ""), ci32(e, 13), "");
	af = LLVMBuildBitCast(b, a, e->t_f32, "");
	af = LLVMBuildFAdd(b, af, LLVMConstReal(e->t_f32, 0.5), "");
	sub = LLVMBuildSub(b, LLVMBuildBitCast(b, af, e->t_i32, ""), ci32(e, 0x3f000000), "");
	nan = LLVMBuildOr(b,
	                  LLVMBuildAnd(b, LLVMBuildLShr(b, a, ci32(e, 13), ""), ci32(e, 0x3ff), ""),
	                  ci32(e, 0x7e00), "");
	r = LLVMBuildSelect(b, LLVMBuildICmp(b, LLVMIntULT, a, ci32(e, 0x38800000), ""), sub, norm,
	                    "");
	r = LLVMBuildSelect(b, LLVMBuildICmp(b, LLVMIntUGE, a, ci32(e, 0x477ff000), ""),
	                    ci32(e, 0x7c00), r, "");
	r = LLVMBuildSelect(b, LLVMBuildICmp(b, LLVMIntUGT, a, ci32(e, 0x7f800000), ""), nan, r,
	                    "");
	r = LLVMBuildOr(b, r, sign, "");
	return LLVMBuildTrunc(b, r, e->t_i16, "");
}

/* binary16 bits -> float, exact: normals rebias the exponent, inf and NaN
 * get the all-ones exponent, subnormals are m * 2^-24 (exact in float). */
static LLVMValueRef
f16_to_f32_soft(emitter *e, LLVMValueRef h) {
	LLVMBuilderRef b = e->b;
	LLVMValueRef x = LLVMBuildZExt(b, h, e->t_i32, "");
	LLVMValueRef sign =
	    LLVMBuildShl(b, LLVMBuildAnd(b, x, ci32(e, 0x8000), ""), ci32(e, 16), "");
	LLVMValueRef ex = LLVMBuildAnd(b, x, ci32(e, 0x7c00), "");
	LLVMValueRef m = LLVMBuildAnd(b, x, ci32(e, 0x3ff), "");
	LLVMValueRef body =
	    LLVMBuildShl(b, LLVMBuildAnd(b, x, ci32(e, 0x7fff), ""), ci32(e, 13), "");
	LLVMValueRef norm = LLVMBuildAdd(b, body, ci32(e, 112u << 23), "");
	LLVMValueRef inf = LLVMBuildOr(b, body, ci32(e, 0x7f800000), "");
	LLVMValueRef sub = LLVMBuildUIToFP(b, m, e->t_f32, "");
	LLVMValueRef r;

	sub = LLVMBuildFMul(b, sub, LLVMConstReal(e->t_f32, 1.0 / 16777216.0), "");
	sub = LLVMBuildBitCast(b, sub, e->t_i32, "");
	/* NaNs come back quiet, as mpcc_f16_to_f32 makes them */
	inf = LLVMBuildSelect(b, LLVMBuildICmp(b, LLVMIntEQ, m, ci32(e, 0), ""), inf,
	                      LLVMBuildOr(b, inf, ci32(e, 0x00400000), ""), "");
	r = LLVMBuildSelect(b, LLVMBuildICmp(b, LLVMIntEQ, ex, ci32(e, 0x7c00), ""), inf, norm, "");
	r = LLVMBuildSelect(b, LLVMBuildICmp(b, LLVMIntEQ, ex, ci32(e, 0), ""), sub, r, "");
	r = LLVMBuildOr(b, r, sign, "");
	return LLVMBuildBitCast(b, r, e->t_f32, "");
}

/*
 * The same two conversions on an F16C host: fptrunc and fpext, which the
 * x86 backend lowers to vcvtps2ph (rounding from MXCSR.RC: nearest even
 * unless someone changes it, which would change every float op as well)
 * and vcvtph2ps, sixteen lanes at a time where the loop vectorises. They
 * agree with the integer code on every input, as the Intel SDM specifies
 * and test_numerics checks over all 2^32 floats: a NaN keeps its sign and
 * top payload bits and comes out quiet both ways; f16 subnormals are
 * produced and read exactly, whatever MXCSR.FTZ and DAZ say (vcvtps2ph
 * ignores FTZ, vcvtph2ps ignores DAZ; an f32 subnormal rounds to a signed
 * zero either way).
 *
 * Two things keep LLVM from undoing this. The widened value goes through
 * an `and` that clears the 13 low mantissa bits, which are zero for every
 * widened f16 but which LLVM 14 cannot prove zero: without it, instcombine
 * narrows fptrunc(fop(fpext a, fpext b)) to half arithmetic, which is
 * exact but which the x86 backend scalarises (no vector half ops before
 * AVX512-FP16), so one-op f16 kernels would not vectorise; and it would
 * fold fptrunc(fpext h) to h, storing a signalling NaN unquieted. Constant
 * operands take the integer code, which folds to the exact bits, since
 * LLVM's own constant folding of fptrunc leaves a signalling NaN
 * signalling.
 */
static LLVMValueRef
f32_to_f16(emitter *e, LLVMValueRef f) {
	if (!e->f16c || LLVMIsConstant(f))
		return f32_to_f16_soft(e, f);
	return LLVMBuildBitCast(e->b, LLVMBuildFPTrunc(e->b, f, e->t_f16, ""), e->t_i16, "");
}

static LLVMValueRef
f16_to_f32(emitter *e, LLVMValueRef h) {
	LLVMBuilderRef b = e->b;
	LLVMValueRef u;

	if (!e->f16c || LLVMIsConstant(h))
		return f16_to_f32_soft(e, h);
	u = LLVMBuildFPExt(b, LLVMBuildBitCast(b, h, e->t_f16, ""), e->t_f32, "");
	u = LLVMBuildAnd(b, LLVMBuildBitCast(b, u, e->t_i32, ""), ci32(e, 0xffffe000u), "");
	return LLVMBuildBitCast(b, u, e->t_f32, "");
}

/*
 * float -> bfloat16 bits: round to nearest even on the top half; NaN is
 * truncated and made quiet so it cannot round into inf.
 *
 * Why bf16 has no native path: AVX512-BF16's vcvtneps2bf16 rounds normals
 * with exactly this integer add, but treats f32 subnormal inputs as zero
 * and flushes subnormal results, whereas nearest-even rounding keeps them
 * (bf16 has f32's exponent range, so every f32 subnormal has a nearby bf16
 * subnormal); a fix-up select would need this code anyway. LLVM 14 also has
 * no generic fptrunc to bfloat for x86, only the target intrinsic, and the
 * widening is a shift on every host. So bf16 stays integer code, which
 * vectorises as well as the instruction would.
 */
static LLVMValueRef
f32_to_bf16(emitter *e, LLVMValueRef f) {
	LLVMBuilderRef b = e->b;
	LLVMValueRef u = LLVMBuildBitCast(b, f, e->t_i32, "");
	LLVMValueRef hi = LLVMBuildLShr(b, u, ci32(e, 16), "");
	LLVMValueRef r = LLVMBuildAdd(b, u, ci32(e, 0x7fff), "");
	LLVMValueRef isnan, nan;

	r = LLVMBuildAdd(b, r, LLVMBuildAnd(b, hi, ci32(e, 1), ""), "");
	r = LLVMBuildLShr(b, r, ci32(e, 16), "");
	nan = LLVMBuildOr(b, hi, ci32(e, 0x40), "");
	isnan = LLVMBuildICmp(b, LLVMIntUGT, LLVMBuildAnd(b, u, ci32(e, 0x7fffffff), ""),
	                      ci32(e, 0x7f800000), "");
	r = LLVMBuildSelect(b, isnan, nan, r, "");
	return LLVMBuildTrunc(b, r, e->t_i16, "");
}

/* bfloat16 bits -> float: the top half; NaNs come back quiet. */
static LLVMValueRef
bf16_to_f32(emitter *e, LLVMValueRef h) {
	LLVMBuilderRef b = e->b;
	LLVMValueRef x = LLVMBuildShl(b, LLVMBuildZExt(b, h, e->t_i32, ""), ci32(e, 16), "");
	LLVMValueRef isnan = LLVMBuildICmp(
	    b, LLVMIntUGT, LLVMBuildAnd(b, x, ci32(e, 0x7fffffff), ""), ci32(e, 0x7f800000), "");

	x = LLVMBuildSelect(b, isnan, LLVMBuildOr(b, x, ci32(e, 0x00400000), ""), x, "");
	return LLVMBuildBitCast(b, x, e->t_f32, "");
}

/*
 * Rounds a float register to the value set of t (F16, BF16); other dtypes
 * pass through. Called after every op that produces an F16/BF16 value.
 * The rounded bits are remembered with the widened result, so a store of
 * that value (the usual CAST then store) writes them instead of rounding
 * an exact value again: round(widen(bits)) == bits for any bits a rounding
 * made, NaNs included, since those are quiet already. The bits are defined
 * just before the widened value, so they dominate every use of it.
 */
static LLVMValueRef
fix(emitter *e, mpcc_dtype t, LLVMValueRef v) {
	LLVMValueRef bits, r;

	if (t == MPCC_DTYPE_F16) {
		bits = f32_to_f16(e, v);
		r = f16_to_f32(e, bits);
	} else if (t == MPCC_DTYPE_BF16) {
		bits = f32_to_bf16(e, v);
		r = bf16_to_f32(e, bits);
	} else {
		return v;
	}
	e->rounded[e->n_rounded % ROUNDED_MEMO] = (rounded){r, bits, t};
	e->n_rounded++;
	return r;
}

/* The storage bits fix() rounded v from as dtype t, or NULL. */
static LLVMValueRef
rounded_bits(emitter *e, mpcc_dtype t, LLVMValueRef v) {
	int n = e->n_rounded < ROUNDED_MEMO ? e->n_rounded : ROUNDED_MEMO;

	for (int i = 0; i < n; i++)
		if (e->rounded[i].value == v && e->rounded[i].dtype == t)
			return e->rounded[i].bits;
	return NULL;
}

/* ---------------------------------------------------------------- operations */

static LLVMValueRef
const_value(emitter *e, const kir_expr *x) {
	mpcc_dtype t = x->dtype;

	if (is_f(t)) {
		double v = t == MPCC_DTYPE_F64 ? x->imm.f : (double)(float)x->imm.f;
		return fix(e, t, LLVMConstReal(reg_type(e, t), v));
	}
	if (t == MPCC_DTYPE_BOOL)
		return LLVMConstInt(e->t_i1, x->imm.i != 0, 0);
	return LLVMConstInt(reg_type(e, t), (unsigned long long)x->imm.i, 1);
}

static LLVMValueRef
cast(emitter *e, mpcc_dtype from, mpcc_dtype to, LLVMValueRef v) {
	LLVMBuilderRef b = e->b;
	LLVMTypeRef rt = reg_type(e, to);

	if (from == to)
		return v;
	if (to == MPCC_DTYPE_BOOL) {
		if (is_f(from))
			return LLVMBuildFCmp(b, LLVMRealUNE, v, LLVMConstNull(LLVMTypeOf(v)), "");
		return LLVMBuildICmp(b, LLVMIntNE, v, LLVMConstNull(LLVMTypeOf(v)), "");
	}
	if (is_f(to)) {
		if (is_f(from)) {
			if (to == MPCC_DTYPE_F64)
				return from == MPCC_DTYPE_F64 ? v : LLVMBuildFPExt(b, v, rt, "");
			if (from == MPCC_DTYPE_F64)
				v = LLVMBuildFPTrunc(b, v, rt, "");
		} else if (is_unsigned(from)) {
			v = LLVMBuildUIToFP(b, v, rt, "");
		} else {
			v = LLVMBuildSIToFP(b, v, rt, "");
		}
		return fix(e, to, v);
	}
	if (is_f(from)) {
		LLVMTypeRef tys[2] = {rt, LLVMTypeOf(v)};
		return intrinsic(e, is_unsigned(to) ? "llvm.fptoui.sat" : "llvm.fptosi.sat", tys, 2,
		                 &v, 1);
	}
	if (int_bits(to) < int_bits(from))
		return LLVMBuildTrunc(b, v, rt, "");
	if (int_bits(to) > int_bits(from))
		return is_unsigned(from) ? LLVMBuildZExt(b, v, rt, "")
		                         : LLVMBuildSExt(b, v, rt, "");
	return v;
}

static LLVMValueRef
unary_float(emitter *e, kir_op op, mpcc_dtype t, LLVMValueRef a) {
	LLVMValueRef r;

	switch (op) {
	case KIR_NEG:
		r = LLVMBuildFNeg(e->b, a, "");
		break;
	case KIR_ABS:
		r = intrinsic1(e, "llvm.fabs", a);
		break;
	case KIR_SQRT:
		r = intrinsic1(e, "llvm.sqrt", a);
		break;
	case KIR_EXP:
		r = intrinsic1(e, "llvm.exp", a);
		break;
	case KIR_LOG:
		r = intrinsic1(e, "llvm.log", a);
		break;
	case KIR_SIN:
		r = intrinsic1(e, "llvm.sin", a);
		break;
	case KIR_COS:
		r = intrinsic1(e, "llvm.cos", a);
		break;
	case KIR_TAN:
		r = libm(e, "tanf", "tan", &a, 1);
		break;
	case KIR_ASIN:
		r = libm(e, "asinf", "asin", &a, 1);
		break;
	case KIR_ACOS:
		r = libm(e, "acosf", "acos", &a, 1);
		break;
	case KIR_ATAN:
		r = libm(e, "atanf", "atan", &a, 1);
		break;
	case KIR_SINH:
		r = libm(e, "sinhf", "sinh", &a, 1);
		break;
	case KIR_COSH:
		r = libm(e, "coshf", "cosh", &a, 1);
		break;
	case KIR_TANH:
		r = libm(e, "tanhf", "tanh", &a, 1);
		break;
	case KIR_ASINH:
		r = libm(e, "asinhf", "asinh", &a, 1);
		break;
	case KIR_ACOSH:
		r = libm(e, "acoshf", "acosh", &a, 1);
		break;
	case KIR_ATANH:
		r = libm(e, "atanhf", "atanh", &a, 1);
		break;
	case KIR_ERF:
		r = libm(e, "erff", "erf", &a, 1);
		break;
	case KIR_FLOOR:
		r = intrinsic1(e, "llvm.floor", a);
		break;
	case KIR_CEIL:
		r = intrinsic1(e, "llvm.ceil", a);
		break;
	case KIR_RINT:
		r = intrinsic1(e, "llvm.roundeven", a);
		break;
	case KIR_TRUNC:
		r = intrinsic1(e, "llvm.trunc", a);
		break;
	case KIR_ISNAN:
		return LLVMBuildFCmp(e->b, LLVMRealUNO, a, a, "");
	default:
		return NULL;
	}
	return r ? fix(e, t, r) : NULL;
}

static LLVMValueRef
unary_int(emitter *e, kir_op op, mpcc_dtype t, LLVMValueRef a) {
	LLVMBuilderRef b = e->b;
	LLVMValueRef zero = LLVMConstNull(LLVMTypeOf(a));

	switch (op) {
	case KIR_NEG:
		return t == MPCC_DTYPE_BOOL ? NULL : LLVMBuildSub(b, zero, a, "");
	case KIR_ABS:
		if (t == MPCC_DTYPE_BOOL || is_unsigned(t))
			return a;
		return LLVMBuildSelect(b, LLVMBuildICmp(b, LLVMIntSLT, a, zero, ""),
		                       LLVMBuildSub(b, zero, a, ""), a, "");
	case KIR_NOT:
	case KIR_BNOT:
		return LLVMBuildNot(b, a, "");
	case KIR_ISNAN:
		return LLVMConstInt(e->t_i1, 0, 0);
	default:
		return NULL;
	}
}

/* NaN-propagating float min/max as kir.h and the interpreter spell it: a
 * NaN operand is returned (a first), otherwise a < b ? a : b (min), so on a
 * tie, +0 against -0 included, the second operand wins. */
static LLVMValueRef
fminmax(emitter *e, bool max, LLVMValueRef a, LLVMValueRef b) {
	LLVMBuilderRef bl = e->b;
	LLVMValueRef pick_a = LLVMBuildFCmp(bl, max ? LLVMRealOGT : LLVMRealOLT, a, b, "");
	LLVMValueRef r = LLVMBuildSelect(bl, pick_a, a, b, "");

	r = LLVMBuildSelect(bl, LLVMBuildFCmp(bl, LLVMRealUNO, b, b, ""), b, r, "");
	return LLVMBuildSelect(bl, LLVMBuildFCmp(bl, LLVMRealUNO, a, a, ""), a, r, "");
}

static LLVMValueRef
cmp(emitter *e, kir_op op, mpcc_dtype t, LLVMValueRef a, LLVMValueRef b) {
	static const LLVMRealPredicate fp[] = {LLVMRealOEQ, LLVMRealUNE, LLVMRealOLT,
	                                       LLVMRealOLE, LLVMRealOGT, LLVMRealOGE};
	static const LLVMIntPredicate sp[] = {LLVMIntEQ,  LLVMIntNE,  LLVMIntSLT,
	                                      LLVMIntSLE, LLVMIntSGT, LLVMIntSGE};
	static const LLVMIntPredicate up[] = {LLVMIntEQ,  LLVMIntNE,  LLVMIntULT,
	                                      LLVMIntULE, LLVMIntUGT, LLVMIntUGE};
	int i = op - KIR_EQ;

	if (is_f(t))
		return LLVMBuildFCmp(e->b, fp[i], a, b, "");
	return LLVMBuildICmp(e->b, is_unsigned(t) ? up[i] : sp[i], a, b, "");
}

static LLVMValueRef
binary_float(emitter *e, kir_op op, mpcc_dtype t, LLVMValueRef a, LLVMValueRef b) {
	LLVMBuilderRef bl = e->b;
	LLVMValueRef args[2] = {a, b};
	LLVMValueRef r, zero, adj;

	switch (op) {
	case KIR_ADD:
		r = LLVMBuildFAdd(bl, a, b, "");
		break;
	case KIR_SUB:
		r = LLVMBuildFSub(bl, a, b, "");
		break;
	case KIR_MUL:
		r = LLVMBuildFMul(bl, a, b, "");
		break;
	case KIR_DIV:
		r = LLVMBuildFDiv(bl, a, b, "");
		break;
	case KIR_REM:
		r = LLVMBuildFRem(bl, a, b, "");
		break;
	case KIR_FLOORMOD:
		/* fmod, then moved into the divisor's sign when they differ */
		zero = LLVMConstNull(LLVMTypeOf(a));
		r = LLVMBuildFRem(bl, a, b, "");
		adj = LLVMBuildXor(bl, LLVMBuildFCmp(bl, LLVMRealOLT, r, zero, ""),
		                   LLVMBuildFCmp(bl, LLVMRealOLT, b, zero, ""), "");
		adj = LLVMBuildAnd(bl, adj, LLVMBuildFCmp(bl, LLVMRealONE, r, zero, ""), "");
		r = LLVMBuildSelect(bl, adj, LLVMBuildFAdd(bl, r, b, ""), r, "");
		break;
	case KIR_MIN:
		r = fminmax(e, false, a, b);
		break;
	case KIR_MAX:
		r = fminmax(e, true, a, b);
		break;
	case KIR_POW: {
		LLVMTypeRef ty = LLVMTypeOf(a);
		r = intrinsic(e, "llvm.pow", &ty, 1, args, 2);
		break;
	}
	default:
		if (op >= KIR_EQ && op <= KIR_GE)
			return cmp(e, op, MPCC_DTYPE_F32, a, b); /* t is BOOL; any float class */
		return NULL;
	}
	return r ? fix(e, t, r) : NULL;
}

/*
 * Integer division never traps: a zero divisor yields 0 and a divisor of -1
 * is answered by negation (wrapping, so INT_MIN / -1 == INT_MIN), with 1 put
 * in the division's place so the hardware never sees either case.
 */
static LLVMValueRef
divide(emitter *e, kir_op op, mpcc_dtype t, LLVMValueRef a, LLVMValueRef b) {
	LLVMBuilderRef bl = e->b;
	LLVMTypeRef ty = LLVMTypeOf(a);
	LLVMValueRef zero = LLVMConstNull(ty), one = LLVMConstInt(ty, 1, 0);
	LLVMValueRef bz = LLVMBuildICmp(bl, LLVMIntEQ, b, zero, "");
	LLVMValueRef bad = bz, safe, q, r;
	bool u = is_unsigned(t);
	LLVMValueRef bm1 = NULL;

	if (!u) {
		bm1 = LLVMBuildICmp(bl, LLVMIntEQ, b, LLVMConstAllOnes(ty), "");
		bad = LLVMBuildOr(bl, bz, bm1, "");
	}
	safe = LLVMBuildSelect(bl, bad, one, b, "");
	if (op == KIR_DIV) {
		q = u ? LLVMBuildUDiv(bl, a, safe, "") : LLVMBuildSDiv(bl, a, safe, "");
		if (!u)
			q = LLVMBuildSelect(bl, bm1, LLVMBuildSub(bl, zero, a, ""), q, "");
		return LLVMBuildSelect(bl, bz, zero, q, "");
	}
	r = u ? LLVMBuildURem(bl, a, safe, "") : LLVMBuildSRem(bl, a, safe, "");
	if (!u && op == KIR_FLOORMOD) {
		LLVMValueRef adj = LLVMBuildXor(bl, LLVMBuildICmp(bl, LLVMIntSLT, r, zero, ""),
		                                LLVMBuildICmp(bl, LLVMIntSLT, b, zero, ""), "");
		adj = LLVMBuildAnd(bl, adj, LLVMBuildICmp(bl, LLVMIntNE, r, zero, ""), "");
		r = LLVMBuildSelect(bl, adj, LLVMBuildAdd(bl, r, safe, ""), r, "");
	}
	/* a safe divisor of 1 leaves remainder 0, right for b == 0 and b == -1 */
	return r;
}

static LLVMValueRef
binary_int(emitter *e, kir_op op, mpcc_dtype t, LLVMValueRef a, LLVMValueRef b) {
	LLVMBuilderRef bl = e->b;
	LLVMTypeRef ty = LLVMTypeOf(a);
	bool u = is_unsigned(t);
	LLVMValueRef oob, sh, r;

	switch (op) {
	case KIR_ADD:
		return LLVMBuildAdd(bl, a, b, "");
	case KIR_SUB:
		return LLVMBuildSub(bl, a, b, "");
	case KIR_MUL:
		return LLVMBuildMul(bl, a, b, "");
	case KIR_DIV:
	case KIR_REM:
	case KIR_FLOORMOD:
		return t == MPCC_DTYPE_BOOL ? NULL : divide(e, op, t, a, b);
	case KIR_MIN:
		return LLVMBuildSelect(bl, LLVMBuildICmp(bl, u ? LLVMIntULT : LLVMIntSLT, b, a, ""),
		                       b, a, "");
	case KIR_MAX:
		return LLVMBuildSelect(bl, LLVMBuildICmp(bl, u ? LLVMIntUGT : LLVMIntSGT, b, a, ""),
		                       b, a, "");
	case KIR_AND:
		return LLVMBuildAnd(bl, a, b, "");
	case KIR_OR:
		return LLVMBuildOr(bl, a, b, "");
	case KIR_XOR:
		return LLVMBuildXor(bl, a, b, "");
	case KIR_SHL:
	case KIR_SHR:
		if (t == MPCC_DTYPE_BOOL)
			return NULL;
		oob = LLVMBuildICmp(bl, LLVMIntUGE, b, LLVMConstInt(ty, int_bits(t), 0), "");
		sh = LLVMBuildSelect(bl, oob, LLVMConstNull(ty), b, "");
		if (op == KIR_SHL)
			r = LLVMBuildShl(bl, a, sh, "");
		else
			r = u ? LLVMBuildLShr(bl, a, sh, "") : LLVMBuildAShr(bl, a, sh, "");
		return LLVMBuildSelect(bl, oob, LLVMConstNull(ty), r, "");
	default:
		if (op >= KIR_EQ && op <= KIR_GE)
			return cmp(e, op, t, a, b);
		return NULL;
	}
}

/* ---------------------------------------------------------------- expressions */

static LLVMValueRef
emit_load(emitter *e, const kir_expr *x) {
	const kir_buf *bf = &e->k->bufs[x->a];
	mpcc_dtype t = bf->dtype;
	LLVMTypeRef mt = mem_type(e, t);
	LLVMValueRef idx = e->val[x->b];
	LLVMValueRef p = LLVMBuildInBoundsGEP2(e->b, mt, e->bufs[x->a], &idx, 1, "");
	LLVMValueRef v = LLVMBuildLoad2(e->b, mt, p, "");

	if (t == MPCC_DTYPE_F16)
		return f16_to_f32(e, v);
	if (t == MPCC_DTYPE_BF16)
		return bf16_to_f32(e, v);
	if (t == MPCC_DTYPE_BOOL)
		return LLVMBuildICmp(e->b, LLVMIntNE, v, LLVMConstNull(mt), "");
	return v;
}

static LLVMValueRef
emit_one(emitter *e, int32_t i) {
	const kir_expr *x = &e->k->exprs[i];
	mpcc_dtype t = x->dtype, ta;
	LLVMValueRef r = NULL;

	switch (x->op) {
	case KIR_CONST:
		return const_value(e, x);
	case KIR_VAR:
		if (x->a < 0 || x->a >= 2 * KIR_MAX_DIMS || !e->vars[x->a])
			fail(e, MPCC_ERR_INVALID, "kernel %s: expr %d uses var %d outside its loop",
			     e->k->name, i, x->a);
		return e->st ? NULL : e->vars[x->a];
	case KIR_LOAD:
		if (x->a < 0 || x->a >= e->k->n_bufs) {
			fail(e, MPCC_ERR_INVALID, "kernel %s: expr %d loads buffer %d of %d",
			     e->k->name, i, x->a, e->k->n_bufs);
			return NULL;
		}
		return emit_load(e, x);
	case KIR_ACC:
		if (!e->acc)
			fail(e, MPCC_ERR_INVALID, "kernel %s: expr %d reads ACC outside the stores",
			     e->k->name, i);
		return e->acc;
	case KIR_CAST:
		return cast(e, e->k->exprs[x->a].dtype, t, e->val[x->a]);
	case KIR_SELECT:
		return LLVMBuildSelect(e->b, e->val[x->a], e->val[x->b], e->val[x->c], "");
	default:
		break;
	}
	ta = e->k->exprs[x->a].dtype;
	if (x->op < KIR_ADD)
		r = is_f(ta) ? unary_float(e, x->op, t, e->val[x->a])
		             : unary_int(e, x->op, t, e->val[x->a]);
	else if (x->op < KIR_OP_COUNT)
		r = is_f(ta) ? binary_float(e, x->op, t, e->val[x->a], e->val[x->b])
		             : binary_int(e, x->op, ta, e->val[x->a], e->val[x->b]);
	if (!r && e->st == MPCC_OK)
		fail(e, MPCC_ERR_UNSUPPORTED, "kernel %s: expr %d: op %d on dtype %d not supported",
		     e->k->name, i, x->op, (int)ta);
	return r;
}

/*
 * Emits expression root and whatever it needs that the current region has
 * not emitted yet. Operands always have smaller indices, so marking the
 * needed set downward from root and emitting upward is a topological order
 * without recursion (deep expression chains cannot overflow the stack).
 */
LLVMValueRef
mpcc_llvm_expr(emitter *e, int32_t root) {
	const kir_kernel *k = e->k;

	if (root < 0 || root >= k->n_exprs) {
		fail(e, MPCC_ERR_INVALID, "kernel %s: expression index %d out of range", k->name,
		     root);
		return NULL;
	}
	if (e->val[root])
		return e->val[root];
	memset(e->mark, 0, (size_t)root + 1);
	e->mark[root] = 1;
	for (int32_t i = root; i >= 0; i--) {
		const kir_expr *x = &k->exprs[i];
		int32_t ops[3] = {x->a, x->b, x->c};
		unsigned m = kir_operand_mask(x);

		if (!e->mark[i] || e->val[i])
			continue;
		for (int j = 0; j < 3; j++) {
			if (!(m & (1u << j)))
				continue;
			if (ops[j] < 0 || ops[j] >= i) {
				fail(e, MPCC_ERR_INVALID, "kernel %s: expr %d has operand %d",
				     k->name, i, ops[j]);
				return NULL;
			}
			e->mark[ops[j]] = 1;
		}
	}
	for (int32_t i = 0; i <= root; i++) {
		if (!e->mark[i] || e->val[i])
			continue;
		e->val[i] = emit_one(e, i);
		if (!e->val[i])
			return NULL;
	}
	return e->val[root];
}

void
mpcc_llvm_clear_cache(emitter *e) {
	memset(e->val, 0, sizeof(*e->val) * (size_t)e->k->n_exprs);
}

/* ---------------------------------------------------------------- loops and stages */

LLVMValueRef
mpcc_llvm_loop_open(emitter *e, loop *l, LLVMValueRef lo, LLVMValueRef hi) {
	LLVMValueRef fn = LLVMGetBasicBlockParent(LLVMGetInsertBlock(e->b));
	LLVMBasicBlockRef pre = LLVMGetInsertBlock(e->b);
	LLVMBasicBlockRef body;

	l->header = LLVMAppendBasicBlockInContext(e->cx, fn, "loop");
	body = LLVMAppendBasicBlockInContext(e->cx, fn, "body");
	l->exit = LLVMAppendBasicBlockInContext(e->cx, fn, "exit");
	LLVMBuildBr(e->b, l->header);
	LLVMPositionBuilderAtEnd(e->b, l->header);
	l->iv = LLVMBuildPhi(e->b, e->t_i64, "i");
	LLVMAddIncoming(l->iv, &lo, &pre, 1);
	LLVMBuildCondBr(e->b, LLVMBuildICmp(e->b, LLVMIntSLT, l->iv, hi, ""), body, l->exit);
	LLVMPositionBuilderAtEnd(e->b, body);
	return l->iv;
}

void
mpcc_llvm_loop_close(emitter *e, loop *l) {
	LLVMValueRef next = LLVMBuildNSWAdd(e->b, l->iv, ci64(e, 1), "");
	LLVMBasicBlockRef cur = LLVMGetInsertBlock(e->b);

	LLVMBuildBr(e->b, l->header);
	LLVMAddIncoming(l->iv, &next, &cur, 1);
	LLVMPositionBuilderAtEnd(e->b, l->exit);
}

static bool
is_arg(kir_red r) {
	return r == KIR_RED_ARGMAX || r == KIR_RED_ARGMIN || r == KIR_RED_ARGMAX_LAST ||
	       r == KIR_RED_ARGMIN_LAST;
}

/* The identity a SUM/PROD/MAX/MIN accumulator starts from. */
static LLVMValueRef
red_init(emitter *e, kir_red r, mpcc_dtype t) {
	LLVMTypeRef ty = reg_type(e, t);
	unsigned w = int_bits(t);

	if (r == KIR_RED_SUM)
		return LLVMConstNull(ty);
	if (r == KIR_RED_PROD)
		return is_f(t) ? LLVMConstReal(ty, 1.0) : LLVMConstInt(ty, 1, 0);
	if (is_f(t))
		return LLVMConstReal(ty, r == KIR_RED_MAX ? -1.0 / 0.0 : 1.0 / 0.0);
	if (is_unsigned(t))
		return r == KIR_RED_MAX ? LLVMConstNull(ty) : LLVMConstAllOnes(ty);
	/* signed: MAX starts at the minimum 100..0, MIN at the maximum 011..1 */
	if (r == KIR_RED_MAX)
		return LLVMConstShl(LLVMConstInt(ty, 1, 0), LLVMConstInt(ty, w - 1, 0));
	return LLVMConstLShr(LLVMConstAllOnes(ty), LLVMConstInt(ty, 1, 0));
}

/*
 * The reduction: the accumulator (and for ARG* the best value and its
 * index) is reset per parallel point, folded over the reduction dims in
 * row-major order, and left in e->acc for the stores. The linear index of a
 * point is sum(var * stride); point 0 always initialises ARG*'s best value.
 */
static mpcc_status
emit_reduction(emitter *e, const kir_stage *st, LLVMValueRef acc_p, LLVMValueRef best_p) {
	kir_red red = st->red_op;
	mpcc_dtype vt;
	loop lp[KIR_MAX_DIMS];
	LLVMValueRef v, lin = NULL, acc, better, init;

	if (st->red_value < 0 || st->red_value >= e->k->n_exprs)
		return fail(e, MPCC_ERR_INVALID, "kernel %s: bad reduction value", e->k->name);
	vt = e->k->exprs[st->red_value].dtype;
	if (is_arg(red)) {
		LLVMBuildStore(e->b, ci64(e, 0), acc_p);
	} else {
		if (!(init = red_init(e, red, st->acc_dtype)))
			return fail(e, MPCC_ERR_UNSUPPORTED, "kernel %s: reduction on dtype %d",
			            e->k->name, st->acc_dtype);
		LLVMBuildStore(e->b, init, acc_p);
	}
	for (int r = 0; r < st->n_red; r++) {
		e->vars[st->n_par + r] = mpcc_llvm_loop_open(e, &lp[r], ci64(e, 0), ci64(e, st->red_ext[r]));
		lin = r == 0
		          ? lp[r].iv
		          : LLVMBuildAdd(e->b, LLVMBuildMul(e->b, lin, ci64(e, st->red_ext[r]), ""),
		                         lp[r].iv, "");
	}
	if (!lin)
		lin = ci64(e, 0);
	if (!(v = mpcc_llvm_expr(e, st->red_value)))
		return e->st;
	if (is_arg(red)) {
		LLVMTypeRef bt = reg_type(e, vt);
		LLVMValueRef best = LLVMBuildLoad2(e->b, bt, best_p, "");
		kir_op op = red == KIR_RED_ARGMAX        ? KIR_GT
		            : red == KIR_RED_ARGMAX_LAST ? KIR_GE
		            : red == KIR_RED_ARGMIN      ? KIR_LT
		                                         : KIR_LE;

		better = cmp(e, op, vt, v, best);
		better = LLVMBuildOr(e->b, better,
		                     LLVMBuildICmp(e->b, LLVMIntEQ, lin, ci64(e, 0), ""), "");
		LLVMBuildStore(e->b, LLVMBuildSelect(e->b, better, v, best, ""), best_p);
		acc = LLVMBuildLoad2(e->b, e->t_i64, acc_p, "");
		LLVMBuildStore(e->b, LLVMBuildSelect(e->b, better, lin, acc, ""), acc_p);
	} else {
		kir_op op = red == KIR_RED_SUM    ? KIR_ADD
		            : red == KIR_RED_PROD ? KIR_MUL
		            : red == KIR_RED_MAX  ? KIR_MAX
		                                  : KIR_MIN;
		mpcc_dtype t = st->acc_dtype;

		acc = LLVMBuildLoad2(e->b, reg_type(e, t), acc_p, "");
		acc = is_f(t) ? binary_float(e, op, t, acc, v) : binary_int(e, op, t, acc, v);
		if (!acc)
			return fail(e, MPCC_ERR_UNSUPPORTED, "kernel %s: reduction %d on dtype %d",
			            e->k->name, red, t);
		LLVMBuildStore(e->b, acc, acc_p);
	}
	for (int r = st->n_red - 1; r >= 0; r--) {
		mpcc_llvm_loop_close(e, &lp[r]);
		e->vars[st->n_par + r] = NULL;
	}
	mpcc_llvm_clear_cache(e);
	e->acc =
	    LLVMBuildLoad2(e->b, is_arg(red) ? e->t_i64 : reg_type(e, st->acc_dtype), acc_p, "");
	return MPCC_OK;
}

mpcc_status
mpcc_llvm_store(emitter *e, const kir_store *s) {
	const kir_buf *bf;
	LLVMValueRef idx, v, p, bits;
	LLVMTypeRef mt;

	if (s->buf < 0 || s->buf >= e->k->n_bufs)
		return fail(e, MPCC_ERR_INVALID, "kernel %s: store to buffer %d", e->k->name,
		            s->buf);
	bf = &e->k->bufs[s->buf];
	if (!(idx = mpcc_llvm_expr(e, s->index)) || !(v = mpcc_llvm_expr(e, s->value)))
		return e->st;
	mt = mem_type(e, bf->dtype);
	if ((bits = rounded_bits(e, bf->dtype, v)))
		v = bits;
	else if (bf->dtype == MPCC_DTYPE_F16)
		v = f32_to_f16(e, v);
	else if (bf->dtype == MPCC_DTYPE_BF16)
		v = f32_to_bf16(e, v);
	else if (bf->dtype == MPCC_DTYPE_BOOL)
		v = LLVMBuildZExt(e->b, v, e->t_i8, "");
	if (LLVMTypeOf(v) != mt)
		return fail(e, MPCC_ERR_INVALID, "kernel %s: stored value does not match buffer %d",
		            e->k->name, s->buf);
	p = LLVMBuildInBoundsGEP2(e->b, mt, e->bufs[s->buf], &idx, 1, "");
	LLVMBuildStore(e->b, v, p);
	return MPCC_OK;
}

/* Points of the innermost parallel dim a blocked reduction computes at once:
 * BLOCK_WIDE when an operand is contiguous in that dim (one vector load per
 * reduction step), else BLOCK (strided operands: independent chains only). */
#define BLOCK 8
#define BLOCK_WIDE 16

/*
 * The coefficient of var v in index expression x when x is an affine sum of
 * vars and constants (as index maps usually are); -1 when it is not or when
 * the walk gets deep.
 */
int64_t
mpcc_llvm_coef_of(const kir_kernel *k, int32_t x, int v, int depth) {
	const kir_expr *e;
	int64_t a, b;

	if (x < 0 || x >= k->n_exprs || depth > 32)
		return -1;
	e = &k->exprs[x];
	switch (e->op) {
	case KIR_CONST:
		return 0;
	case KIR_VAR:
		return e->a == v;
	case KIR_ADD:
		a = mpcc_llvm_coef_of(k, e->a, v, depth + 1);
		b = mpcc_llvm_coef_of(k, e->b, v, depth + 1);
		return a < 0 || b < 0 ? -1 : a + b;
	case KIR_MUL:
		if (k->exprs[e->b].op == KIR_CONST) {
			a = mpcc_llvm_coef_of(k, e->a, v, depth + 1);
			return a < 0 || k->exprs[e->b].imm.i < 0 ? -1 : a * k->exprs[e->b].imm.i;
		}
		if (k->exprs[e->a].op == KIR_CONST) {
			b = mpcc_llvm_coef_of(k, e->b, v, depth + 1);
			return b < 0 || k->exprs[e->a].imm.i < 0 ? -1 : b * k->exprs[e->a].imm.i;
		}
		return -1;
	default:
		return -1;
	}
}

/*
 * Why reductions are blocked: a matrix product or convolution lowers to a
 * loop nest whose innermost loop is the reduction, one accumulator per
 * output point, which LLVM cannot vectorise without reassociating the sum
 * (forbidden: results must match the interpreter bit for bit). Computing
 * a block of neighbouring points of the innermost parallel dim together,
 * with the reduction loops outside and one accumulator per point inside,
 * keeps every point's own summation order while giving the SLP vectoriser
 * independent lanes (contiguous loads where the operand's index is unit
 * stride in that dim). Only plain folds (SUM, PROD, MAX, MIN) with no
 * stored buffer read back qualify; ARG* keep the scalar path.
 */
static int
block_width(emitter *e, const kir_stage *st) {
	kir_red r = st->red_op;
	int inner = st->n_par - 1;

	if (st->n_par < 1 || st->n_red < 1 || st->par_ext[inner] < BLOCK ||
	    !(r == KIR_RED_SUM || r == KIR_RED_PROD || r == KIR_RED_MAX || r == KIR_RED_MIN) ||
	    kir_reads_own_stores(e->k, st))
		return 0;
	if (st->par_ext[inner] < BLOCK_WIDE)
		return BLOCK;
	for (int32_t i = 0; i <= st->red_value; i++)
		if (e->k->exprs[i].op == KIR_LOAD && mpcc_llvm_coef_of(e->k, e->k->exprs[i].b, inner, 0) == 1)
			return BLOCK_WIDE;
	return BLOCK;
}

/* A counted loop's latch with step `step` (mpcc_llvm_loop_close steps by 1). */
void
mpcc_llvm_loop_close_by(emitter *e, loop *l, int64_t step) {
	LLVMValueRef next = LLVMBuildNSWAdd(e->b, l->iv, ci64(e, step), "");
	LLVMBasicBlockRef cur = LLVMGetInsertBlock(e->b);

	LLVMBuildBr(e->b, l->header);
	LLVMAddIncoming(l->iv, &next, &cur, 1);
	LLVMPositionBuilderAtEnd(e->b, l->exit);
}

/*
 * n_blk points starting at var `inner` = base: accumulators reset, the
 * reduction loops opened once, each point's value folded into its own
 * accumulator in the scalar path's order, then each point's stores in
 * point order.
 */
static mpcc_status
emit_block(emitter *e, const kir_stage *st, int n_blk, LLVMValueRef base,
           LLVMValueRef *acc_p) {
	int inner = st->n_par - 1;
	kir_red red = st->red_op;
	mpcc_dtype t = st->acc_dtype;
	kir_op op = red == KIR_RED_SUM    ? KIR_ADD
	            : red == KIR_RED_PROD ? KIR_MUL
	            : red == KIR_RED_MAX  ? KIR_MAX
	                                  : KIR_MIN;
	LLVMValueRef init = red_init(e, red, t);
	loop lp[KIR_MAX_DIMS];

	if (!init)
		return fail(e, MPCC_ERR_UNSUPPORTED, "kernel %s: reduction on dtype %d", e->k->name,
		            t);
	for (int w = 0; w < n_blk; w++)
		LLVMBuildStore(e->b, init, acc_p[w]);
	mpcc_llvm_clear_cache(e);
	for (int r = 0; r < st->n_red; r++)
		e->vars[st->n_par + r] = mpcc_llvm_loop_open(e, &lp[r], ci64(e, 0), ci64(e, st->red_ext[r]));
	for (int w = 0; w < n_blk; w++) {
		LLVMValueRef v, acc;

		mpcc_llvm_clear_cache(e);
		e->vars[inner] = LLVMBuildNSWAdd(e->b, base, ci64(e, w), "");
		if (!(v = mpcc_llvm_expr(e, st->red_value)))
			return e->st;
		acc = LLVMBuildLoad2(e->b, reg_type(e, t), acc_p[w], "");
		acc = is_f(t) ? binary_float(e, op, t, acc, v) : binary_int(e, op, t, acc, v);
		if (!acc)
			return fail(e, MPCC_ERR_UNSUPPORTED, "kernel %s: reduction %d on dtype %d",
			            e->k->name, red, t);
		LLVMBuildStore(e->b, acc, acc_p[w]);
	}
	for (int r = st->n_red - 1; r >= 0; r--) {
		mpcc_llvm_loop_close(e, &lp[r]);
		e->vars[st->n_par + r] = NULL;
	}
	for (int w = 0; w < n_blk; w++) {
		mpcc_llvm_clear_cache(e);
		e->vars[inner] = LLVMBuildNSWAdd(e->b, base, ci64(e, w), "");
		e->acc = LLVMBuildLoad2(e->b, reg_type(e, t), acc_p[w], "");
		for (int s = 0; s < st->n_store; s++)
			if (mpcc_llvm_store(e, &st->store[s]))
				return e->st;
	}
	mpcc_llvm_clear_cache(e);
	e->acc = NULL;
	return MPCC_OK;
}

/*
 * Why the split range may cover several dims: with a batch of 1, dim 0 has
 * one point and a thread pool splitting it would find nothing to share. The
 * leading dims are flattened until the range has SPLIT_MIN points, but the
 * innermost parallel dim is never folded in, so it stays a plain loop that
 * LLVM can vectorise; the div/mod that recovers the flattened vars runs once
 * per row.
 */
#define SPLIT_MIN 64

int
mpcc_jit_split_dims(const kir_stage *st) {
	int m = 1;
	int64_t r;

	if (st->n_par <= 1)
		return st->n_par > 0 ? 1 : 0;
	r = st->par_ext[0];
	while (m < st->n_par - 1 && r < SPLIT_MIN)
		r *= st->par_ext[m++];
	return m;
}

int64_t
mpcc_jit_stage_range(const kir_stage *st) {
	int64_t r = 1;

	for (int p = 0; p < mpcc_jit_split_dims(st); p++)
		r *= st->par_ext[p];
	return r;
}

/*
 * One stage as one function. Its split range (mpcc_jit_split_dims) runs over
 * [begin, min(end, range)) so a caller may split it across threads; a stage
 * without parallel dims runs its body once for the range [0, 1). Allocas sit
 * in the entry block, where mem2reg expects them.
 */
static mpcc_status
emit_stage(emitter *e, int si) {
	const kir_kernel *k = e->k;
	const kir_stage *st = &k->stages[si];
	char name[96];
	LLVMTypeRef params[3] = {LLVMPointerType(e->t_ptr, 0), e->t_i64, e->t_i64};
	LLVMTypeRef fty = LLVMFunctionType(e->t_void, params, 3, 0);
	LLVMValueRef fn, begin, end, hi, acc_p = NULL, best_p = NULL, blk_p[BLOCK_WIDE];
	loop lp[KIR_MAX_DIMS], blk;
	int n_blk;
	int n_outer = st->n_par > 0 ? st->n_par : 1;
	int split = mpcc_jit_split_dims(st);

	if (st->n_par < 0 || st->n_par > KIR_MAX_DIMS || st->n_red < 0 ||
	    st->n_red > KIR_MAX_DIMS || st->n_store < 0 || st->n_store > KIR_MAX_STORES ||
	    (st->n_red > 0 && st->red_op == KIR_RED_NONE) || st->red_op > KIR_RED_ARGMIN_LAST)
		return fail(e, MPCC_ERR_INVALID, "kernel %s: stage %d is malformed", k->name, si);
	if (!mpcc_llvm_stage_name(name, sizeof(name), k, si))
		return fail(e, MPCC_ERR_INVALID, "kernel %s: name too long", k->name);
	if (LLVMGetNamedFunction(e->mod, name))
		return fail(e, MPCC_ERR_INVALID, "kernel name %s used twice", k->name);
	fn = LLVMAddFunction(e->mod, name, fty);
	LLVMAddAttributeAtIndex(
	    fn, LLVMAttributeFunctionIndex,
	    LLVMCreateEnumAttribute(e->cx, LLVMGetEnumAttributeKindForName("nounwind", 8), 0));
	LLVMPositionBuilderAtEnd(e->b, LLVMAppendBasicBlockInContext(e->cx, fn, "entry"));
	for (int i = 0; i < k->n_bufs; i++) {
		LLVMValueRef idx = ci64(e, i);
		LLVMValueRef p =
		    LLVMBuildInBoundsGEP2(e->b, e->t_ptr, LLVMGetParam(fn, 0), &idx, 1, "");
		LLVMTypeRef mt = mem_type(e, k->bufs[i].dtype);

		if (!mt)
			return fail(e, MPCC_ERR_INVALID, "kernel %s: buffer %d has no dtype",
			            k->name, i);
		p = LLVMBuildLoad2(e->b, e->t_ptr, p, "");
		e->bufs[i] = LLVMBuildBitCast(e->b, p, LLVMPointerType(mt, 0), "");
	}
	if (st->red_op != KIR_RED_NONE) {
		mpcc_dtype vt;

		if (st->red_value < 0 || st->red_value >= k->n_exprs)
			return fail(e, MPCC_ERR_INVALID, "kernel %s: bad reduction value", k->name);
		vt = k->exprs[st->red_value].dtype;
		if (!reg_type(e, vt) || (!is_arg(st->red_op) && !reg_type(e, st->acc_dtype)))
			return fail(e, MPCC_ERR_INVALID, "kernel %s: bad reduction dtype", k->name);
		acc_p = LLVMBuildAlloca(
		    e->b, is_arg(st->red_op) ? e->t_i64 : reg_type(e, st->acc_dtype), "acc");
		best_p = LLVMBuildAlloca(e->b, reg_type(e, vt), "best");
	}
	if (mpcc_llvm_emit_matrix(e, st))
		return e->st;
	n_blk = block_width(e, st);
	for (int w = 0; w < n_blk; w++)
		blk_p[w] = LLVMBuildAlloca(e->b, reg_type(e, st->acc_dtype), "blk");
	memset(e->vars, 0, sizeof(e->vars));
	e->acc = NULL;
	e->n_rounded = 0;
	mpcc_llvm_clear_cache(e);

	begin = LLVMGetParam(fn, 1);
	end = LLVMGetParam(fn, 2);
	hi = ci64(e, mpcc_jit_stage_range(st));
	end = LLVMBuildSelect(e->b, LLVMBuildICmp(e->b, LLVMIntSLT, end, hi, ""), end, hi, "");
	for (int p = split > 0 ? split - 1 : 0; p < n_outer; p++) {
		LLVMValueRef lo = p == 0 || p < split ? begin : ci64(e, 0);
		LLVMValueRef h = p == 0 || p < split ? end : ci64(e, st->par_ext[p]);
		LLVMValueRef iv;

		if (n_blk > 0 && p == st->n_par - 1) {
			/* n_blk points at a time while they fit, then the scalar rest */
			LLVMValueRef last = LLVMBuildNSWSub(e->b, h, ci64(e, n_blk - 1), "");
			mpcc_llvm_loop_open(e, &blk, lo, last);
			if (emit_block(e, st, n_blk, blk.iv, blk_p))
				return e->st;
			mpcc_llvm_loop_close_by(e, &blk, n_blk);
			lo = blk.iv;
		}
		iv = mpcc_llvm_loop_open(e, &lp[p], lo, h);

		if (p < split && split > 1) {
			/* recover the flattened vars from the row index, innermost first */
			for (int q = split - 1; q >= 0; q--) {
				LLVMValueRef ext = ci64(e, st->par_ext[q]);
				e->vars[q] = q > 0 ? LLVMBuildURem(e->b, iv, ext, "") : iv;
				if (q > 0)
					iv = LLVMBuildUDiv(e->b, iv, ext, "");
			}
		} else if (st->n_par > 0) {
			e->vars[p] = iv;
		}
	}
	if (st->red_op != KIR_RED_NONE && emit_reduction(e, st, acc_p, best_p))
		return e->st;
	for (int s = 0; s < st->n_store; s++)
		if (mpcc_llvm_store(e, &st->store[s]))
			return e->st;
	for (int p = n_outer - 1; p >= (split > 0 ? split - 1 : 0); p--)
		mpcc_llvm_loop_close(e, &lp[p]);
	LLVMBuildRetVoid(e->b);
	return MPCC_OK;
}

mpcc_status
mpcc_llvm_emit_kernel(LLVMModuleRef mod, const kir_kernel *k, const mpcc_llvm_target *tgt,
                      mpcc_diag *d) {
	emitter e;
	size_t n = k->n_exprs > 0 ? (size_t)k->n_exprs : 1;

	memset(&e, 0, sizeof(e));
	e.f16c = tgt && tgt->f16c;
	e.vec_bits = tgt && tgt->vec_bits ? tgt->vec_bits : 128;
	e.matrix = tgt && tgt->matrix;
	e.mod = mod;
	e.cx = LLVMGetModuleContext(mod);
	e.k = k;
	e.d = d;
	e.t_void = LLVMVoidTypeInContext(e.cx);
	e.t_i1 = LLVMInt1TypeInContext(e.cx);
	e.t_i8 = LLVMInt8TypeInContext(e.cx);
	e.t_i16 = LLVMInt16TypeInContext(e.cx);
	e.t_i32 = LLVMInt32TypeInContext(e.cx);
	e.t_i64 = LLVMInt64TypeInContext(e.cx);
	e.t_f16 = LLVMHalfTypeInContext(e.cx);
	e.t_f32 = LLVMFloatTypeInContext(e.cx);
	e.t_f64 = LLVMDoubleTypeInContext(e.cx);
	e.t_ptr = LLVMPointerType(e.t_i8, 0);
	e.val = calloc(n, sizeof(*e.val));
	e.mark = calloc(n, 1);
	e.bufs = calloc(k->n_bufs > 0 ? (size_t)k->n_bufs : 1, sizeof(*e.bufs));
	e.b = LLVMCreateBuilderInContext(e.cx);
	if (!e.val || !e.mark || !e.bufs || !e.b) {
		fail(&e, MPCC_ERR_NOMEM, "llvm: out of memory emitting kernel %s", k->name);
	} else {
		for (int s = 0; s < k->n_stages && e.st == MPCC_OK; s++)
			emit_stage(&e, s);
	}
	if (e.b)
		LLVMDisposeBuilder(e.b);
	free(e.val);
	free(e.mark);
	free(e.bufs);
	return e.st;
}
