/* The topology compiled from a link-state table for routing: every group,
 * server, virtual server and connector gets an index, names resolve through
 * hash maps, and each connector's effective state is worked out once:
 *
 *   local bridgehead up  = not marked down and its server up
 *   remote bridgehead up = not marked down, known, and its server up
 *   connector up         = not marked down, a local bridgehead up, and for a
 *                          routing-group connector a remote bridgehead up
 *                          and a known target group.
 *
 * Names and addresses are copied into the topology (one arena); connectors
 * and bridgeheads keep pointers into the table for what they do not copy
 * (costs, address spaces, smart host, down flags), so after every change of
 * the table call mm_topo_refresh (or compile again). Indices follow table
 * order (names sorted), so equal tables give equal indices. */
#ifndef MM_TOPO_H
#define MM_TOPO_H

#include <stdbool.h>
#include <stdint.h>

#include "strmap.h"
#include "table.h"

#define MM_NONE UINT32_MAX

struct mm_topo_group {
	const char *name;
	uint32_t conn_first, nconn;     /* its connectors, contiguous */
	uint32_t server_first, nserver; /* its servers, contiguous */
	const mm_entry *entry;          /* compiled from, and its version: */
	uint32_t incarnation, major, minor, user;
};

struct mm_topo_server {
	const char *name;
	uint32_t group;
	bool up;
	uint32_t vs_first, nvs;
};

struct mm_topo_vs {
	const char *name;
	const char *address;
	uint32_t server;
	uint64_t hash; /* of "server/vs": its rendezvous id */
};

struct mm_topo_bh {
	uint32_t vs; /* MM_NONE: names no known virtual server */
	bool up;
	const Mailmesh__Bridgehead *b;
};

struct mm_topo_conn {
	const Mailmesh__Connector *c;
	uint32_t group, target; /* target MM_NONE for SMTP connectors */
	uint32_t cost;
	bool smtp, up;
	uint32_t local_first, nlocal, remote_first, nremote; /* into bhs */
	uint64_t hash;
};

struct mm_topo {
	uint32_t ngroups, nservers, nvs, nconns, nbhs;
	struct mm_topo_group *groups;
	struct mm_topo_server *servers;
	struct mm_topo_vs *vs;
	struct mm_topo_conn *conns;
	struct mm_topo_bh *bhs;
	uint32_t nsmtp, *smtp; /* SMTP connectors */
	struct mm_strmap group_idx, server_idx, conn_idx;
	char *arena; /* every name and address above */
	/* per group, the connectors of other groups with a remote bridgehead
	 * on one of its servers: whose state follows that group's servers */
	uint32_t *rev_first, *rev; /* rev[rev_first[g] .. rev_first[g + 1]) */
};

void mm_topo_compile(struct mm_topo *t, const struct mm_table *table);
/* After a table change: when no group, server, virtual server, connector or
 * bridgehead was added, removed or renamed (the common case: states and
 * costs), update in place and return true; otherwise return false and
 * leave t for the caller to compile again. */
bool mm_topo_refresh(struct mm_topo *t, const struct mm_table *table);
void mm_topo_free(struct mm_topo *t);
uint32_t mm_topo_server(const struct mm_topo *t, const char *name);
uint32_t mm_topo_group(const struct mm_topo *t, const char *name);
uint32_t mm_topo_connector(const struct mm_topo *t, const char *name);

#endif
