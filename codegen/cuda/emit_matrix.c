/*
 * emit_matrix.c - printing the tiled matrix kernels that matrix.c plans.
 *
 * One kernel per stage, one thread block per BM x BN tile of C = Q * P
 * (rows S, columns V flattened) and batch point, looping over tiles when
 * the grid is smaller. The k loop is double-buffered in static shared
 * memory (at most 40 KiB, so no dynamic size is needed at launch): while
 * the tile of step kt is multiplied, step kt+1 is on its way into the
 * other buffer, by cp.async for an operand that is a plain unit-stride
 * 16-bit load, through registers for a cheap expression, and for an
 * expensive one (an im2col gather under a padding predicate) evaluated
 * straight into the buffer after the products (matrix.h). The factors'
 * kernel IR (index maps, predicates, fused casts) is printed by emit.c's
 * expression code at each element. Elements outside the problem (ragged
 * M, N, K) are zeros in both operands, so a ragged k adds exact zeros and
 * never multiplies stale data.
 *
 * The tensor-core kernels use inline PTX, not nvcuda::wmma, so the source
 * stays header-free like the rest (emit.h): ldmatrix (.trans for an operand
 * stored [k][row]) loads the fragments of mma.sync.m16n8k16.row.col with
 * f32 accumulators. Fragment layouts (PTX ISA, "Matrix Fragments for
 * mma.m16n8k16", and ldmatrix): lane l = 4g + t holds A[g][2t..2t+1],
 * A[g+8][2t..], A[g][2t+8..], A[g+8][2t+8..] in its four A registers,
 * B[2t..2t+1][g], B[2t+8..][g] in its two B registers, and C[g][2t],
 * C[g][2t+1], C[g+8][2t], C[g+8][2t+1]; ldmatrix.x4 gives register j the
 * 8x8 matrix whose rows lanes 8j..8j+7 address. tests/unit/
 * test_cuda_matrix.c runs these kernels on the CPU with those semantics.
 *
 * The epilogue is the stage's own stores (bias, activation, residual,
 * scaling and the cast to the storage dtype, whatever the kernel IR fused
 * there) with `acc` bound to one output, guarded by the edges, printed once
 * per group of 16 rows that goes through a shared scratch tile (see
 * epilogue()). Every kernel first checks that it was launched with the
 * block size it was planned for and otherwise runs the generic body
 * instead, so a launch that ignores mpcc_cuda_stage_launch (a host shim
 * running one thread) is slow but right.
 */
#include <stdio.h>
#include <string.h>

#include "codegen/cuda/emit_impl.h"

/*
 * Device helpers. cp.async's src-size zero-fills the rest of a chunk that
 * runs past the edge; a source pointer that is not aligned to the chunk
 * (checked per kernel, as plan tensors need not be) takes plain loads.
 * Host shims that run one thread (tests/unit/test_cuda_host.c) take the
 * generic path and get trapping placeholders; the emulator of
 * tests/unit/cuda_emu.c defines MPCC_SHIM_MATRIX and brings its own.
 */
const char mpcc_cuda_matrix_prelude[] =
    "#ifndef MPCC_HOST_SHIM\n"
    "__device__ __forceinline__ unsigned mpcc_smem(const void *p)"
    " { return (unsigned)__cvta_generic_to_shared(p); }\n"
    "__device__ __forceinline__ void mpcc_ldsm4(unsigned *r, const unsigned short *p)"
    " { asm volatile(\"ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\""
    " : \"=r\"(r[0]), \"=r\"(r[1]), \"=r\"(r[2]), \"=r\"(r[3]) : \"r\"(mpcc_smem(p))); }\n"
    "__device__ __forceinline__ void mpcc_ldsm4t(unsigned *r, const unsigned short *p)"
    " { asm volatile(\"ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\""
    " : \"=r\"(r[0]), \"=r\"(r[1]), \"=r\"(r[2]), \"=r\"(r[3]) : \"r\"(mpcc_smem(p))); }\n"
    "#define MPCC_MMA(name, T) __device__ __forceinline__ void name(float *d, const unsigned *a,"
    " const unsigned *b) { asm volatile(\"mma.sync.aligned.m16n8k16.row.col.f32.\" T \".\" T"
    " \".f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\""
    " : \"+f\"(d[0]), \"+f\"(d[1]), \"+f\"(d[2]), \"+f\"(d[3]) : \"r\"(a[0]), \"r\"(a[1]),"
    " \"r\"(a[2]), \"r\"(a[3]), \"r\"(b[0]), \"r\"(b[1])); }\n"
    "MPCC_MMA(mpcc_mma_f16, \"f16\")\n"
    "MPCC_MMA(mpcc_mma_bf16, \"bf16\")\n"
    "#define MPCC_CP(name, E, Q) __device__ __forceinline__ void name(unsigned short *d,"
    " const unsigned short *s, int n, bool fast) {\\\n"
    "\tif (fast) asm volatile(\"cp.async.\" Q \".shared.global [%0], [%1], %2, %3;\""
    " :: \"r\"(mpcc_smem(d)), \"l\"(s), \"n\"(2 * E), \"r\"(2 * n) : \"memory\");\\\n"
    "\telse for (int j = 0; j < E; j++) d[j] = j < n ? s[j] : (unsigned short)0; }\n"
    "MPCC_CP(mpcc_cp16, 8, \"cg\")\n"
    "MPCC_CP(mpcc_cp8, 4, \"ca\")\n"
    "MPCC_CP(mpcc_cp4, 2, \"ca\")\n"
    "__device__ __forceinline__ void mpcc_cp_commit()"
    " { asm volatile(\"cp.async.commit_group;\" ::: \"memory\"); }\n"
    "__device__ __forceinline__ void mpcc_cp_wait()"
    " { asm volatile(\"cp.async.wait_group 0;\" ::: \"memory\"); }\n"
    "__device__ __forceinline__ void mpcc_st2(unsigned short *p, unsigned v)"
    " { *(unsigned *)p = v; }\n"
    "#elif !defined(MPCC_SHIM_MATRIX)\n"
    "#define __shared__ static\n"
    "static inline void __syncthreads() {}\n"
    "static inline void mpcc_ldsm4(unsigned *, const unsigned short *) { __builtin_trap(); }\n"
    "static inline void mpcc_ldsm4t(unsigned *, const unsigned short *) { __builtin_trap(); }\n"
    "static inline void mpcc_mma_f16(float *, const unsigned *, const unsigned *)"
    " { __builtin_trap(); }\n"
    "static inline void mpcc_mma_bf16(float *, const unsigned *, const unsigned *)"
    " { __builtin_trap(); }\n"
    "static inline void mpcc_cp16(unsigned short *, const unsigned short *, int, bool)"
    " { __builtin_trap(); }\n"
    "static inline void mpcc_cp8(unsigned short *, const unsigned short *, int, bool)"
    " { __builtin_trap(); }\n"
    "static inline void mpcc_cp4(unsigned short *, const unsigned short *, int, bool)"
    " { __builtin_trap(); }\n"
    "static inline void mpcc_cp_commit() {}\n"
    "static inline void mpcc_cp_wait() {}\n"
    "static inline void mpcc_st2(unsigned short *p, unsigned v) { memcpy(p, &v, 4); }\n"
    "#endif\n"
    "\n";

