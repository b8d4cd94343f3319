/* Least-cost paths between routing groups over the routing-group connectors
 * that are up (DESIGN §4.3): Dijkstra with a binary heap, edge weight =
 * connector cost. Ties between equal-cost paths go to the path with fewer
 * hops, then to the one found first in table order, so every node holding
 * the same table picks the same path. */
#ifndef MM_SPF_H
#define MM_SPF_H

#include "topo.h"

#define MM_DIST_INF UINT32_MAX

struct mm_spf {
	uint32_t src;
	uint32_t *dist;      /* per group; MM_DIST_INF when unreachable */
	uint32_t *hops;      /* per group */
	uint32_t *pred_conn; /* per group: last connector of its path; MM_NONE at src */
};

void mm_spf_run(const struct mm_topo *t, uint32_t src, struct mm_spf *out);
void mm_spf_free(struct mm_spf *s);

/* The path to group dst as connector indices, first hop first. Returns the
 * number of connectors (0 for dst == src); conns must hold spf hops[dst]. */
uint32_t mm_spf_path(const struct mm_topo *t, const struct mm_spf *s, uint32_t dst,
                     uint32_t *conns);

#endif
