/*
 * elementwise_lower.c - kernel IR for the elementwise family.
 *
 * Nearly every op is one expression over its broadcast inputs, so it goes
 * through mpcc_lower_elementwise with build() as the callback; build()
 * dispatches on the op to a few small expression builders. Clip, Dropout
 * and CastLike build their own one-stage kernel (optional scalar inputs, a
 * second output, an input read only for its dtype).
 *
 * Numerics: f16 and bf16 inputs are cast to f32, computed, and cast back to
 * the output dtype, which rounds once per op as a GPU store would.
 * Transcendental functions of integers (Erf, Pow) compute in f64. Integer
 * arithmetic stays in its own dtype with kir's C semantics (DIV truncates,
 * REM takes the dividend's sign, FLOORMOD the divisor's).
 */
#include <math.h>
#include <string.h>

#include "ops/elementwise_impl.h"
#include "ops/ops.h"

typedef struct elem_ctx {
	mpcc_dtype out;  /* dtype of output 0 */
	mpcc_dtype out1; /* dtype of output 1 (Dropout's mask), UNDEF if none */
	int opset;
} elem_ctx;

static mpcc_dtype
value_dtype(const mpcc_value *v)
{
	return v->storage != MPCC_DTYPE_UNDEF ? v->storage : v->dtype;
}

/* The dtype arithmetic on t runs in: f32 for the 16-bit floats. */
static mpcc_dtype
compute_dtype(mpcc_dtype t)
{
	return t == MPCC_DTYPE_F16 || t == MPCC_DTYPE_BF16 ? MPCC_DTYPE_F32 : t;
}

/* The dtype transcendental math on t runs in: integers go to f64. */
static mpcc_dtype
math_dtype(mpcc_dtype t)
{
	return mpcc_dtype_is_float(t) ? compute_dtype(t) : MPCC_DTYPE_F64;
}

/* A constant of any dtype. */
static int32_t
cnst(kir_kernel *k, mpcc_dtype t, double v)
{
	if (mpcc_dtype_is_float(t))
		return kir_const_f(k, t, v);
	return kir_const_i(k, t, (int64_t)v);
}

static int32_t
up(kir_kernel *k, int32_t e)
{
	return kir_cast(k, compute_dtype(kir_expr_dtype(k, e)), e);
}

static int32_t
bin(kir_kernel *k, kir_op op, int32_t a, int32_t b)
{
	return kir_binary(k, op, a, b);
}

static int32_t
mulc(kir_kernel *k, int32_t a, double c)
{
	return bin(k, KIR_MUL, a, cnst(k, kir_expr_dtype(k, a), c));
}

static int32_t
addc(kir_kernel *k, int32_t a, double c)
{
	return bin(k, KIR_ADD, a, cnst(k, kir_expr_dtype(k, a), c));
}

/* 1 / (1 + exp(-x)) */
static int32_t
sigmoid(kir_kernel *k, int32_t x)
{
	mpcc_dtype t = kir_expr_dtype(k, x);
	int32_t e = kir_unary(k, KIR_EXP, kir_unary(k, KIR_NEG, x));
	return bin(k, KIR_DIV, cnst(k, t, 1), addc(k, e, 1));
}

/* log(1 + exp(x)) as max(x, 0) + log(1 + exp(-|x|)): no overflow. */
static int32_t
softplus(kir_kernel *k, int32_t x)
{
	mpcc_dtype t = kir_expr_dtype(k, x);
	int32_t pos = bin(k, KIR_MAX, x, cnst(k, t, 0));
	int32_t e = kir_unary(k, KIR_EXP, kir_unary(k, KIR_NEG, kir_unary(k, KIR_ABS, x)));
	return bin(k, KIR_ADD, pos, kir_unary(k, KIR_LOG, addc(k, e, 1)));
}

/* min(max(x, 0), 1) */
static int32_t
clamp01(kir_kernel *k, int32_t x)
{
	mpcc_dtype t = kir_expr_dtype(k, x);
	return bin(k, KIR_MIN, bin(k, KIR_MAX, x, cnst(k, t, 0)), cnst(k, t, 1));
}