static void
out(emitter *e, const char *text)
{
	mpcc_cuda_put(e->o, "%s", text);
}

/*
 * Declares the vars vars[0..n-1] (the last one fastest, extents ext[i]) from
 * the flattened index `flat`, row-major; "0" declares them all zero.
 */
static void
decode(emitter *e, const char *flat, int n, const int *vars, const int64_t *ext)
{
	bool zero = strcmp(flat, "0") == 0;

	if (n > 1 && !zero)
		mpcc_cuda_put(e->o, "\t\tlong long mpcc_d%d = %s;\n", vars[0], flat);
	for (int i = n - 1; i >= 0; i--) {
		if (zero)
			mpcc_cuda_put(e->o, "\t\tconst long long v%d = 0;\n", vars[i]);
		else if (n == 1)
			mpcc_cuda_put(e->o, "\t\tconst long long v%d = %s;\n", vars[i], flat);
		else if (i > 0)
			mpcc_cuda_put(e->o,
			              "\t\tconst long long v%d = mpcc_d%d %% %lldLL;\n"
			              "\t\tmpcc_d%d /= %lldLL;\n",
			              vars[i], vars[0], (long long)ext[i], vars[0], (long long)ext[i]);
		else
			mpcc_cuda_put(e->o, "\t\tconst long long v%d = mpcc_d%d;\n", vars[i], vars[0]);
		mpcc_cuda_put(e->o, "\t\t(void)v%d;\n", vars[i]);
		e->vars[vars[i]] = true;
	}
}

/*
 * Opens an expression region at a point: declares the S var, the V vars
 * and (kq not NULL) the reduction vars from C expressions for the S index,
 * the flattened V index and the flattened k ("0" for dims an operand does
 * not depend on). The batch vars are declared once per tile.
 */
static void
point_vars(emitter *e, const kir_stage *st, const mpcc_cuda_matrix *m, const char *s,
           const char *v, const char *kq)
{
	int vars[KIR_MAX_DIMS], n = 0;
	int64_t ext[KIR_MAX_DIMS];

	mpcc_cuda_clear_region(e);
	vars[0] = m->sp.s;
	ext[0] = m->sp.ext_s;
	decode(e, s, 1, vars, ext);
	for (int d = m->sp.vlo; d <= m->sp.vhi; d++, n++) {
		vars[n] = d;
		ext[n] = st->par_ext[d];
	}
	decode(e, v, n, vars, ext);
	if (!kq)
		return;
	for (n = 0; n < st->n_red; n++) {
		vars[n] = st->n_par + n;
		ext[n] = st->red_ext[n];
	}
	decode(e, kq, n, vars, ext);
}

/* Leaves the region point_vars opened: only the batch vars stay in scope. */
static void
point_end(emitter *e, const kir_stage *st, const mpcc_cuda_matrix *m)
{
	e->vars[m->sp.s] = false;
	for (int d = m->sp.vlo; d <= m->sp.vhi; d++)
		e->vars[d] = false;
	for (int r = 0; r < st->n_red; r++)
		e->vars[st->n_par + r] = false;
	mpcc_cuda_clear_region(e);
}

/*
 * Prints `dst = <operand x at the current point>;`: the value's bits for
 * MMA (a 16-bit load is copied as it is; anything else is already rounded
 * to f16/bf16, so converting it back is exact), the f32 value for SIMT,
 * and zero where the padding predicate is false.
 */
