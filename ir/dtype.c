/*
 * dtype.c - element types: names, sizes, classes, the ONNX mapping, and
 * exact software conversions between f32 and the two 16-bit float formats.
 *
 * The conversions work on bit patterns, never on the host's float16 support,
 * so the compiler's constant folding, the interpreter and every test agree
 * bit for bit with what a GPU store produces: round to nearest even, overflow
 * to infinity, subnormals rounded correctly, NaN kept NaN (made quiet).
 */
#include <string.h>

#include "ir/ir.h"

const char *
mpcc_status_name(mpcc_status s)
{
	switch (s) {
	case MPCC_OK: return "ok";
	case MPCC_ERR_INVALID: return "invalid";
	case MPCC_ERR_UNSUPPORTED: return "unsupported";
	case MPCC_ERR_NOMEM: return "out of memory";
	case MPCC_ERR_IO: return "i/o error";
	case MPCC_ERR_BACKEND: return "backend error";
	case MPCC_ERR_INTERNAL: return "internal error";
	case MPCC_ERR_DIVERGED: return "training diverged";
	}
	return "unknown status";
}

static const struct {
	const char *name;
	size_t size;
} dtypes[MPCC_DTYPE_COUNT] = {
	[MPCC_DTYPE_UNDEF] = {"undef", 0},
	[MPCC_DTYPE_F32] = {"f32", 4},
	[MPCC_DTYPE_F16] = {"f16", 2},
	[MPCC_DTYPE_BF16] = {"bf16", 2},
	[MPCC_DTYPE_F64] = {"f64", 8},
	[MPCC_DTYPE_I8] = {"i8", 1},
	[MPCC_DTYPE_I16] = {"i16", 2},
	[MPCC_DTYPE_I32] = {"i32", 4},
	[MPCC_DTYPE_I64] = {"i64", 8},
	[MPCC_DTYPE_U8] = {"u8", 1},
	[MPCC_DTYPE_U16] = {"u16", 2},
	[MPCC_DTYPE_U32] = {"u32", 4},
	[MPCC_DTYPE_U64] = {"u64", 8},
	[MPCC_DTYPE_BOOL] = {"bool", 1},
};

const char *
mpcc_dtype_name(mpcc_dtype t)
{
	if ((unsigned)t >= MPCC_DTYPE_COUNT)
		return "undef";
	return dtypes[t].name;
}

size_t
mpcc_dtype_size(mpcc_dtype t)
{
	if ((unsigned)t >= MPCC_DTYPE_COUNT)
		return 0;
	return dtypes[t].size;
}

bool
mpcc_dtype_is_float(mpcc_dtype t)
{
	return t == MPCC_DTYPE_F32 || t == MPCC_DTYPE_F16 || t == MPCC_DTYPE_BF16 ||
	       t == MPCC_DTYPE_F64;
}

bool
mpcc_dtype_is_int(mpcc_dtype t)
{
	return (t >= MPCC_DTYPE_I8 && t <= MPCC_DTYPE_I64) ||
	       (t >= MPCC_DTYPE_U8 && t <= MPCC_DTYPE_U64);
}

bool
mpcc_dtype_is_signed(mpcc_dtype t)
{
	return mpcc_dtype_is_float(t) || (t >= MPCC_DTYPE_I8 && t <= MPCC_DTYPE_I64);
}

/* TensorProto.DataType numbers, indexed by the ONNX number. */
static const mpcc_dtype from_onnx[] = {
	[1] = MPCC_DTYPE_F32,   [2] = MPCC_DTYPE_U8,   [3] = MPCC_DTYPE_I8,
	[4] = MPCC_DTYPE_U16,   [5] = MPCC_DTYPE_I16,  [6] = MPCC_DTYPE_I32,
	[7] = MPCC_DTYPE_I64,   [8] = MPCC_DTYPE_UNDEF, [9] = MPCC_DTYPE_BOOL,
	[10] = MPCC_DTYPE_F16,  [11] = MPCC_DTYPE_F64, [12] = MPCC_DTYPE_U32,
	[13] = MPCC_DTYPE_U64,  [16] = MPCC_DTYPE_BF16,
};