static const struct {
	mpcc_op op;
	kir_op kop;
} math_ops[] = {
    {MPCC_OP_SQRT, KIR_SQRT},   {MPCC_OP_EXP, KIR_EXP},     {MPCC_OP_LOG, KIR_LOG},
    {MPCC_OP_SIN, KIR_SIN},     {MPCC_OP_COS, KIR_COS},     {MPCC_OP_TAN, KIR_TAN},
    {MPCC_OP_ASIN, KIR_ASIN},   {MPCC_OP_ACOS, KIR_ACOS},   {MPCC_OP_ATAN, KIR_ATAN},
    {MPCC_OP_SINH, KIR_SINH},   {MPCC_OP_COSH, KIR_COSH},   {MPCC_OP_TANH, KIR_TANH},
    {MPCC_OP_ASINH, KIR_ASINH}, {MPCC_OP_ACOSH, KIR_ACOSH}, {MPCC_OP_ATANH, KIR_ATANH},
    {MPCC_OP_ERF, KIR_ERF},     {MPCC_OP_FLOOR, KIR_FLOOR}, {MPCC_OP_CEIL, KIR_CEIL},
    {MPCC_OP_ROUND, KIR_RINT},
};

/*
 * Ops that are one kir unary op, and the few that stay in their integer
 * dtype (Abs, Neg, Sign, BitwiseNot, Not). Returns -1 for other ops.
 */
static int32_t
build_unary(kir_kernel *k, const mpcc_node *node, int32_t x, mpcc_dtype out)
{
	mpcc_dtype t = kir_expr_dtype(k, x);
	for (size_t i = 0; i < sizeof(math_ops) / sizeof(math_ops[0]); i++)
		if (math_ops[i].op == node->op)
			return kir_cast(
			    k, out, kir_unary(k, math_ops[i].kop, kir_cast(k, math_dtype(t), x)));
	switch (node->op) {
	case MPCC_OP_ABS:
		return kir_cast(k, out, kir_unary(k, KIR_ABS, up(k, x)));
	case MPCC_OP_NEG:
		return kir_cast(k, out, kir_unary(k, KIR_NEG, up(k, x)));
	case MPCC_OP_NOT:
		return kir_unary(k, KIR_NOT, x);
	case MPCC_OP_BITWISENOT:
		return kir_unary(k, KIR_BNOT, x);
	case MPCC_OP_RECIPROCAL: {
		int32_t c = up(k, x);
		return kir_cast(k, out, bin(k, KIR_DIV, cnst(k, kir_expr_dtype(k, c), 1), c));
	}
	case MPCC_OP_SIGN: {
		/* x > 0 ? 1 : x < 0 ? -1 : x keeps 0 and NaN as they are */
		int32_t c = up(k, x);
		mpcc_dtype ct = kir_expr_dtype(k, c);
		int32_t z = cnst(k, ct, 0);
		int32_t neg = c;
		if (mpcc_dtype_is_float(ct) || mpcc_dtype_is_signed(ct))
			neg = kir_select(k, bin(k, KIR_LT, c, z), cnst(k, ct, -1), c);
		return kir_cast(k, out, kir_select(k, bin(k, KIR_GT, c, z), cnst(k, ct, 1), neg));
	}
	case MPCC_OP_ISNAN:
		return kir_unary(k, KIR_ISNAN, up(k, x));
	case MPCC_OP_ISINF: {
		int32_t c = up(k, x);
		mpcc_dtype ct = kir_expr_dtype(k, c);
		int32_t r = kir_const_i(k, MPCC_DTYPE_BOOL, 0);
		if (mpcc_node_attr_int(node, "detect_positive", 1))
			r = bin(k, KIR_OR, r, bin(k, KIR_EQ, c, kir_const_f(k, ct, INFINITY)));
		if (mpcc_node_attr_int(node, "detect_negative", 1))
			r = bin(k, KIR_OR, r, bin(k, KIR_EQ, c, kir_const_f(k, ct, -INFINITY)));
		return r;
	}
	case MPCC_OP_IDENTITY:
		return kir_cast(k, out, x);
	case MPCC_OP_CAST:
		return kir_cast(k, out, x);
	default:
		return -1;
	}
}