static mpcc_status
element(emitter *e, const mpcc_cuda_matrix *m, const mpcc_cuda_operand *x, const char *dst)
{
	const kir_expr *v = &e->k->exprs[x->value];
	bool raw = m->kind == MPCC_CUDA_MX_MMA && v->op == KIR_LOAD;

	if (mpcc_cuda_expr(e, raw ? v->b : x->value))
		return e->st;
	if (x->has_cond && mpcc_cuda_expr(e, m->cond))
		return e->st;
	if (raw)
		mpcc_cuda_put(e->o, "\t\t%s = b%d[e%d];\n", dst, v->a, v->b);
	else if (m->kind == MPCC_CUDA_MX_SIMT)
		mpcc_cuda_put(e->o, "\t\t%s = e%d;\n", dst, x->value);
	else
		mpcc_cuda_put(e->o, "\t\t%s = %s(e%d);\n", dst,
		              m->dtype == MPCC_DTYPE_F16 ? "mpcc_f2h" : "mpcc_f2bf", x->value);
	if (x->has_cond)
		mpcc_cuda_put(e->o, "\t\tif (!e%d)\n\t\t\t%s = 0;\n", m->cond, dst);
	return MPCC_OK;
}

/* The names an operand's code uses. */
typedef struct side {
	const mpcc_cuda_operand *x;
	bool is_a;
	const char *smem, *regs, *origin, *aligned;
	int per;  /* work items per thread: chunks (cp.async), elements or pairs */
} side;

/* Prints `const int mpcc_r = ..., mpcc_kk = ...;` for work item mpcc_c of an
 * operand whose items are runs of `run` elements along its fast dim. */
static void
item_coords(emitter *e, const mpcc_cuda_matrix *m, const side *sd, int run)
{
	if (sd->x->row_fast)
		mpcc_cuda_put(e->o,
		              "\t\tconst int mpcc_kk = mpcc_c / %d, mpcc_r = mpcc_c %% %d * %d;\n",
		              sd->x->rows / run, sd->x->rows / run, run);
	else
		mpcc_cuda_put(e->o,
		              "\t\tconst int mpcc_r = mpcc_c / %d, mpcc_kk = mpcc_c %% %d * %d;\n",
		              m->bk / run, m->bk / run, run);
}

/* The element offset of (mpcc_r, mpcc_kk) in one buffer of the tile: SIMT
 * tiles are always [k][row], MMA tiles follow the operand's fast dim. */
static void
tile_offset(char *buf, size_t n, const mpcc_cuda_matrix *m, const side *sd)
{
	if (sd->x->row_fast || m->kind == MPCC_CUDA_MX_SIMT)
		snprintf(buf, n, "mpcc_kk * %d + mpcc_r", sd->x->ld);
	else
		snprintf(buf, n, "mpcc_r * %d + mpcc_kk", sd->x->ld);
}

/* The S and V index texts of an operand's point at mpcc_row. */
static const char *
s_text(const side *sd)
{
	return sd->is_a ? "mpcc_row" : "0";
}

static const char *
v_text(const side *sd)
{
	return sd->is_a ? "0" : "mpcc_row";
}

/*
 * The cp.async copies of k step `kt` (C text) into buffer `buf`: chunks of
 * `chunk` elements along the fast dim, each evaluating the load's index at
 * its first element (a point inside the problem: the origin when the chunk
 * is wholly outside, which then copies nothing and zero-fills).
 */
static mpcc_status
issue(emitter *e, const kir_stage *st, const mpcc_cuda_matrix *m, const side *sd, const char *kt,
      const char *buf)
{
	const mpcc_cuda_operand *x = sd->x;
	const kir_expr *ld = &e->k->exprs[x->value];
	char off[96];

	tile_offset(off, sizeof(off), m, sd);
	/* nothing lives across copies: unrolling past a few only adds registers */
	mpcc_cuda_put(e->o,
	              "\t#pragma unroll %d\n\tfor (int mpcc_i = 0; mpcc_i < %d; mpcc_i++) {\n"
	              "\t\tconst int mpcc_c = mpcc_tid + mpcc_i * %d;\n",
	              sd->per < 4 ? sd->per : 4, sd->per, m->threads);
	item_coords(e, m, sd, x->chunk);
	mpcc_cuda_put(e->o,
	              "\t\tconst long long mpcc_row = %s + mpcc_r, mpcc_kq = (long long)(%s) * %d + "
	              "mpcc_kk;\n",
	              sd->origin, kt, m->bk);
	if (x->row_fast)
		mpcc_cuda_put(e->o,
		              "\t\tconst long long mpcc_left = mpcc_kq < %lldLL ? %lldLL - mpcc_row : 0;\n",
		              (long long)m->k_tot, (long long)x->ext);
	else
		mpcc_cuda_put(e->o,
		              "\t\tconst long long mpcc_left = mpcc_row < %lldLL ? %lldLL - mpcc_kq : 0;\n",
		              (long long)x->ext, (long long)m->k_tot);
	mpcc_cuda_put(e->o,
	              "\t\tconst int mpcc_n = mpcc_left <= 0 ? 0 : mpcc_left < %d ? (int)mpcc_left : "
	              "%d;\n"
	              "\t\tconst long long mpcc_row0 = mpcc_n ? mpcc_row : 0, mpcc_kq0 = mpcc_n ? "
	              "mpcc_kq : 0;\n"
	              "\t\t{\n",
	              x->chunk, x->chunk);
	point_vars(e, st, m, sd->is_a ? "mpcc_row0" : "0", sd->is_a ? "0" : "mpcc_row0", "mpcc_kq0");
	if (mpcc_cuda_expr(e, ld->b))
		return e->st;
	mpcc_cuda_put(e->o, "\t\tmpcc_cp%d(&%s[%s][%s], b%d + (mpcc_n ? e%d : 0), mpcc_n, %s);\n",
	              x->chunk * 2, sd->smem, buf, off, ld->a, ld->b, sd->aligned);
	point_end(e, st, m);
	out(e, "\t\t}\n\t}\n");
	return MPCC_OK;
}

