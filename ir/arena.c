/*
 * arena.c - the bump allocator that owns everything small a graph allocates.
 *
 * Memory comes in chunks from calloc, so every allocation is zeroed; each
 * allocation is rounded up to 16 bytes and chunks start 16-byte aligned, so
 * every pointer handed out is 16-byte aligned. A request larger than the
 * default chunk gets a chunk of its own, linked behind the current head so
 * the head keeps serving small requests. Freeing is all at once.
 */
#include <stdlib.h>
#include <string.h>

#include "ir/ir.h"

#define ARENA_ALIGN 16
#define ARENA_CHUNK (64 * 1024)

struct mpcc_arena_chunk {
	mpcc_arena_chunk *next;
	size_t cap;
	_Alignas(ARENA_ALIGN) unsigned char data[];
};

void
mpcc_arena_init(mpcc_arena *a)
{
	a->head = NULL;
	a->used = 0;
}

void
mpcc_arena_fini(mpcc_arena *a)
{
	mpcc_arena_chunk *c = a->head;

	while (c) {
		mpcc_arena_chunk *next = c->next;
		free(c);
		c = next;
	}
	a->head = NULL;
	a->used = 0;
}

static mpcc_arena_chunk *
chunk_new(size_t cap)
{
	mpcc_arena_chunk *c;

	if (cap > SIZE_MAX - sizeof(*c))
		return NULL;
	c = calloc(1, sizeof(*c) + cap);
	if (!c)
		return NULL;
	c->cap = cap;
	return c;
}

/*
 * Why the big-request path links behind the head: a large constant would
 * otherwise retire a chunk that still has most of its room free.
 */
void *
mpcc_arena_alloc(mpcc_arena *a, size_t n)
{
	mpcc_arena_chunk *c;

	if (n == 0)
		n = 1;
	if (n > SIZE_MAX - ARENA_ALIGN)
		return NULL;
	n = (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
	if (a->head && a->head->cap - a->used >= n) {
		void *p = a->head->data + a->used;
		a->used += n;
		return p;
	}
	if (n > ARENA_CHUNK / 4) {
		c = chunk_new(n);
		if (!c)
			return NULL;
		if (a->head) {
			c->next = a->head->next;
			a->head->next = c;
		} else {
			a->head = c;
			a->used = n;
		}
		return c->data;
	}
	c = chunk_new(ARENA_CHUNK);
	if (!c)
		return NULL;
	c->next = a->head;
	a->head = c;
	a->used = n;
	return c->data;
}

char *
mpcc_arena_strdup(mpcc_arena *a, const char *s)
{
	size_t n = strlen(s) + 1;
	char *p = mpcc_arena_alloc(a, n);

	if (p)
		memcpy(p, s, n);
	return p;
}