/*
 * Activations: f(x) with the op's float attributes, computed in f32 (or
 * f64, or the integer dtype for Relu and Shrink on integers) and cast to
 * the output dtype. Returns -1 for other ops.
 */
static int32_t
build_activation(kir_kernel *k, const mpcc_node *node, int32_t x0, mpcc_dtype out)
{
	mpcc_dtype t0 = kir_expr_dtype(k, x0);
	int32_t x = up(k, x0);
	mpcc_dtype t = kir_expr_dtype(k, x);
	int32_t zero = cnst(k, t, 0);
	double alpha;
	int32_t y;
	switch (node->op) {
	case MPCC_OP_RELU:
		y = bin(k, KIR_MAX, x, zero);
		break;
	case MPCC_OP_LEAKYRELU:
		alpha = mpcc_node_attr_float(node, "alpha", 0.01f);
		y = kir_select(k, bin(k, KIR_LT, x, zero), mulc(k, x, alpha), x);
		break;
	case MPCC_OP_ELU: {
		alpha = mpcc_node_attr_float(node, "alpha", 1.0f);
		int32_t e = mulc(k, addc(k, kir_unary(k, KIR_EXP, x), -1), alpha);
		y = kir_select(k, bin(k, KIR_LT, x, zero), e, x);
		break;
	}
	case MPCC_OP_SELU: {
		alpha = mpcc_node_attr_float(node, "alpha", 1.67326319217681884765625f);
		double gamma = mpcc_node_attr_float(node, "gamma", 1.05070102214813232421875f);
		int32_t e = addc(k, mulc(k, kir_unary(k, KIR_EXP, x), alpha), -alpha);
		y = mulc(k, kir_select(k, bin(k, KIR_LE, x, zero), e, x), gamma);
		break;
	}
	case MPCC_OP_CELU: {
		alpha = mpcc_node_attr_float(node, "alpha", 1.0f);
		int32_t e = kir_unary(k, KIR_EXP, bin(k, KIR_DIV, x, cnst(k, t, alpha)));
		int32_t neg = bin(k, KIR_MIN, zero, mulc(k, addc(k, e, -1), alpha));
		y = bin(k, KIR_ADD, bin(k, KIR_MAX, zero, x), neg);
		break;
	}
	case MPCC_OP_SIGMOID:
		y = sigmoid(k, x);
		break;
	case MPCC_OP_HARDSIGMOID:
		alpha = mpcc_node_attr_float(node, "alpha", 0.2f);
		y = clamp01(k,
		            addc(k, mulc(k, x, alpha), mpcc_node_attr_float(node, "beta", 0.5f)));
		break;
	case MPCC_OP_HARDSWISH:
		y = bin(k, KIR_MUL, x, clamp01(k, addc(k, mulc(k, x, 1.0 / 6.0), 0.5)));
		break;
	case MPCC_OP_SOFTPLUS:
		y = softplus(k, x);
		break;
	case MPCC_OP_SOFTSIGN:
		y = bin(k, KIR_DIV, x, addc(k, kir_unary(k, KIR_ABS, x), 1));
		break;
	case MPCC_OP_THRESHOLDEDRELU:
		alpha = mpcc_node_attr_float(node, "alpha", 1.0f);
		y = kir_select(k, bin(k, KIR_GT, x, cnst(k, t, alpha)), x, zero);
		break;
	case MPCC_OP_SHRINK: {
		/* integers compare against the float lambd exactly in f64 */
		if (!mpcc_dtype_is_float(t0)) {
			x = kir_cast(k, MPCC_DTYPE_F64, x0);
			t = MPCC_DTYPE_F64;
			zero = cnst(k, t, 0);
		}
		double lambd = mpcc_node_attr_float(node, "lambd", 0.5f);
		double bias = mpcc_node_attr_float(node, "bias", 0.0f);
		int32_t hi =
		    kir_select(k, bin(k, KIR_GT, x, cnst(k, t, lambd)), addc(k, x, -bias), zero);
		y = kir_select(k, bin(k, KIR_LT, x, cnst(k, t, -lambd)), addc(k, x, bias), hi);
		break;
	}
	case MPCC_OP_GELU: {
		const char *ap = mpcc_node_attr_string(node, "approximate", "none");
		int32_t inner;
		if (strcmp(ap, "tanh") == 0) {
			int32_t x3 = bin(k, KIR_MUL, bin(k, KIR_MUL, x, x), x);
			int32_t s = bin(k, KIR_ADD, x, mulc(k, x3, 0.044715));
			inner = kir_unary(k, KIR_TANH, mulc(k, s, sqrt(2.0 / M_PI)));
		} else {
			inner = kir_unary(k, KIR_ERF, mulc(k, x, 1.0 / sqrt(2.0)));
		}
		y = bin(k, KIR_MUL, mulc(k, x, 0.5), addc(k, inner, 1));
		break;
	}
	case MPCC_OP_MISH:
		y = bin(k, KIR_MUL, x, kir_unary(k, KIR_TANH, softplus(k, x)));
		break;
	default:
		return -1;
	}
	return kir_cast(k, out, y);
}

