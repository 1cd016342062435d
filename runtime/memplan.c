/*
 * memplan.c - greedy offset assignment over the schedule's liveness.
 *
 * Approach (the "greedy by size" placement of TFLite's arena planner): every
 * item gets a live interval [first, last] of kernel positions; items are
 * placed largest first, each at the smallest gap between already placed
 * items that overlap it in time and that fits it (best fit), or above them
 * all. Offsets are 64-byte aligned. Items whose first access is a read (no
 * kernel writes them before) live for the whole schedule, so nothing relies
 * on data another item left behind.
 */
#include <stdlib.h>
#include <string.h>

#include "runtime/memplan.h"

typedef struct item {
	size_t size; /* aligned bytes */
	int first, last;
	int64_t *off; /* where the result goes */
} item;

static size_t
align_up(size_t n)
{
	return (n + MPCC_MEMPLAN_ALIGN - 1) / MPCC_MEMPLAN_ALIGN * MPCC_MEMPLAN_ALIGN;
}

static int
by_size_desc(const void *a, const void *b)
{
	const item *x = *(item *const *)a, *y = *(item *const *)b;

	if (x->size != y->size)
		return x->size > y->size ? -1 : 1;
	if (x->first != y->first)
		return x->first < y->first ? -1 : 1;
	return x->off < y->off ? -1 : x->off > y->off;
}

static int
by_offset(const void *a, const void *b)
{
	const item *x = *(item *const *)a, *y = *(item *const *)b;

	return *x->off < *y->off ? -1 : *x->off > *y->off;
}

void
mpcc_memplan_fini(mpcc_memplan *mp)
{
	free(mp->tensor_off);
	free(mp->temp_off);
	free(mp->temp_first);
	memset(mp, 0, sizeof(*mp));
}

static bool
is_planned(const mpcc_plan_tensor *t)
{
	return !(t->flags & (MPCC_TENSOR_INPUT | MPCC_TENSOR_OUTPUT | MPCC_TENSOR_WEIGHT));
}

/*
 * Why placement sorts by size: large items are the ones that decide the
 * peak, and placing them first leaves the gaps between them for small ones.
 * The scan over placed items is quadratic, which is nothing next to the JIT
 * for plans of a few thousand tensors.
 */
static void
place(item **order, int n, mpcc_memplan *mp)
{
	item **live = order + n; /* scratch: second half of the same array */

	qsort(order, (size_t)n, sizeof(*order), by_size_desc);
	for (int i = 0; i < n; i++) {
		item *it = order[i];
		int n_live = 0;
		size_t prev_end = 0, best = SIZE_MAX, best_gap = SIZE_MAX;

		for (int j = 0; j < i; j++)
			if (order[j]->first <= it->last && it->first <= order[j]->last)
				live[n_live++] = order[j];
		qsort(live, (size_t)n_live, sizeof(*live), by_offset);
		for (int j = 0; j < n_live; j++) {
			size_t o = (size_t)*live[j]->off;
			if (o > prev_end && o - prev_end >= it->size && o - prev_end < best_gap) {
				best = prev_end;
				best_gap = o - prev_end;
			}
			if (o + live[j]->size > prev_end)
				prev_end = o + live[j]->size;
		}
		*it->off = (int64_t)(best != SIZE_MAX ? best : prev_end);
		if ((size_t)*it->off + it->size > mp->arena_size)
			mp->arena_size = (size_t)*it->off + it->size;
	}
}

mpcc_status
mpcc_memplan_build(const mpcc_plan *p, mpcc_memplan *mp)
{
	int n_temps = 0, n_items = 0, t = 0;
	int *first_w = NULL, *first = NULL, *last = NULL;
	item *items = NULL;
	item **order = NULL;
	mpcc_status st = MPCC_ERR_NOMEM;

	memset(mp, 0, sizeof(*mp));
	for (int k = 0; k < p->n_kernels; k++)
		for (int b = 0; b < p->kernels[k]->n_bufs; b++)
			n_temps += p->kernels[k]->bufs[b].kind == KIR_BUF_TEMP;
	mp->tensor_off = malloc(((size_t)p->n_tensors + 1) * sizeof(int64_t));
	mp->temp_off = calloc((size_t)n_temps + 1, sizeof(int64_t));
	mp->temp_first = calloc((size_t)p->n_kernels + 1, sizeof(int));
	first_w = malloc(((size_t)p->n_tensors + 1) * sizeof(int));
	first = malloc(((size_t)p->n_tensors + 1) * sizeof(int));
	last = malloc(((size_t)p->n_tensors + 1) * sizeof(int));
	items = calloc((size_t)p->n_tensors + (size_t)n_temps + 1, sizeof(item));
	order = calloc(2 * ((size_t)p->n_tensors + (size_t)n_temps) + 1, sizeof(item *));
	if (!mp->tensor_off || !mp->temp_off || !mp->temp_first || !first_w || !first || !last ||
	    !items || !order)
		goto out;
	for (int i = 0; i < p->n_tensors; i++) {
		mp->tensor_off[i] = -1;
		first_w[i] = first[i] = -1;
		last[i] = -1;
	}
	for (int k = 0; k < p->n_kernels; k++) {
		const kir_kernel *kk = p->kernels[k];
		mp->temp_first[k] = t;
		for (int b = 0; b < kk->n_bufs; b++) {
			const kir_buf *buf = &kk->bufs[b];
			if (buf->kind == KIR_BUF_TEMP) {
				size_t n;
				if (buf->n_elems < 0 ||
				    __builtin_mul_overflow((size_t)buf->n_elems,
				                           mpcc_dtype_size(buf->dtype), &n)) {
					st = MPCC_ERR_INVALID;
					goto out;
				}
				items[n_items++] = (item){align_up(n), k, k, &mp->temp_off[t++]};
				continue;
			}
			int v = buf->value;
			if (v < 0 || v >= p->n_tensors)
				continue;
			if (first[v] < 0)
				first[v] = k;
			if (buf->written && first_w[v] < 0)
				first_w[v] = k;
			last[v] = k;
		}
	}
	for (int i = 0; i < p->n_tensors; i++) {
		const mpcc_plan_tensor *pt = &p->tensors[i];
		if (!is_planned(pt))
			continue;
		item it = {align_up(pt->t.nbytes), first[i], last[i], &mp->tensor_off[i]};
		/* never touched, or read before written: alive throughout */
		if (first[i] < 0 || first_w[i] != first[i]) {
			it.first = 0;
			it.last = p->n_kernels;
		}
		items[n_items++] = it;
	}
	for (int i = 0; i < n_items; i++) {
		if (__builtin_add_overflow(mp->sum_intermediates, items[i].size,
		                           &mp->sum_intermediates)) {
			st = MPCC_ERR_INVALID;
			goto out;
		}
		order[i] = &items[i];
	}
	mp->n_planned = n_items;
	place(order, n_items, mp);
	st = MPCC_OK;
out:
	free(first_w);
	free(first);
	free(last);
	free(items);
	free(order);
	if (st != MPCC_OK)
		mpcc_memplan_fini(mp);
	return st;
}
