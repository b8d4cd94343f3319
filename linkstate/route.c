#include "route.h"

#include <ctype.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "addrspace.h"
#include "alloc.h"

/* One way to go: a path and the next hops that serve it equally. */
struct option {
	uint64_t hash; /* rendezvous id among equal options */
	uint32_t cost;
	uint32_t npath, nconns, ncand;
	uint32_t *path, *conns;
	uint32_t *cand;       /* virtual server indices */
	enum mm_hop_type hop; /* MM_HOP_VSERVER, or this server delivers */
	const char *smart_host;
};

struct mm_decision {
	char *key; /* owned; the cache's key */
	enum mm_route_kind kind;
	char *destination;
	uint32_t nopt;
	struct option *opt;
};

const char *mm_route_kind_name(enum mm_route_kind k)
{
	static const char *const names[] = {"local",    "intra-group", "inter-group",
	                                    "external", "unreachable", "no-route"};
	return names[k];
}

static uint64_t mix(uint64_t x)
{
	/* splitmix64 finalizer */
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/* --- router lifecycle ---------------------------------------------------- */

static void decision_free(struct mm_decision *d)
{
	for (uint32_t i = 0; i < d->nopt; i++) {
		free(d->opt[i].path);
		free(d->opt[i].conns);
		free(d->opt[i].cand);
	}
	free(d->opt);
	free(d->key);
	free(d->destination);
	free(d);
}

static void cache_clear(struct mm_router *r)
{
	for (size_t i = 0; i < r->ndec; i++)
		decision_free(r->dec[i]);
	r->ndec = 0;
	mm_strmap_clear(&r->cache);
}

static bool compile(struct mm_router *r, const struct mm_table *t)
{
	if (r->topo.groups == NULL || !mm_topo_refresh(&r->topo, t)) {
		mm_topo_free(&r->topo);
		mm_topo_compile(&r->topo, t);
	}
	r->self = mm_topo_server(&r->topo, r->self_name);
	if (r->self == MM_NONE)
		return false;
	r->self_group = r->topo.servers[r->self].group;
	return true;
}

bool mm_router_init(struct mm_router *r, const struct mm_table *t, const char *self)
{
	*r = (struct mm_router){0};
	r->self_name = mm_xstrdup(self);
	if (!compile(r, t)) {
		mm_router_free(r);
		return false;
	}
	mm_table_digest_cached(t, &r->dcache, r->digest);
	mm_spf_run(&r->topo, r->self_group, &r->spf);
	return true;
}

void mm_router_free(struct mm_router *r)
{
	cache_clear(r);
	free(r->dec);
	mm_strmap_free(&r->cache);
	mm_spf_free(&r->spf);
	mm_topo_free(&r->topo);
	mm_digest_cache_free(&r->dcache);
	free(r->self_name);
	*r = (struct mm_router){0};
}

bool mm_router_update(struct mm_router *r, const struct mm_table *t)
{
	uint8_t d[MM_DIGEST_LEN];
	mm_table_digest_cached(t, &r->dcache, d);
	bool known = compile(r, t);
	if (memcmp(d, r->digest, MM_DIGEST_LEN) == 0 && known)
		return false; /* same content, same indices: the cache stands */
	memcpy(r->digest, d, MM_DIGEST_LEN);
	cache_clear(r);
	mm_spf_free(&r->spf);
	/* a server removed from the table routes nowhere until it is back */
	mm_spf_run(&r->topo, known ? r->self_group : MM_NONE, &r->spf);
	if (!known)
		r->self_group = MM_NONE;
	return true;
}

/* --- building decisions -------------------------------------------------- */

static struct option *add_option(struct mm_decision *d)
{
	d->opt = mm_xrealloc(d->opt, d->nopt + 1, sizeof(*d->opt));
	struct option *o = &d->opt[d->nopt++];
	*o = (struct option){0};
	o->hop = MM_HOP_VSERVER;
	return o;
}

static void add_cand(struct option *o, uint32_t vs)
{
	o->cand = mm_xrealloc(o->cand, o->ncand + 1, sizeof(*o->cand));
	o->cand[o->ncand++] = vs;
}

static bool self_is_up_bh(const struct mm_router *r, const struct mm_topo_conn *c)
{
	const struct mm_topo *t = &r->topo;
	for (uint32_t i = c->local_first; i < c->local_first + c->nlocal; i++)
		if (t->bhs[i].up && t->vs[t->bhs[i].vs].server == r->self)
			return true;
	return false;
}

static void add_up_bhs(const struct mm_topo *t, struct option *o, uint32_t first, uint32_t n)
{
	for (uint32_t i = first; i < first + n; i++)
		if (t->bhs[i].up)
			add_cand(o, t->bhs[i].vs);
}

static uint32_t *copy_u32(const uint32_t *a, uint32_t n, uint32_t extra)
{
	uint32_t *c = mm_xcalloc(n + extra, sizeof(*c));
	if (n)
		memcpy(c, a, n * sizeof(*c));
	return c;
}

/* Options toward group dst (reachable, not ours), one per parallel first
 * connector: every up connector from our group to the path's second group
 * with the first connector's cost serves equally (DESIGN §4.5). If this
 * server is an up bridgehead of some of them, it hands mail straight to
 * their remote bridgeheads; otherwise to their local bridgeheads. extra
 * (MM_NONE for none) is appended to every option's connectors. */
static void add_path_options(struct mm_router *r, struct mm_decision *d, uint32_t dst,
                             uint32_t extra, uint32_t extra_cost, uint64_t salt)
{
	const struct mm_topo *t = &r->topo;
	uint32_t n = r->spf.hops[dst];
	uint32_t *conns = mm_xcalloc(n, sizeof(*conns));
	mm_spf_path(t, &r->spf, dst, conns);
	uint32_t *path = mm_xcalloc(n + 1, sizeof(*path));
	path[0] = r->self_group;
	for (uint32_t i = 0; i < n; i++)
		path[i + 1] = t->conns[conns[i]].target;

	const struct mm_topo_conn *first = &t->conns[conns[0]];
	const struct mm_topo_group *g = &t->groups[r->self_group];
	bool self_bh = false;
	for (uint32_t ci = g->conn_first; ci < g->conn_first + g->nconn; ci++) {
		const struct mm_topo_conn *c = &t->conns[ci];
		if (!c->smtp && c->up && c->target == first->target && c->cost == first->cost)
			self_bh |= self_is_up_bh(r, c);
	}
	for (uint32_t ci = g->conn_first; ci < g->conn_first + g->nconn; ci++) {
		const struct mm_topo_conn *c = &t->conns[ci];
		if (c->smtp || !c->up || c->target != first->target || c->cost != first->cost)
			continue;
		if (self_bh && !self_is_up_bh(r, c))
			continue;
		struct option *o = add_option(d);
		o->hash = c->hash ^ salt;
		o->cost = r->spf.dist[dst] + extra_cost;
		o->npath = n + 1;
		o->path = copy_u32(path, n + 1, 0);
		o->nconns = n + (extra != MM_NONE);
		o->conns = copy_u32(conns, n, 1);
		o->conns[0] = ci;
		if (extra != MM_NONE)
			o->conns[n] = extra;
		if (self_bh)
			add_up_bhs(t, o, c->remote_first, c->nremote);
		else
			add_up_bhs(t, o, c->local_first, c->nlocal);
	}
	free(conns);
	free(path);
}

static void decide_server(struct mm_router *r, struct mm_decision *d, const char *home)
{
	const struct mm_topo *t = &r->topo;
	d->destination = mm_xstrdup(home);
	d->kind = MM_ROUTE_UNREACHABLE;
	uint32_t s = mm_topo_server(t, home);
	if (r->self_group == MM_NONE || s == MM_NONE)
		return;
	if (s == r->self) {
		d->kind = MM_ROUTE_LOCAL;
		struct option *o = add_option(d);
		o->hop = MM_HOP_NONE;
		o->npath = 1;
		o->path = copy_u32(&r->self_group, 1, 0);
		return;
	}
	const struct mm_topo_server *sv = &t->servers[s];
	if (!sv->up || sv->nvs == 0)
		return;
	if (sv->group == r->self_group) {
		d->kind = MM_ROUTE_INTRA;
		struct option *o = add_option(d);
		o->npath = 1;
		o->path = copy_u32(&r->self_group, 1, 0);
		for (uint32_t v = sv->vs_first; v < sv->vs_first + sv->nvs; v++)
			add_cand(o, v);
		return;
	}
	if (r->spf.dist[sv->group] == MM_DIST_INF)
		return;
	add_path_options(r, d, sv->group, MM_NONE, 0, 0);
	if (d->nopt)
		d->kind = MM_ROUTE_INTER;
}

/* DESIGN §4.4: the most specific address space wins whatever its state;
 * among its connectors, those up and reachable by least total cost. */
static void decide_domain(struct mm_router *r, struct mm_decision *d, const char *domain)
{
	const struct mm_topo *t = &r->topo;
	int best = -1;
	const char *best_pattern = NULL;
	uint32_t *space_cost = mm_xcalloc(t->nsmtp, sizeof(*space_cost));
	int *score = mm_xcalloc(t->nsmtp, sizeof(*score));

	for (uint32_t i = 0; i < t->nsmtp; i++) {
		const struct mm_topo_conn *c = &t->conns[t->smtp[i]];
		score[i] = -1;
		if (c->c->scope == MAILMESH__SCOPE__SCOPE_ROUTING_GROUP &&
		    c->group != r->self_group)
			continue;
		for (size_t a = 0; a < c->c->n_address_spaces; a++) {
			const Mailmesh__AddressSpace *as = c->c->address_spaces[a];
			if (strcmp(as->type, "smtp") != 0)
				continue;
			int sc = mm_addrspace_match(as->pattern, domain);
			if (sc < 0 || sc < score[i])
				continue;
			if (sc > score[i] || as->cost < space_cost[i])
				space_cost[i] = as->cost;
			score[i] = sc;
			if (sc > best) {
				best = sc;
				best_pattern = as->pattern;
			}
		}
	}
	if (best < 0 || r->self_group == MM_NONE) {
		d->kind = best < 0 ? MM_ROUTE_NO_ROUTE : MM_ROUTE_UNREACHABLE;
		d->destination = mm_xstrdup(domain);
		goto out;
	}
	size_t dl = strlen(best_pattern) + 6;
	d->destination = mm_xmalloc(dl);
	memcpy(d->destination, "smtp:", 5);
	memcpy(d->destination + 5, best_pattern, dl - 5);
	d->kind = MM_ROUTE_UNREACHABLE;

	uint64_t least = UINT64_MAX;
	for (uint32_t i = 0; i < t->nsmtp; i++) {
		const struct mm_topo_conn *c = &t->conns[t->smtp[i]];
		if (score[i] != best || !c->up || r->spf.dist[c->group] == MM_DIST_INF)
			continue;
		uint64_t total = (uint64_t)r->spf.dist[c->group] + space_cost[i];
		if (total < least)
			least = total;
	}
	for (uint32_t i = 0; i < t->nsmtp && least != UINT64_MAX; i++) {
		uint32_t ci = t->smtp[i];
		const struct mm_topo_conn *c = &t->conns[ci];
		if (score[i] != best || !c->up || r->spf.dist[c->group] == MM_DIST_INF ||
		    (uint64_t)r->spf.dist[c->group] + space_cost[i] != least)
			continue;
		if (c->group != r->self_group) {
			add_path_options(r, d, c->group, ci, space_cost[i], c->hash);
			continue;
		}
		struct option *o = add_option(d);
		o->hash = c->hash;
		o->cost = space_cost[i];
		o->npath = 1;
		o->path = copy_u32(&r->self_group, 1, 0);
		o->nconns = 1;
		o->conns = copy_u32(&ci, 1, 0);
		if (self_is_up_bh(r, c)) {
			/* this server is the connector's bridgehead: it delivers */
			o->hop = c->c->smart_host[0] ? MM_HOP_SMART_HOST : MM_HOP_DNS;
			o->smart_host = c->c->smart_host;
		} else {
			add_up_bhs(t, o, c->local_first, c->nlocal);
		}
	}
	if (d->nopt)
		d->kind = MM_ROUTE_EXTERNAL;
out:
	free(space_cost);
	free(score);
}

/* --- lookups ------------------------------------------------------------- */

static const struct mm_decision *cached(struct mm_router *r, const char *key, bool domain)
{
	uint32_t i;
	if (mm_strmap_get(&r->cache, key, &i))
		return r->dec[i];
	struct mm_decision *d = mm_xcalloc(1, sizeof(*d));
	d->key = mm_xstrdup(key);
	if (domain)
		decide_domain(r, d, key + 2);
	else
		decide_server(r, d, key + 2);
	mm_grow(&r->dec, &r->capdec, r->ndec + 1, sizeof(*r->dec));
	r->dec[r->ndec] = d;
	mm_strmap_put(&r->cache, d->key, (uint32_t)r->ndec);
	r->ndec++;
	return d;
}

static void answer(const struct mm_router *r, const struct mm_decision *d, const char *key,
                   struct mm_route *out)
{
	*out = (struct mm_route){0};
	out->kind = d->kind;
	out->destination = d->destination;
	out->hop_vs = MM_NONE;
	if (d->nopt == 0)
		return;
	uint64_t kh = mm_strhash(key);
	const struct option *o = &d->opt[0];
	uint64_t top = 0;
	for (uint32_t i = 0; d->nopt > 1 && i < d->nopt; i++) {
		uint64_t sc = mix(kh ^ d->opt[i].hash);
		if (i == 0 || sc > top) {
			top = sc;
			o = &d->opt[i];
		}
	}
	out->has_cost = true;
	out->cost = o->cost;
	out->npath = o->npath;
	out->path = o->path;
	out->nconns = o->nconns;
	out->conns = o->conns;
	out->hop = o->hop;
	out->smart_host = o->smart_host;
	if (o->hop != MM_HOP_VSERVER)
		return;
	if (o->ncand == 0) {
		/* the connector is up but none of its bridgeheads is: cannot happen
		 * by the topology's definition of up; refuse rather than guess */
		out->kind = MM_ROUTE_UNREACHABLE;
		out->hop = MM_HOP_NONE;
		return;
	}
	top = 0;
	for (uint32_t i = 0; i < o->ncand; i++) {
		uint64_t sc = mix(kh ^ r->topo.vs[o->cand[i]].hash);
		if (i == 0 || sc > top) {
			top = sc;
			out->hop_vs = o->cand[i];
		}
	}
}

void mm_route_to_server(struct mm_router *r, const char *home, const char *key,
                        struct mm_route *out)
{
	char buf[2 + 256];
	size_t n = strlen(home);
	if (n > 255)
		n = 255;
	buf[0] = 's';
	buf[1] = ':';
	memcpy(buf + 2, home, n);
	buf[2 + n] = '\0';
	answer(r, cached(r, buf, false), key, out);
}

void mm_route_to_domain(struct mm_router *r, const char *domain, const char *key,
                        struct mm_route *out)
{
	char buf[2 + MM_DOMAIN_MAX + 1];
	size_t n = strlen(domain);
	if (n > MM_DOMAIN_MAX)
		n = MM_DOMAIN_MAX;
	buf[0] = 'd';
	buf[1] = ':';
	for (size_t i = 0; i < n; i++)
		buf[2 + i] = (char)tolower((unsigned char)domain[i]);
	buf[2 + n] = '\0';
	answer(r, cached(r, buf, true), key, out);
}

/* --- split horizon ------------------------------------------------------ */

bool mm_router_avoiding(struct mm_avoid_router *out, const struct mm_router *r,
                        const char *const *avoid, size_t navoid)
{
	const struct mm_topo *t = &r->topo;
	mm_table_init(&out->table);
	out->router = (struct mm_router){0};
	if (r->self_group == MM_NONE)
		return false;
	for (uint32_t g = 0; g < t->ngroups; g++)
		mm_table_merge(&out->table, mm_entry_clone(t->groups[g].entry));
	for (size_t i = 0; i < navoid; i++) {
		uint32_t s = mm_topo_server(t, avoid[i]);
		if (s == MM_NONE || s == r->self)
			continue;
		mm_entry *e = mm_table_find(&out->table, t->groups[t->servers[s].group].name);
		if (e != NULL)
			mm_entry_set_server(e, avoid[i], true);
	}
	return mm_router_init(&out->router, &out->table, r->self_name);
}

void mm_avoid_router_free(struct mm_avoid_router *a)
{
	mm_router_free(&a->router);
	mm_table_free(&a->table);
}

void mm_smart_host_address(const char *smart, char *out, size_t size)
{
	const char *host = smart, *port = NULL;
	size_t hl;
	if (*smart == '[') {
		const char *end = strchr(smart, ']');
		host = smart + 1;
		hl = end ? (size_t)(end - host) : strlen(host);
		port = end && end[1] == ':' ? end + 2 : NULL;
		if (memchr(host, ':', hl)) { /* IPv6 keeps its brackets */
			snprintf(out, size, "[%.*s]:%s", (int)hl, host, port ? port : "25");
			return;
		}
	} else {
		const char *colon = strrchr(smart, ':');
		hl = colon ? (size_t)(colon - smart) : strlen(smart);
		port = colon ? colon + 1 : NULL;
	}
	snprintf(out, size, "%.*s:%s", (int)hl, host, port ? port : "25");
}