/*
 * Pow computes in the base's dtype: a float base takes the exponent cast to
 * it; an integer base computes in f64 (exact for results below 2^53) and
 * truncates back.
 */
static int32_t
build_pow(kir_kernel *k, int32_t base, int32_t expo, mpcc_dtype out)
{
	mpcc_dtype c = math_dtype(kir_expr_dtype(k, base));
	int32_t p = bin(k, KIR_POW, kir_cast(k, c, base), kir_cast(k, c, expo));
	return kir_cast(k, out, p);
}

static int32_t
build_binary(kir_kernel *k, const mpcc_node *node, int32_t a, int32_t b, mpcc_dtype out)
{
	kir_op op;
	switch (node->op) {
	case MPCC_OP_ADD:
		op = KIR_ADD;
		break;
	case MPCC_OP_SUB:
		op = KIR_SUB;
		break;
	case MPCC_OP_MUL:
		op = KIR_MUL;
		break;
	case MPCC_OP_DIV:
		op = KIR_DIV;
		break;
	case MPCC_OP_MOD:
		op = mpcc_node_attr_int(node, "fmod", 0) ? KIR_REM : KIR_FLOORMOD;
		break;
	case MPCC_OP_POW:
		return build_pow(k, a, b, out);
	case MPCC_OP_BITSHIFT:
		op = strcmp(mpcc_node_attr_string(node, "direction", ""), "LEFT") == 0 ? KIR_SHL
		                                                                       : KIR_SHR;
		break;
	case MPCC_OP_BITWISEAND:
	case MPCC_OP_AND:
		op = KIR_AND;
		break;
	case MPCC_OP_BITWISEOR:
	case MPCC_OP_OR:
		op = KIR_OR;
		break;
	case MPCC_OP_BITWISEXOR:
	case MPCC_OP_XOR:
		op = KIR_XOR;
		break;
	case MPCC_OP_EQUAL:
		return bin(k, KIR_EQ, up(k, a), up(k, b));
	case MPCC_OP_GREATER:
		return bin(k, KIR_GT, up(k, a), up(k, b));
	case MPCC_OP_GREATEROREQUAL:
		return bin(k, KIR_GE, up(k, a), up(k, b));
	case MPCC_OP_LESS:
		return bin(k, KIR_LT, up(k, a), up(k, b));
	case MPCC_OP_LESSOREQUAL:
		return bin(k, KIR_LE, up(k, a), up(k, b));
	case MPCC_OP_PRELU: {
		int32_t x = up(k, a), s = up(k, b);
		int32_t neg = bin(k, KIR_LT, x, cnst(k, kir_expr_dtype(k, x), 0));
		return kir_cast(k, out, kir_select(k, neg, bin(k, KIR_MUL, x, s), x));
	}
	default:
		return -1;
	}
	return kir_cast(k, out, bin(k, op, up(k, a), up(k, b)));
}

/* Max, Min, Sum fold left to right; Mean divides the sum by the count. */
static int32_t
build_variadic(kir_kernel *k, const mpcc_node *node, const int32_t *in, int n_in, mpcc_dtype out)
{
	kir_op op = node->op == MPCC_OP_MAX ? KIR_MAX : node->op == MPCC_OP_MIN ? KIR_MIN : KIR_ADD;
	int32_t acc = up(k, in[0]);
	for (int i = 1; i < n_in; i++)
		acc = bin(k, op, acc, up(k, in[i]));
	if (node->op == MPCC_OP_MEAN)
		acc = bin(k, KIR_DIV, acc, cnst(k, kir_expr_dtype(k, acc), n_in));
	return kir_cast(k, out, acc);
}

