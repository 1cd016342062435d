/*
 * ops/misc_random.c - HashRandomUniform, the mpcc-internal op that draws the
 * uniform numbers of training-mode Dropout (passes/train_modes.c,
 * docs/training.md "Dropout"). The table entry is in ops/misc.c.
 *
 * The numbers are a counter-based generator: element i of the draw made at
 * step s with seed k is a hash of (k, s, i), so a draw needs no generator
 * state beyond the step count (a state of the training step graph, saved
 * in checkpoints), any element can be computed on its own, and every
 * backend gives the same bits. With fmix32 MurmurHash3's 32-bit finalizer,
 * and all arithmetic modulo 2^32:
 *
 *   key = fmix32(seed ^ fmix32(lo ^ fmix32(hi ^ 0x9e3779b9)))   (per step)
 *   h   = fmix32(fmix32(i ^ key) + key)                          (per element)
 *   u   = (h >> 8) / 2^24                                        in [0, 1)
 *
 * where lo and hi are the step's low and high 32 bits and i is the row-major
 * flat index modulo 2^32. The second, additive round keeps draws of steps
 * whose keys differ in a few bits apart: one xor would only permute the
 * first round's values. u takes 2^24 values, each exact in f32.
 *
 * The op has one input, the step (an integer scalar), and attributes shape
 * (ints, the output's dims) and seed (int, default 0). It lowers to one map
 * stage whose only load is the step: the numbers themselves are computed
 * where they are used and never touch memory once fusion has merged the
 * consumer (the Dropout mask compare). Every emitter implements kir's
 * 32-bit unsigned MUL, XOR, ADD and logical SHR, so the interpreter, the
 * LLVM JIT and CUDA agree bit for bit.
 */
#include "ops/misc_impl.h"

#define GOLDEN 0x9e3779b9u /* 2^32 / phi: keeps step 0 off fmix32's fixed point 0 */

const char *const mpcc_misc_attrs_hashuniform[] = {"shape", "seed", NULL};

mpcc_status
mpcc_misc_infer_hashuniform(mpcc_graph *g, int32_t ni, mpcc_diag *d)
{
	const mpcc_node *n = &g->nodes[ni];
	const mpcc_value *step = mpcc_misc_in(g, n, 0);
	mpcc_value *y = mpcc_misc_out(g, n, 0);
	const mpcc_attr *shape = mpcc_node_attr(n, "shape");
	const mpcc_attr *seed = mpcc_node_attr(n, "seed");

	if (!step || !y)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID,
		                       "needs its step input and an output");
	if (!mpcc_dtype_is_int(step->dtype) || mpcc_value_numel(step) != 1)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID,
		                       "the step must be an integer scalar");
	if (!shape || shape->kind != MPCC_ATTR_INTS || shape->n > MPCC_MAX_RANK)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID,
		                       "attribute shape must be ints, at most %d", MPCC_MAX_RANK);
	if (seed && seed->kind != MPCC_ATTR_INT)
		return mpcc_node_error(d, n, MPCC_ERR_INVALID, "attribute seed must be an int");
	for (int i = 0; i < shape->n; i++)
		if (shape->ints[i] < 0)
			return mpcc_node_error(d, n, MPCC_ERR_INVALID, "shape[%d] is %lld", i,
			                       (long long)shape->ints[i]);
	mpcc_misc_set(y, MPCC_DTYPE_F32, shape->n, shape->ints);
	return MPCC_OK;
}

static int32_t
u32(kir_kernel *k, uint32_t v)
{
	return kir_const_i(k, MPCC_DTYPE_U32, v);
}

/* MurmurHash3's finalizer: h ^= h >> 16; h *= 0x85ebca6b; h ^= h >> 13;
 * h *= 0xc2b2ae35; h ^= h >> 16, on a U32 expression. */
static int32_t
fmix32(kir_kernel *k, int32_t h)
{
	h = kir_binary(k, KIR_XOR, h, kir_binary(k, KIR_SHR, h, u32(k, 16)));
	h = kir_binary(k, KIR_MUL, h, u32(k, 0x85ebca6bu));
	h = kir_binary(k, KIR_XOR, h, kir_binary(k, KIR_SHR, h, u32(k, 13)));
	h = kir_binary(k, KIR_MUL, h, u32(k, 0xc2b2ae35u));
	return kir_binary(k, KIR_XOR, h, kir_binary(k, KIR_SHR, h, u32(k, 16)));
}

/* The hash of the file comment, one map stage over the output. */
mpcc_status
mpcc_misc_lower_hashuniform(mpcc_lower *lx, int32_t ni)
{
	const mpcc_graph *g = lx->g;
	const mpcc_node *n = &g->nodes[ni];
	const mpcc_value *y = &g->values[n->out[0]];
	uint32_t seed = (uint32_t)mpcc_node_attr_int(n, "seed", 0);
	kir_kernel *k = mpcc_lower_kernel(lx, ni, "");
	if (!k)
		return lx->d->status != MPCC_OK ? lx->d->status : MPCC_ERR_NOMEM;
	int bs = mpcc_lower_param(k, g, n->in[0]), by = mpcc_lower_param(k, g, n->out[0]);

	int32_t step = kir_cast(k, MPCC_DTYPE_I64, kir_load(k, bs, kir_iconst(k, 0)));
	int32_t lo = kir_cast(k, MPCC_DTYPE_U32, step);
	int32_t hi = kir_cast(k, MPCC_DTYPE_U32,
	                      kir_binary(k, KIR_SHR, step, kir_const_i(k, MPCC_DTYPE_I64, 32)));
	int32_t key = fmix32(k, kir_binary(k, KIR_XOR, hi, u32(k, GOLDEN)));
	key = fmix32(k, kir_binary(k, KIR_XOR, lo, key));
	key = fmix32(k, kir_binary(k, KIR_XOR, u32(k, seed), key));

	int32_t v[MPCC_MAX_RANK];
	mpcc_lower_vars(k, 0, y->rank, v);
	int32_t lin = mpcc_lower_linear(k, y->rank, y->dims, v);
	int32_t h = fmix32(k, kir_binary(k, KIR_XOR, kir_cast(k, MPCC_DTYPE_U32, lin), key));
	h = fmix32(k, kir_binary(k, KIR_ADD, h, key));
	int32_t u = kir_binary(k, KIR_MUL,
	                       kir_cast(k, MPCC_DTYPE_F32, kir_binary(k, KIR_SHR, h, u32(k, 8))),
	                       kir_const_f(k, MPCC_DTYPE_F32, 1.0 / 16777216.0));
	kir_stage *s =
	    kir_stage_add(k, y->rank, y->dims, 0, NULL, KIR_RED_NONE, MPCC_DTYPE_UNDEF, MPCC_NONE);
	if (s)
		kir_stage_store(k, s, by, lin, kir_cast(k, (mpcc_dtype)k->bufs[by].dtype, u));
	if (!s || !kir_kernel_ok(k))
		return mpcc_node_error(lx->d, n, MPCC_ERR_NOMEM, "out of memory while lowering");
	return MPCC_OK;
}