/*
 * The evaluated operands of k step `kt`: with buf NULL into the operand's
 * registers (fully unrolled, so the loads of all its elements are in
 * flight at once), else straight into shared buffer `buf`, one work item
 * per iteration, so a large expression needs the registers of one element
 * only. MMA items are pairs along the fast dim packed in 32 bits; SIMT
 * items are single f32.
 */
static mpcc_status
fetch(emitter *e, const kir_stage *st, const mpcc_cuda_matrix *m, const side *sd, const char *kt,
      const char *buf)
{
	const mpcc_cuda_operand *x = sd->x;
	bool mma = m->kind == MPCC_CUDA_MX_MMA;
	int run = mma ? 2 : 1;
	char off[96];

	tile_offset(off, sizeof(off), m, sd);
	mpcc_cuda_put(e->o,
	              "\t#pragma unroll%s\n\tfor (int mpcc_i = 0; mpcc_i < %d; mpcc_i++) {\n"
	              "\t\tconst int mpcc_c = mpcc_tid + mpcc_i * %d;\n",
	              buf ? " 1" : "", sd->per, m->threads);
	item_coords(e, m, sd, run);
	if (mma)
		out(e, "\t\tunsigned mpcc_pk = 0;\n"
		       "\t\t#pragma unroll\n\t\tfor (int mpcc_h = 0; mpcc_h < 2; mpcc_h++) {\n");
	else
		out(e, "\t\tfloat mpcc_pk = 0.0f;\n\t\t{\n\t\tconst int mpcc_h = 0;\n");
	mpcc_cuda_put(e->o,
	              "\t\tconst long long mpcc_row = %s + mpcc_r%s, mpcc_kq = (long long)(%s) * %d "
	              "+ mpcc_kk%s;\n",
	              sd->origin, x->row_fast ? " + mpcc_h" : "", kt, m->bk,
	              x->row_fast ? "" : " + mpcc_h");
	mpcc_cuda_put(e->o, "\t\t%s mpcc_x = 0;\n", mma ? "unsigned short" : "float");
	mpcc_cuda_put(e->o, "\t\tif (mpcc_row < %lldLL && mpcc_kq < %lldLL) {\n", (long long)x->ext,
	              (long long)m->k_tot);
	point_vars(e, st, m, s_text(sd), v_text(sd), "mpcc_kq");
	if (element(e, m, x, "mpcc_x"))
		return e->st;
	point_end(e, st, m);
	out(e, "\t\t}\n");
	if (mma)
		out(e, "\t\tmpcc_pk |= (unsigned)mpcc_x << (16 * mpcc_h);\n\t\t}\n");
	else
		out(e, "\t\t(void)mpcc_h;\n\t\tmpcc_pk = mpcc_x;\n\t\t}\n");
	if (!buf)
		mpcc_cuda_put(e->o, "\t\t%s[mpcc_i] = mpcc_pk;\n\t}\n", sd->regs);
	else if (mma)
		mpcc_cuda_put(e->o, "\t\tmpcc_st2(&%s[%s][%s], mpcc_pk);\n\t}\n", sd->smem, buf, off);
	else
		mpcc_cuda_put(e->o, "\t\t%s[%s][%s] = mpcc_pk;\n\t}\n", sd->smem, buf, off);
	return MPCC_OK;
}

/* Register staging, second half: the registers into buffer `buf`. */
static void
put_regs(emitter *e, const mpcc_cuda_matrix *m, const side *sd, const char *buf)
{
	bool mma = m->kind == MPCC_CUDA_MX_MMA;
	char off[96];

	tile_offset(off, sizeof(off), m, sd);
	mpcc_cuda_put(e->o,
	              "\t#pragma unroll\n\tfor (int mpcc_i = 0; mpcc_i < %d; mpcc_i++) {\n"
	              "\t\tconst int mpcc_c = mpcc_tid + mpcc_i * %d;\n",
	              sd->per, m->threads);
	item_coords(e, m, sd, mma ? 2 : 1);
	if (mma)
		mpcc_cuda_put(e->o, "\t\tmpcc_st2(&%s[%s][%s], %s[mpcc_i]);\n\t}\n", sd->smem, buf,
		              off, sd->regs);
	else
		mpcc_cuda_put(e->o, "\t\t%s[%s][%s] = %s[mpcc_i];\n\t}\n", sd->smem, buf, off,
		              sd->regs);
}

static bool
staged(const side *sd)
{
	return !sd->x->chunk && !sd->x->direct;
}

/* What goes before a step's products: the copies of k step `kt` into
 * buffer `buf` issued, the staged operands' elements into registers. */
