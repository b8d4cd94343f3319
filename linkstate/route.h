/* The next-hop decision of DESIGN §4, for one server of the organization.
 *
 * A router holds the compiled topology, the least-cost paths from its own
 * group, and a cache of decisions per destination (a home server, or a
 * recipient domain outside the organization). The cache is dropped only
 * when the table digest changes. A decision keeps every equal choice; the
 * one a message takes is picked by rendezvous hashing on (message key,
 * candidate id), so choices are balanced and stable, and when a candidate
 * fails only its own messages move. */
#ifndef MM_ROUTE_H
#define MM_ROUTE_H

#include <stdbool.h>
#include <stdint.h>

#include "digest.h"
#include "spf.h"
#include "table.h"
#include "topo.h"

enum mm_route_kind {
	MM_ROUTE_LOCAL,       /* home server is this server */
	MM_ROUTE_INTRA,       /* home server in this routing group */
	MM_ROUTE_INTER,       /* home server in another routing group */
	MM_ROUTE_EXTERNAL,    /* outside the organization, through an SMTP connector */
	MM_ROUTE_UNREACHABLE, /* no path up now: wait for the table to change */
	MM_ROUTE_NO_ROUTE,    /* no connector's address space matches: NDR 5.4.0 */
};

const char *mm_route_kind_name(enum mm_route_kind k);

enum mm_hop_type {
	MM_HOP_NONE,       /* local delivery, or no route */
	MM_HOP_VSERVER,    /* another server's virtual server */
	MM_HOP_SMART_HOST, /* this server delivers through the connector's smart host */
	MM_HOP_DNS,        /* this server delivers by MX/A/AAAA of the domain */
};

struct mm_route {
	enum mm_route_kind kind;
	const char *destination; /* home server name, or "smtp:pattern", or the domain */
	bool has_cost;
	uint32_t cost;
	uint32_t npath, nconns;
	const uint32_t *path;  /* group indices, this group first */
	const uint32_t *conns; /* connector indices along the path, then the SMTP connector */
	enum mm_hop_type hop;
	uint32_t hop_vs;        /* MM_HOP_VSERVER: virtual server index */
	const char *smart_host; /* MM_HOP_SMART_HOST */
};

struct mm_decision;

struct mm_router {
	struct mm_topo topo;
	struct mm_spf spf;
	uint32_t self, self_group;
	uint8_t digest[MM_DIGEST_LEN];
	struct mm_digest_cache dcache;
	struct mm_strmap cache;
	struct mm_decision **dec;
	size_t ndec, capdec;
	char *self_name;
};

/* Returns false when self is not a server of the table. */
bool mm_router_init(struct mm_router *r, const struct mm_table *t, const char *self);
void mm_router_free(struct mm_router *r);
/* After every change of the table: brings the topology up to date (in
 * place when only states and costs changed) and, when the digest changed,
 * the paths and the cache. Returns true when the digest changed. */
bool mm_router_update(struct mm_router *r, const struct mm_table *t);

/* Decisions. key is the message's rendezvous key (its message id).
 * Results point into the router and are valid until the next update. */
void mm_route_to_server(struct mm_router *r, const char *home, const char *key,
                        struct mm_route *out);
void mm_route_to_domain(struct mm_router *r, const char *domain, const char *key,
                        struct mm_route *out);

/* Split horizon: the same table as r with the servers named in avoid
 * marked down (r's own server never), so that a decision made with it
 * passes through none of them -- "another route" for a message that has
 * been there already (see docs/routing.md). It owns a copy of the table;
 * false when r routes nowhere. */
struct mm_avoid_router {
	struct mm_table table;
	struct mm_router router;
};
bool mm_router_avoiding(struct mm_avoid_router *out, const struct mm_router *r,
                        const char *const *avoid, size_t navoid);
void mm_avoid_router_free(struct mm_avoid_router *a);

/* A smart host as the directory writes it ("[host]:port", "host:port" or
 * "host") as "host:port", port 25 when none; IPv6 keeps its brackets. */
void mm_smart_host_address(const char *smart, char *out, size_t size);

#endif
