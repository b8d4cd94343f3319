#include "spf.h"

#include <stdlib.h>

#include "alloc.h"

struct heap_item {
	uint32_t dist, hops, group;
};

struct heap {
	size_t n, cap;
	struct heap_item *a;
};

static bool less(const struct heap_item *x, const struct heap_item *y)
{
	if (x->dist != y->dist)
		return x->dist < y->dist;
	if (x->hops != y->hops)
		return x->hops < y->hops;
	return x->group < y->group;
}

static void push(struct heap *h, struct heap_item it)
{
	mm_grow(&h->a, &h->cap, h->n + 1, sizeof(*h->a));
	size_t i = h->n++;
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (!less(&it, &h->a[p]))
			break;
		h->a[i] = h->a[p];
		i = p;
	}
	h->a[i] = it;
}

static struct heap_item pop(struct heap *h)
{
	struct heap_item top = h->a[0], last = h->a[--h->n];
	size_t i = 0;
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		const struct heap_item *best = &last;
		if (l < h->n && less(&h->a[l], best)) {
			m = l;
			best = &h->a[l];
		}
		if (r < h->n && less(&h->a[r], best))
			m = r;
		if (m == i)
			break;
		h->a[i] = h->a[m];
		i = m;
	}
	if (h->n)
		h->a[i] = last;
	return top;
}

void mm_spf_run(const struct mm_topo *t, uint32_t src, struct mm_spf *out)
{
	out->src = src;
	out->dist = mm_xrealloc(NULL, t->ngroups, sizeof(uint32_t));
	out->hops = mm_xrealloc(NULL, t->ngroups, sizeof(uint32_t));
	out->pred_conn = mm_xrealloc(NULL, t->ngroups, sizeof(uint32_t));
	for (uint32_t g = 0; g < t->ngroups; g++) {
		out->dist[g] = MM_DIST_INF;
		out->hops[g] = 0;
		out->pred_conn[g] = MM_NONE;
	}
	if (src >= t->ngroups)
		return;
	struct heap h = {0};
	out->dist[src] = 0;
	push(&h, (struct heap_item){0, 0, src});
	while (h.n) {
		struct heap_item it = pop(&h);
		if (it.dist != out->dist[it.group] || it.hops != out->hops[it.group])
			continue; /* stale */
		const struct mm_topo_group *g = &t->groups[it.group];
		for (uint32_t ci = g->conn_first; ci < g->conn_first + g->nconn; ci++) {
			const struct mm_topo_conn *c = &t->conns[ci];
			if (c->smtp || !c->up)
				continue;
			uint32_t nd = it.dist + c->cost, nh = it.hops + 1;
			uint32_t *d = &out->dist[c->target];
			if (nd < *d || (nd == *d && nh < out->hops[c->target])) {
				*d = nd;
				out->hops[c->target] = nh;
				out->pred_conn[c->target] = ci;
				push(&h, (struct heap_item){nd, nh, c->target});
			}
		}
	}
	free(h.a);
}

uint32_t mm_spf_path(const struct mm_topo *t, const struct mm_spf *s, uint32_t dst, uint32_t *conns)
{
	uint32_t n = s->hops[dst];
	for (uint32_t i = n, g = dst; i > 0; i--) {
		uint32_t c = s->pred_conn[g];
		conns[i - 1] = c;
		g = t->conns[c].group;
	}
	return n;
}

void mm_spf_free(struct mm_spf *s)
{
	free(s->dist);
	free(s->hops);
	free(s->pred_conn);
	*s = (struct mm_spf){0};
}