static mpcc_status
load_before(emitter *e, const kir_stage *st, const mpcc_cuda_matrix *m, const side *sd,
            const char *kt, const char *buf)
{
	bool async = false;

	for (int i = 0; i < 2; i++) {
		if (!sd[i].x->chunk)
			continue;
		if (issue(e, st, m, &sd[i], kt, buf))
			return e->st;
		async = true;
	}
	if (async)
		out(e, "\tmpcc_cp_commit();\n");
	for (int i = 0; i < 2; i++)
		if (staged(&sd[i]) && fetch(e, st, m, &sd[i], kt, NULL))
			return e->st;
	return MPCC_OK;
}

/* What goes after them: the registers stored into `buf`, the direct
 * operands evaluated into it. */
static mpcc_status
load_after(emitter *e, const kir_stage *st, const mpcc_cuda_matrix *m, const side *sd,
           const char *kt, const char *buf)
{
	for (int i = 0; i < 2; i++)
		if (staged(&sd[i]))
			put_regs(e, m, &sd[i], buf);
	for (int i = 0; i < 2; i++)
		if (sd[i].x->direct && fetch(e, st, m, &sd[i], kt, buf))
			return e->st;
	return MPCC_OK;
}

/* One k step's products on buffer mpcc_cur: BK/16 steps of ldmatrix and
 * MI x NI mma.sync per warp. */
static void
compute_mma(emitter *e, const mpcc_cuda_matrix *m)
{
	int wtm = m->bm / m->wm, wtn = m->bn / m->wn, mi = wtm / 16, ni = wtn / 8;

	mpcc_cuda_put(e->o,
	              "\t#pragma unroll\n\tfor (int mpcc_ks = 0; mpcc_ks < %d; mpcc_ks++) {\n"
	              "\t\tunsigned mpcc_fa[%d][4], mpcc_fb[%d][2];\n"
	              "\t\t#pragma unroll\n\t\tfor (int mpcc_mi = 0; mpcc_mi < %d; mpcc_mi++)\n",
	              m->bk / 16, mi, ni, mi);
	if (m->a.row_fast)
		mpcc_cuda_put(e->o,
		              "\t\t\tmpcc_ldsm4t(mpcc_fa[mpcc_mi], &mpcc_sa[mpcc_cur][(mpcc_ks * 16 + "
		              "(mpcc_lane >> 4) * 8 + (mpcc_lane & 7)) * %d + mpcc_wm * %d + mpcc_mi * "
		              "16 + ((mpcc_lane >> 3) & 1) * 8]);\n",
		              m->a.ld, wtm);
	else
		mpcc_cuda_put(e->o,
		              "\t\t\tmpcc_ldsm4(mpcc_fa[mpcc_mi], &mpcc_sa[mpcc_cur][(mpcc_wm * %d + "
		              "mpcc_mi * 16 + (mpcc_lane & 15)) * %d + mpcc_ks * 16 + (mpcc_lane >> "
		              "4) * 8]);\n",
		              wtm, m->a.ld);
	mpcc_cuda_put(e->o,
	              "\t\t#pragma unroll\n\t\tfor (int mpcc_nj = 0; mpcc_nj < %d; mpcc_nj++) {\n"
	              "\t\t\tunsigned mpcc_r4[4];\n",
	              ni / 2);
	if (m->b.row_fast)
		mpcc_cuda_put(e->o,
		              "\t\t\tmpcc_ldsm4t(mpcc_r4, &mpcc_sb[mpcc_cur][(mpcc_ks * 16 + "
		              "((mpcc_lane >> 3) & 1) * 8 + (mpcc_lane & 7)) * %d + mpcc_wn * %d + "
		              "mpcc_nj * 16 + (mpcc_lane >> 4) * 8]);\n",
		              m->b.ld, wtn);
	else
		mpcc_cuda_put(e->o,
		              "\t\t\tmpcc_ldsm4(mpcc_r4, &mpcc_sb[mpcc_cur][(mpcc_wn * %d + mpcc_nj * "
		              "16 + (mpcc_lane >> 4) * 8 + (mpcc_lane & 7)) * %d + mpcc_ks * 16 + "
		              "((mpcc_lane >> 3) & 1) * 8]);\n",
		              wtn, m->b.ld);
	mpcc_cuda_put(e->o,
	              "\t\t\tmpcc_fb[2 * mpcc_nj][0] = mpcc_r4[0];\n"
	              "\t\t\tmpcc_fb[2 * mpcc_nj][1] = mpcc_r4[1];\n"
	              "\t\t\tmpcc_fb[2 * mpcc_nj + 1][0] = mpcc_r4[2];\n"
	              "\t\t\tmpcc_fb[2 * mpcc_nj + 1][1] = mpcc_r4[3];\n\t\t}\n"
	              "\t\t#pragma unroll\n\t\tfor (int mpcc_mi = 0; mpcc_mi < %d; mpcc_mi++)\n"
	              "\t\t#pragma unroll\n\t\tfor (int mpcc_ni = 0; mpcc_ni < %d; mpcc_ni++)\n"
	              "\t\t\t%s(mpcc_acc[mpcc_mi][mpcc_ni], mpcc_fa[mpcc_mi], mpcc_fb[mpcc_ni]);\n"
	              "\t}\n",
	              mi, ni, m->dtype == MPCC_DTYPE_F16 ? "mpcc_mma_f16" : "mpcc_mma_bf16");
}