/* The mpcc_elem_fn of every op that lowers through mpcc_lower_elementwise. */
static int32_t
build(kir_kernel *k, const int32_t *in, int n_in, const mpcc_node *node, void *ctx)
{
	const elem_ctx *cx = ctx;
	int32_t r;
	switch (node->op) {
	case MPCC_OP_MAX:
	case MPCC_OP_MIN:
	case MPCC_OP_SUM:
	case MPCC_OP_MEAN:
		return build_variadic(k, node, in, n_in, cx->out);
	case MPCC_OP_WHERE:
		return kir_cast(k, cx->out, kir_select(k, in[0], in[1], in[2]));
	default:
		break;
	}
	if (n_in == 2)
		return build_binary(k, node, in[0], in[1], cx->out);
	if ((r = build_unary(k, node, in[0], cx->out)) >= 0)
		return r;
	return build_activation(k, node, in[0], cx->out);
}

static mpcc_status lower_prelu_channel(mpcc_lower *lx, int32_t n, const elem_ctx *cx);

mpcc_status
mpcc_elem_lower(mpcc_lower *lx, int32_t n)
{
	const mpcc_node *node = &lx->g->nodes[n];
	elem_ctx cx = {.out = value_dtype(&lx->g->values[node->out[0]]), .opset = node->opset};
	if (node->op == MPCC_OP_PRELU && mpcc_elem_prelu_is_legacy(lx->g, node))
		return lower_prelu_channel(lx, n, &cx);
	return mpcc_lower_elementwise(lx, n, build, &cx);
}

/* ------------------------------------------------------------- own kernels */

enum { LOAD_SKIP, LOAD_BCAST, LOAD_SCALAR, LOAD_CHANNEL };

typedef void (*map_fn)(kir_kernel *k, const int32_t *in, const mpcc_node *node, const elem_ctx *cx,
                       int32_t *out);

/*
 * One stage over output 0's shape that loads input i as how[i] says
 * (absent inputs give -1 in in[]), lets fn compute one value per output,
 * and stores each present output at the same position. Outputs share
 * output 0's shape.
 */
static mpcc_status
lower_map(mpcc_lower *lx, int32_t n, const uint8_t *how, map_fn fn, const elem_ctx *cx)
{
	const mpcc_graph *g = lx->g;
	const mpcc_node *node = &g->nodes[n];
	const mpcc_value *y = &g->values[node->out[0]];
	kir_kernel *k = mpcc_lower_kernel(lx, n, "");
	if (!k)
		return lx->d->status != MPCC_OK ? lx->d->status : MPCC_ERR_NOMEM;
	int32_t idx[MPCC_MAX_RANK], in[3] = {-1, -1, -1}, vals[2] = {-1, -1};
	mpcc_lower_vars(k, 0, y->rank, idx);
	for (int i = 0; i < node->n_in && i < 3; i++) {
		if (how[i] == LOAD_SKIP || node->in[i] == MPCC_NONE)
			continue;
		const mpcc_value *v = &g->values[node->in[i]];
		int buf = mpcc_lower_param(k, g, node->in[i]);
		int32_t at = how[i] == LOAD_SCALAR    ? kir_iconst(k, 0)
		             : how[i] == LOAD_CHANNEL ? idx[1]
		                                      : mpcc_lower_bcast(k, v, y->rank, idx);
		in[i] = kir_load(k, buf, at);
	}
	fn(k, in, node, cx, vals);
	int32_t lin = mpcc_lower_linear(k, y->rank, y->dims, idx);
	kir_stage *st =
	    kir_stage_add(k, y->rank, y->dims, 0, NULL, KIR_RED_NONE, MPCC_DTYPE_UNDEF, MPCC_NONE);
	for (int o = 0; st && o < node->n_out && o < 2; o++)
		if (node->out[o] != MPCC_NONE)
			kir_stage_store(k, st, mpcc_lower_param(k, g, node->out[o]), lin, vals[o]);
	if (!st || !kir_kernel_ok(k))
		return mpcc_node_error(lx->d, node, MPCC_ERR_NOMEM, "out of memory while lowering");
	return MPCC_OK;
}