mpcc_dtype
mpcc_dtype_from_onnx(int onnx_type)
{
	if (onnx_type < 0 || (size_t)onnx_type >= sizeof(from_onnx) / sizeof(from_onnx[0]))
		return MPCC_DTYPE_UNDEF;
	return from_onnx[onnx_type];
}

int
mpcc_dtype_to_onnx(mpcc_dtype t)
{
	for (size_t i = 1; i < sizeof(from_onnx) / sizeof(from_onnx[0]); i++)
		if (from_onnx[i] == t && t != MPCC_DTYPE_UNDEF)
			return (int)i;
	return 0;
}

static uint32_t
f32_bits(float f)
{
	uint32_t x;

	memcpy(&x, &f, sizeof(x));
	return x;
}

static float
bits_f32(uint32_t x)
{
	float f;

	memcpy(&f, &x, sizeof(f));
	return f;
}

/*
 * f32 -> f16. Normal results: rebias the exponent and round the 13 dropped
 * mantissa bits to nearest even by adding 0xfff plus the kept lsb; a carry
 * out of the mantissa bumps the exponent, which is exactly right, up to and
 * including overflow to infinity. Subnormal results: shift the mantissa with
 * its hidden bit into place and round the same way; a carry gives the
 * smallest normal, also right. Anything below half the smallest subnormal
 * (2^-25, itself a tie that goes to even zero) becomes signed zero.
 */
uint16_t
mpcc_f32_to_f16(float f)
{
	uint32_t x = f32_bits(f);
	uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
	uint32_t ax = x & 0x7fffffff;

	if (ax > 0x7f800000)
		return sign | 0x7e00 | (uint16_t)((ax >> 13) & 0x3ff);
	if (ax >= 0x477ff000)
		return sign | 0x7c00;
	if (ax >= 0x38800000) {
		ax -= 0x38000000;
		ax += 0xfff + ((ax >> 13) & 1);
		return sign | (uint16_t)(ax >> 13);
	}
	uint32_t e = ax >> 23;
	if (e < 102)
		return sign;
	uint32_t mant = (ax & 0x7fffff) | 0x800000;
	uint32_t shift = 126 - e; /* 14..24 */
	uint32_t q = mant >> shift;
	uint32_t rem = mant & ((1u << shift) - 1);
	uint32_t half = 1u << (shift - 1);
	if (rem > half || (rem == half && (q & 1)))
		q++;
	return sign | (uint16_t)q;
}

/* f16 -> f32 is exact; subnormals are normalised by shifting. */
float
mpcc_f16_to_f32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000) << 16;
	uint32_t e = (h >> 10) & 0x1f;
	uint32_t m = h & 0x3ff;

	if (e == 0x1f) {
		if (m)
			return bits_f32(sign | 0x7fc00000 | (m << 13));
		return bits_f32(sign | 0x7f800000);
	}
	if (e == 0) {
		if (m == 0)
			return bits_f32(sign);
		e = 113;
		while (!(m & 0x400)) {
			m <<= 1;
			e--;
		}
		return bits_f32(sign | (e << 23) | ((m & 0x3ff) << 13));
	}
	return bits_f32(sign | ((e + 112) << 23) | (m << 13));
}

/* bf16 is the top half of f32: round the low 16 bits to nearest even; the
 * carry handles overflow to infinity and subnormals alike. */
uint16_t
mpcc_f32_to_bf16(float f)
{
	uint32_t x = f32_bits(f);

	if ((x & 0x7fffffff) > 0x7f800000)
		return (uint16_t)((x >> 16) | 0x40);
	x += 0x7fff + ((x >> 16) & 1);
	return (uint16_t)(x >> 16);
}

float
mpcc_bf16_to_f32(uint16_t h)
{
	uint32_t x = (uint32_t)h << 16;

	if ((x & 0x7fffffff) > 0x7f800000)
		x |= 0x00400000;
	return bits_f32(x);
}