/* One k step on buffer mpcc_cur, SIMT: each output folded over k in order,
 * a multiply then an add, as the generic kernel does. */
static void
compute_simt(emitter *e, const mpcc_cuda_matrix *m)
{
	mpcc_cuda_put(e->o,
	              "\t#pragma unroll\n\tfor (int mpcc_kk = 0; mpcc_kk < %d; mpcc_kk++) {\n"
	              "\t\tfloat mpcc_a[%d], mpcc_b[%d];\n"
	              "\t\t#pragma unroll\n\t\tfor (int mpcc_i = 0; mpcc_i < %d; mpcc_i++)\n"
	              "\t\t\tmpcc_a[mpcc_i] = mpcc_sa[mpcc_cur][mpcc_kk * %d + mpcc_ty + 16 * mpcc_i];\n"
	              "\t\t#pragma unroll\n\t\tfor (int mpcc_j = 0; mpcc_j < %d; mpcc_j++)\n"
	              "\t\t\tmpcc_b[mpcc_j] = mpcc_sb[mpcc_cur][mpcc_kk * %d + mpcc_tx + 16 * mpcc_j];\n"
	              "\t\t#pragma unroll\n\t\tfor (int mpcc_i = 0; mpcc_i < %d; mpcc_i++)\n"
	              "\t\t#pragma unroll\n\t\tfor (int mpcc_j = 0; mpcc_j < %d; mpcc_j++)\n"
	              "\t\t\tmpcc_acc[mpcc_i][mpcc_j] = mpcc_acc[mpcc_i][mpcc_j] + %s;\n\t}\n",
	              m->bk, m->tm, m->tn, m->tm, m->a.ld, m->tn, m->b.ld, m->tm, m->tn,
	              m->sp.q_first ? "mpcc_a[mpcc_i] * mpcc_b[mpcc_j]"
	                            : "mpcc_b[mpcc_j] * mpcc_a[mpcc_i]");
}

/* The stores of one output point (mpcc_row, mpcc_col) with acc = `acc`. */
static mpcc_status
epilogue_point(emitter *e, const kir_stage *st, const mpcc_cuda_matrix *m, const char *acc)
{
	mpcc_cuda_put(e->o,
	              "\t\tif (mpcc_row < %lldLL && mpcc_col < %lldLL) {\n"
	              "\t\tconst float acc = %s;\n\t\t(void)acc;\n",
	              (long long)m->sp.ext_s, (long long)m->sp.ext_v, acc);
	point_vars(e, st, m, "mpcc_row", "mpcc_col", NULL);
	e->acc = true;
	for (int s = 0; s < st->n_store; s++)
		if (mpcc_cuda_store(e, &st->store[s]))
			return e->st;
	e->acc = false;
	point_end(e, st, m);
	out(e, "\t\t}\n");
	return MPCC_OK;
}

/*
 * Why the accumulators go through shared memory: printed once per
 * accumulator (64 per thread for a 128 x 128 tile) the stores' index
 * arithmetic would multiply the code and the live registers. Instead each
 * group of 16 rows is written to a scratch tile over the (now idle) k
 * buffers, and the store code runs once per group in a loop whose
 * neighbouring lanes take neighbouring columns, so the stores coalesce
 * where the output is contiguous along V. MMA: per warp, its 16 x WTN
 * rows of one m16 step; SIMT: per block, the 16 rows ty + 16 i of one i.
 */
static mpcc_status
epilogue(emitter *e, const kir_stage *st, const mpcc_cuda_matrix *m)
{
	if (m->kind == MPCC_CUDA_MX_MMA) {
		int wtm = m->bm / m->wm, wtn = m->bn / m->wn, ld = wtn + 4;

		mpcc_cuda_put(e->o,
		              "\tfloat *const mpcc_sc = (float *)mpcc_smem + (mpcc_tid >> 5) * %d;\n"
		              "\t#pragma unroll\n\tfor (int mpcc_mi = 0; mpcc_mi < %d; mpcc_mi++) {\n"
		              "\t#pragma unroll\n\tfor (int mpcc_ni = 0; mpcc_ni < %d; mpcc_ni++)\n"
		              "\t#pragma unroll\n\tfor (int mpcc_q = 0; mpcc_q < 4; mpcc_q++)\n"
		              "\t\tmpcc_sc[((mpcc_lane >> 2) + (mpcc_q >> 1) * 8) * %d + mpcc_ni * 8 + "
		              "(mpcc_lane & 3) * 2 + (mpcc_q & 1)] = mpcc_acc[mpcc_mi][mpcc_ni][mpcc_q];\n"
		              "\t__syncwarp();\n"
		              "\t#pragma unroll 1\n"
		              "\tfor (int mpcc_p = mpcc_lane; mpcc_p < %d; mpcc_p += 32) {\n"
		              "\t\tconst long long mpcc_row = mpcc_m0 + mpcc_wm * %d + mpcc_mi * 16 + "
		              "mpcc_p / %d;\n"
		              "\t\tconst long long mpcc_col = mpcc_n0 + mpcc_wn * %d + mpcc_p %% %d;\n",
		              16 * ld, wtm / 16, wtn / 8, ld, 16 * wtn, wtm, wtn, wtn, wtn);
		mpcc_cuda_put(e->o, "\t\tconst float mpcc_v = mpcc_sc[mpcc_p / %d * %d + mpcc_p %% %d];\n",
		              wtn, ld, wtn);
	} else {
		int ld = m->bn + 4;

		mpcc_cuda_put(e->o,
		              "\tfloat *const mpcc_sc = (float *)mpcc_smem;\n"
		              "\t#pragma unroll\n\tfor (int mpcc_i = 0; mpcc_i < %d; mpcc_i++) {\n"
		              "\t#pragma unroll\n\tfor (int mpcc_j = 0; mpcc_j < %d; mpcc_j++)\n"
		              "\t\tmpcc_sc[mpcc_ty * %d + mpcc_tx + 16 * mpcc_j] = "
		              "mpcc_acc[mpcc_i][mpcc_j];\n"
		              "\t__syncthreads();\n"
		              "\t#pragma unroll 1\n"
		              "\tfor (int mpcc_p = mpcc_tid; mpcc_p < %d; mpcc_p += %d) {\n"
		              "\t\tconst long long mpcc_row = mpcc_m0 + mpcc_p / %d + 16 * mpcc_i;\n"
		              "\t\tconst long long mpcc_col = mpcc_n0 + mpcc_p %% %d;\n"
		              "\t\tconst float mpcc_v = mpcc_sc[mpcc_p / %d * %d + mpcc_p %% %d];\n",
		              m->tm, m->tn, ld, 16 * m->bn, m->threads, m->bn, m->bn, m->bn, ld, m->bn);
	}
	if (epilogue_point(e, st, m, "mpcc_v"))
		return e->st;
	mpcc_cuda_put(e->o, "\t}\n\t%s\n\t}\n",
	              m->kind == MPCC_CUDA_MX_MMA ? "__syncwarp();" : "__syncthreads();");
	return MPCC_OK;
}