/*
 * min(max(x, lo), hi) with either bound optional; from opset 11 the bounds
 * are scalar inputs read at run time, before that float attributes. NaN
 * stays NaN (kir MIN/MAX propagate it), and lo > hi gives hi, as ONNX says.
 */
static void
map_clip(kir_kernel *k, const int32_t *in, const mpcc_node *node, const elem_ctx *cx, int32_t *out)
{
	int32_t x = up(k, in[0]);
	mpcc_dtype t = kir_expr_dtype(k, x);
	if (cx->opset < 11) {
		const mpcc_attr *lo = mpcc_node_attr(node, "min");
		const mpcc_attr *hi = mpcc_node_attr(node, "max");
		if (lo)
			x = bin(k, KIR_MAX, x, cnst(k, t, lo->f));
		if (hi)
			x = bin(k, KIR_MIN, x, cnst(k, t, hi->f));
	} else {
		if (in[1] >= 0)
			x = bin(k, KIR_MAX, x, kir_cast(k, t, in[1]));
		if (in[2] >= 0)
			x = bin(k, KIR_MIN, x, kir_cast(k, t, in[2]));
	}
	out[0] = kir_cast(k, cx->out, x);
}

mpcc_status
mpcc_elem_lower_clip(mpcc_lower *lx, int32_t n)
{
	const mpcc_node *node = &lx->g->nodes[n];
	elem_ctx cx = {.out = value_dtype(&lx->g->values[node->out[0]]), .opset = node->opset};
	static const uint8_t how[3] = {LOAD_BCAST, LOAD_SCALAR, LOAD_SCALAR};
	return lower_map(lx, n, how, map_clip, &cx);
}

static void
map_dropout(kir_kernel *k, const int32_t *in, const mpcc_node *node, const elem_ctx *cx,
            int32_t *out)
{
	out[0] = kir_cast(k, cx->out, in[0]);
	if (node->n_out > 1 && node->out[1] != MPCC_NONE)
		out[1] = cnst(k, cx->out1, 1);
}

mpcc_status
mpcc_elem_lower_dropout(mpcc_lower *lx, int32_t n)
{
	const mpcc_node *node = &lx->g->nodes[n];
	elem_ctx cx = {.out = value_dtype(&lx->g->values[node->out[0]]), .opset = node->opset};
	if (node->n_out > 1 && node->out[1] != MPCC_NONE)
		cx.out1 = value_dtype(&lx->g->values[node->out[1]]);
	static const uint8_t how[3] = {LOAD_BCAST, LOAD_SKIP, LOAD_SKIP};
	return lower_map(lx, n, how, map_dropout, &cx);
}

static void
map_cast(kir_kernel *k, const int32_t *in, const mpcc_node *node, const elem_ctx *cx, int32_t *out)
{
	out[0] = kir_cast(k, cx->out, in[0]);
}

mpcc_status
mpcc_elem_lower_castlike(mpcc_lower *lx, int32_t n)
{
	const mpcc_node *node = &lx->g->nodes[n];
	elem_ctx cx = {.out = value_dtype(&lx->g->values[node->out[0]]), .opset = node->opset};
	static const uint8_t how[3] = {LOAD_BCAST, LOAD_SKIP, LOAD_SKIP};
	return lower_map(lx, n, how, map_cast, &cx);
}

static void
prelu_map(kir_kernel *k, const int32_t *in, const mpcc_node *node, const elem_ctx *cx,
          int32_t *out)
{
	int32_t v[2] = {in[0], in[1]};
	out[0] = build(k, v, 2, node, (void *)cx);
}

/* PRelu before opset 7 with a slope of one value per channel (dim 1). */
static mpcc_status
lower_prelu_channel(mpcc_lower *lx, int32_t n, const elem_ctx *cx)
{
	static const uint8_t how[2] = {LOAD_BCAST, LOAD_CHANNEL};
	return lower_map(lx, n, how, prelu_map, cx);
}