/* Bytes of the scratch tile the epilogue writes over the k buffers. */
static int
scratch_bytes(const mpcc_cuda_matrix *m)
{
	if (m->kind == MPCC_CUDA_MX_MMA)
		return m->wm * m->wn * 16 * (m->bn / m->wn + 4) * 4;
	return 16 * (m->bn + 4) * 4;
}

/* Work items per thread of an operand, checked to divide evenly. */
static bool
items(const mpcc_cuda_matrix *m, const mpcc_cuda_operand *x, int run, int *per)
{
	int n = x->rows * m->bk;

	if (n % (run * m->threads) != 0)
		return false;
	*per = n / (run * m->threads);
	return true;
}

/*
 * The kernel: the launch check and its generic fallback, the shared tiles,
 * then per tile the batch vars, the prologue load of k step 0, the double-
 * buffered k loop (load step kt+1 into the other buffer, multiply step kt,
 * store the registers, wait, barrier) and the epilogue.
 */
mpcc_status
mpcc_cuda_emit_matrix(emitter *e, int si, const mpcc_cuda_matrix *m)
{
	const kir_stage *st = &e->k->stages[si];
	bool mma = m->kind == MPCC_CUDA_MX_MMA, async = m->a.chunk || m->b.chunk;
	const char *et = mma ? "unsigned short" : "float";
	side sd[2] = {{&m->a, true, "mpcc_sa", "mpcc_ra", "mpcc_m0", "mpcc_ala", 0},
	              {&m->b, false, "mpcc_sb", "mpcc_rb", "mpcc_n0", "mpcc_alb", 0}};
	int nbat = m->sp.n_batch, sa, sb, bytes;
	int64_t bext[KIR_MAX_DIMS];

	for (int i = 0; i < 2; i++) {
		int run = sd[i].x->chunk ? sd[i].x->chunk : mma ? 2 : 1;

		if (!items(m, sd[i].x, run, &sd[i].per) || m->threads > MPCC_CUDA_BLOCK)
			return mpcc_cuda_fail(e, MPCC_ERR_INTERNAL,
			                      "kernel %s: stage %d: matrix tile %dx%dx%d does not divide "
			                      "among %d threads",
			                      e->k->name, si, m->bm, m->bn, m->bk, m->threads);
	}
	if (mpcc_cuda_signature(e, si, true))
		return e->st;
	mpcc_cuda_put(e->o, "\tif (blockDim.x != %d) {\n", m->threads);
	if (mpcc_cuda_generic_body(e, st))
		return e->st;
	out(e, "\treturn;\n\t}\n");
	sa = (m->a.row_fast || !mma ? m->bk : m->a.rows) * m->a.ld;
	sb = (m->b.row_fast || !mma ? m->bk : m->b.rows) * m->b.ld;
	bytes = 2 * (sa + sb) * (mma ? 2 : 4);
	if (scratch_bytes(m) > bytes)
		bytes = scratch_bytes(m);
	if (bytes > 48 * 1024)
		return mpcc_cuda_fail(e, MPCC_ERR_INTERNAL,
		                      "kernel %s: stage %d: matrix tile needs %d bytes of shared memory",
		                      e->k->name, si, bytes);
	mpcc_cuda_put(e->o,
	              "\talignas(16) __shared__ unsigned char mpcc_smem[%d];\n"
	              "\t%s (*const mpcc_sa)[%d] = (%s (*)[%d])mpcc_smem;\n"
	              "\t%s (*const mpcc_sb)[%d] = (%s (*)[%d])(mpcc_smem + %d);\n"
	              "\tconst int mpcc_tid = (int)threadIdx.x;\n",
	              bytes, et, sa, et, sa, et, sb, et, sb, 2 * sa * (mma ? 2 : 4));
	if (mma)
		mpcc_cuda_put(e->o,
		              "\tconst int mpcc_lane = mpcc_tid & 31, mpcc_wm = (mpcc_tid >> 5) / %d, "
		              "mpcc_wn = (mpcc_tid >> 5) %% %d;\n",
		              m->wn, m->wn);
	else
		out(e, "\tconst int mpcc_tx = mpcc_tid & 15, mpcc_ty = mpcc_tid >> 4;\n");
	for (int i = 0; i < 2; i++)
		if (sd[i].x->chunk)
			mpcc_cuda_put(e->o, "\tconst bool %s = ((unsigned long long)b%d & %dULL) == 0;\n",
			              sd[i].aligned, e->k->exprs[sd[i].x->value].a,
			              sd[i].x->chunk * 2 - 1);
	mpcc_cuda_put(e->o,
	              "\tfor (long long mpcc_tile = blockIdx.x; mpcc_tile < %lldLL; mpcc_tile += "
	              "gridDim.x) {\n"
	              "\tconst long long mpcc_tn = mpcc_tile %% %lldLL, mpcc_tm = mpcc_tile / %lldLL "
	              "%% %lldLL, mpcc_tb = mpcc_tile / %lldLL;\n"
	              "\tconst long long mpcc_m0 = mpcc_tm * %d, mpcc_n0 = mpcc_tn * %d;\n"
	              "\t(void)mpcc_tb;\n",
	              (long long)m->n_tiles, (long long)m->tiles_n, (long long)m->tiles_n,
	              (long long)m->tiles_m, (long long)(m->tiles_n * m->tiles_m), m->bm, m->bn);
	for (int i = 0; i < nbat; i++)
		bext[i] = st->par_ext[m->sp.batch[i]];
	memset(e->vars, 0, sizeof(e->vars));
	e->acc = false;
	decode(e, "mpcc_tb", nbat, m->sp.batch, bext);
	if (mma)
		mpcc_cuda_put(e->o,
		              "\tfloat mpcc_acc[%d][%d][4];\n"
		              "\t#pragma unroll\n\tfor (int mpcc_i = 0; mpcc_i < %d; mpcc_i++)\n"
		              "\t#pragma unroll\n\tfor (int mpcc_j = 0; mpcc_j < %d; mpcc_j++)\n"
		              "\t#pragma unroll\n\tfor (int mpcc_q = 0; mpcc_q < 4; mpcc_q++)\n"
		              "\t\tmpcc_acc[mpcc_i][mpcc_j][mpcc_q] = 0.0f;\n",
		              m->bm / m->wm / 16, m->bn / m->wn / 8, m->bm / m->wm / 16,
		              m->bn / m->wn / 8);
	else
		mpcc_cuda_put(e->o,
		              "\tfloat mpcc_acc[%d][%d];\n"
		              "\t#pragma unroll\n\tfor (int mpcc_i = 0; mpcc_i < %d; mpcc_i++)\n"
		              "\t#pragma unroll\n\tfor (int mpcc_j = 0; mpcc_j < %d; mpcc_j++)\n"
		              "\t\tmpcc_acc[mpcc_i][mpcc_j] = 0.0f;\n",
		              m->tm, m->tn, m->tm, m->tn);
	for (int i = 0; i < 2; i++)
		if (staged(&sd[i]))
			mpcc_cuda_put(e->o, "\t%s %s[%d];\n", mma ? "unsigned" : "float", sd[i].regs,
			              sd[i].per);
	/* the prologue: k step 0 into buffer 0 */
	if (load_before(e, st, m, sd, "0", "0") || load_after(e, st, m, sd, "0", "0"))
		return e->st;
	mpcc_cuda_put(e->o,
	              "%s\t__syncthreads();\n"
	              "\t#pragma unroll 1\n"
	              "\tfor (int mpcc_kt = 0; mpcc_kt < %lld; mpcc_kt++) {\n"
	              "\tconst int mpcc_cur = mpcc_kt & 1;\n"
	              "\tif (mpcc_kt + 1 < %lld) {\n",
	              async ? "\tmpcc_cp_wait();\n" : "", (long long)m->k_tiles,
	              (long long)m->k_tiles);
	if (load_before(e, st, m, sd, "mpcc_kt + 1", "mpcc_cur ^ 1"))
		return e->st;
	out(e, "\t}\n");
	if (mma)
		compute_mma(e, m);
	else
		compute_simt(e, m);
	mpcc_cuda_put(e->o, "\tif (mpcc_kt + 1 < %lld) {\n", (long long)m->k_tiles);
	if (load_after(e, st, m, sd, "mpcc_kt + 1", "mpcc_cur ^ 1"))
		return e->st;
	mpcc_cuda_put(e->o, "\t}\n%s\t__syncthreads();\n\t}\n", async ? "\tmpcc_cp_wait();\n" : "");
	if (epilogue(e, st, m))
		return e->st;
	memset(e->vars, 0, sizeof(e->vars));
	mpcc_cuda_clear_region(e);
	/* the scratch tile overlaps the k buffers the next tile loads into */
	if (mma)
		out(e, "\t__syncthreads();\n");
	out(e, "\t}\n}\n\n");
	return MPCC_OK;
}
