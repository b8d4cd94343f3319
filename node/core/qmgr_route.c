/* Which queue each recipient goes to: the categorizer (DESIGN §4.1) and the
 * next-hop choice of linkstate/route.c, turned into a queue identity; and
 * reroute, when the table or the directory changes, through "Messages
 * pending reroute". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"
#include "qmgr-internal.h"
#include "trace.h"

enum dest_kind { DEST_LOCAL, DEST_UNREACHABLE, DEST_LINK, DEST_BOUNCE };

/* Where one recipient goes, before any queue is made for it. */
struct dest {
	enum dest_kind kind;
	enum mm_route_kind route;
	/* DEST_LINK */
	enum mm_link_hop hop;
	const char *name, *server, *vserver, *connector;
	char target[300];
	int tls;
	bool org;
	/* DEST_BOUNCE */
	const char *status, *diag;
	char key[700];
};

static int tls_of_connector(const Mailmesh__Connector *c)
{
	switch (c->tls_policy) {
	case MAILMESH__TLS_POLICY__TLS_REQUIRED: return MM_SMTPC_TLS_REQUIRED;
	case MAILMESH__TLS_POLICY__TLS_NONE: return MM_SMTPC_TLS_NONE;
	default: return MM_SMTPC_TLS_OPPORTUNISTIC;
	}
}

/* Between organization servers: with the organization's certificates TLS
 * is required (a peer without one would be refused relaying anyway);
 * without them (a lab) whatever the peer offers. */
static int org_tls(const struct mm_qm *qm)
{
	return qm->conf.org_tls ? MM_SMTPC_TLS_REQUIRED : MM_SMTPC_TLS_OPPORTUNISTIC;
}

bool qm_is_self_address(const struct mm_qm *qm, const char *addr)
{
	const struct mm_topo *t = &qm->router->topo;
	if (qm->router->self == MM_NONE)
		return false;
	const struct mm_topo_server *s = &t->servers[qm->router->self];
	for (uint32_t i = s->vs_first; i < s->vs_first + s->nvs; i++)
		if (strcmp(t->vs[i].address, addr) == 0)
			return true;
	return false;
}

static void bounce_dest(struct dest *d, const char *status, const char *diag)
{
	d->kind = DEST_BOUNCE;
	d->status = status;
	d->diag = diag;
	snprintf(d->key, sizeof(d->key), "bounce");
}

/* The decision for recipient idx of m with router (the current table, or
 * split horizon's copy of it). */
static void resolve_with(struct mm_qm *qm, struct mm_router *router, const struct mm_qmsg *m,
                         uint32_t idx, struct dest *d)
{
	*d = (struct dest){0};
	const struct mm_recipient *who = NULL;
	char domain[256];
	struct mm_route rt = {0};
	switch (mm_directory_categorize(qm->dir, m->rcpt[idx].addr, &who, domain)) {
	case MM_CAT_UNKNOWN:
		bounce_dest(d, "5.1.1", "X-mailmesh; no such recipient in the directory");
		return;
	case MM_CAT_BAD:
		bounce_dest(d, "5.1.3", "X-mailmesh; bad recipient address syntax");
		return;
	case MM_CAT_POSTMASTER: rt.kind = MM_ROUTE_LOCAL; break;
	case MM_CAT_HOME:
		if (strcmp(who->home, qm->self) == 0)
			rt.kind = MM_ROUTE_LOCAL;
		else
			mm_route_to_server(router, who->home, m->idhex, &rt);
		break;
	case MM_CAT_EXTERNAL: mm_route_to_domain(router, domain, m->idhex, &rt); break;
	}
	d->route = rt.kind;
	const struct mm_topo *t = &router->topo;
	switch (rt.kind) {
	case MM_ROUTE_LOCAL:
		d->kind = DEST_LOCAL;
		snprintf(d->key, sizeof(d->key), "%s", qm->local->key);
		return;
	case MM_ROUTE_UNREACHABLE:
		d->kind = DEST_UNREACHABLE;
		snprintf(d->key, sizeof(d->key), "%s", qm->unreachable->key);
		return;
	case MM_ROUTE_NO_ROUTE:
		bounce_dest(d, "5.4.0",
		            "X-mailmesh; no connector's address space matches the domain");
		return;
	default: break;
	}
	d->kind = DEST_LINK;
	const Mailmesh__Connector *last = rt.nconns ? t->conns[rt.conns[rt.nconns - 1]].c : NULL;
	if (rt.hop == MM_HOP_VSERVER) {
		const struct mm_topo_vs *vs = &t->vs[rt.hop_vs];
		const struct mm_topo_server *sv = &t->servers[vs->server];
		d->hop = MM_LINK_SERVER;
		d->name = d->server = sv->name;
		d->vserver = vs->name;
		snprintf(d->target, sizeof(d->target), "%s", vs->address);
		/* a next hop in another group is a remote bridgehead: this
		 * server delivers over the path's first connector */
		if (rt.nconns > 0 && sv->group != router->self_group)
			d->connector = t->conns[rt.conns[0]].c->name;
		d->tls = org_tls(qm);
		d->org = true;
	} else if (rt.hop == MM_HOP_SMART_HOST) {
		mm_smart_host_address(rt.smart_host, d->target, sizeof(d->target));
		if (qm_is_self_address(qm, d->target)) {
			bounce_dest(d, "5.3.5",
			            "X-mailmesh; the smart host is this server: mail loops back to "
			            "myself");
			return;
		}
		d->hop = MM_LINK_SMART_HOST;
		d->name = d->connector = last->name;
		d->tls = tls_of_connector(last);
	} else {
		d->hop = MM_LINK_MX;
		snprintf(d->target, sizeof(d->target), "%s", domain);
		d->name = d->target;
		d->connector = last->name;
		d->tls = tls_of_connector(last);
	}
	/* the identity of the next hop: how, through what, to where */
	snprintf(d->key, sizeof(d->key), "%s %s%s%s %s%s%s",
	         d->hop == MM_LINK_SERVER       ? "server"
	         : d->hop == MM_LINK_SMART_HOST ? "smarthost"
	                                        : "mx",
	         d->hop == MM_LINK_SERVER ? d->server : d->connector,
	         d->hop == MM_LINK_SERVER ? "/" : "", d->hop == MM_LINK_SERVER ? d->vserver : "",
	         d->target, d->hop == MM_LINK_SERVER && d->connector ? " via " : "",
	         d->hop == MM_LINK_SERVER && d->connector ? d->connector : "");
}

static void resolve(struct mm_qm *qm, const struct mm_qmsg *m, uint32_t idx, struct dest *d)
{
	resolve_with(qm, qm->router, m, idx, d);
}

/* Whether the table holds q's hop down: for a hop of this server's own
 * connector, its bridgeheads on it; for another server, that server, and
 * when it is a remote bridgehead, the bridgehead on the connector. */
static bool hop_down_in_table(const struct mm_qm *qm, const struct mm_queue *q)
{
	const struct mm_topo *t = &qm->router->topo;
	uint32_t ci = q->connector ? mm_topo_connector(t, q->connector) : MM_NONE;
	const struct mm_topo_conn *c = ci == MM_NONE ? NULL : &t->conns[ci];
	if (q->hop != MM_LINK_SERVER) {
		if (c == NULL)
			return false;
		for (uint32_t i = c->local_first; i < c->local_first + c->nlocal; i++)
			if (t->bhs[i].vs != MM_NONE &&
			    t->vs[t->bhs[i].vs].server == qm->router->self && t->bhs[i].up)
				return false;
		return true;
	}
	uint32_t s = mm_topo_server(t, q->server);
	if (s == MM_NONE || !t->servers[s].up)
		return true;
	if (c == NULL)
		return false;
	for (uint32_t i = c->remote_first; i < c->remote_first + c->nremote; i++) {
		uint32_t vs = t->bhs[i].vs;
		if (vs != MM_NONE && t->vs[vs].server == s &&
		    strcmp(t->vs[vs].name, q->vserver) == 0)
			return !t->bhs[i].up;
	}
	return false;
}

static struct mm_queue *queue_of(struct mm_qm *qm, const struct dest *d)
{
	if (d->kind == DEST_LOCAL)
		return qm->local;
	if (d->kind == DEST_UNREACHABLE)
		return qm->unreachable;
	struct mm_queue *q = mm_queue_by_key(&qm->queues, d->key);
	if (q != NULL)
		return q;
	q = mm_queue_add(&qm->queues, MM_Q_LINK, d->name, d->key);
	q->hop = d->hop;
	q->server = d->server ? mm_xstrdup(d->server) : NULL;
	q->vserver = d->vserver ? mm_xstrdup(d->vserver) : NULL;
	q->connector = d->connector ? mm_xstrdup(d->connector) : NULL;
	q->target = mm_xstrdup(d->target);
	q->tls = d->tls;
	q->org = d->org;
	q->table_down = hop_down_in_table(qm, q);
	return q;
}

void qm_refresh_link(struct mm_qm *qm, struct mm_queue *q)
{
	/* a hop the table had down and now has up: up means up */
	bool down = hop_down_in_table(qm, q);
	bool was = q->table_down;
	q->table_down = down;
	if (was && !down)
		qm_hop_up(qm, q, "up in the table");
	if (q->hop == MM_LINK_SERVER) {
		q->tls = org_tls(qm);
		return;
	}
	uint32_t c = mm_topo_connector(&qm->router->topo, q->connector);
	if (c != MM_NONE)
		q->tls = tls_of_connector(qm->router->topo.conns[c].c);
}

static const char *hop_of(const struct mm_queue *q)
{
	return q->target ? q->target : q->name;
}

struct pick {
	struct mm_queue *q;
	struct mm_job *j;
};

/* The host part of "ip:port" or "[ip]:port" equals ip. */
static bool host_is(const char *addr, const char *ip)
{
	const char *colon = strrchr(addr, ':');
	size_t n = colon ? (size_t)(colon - addr) : strlen(addr);
	if (n >= 2 && addr[0] == '[' && addr[n - 1] == ']')
		addr++, n -= 2;
	return strlen(ip) == n && memcmp(addr, ip, n) == 0;
}

/* The one server with a virtual server on ip; MM_NONE when none or
 * several share it (then nobody can say who sent). */
static uint32_t server_on(const struct mm_topo *t, const char *ip)
{
	uint32_t found = MM_NONE;
	for (uint32_t s = 0; s < t->nservers; s++) {
		const struct mm_topo_server *sv = &t->servers[s];
		for (uint32_t i = sv->vs_first; i < sv->vs_first + sv->nvs; i++)
			if (host_is(t->vs[i].address, ip)) {
				if (found != MM_NONE && found != s)
					return MM_NONE;
				found = s;
			}
	}
	return found;
}

/* m came from server: its client address is one of that server's virtual
 * servers' and no other server's (a node sends from its first virtual
 * server's address; an IPv4 client on an IPv6 socket is ::ffff:a.b.c.d).
 * Its own DSNs carry no Received: line of the server that wrote them. */
static const char *sent_by(const struct mm_qm *qm, const struct mm_qmsg *m)
{
	const struct mm_topo *t = &qm->router->topo;
	if (m->client == NULL)
		return NULL;
	const char *ip = m->client;
	if (strncasecmp(ip, "::ffff:", 7) == 0 && strchr(ip + 7, '.') != NULL)
		ip += 7;
	uint32_t s = server_on(t, ip);
	return s == MM_NONE ? NULL : t->servers[s].name;
}

/* The server whose virtual server is called fqdn in the directory. */
static const char *server_named(const struct mm_qm *qm, const char *fqdn)
{
	for (size_t i = 0; i < qm->dir->nvservers; i++) {
		const struct mm_vserver_conf *v = &qm->dir->vservers[i];
		if (v->fqdn && strcasecmp(v->fqdn, fqdn) == 0)
			return v->server;
	}
	return NULL;
}

/* The organization servers m has passed through (its trace, and the
 * server that sent it), each once, this server left out; and how often
 * it passed through this one. */
struct visits {
	const char *server[MM_TRACE_MAX + 1];
	size_t n;
	uint32_t self; /* times through this server */
};

static void visited(const struct mm_qm *qm, const struct mm_qmsg *m, struct visits *v)
{
	v->n = 0;
	v->self = 0;
	for (size_t i = 0; i <= m->nvia; i++) {
		const char *s = i < m->nvia ? server_named(qm, m->via[i]) : sent_by(qm, m);
		if (s == NULL)
			continue;
		if (strcmp(s, qm->self) == 0) {
			v->self += i < m->nvia;
			continue;
		}
		bool seen = false;
		for (size_t k = 0; k < v->n && !seen; k++)
			seen = strcmp(v->server[k], s) == 0;
		if (!seen)
			v->server[v->n++] = s;
	}
}

static bool visits_has(const struct visits *v, const char *server)
{
	for (size_t k = 0; k < v->n; k++)
		if (strcmp(v->server[k], server) == 0)
			return true;
	return false;
}

/* Split horizon's router for a set of servers, made once per table
 * generation and kept for the next message that passed the same ones (a
 * burst of mail caught between two disagreeing tables all did). */
static struct mm_router *avoiding(struct mm_qm *qm, const struct visits *v)
{
	if (qm->avoid_gen != qm->generation) {
		qm_avoid_free(qm);
		qm->avoid_gen = qm->generation;
	}
	char key[MM_QM_AVOID_KEY];
	size_t kl = 0;
	for (size_t k = 0; k < v->n; k++)
		kl += (size_t)snprintf(key + kl, kl < sizeof(key) ? sizeof(key) - kl : 0, "%s/",
		                       v->server[k]);
	if (kl >= sizeof(key))
		return NULL; /* a trace too long to name: no other route */
	for (size_t i = 0; i < qm->navoid; i++)
		if (strcmp(qm->avoid[i].key, key) == 0)
			return qm->avoid[i].ok ? &qm->avoid[i].ar.router : NULL;
	size_t i = qm->navoid < MM_QM_AVOID_MAX ? qm->navoid++ : qm->avoid_next++ % MM_QM_AVOID_MAX;
	struct mm_qm_avoid *a = &qm->avoid[i];
	if (a->key) {
		free(a->key);
		mm_avoid_router_free(&a->ar);
	}
	a->key = mm_xstrdup(key);
	a->ok = mm_router_avoiding(&a->ar, qm->router, v->server, v->n);
	return a->ok ? &a->ar.router : NULL;
}

void qm_avoid_free(struct mm_qm *qm)
{
	for (size_t i = 0; i < qm->navoid; i++) {
		free(qm->avoid[i].key);
		mm_avoid_router_free(&qm->avoid[i].ar);
		qm->avoid[i] = (struct mm_qm_avoid){0};
	}
	qm->navoid = qm->avoid_next = 0;
}

/* Split horizon. Under the table m arrived with, a recipient is not sent
 * to an organization server m has passed through while another route
 * exists: the two tables disagree (a connector failed at one of us and no
 * master has told the other yet), and without this rule the message
 * would go to and fro until the hop count ends it with 5.4.6 -- between
 * two servers, or around three. The other route is the decision of the
 * same table with those servers down. When there is none, the recipient
 * waits (false): the sender may know something we have not heard yet.
 * After a change of the table every rule is off: it goes wherever the
 * new table says. */
static bool split_horizon(struct mm_qm *qm, const struct mm_qmsg *m, uint32_t idx, struct dest *d,
                          const struct visits *v)
{
	if (d->kind != DEST_LINK || d->hop != MM_LINK_SERVER || !visits_has(v, d->server))
		return true;
	struct mm_router *r = avoiding(qm, v);
	if (r == NULL)
		return false;
	struct dest alt;
	resolve_with(qm, r, m, idx, &alt);
	if (alt.kind != DEST_LINK && alt.kind != DEST_LOCAL)
		return false;
	*d = alt;
	/* alt points into the avoiding router; the queue copies what it keeps */
	return true;
}

/* No other route: m is offered back after a hold that doubles with every
 * pass through this server (reroute_hold_ms, then twice that, up to
 * retry_max_ms), so two servers that disagree for good hand it to and
 * fro ever more slowly, and any change of the table places it again at
 * once. */
static int64_t back_hold_for(const struct mm_qm *qm, uint32_t passes)
{
	int64_t hold = qm->conf.back_hold_ms;
	for (uint32_t k = 1; k < passes && hold < qm->conf.retry_max_ms; k++)
		hold *= 2;
	return hold < qm->conf.retry_max_ms ? hold : qm->conf.retry_max_ms;
}

/* The soonest end of a hold in "Messages pending reroute". */
static void arm_back(struct mm_qm *qm)
{
	int64_t at = 0;
	for (const struct mm_job *j = qm->reroute->held; j; j = j->next)
		if (j->back_until && (at == 0 || j->back_until < at))
			at = j->back_until;
	if (at)
		qm->env.timer_arm(qm->env.ctx, MM_QM_TIMER_BACK, at);
}

static void back_hold(struct mm_qm *qm, struct mm_job *j, uint32_t passes)
{
	j->back_until = qm_now(qm) + back_hold_for(qm, passes);
	mm_queue_hold(qm->reroute, j);
	arm_back(qm);
}

void qm_place(struct mm_qm *qm, struct mm_qmsg *m, const uint32_t *idx, uint32_t n,
              struct mm_queue *from, bool held, bool back_ok)
{
	struct pick *picks = mm_xcalloc(n, sizeof(*picks));
	struct mm_dsn_rcpt *fail = mm_xcalloc(n, sizeof(*fail));
	struct mm_job *back = NULL;
	uint32_t np = 0, nf = 0;
	struct visits v = {0};
	bool horizon = !back_ok && qm->conf.back_hold_ms > 0 && m->arrived_gen == qm->generation;
	if (horizon)
		visited(qm, m, &v);
	m->holds++; /* while its recipients are placed */
	for (uint32_t k = 0; k < n; k++) {
		uint32_t i = idx[k];
		if (m->rcpt[i].done)
			continue;
		struct dest d;
		resolve(qm, m, i, &d);
		if (d.kind == DEST_BOUNCE) {
			fail[nf++] = (struct mm_dsn_rcpt){i, d.status, d.diag, NULL};
			continue;
		}
		char to[600];
		qm_addr(to, m->rcpt[i].addr);
		if (horizon && !split_horizon(qm, m, i, &d, &v)) {
			if (back == NULL)
				back = mm_job_new(m, qm->generation);
			mm_job_add(back, i);
			qm_track(qm, from ? "REROUTED" : "ROUTED", m, "to", to, "queue",
			         qm->reroute->name, "id", qm->reroute->id, "held", "back to sender",
			         "next_hop", d.target, NULL);
			continue;
		}
		struct mm_queue *q = queue_of(qm, &d);
		const char *kind = mm_route_kind_name(d.route);
		if (from == NULL)
			qm_track(qm, "ROUTED", m, "to", to, "kind", kind, "queue", q->name, "id",
			         q->id, "next_hop", q->kind == MM_Q_LINK ? q->target : NULL, NULL);
		else if (q != from)
			qm_track(qm, "REROUTED", m, "to", to, "kind", kind, "from_queue",
			         from->name, "old_next_hop", hop_of(from), "queue", q->name, "id",
			         q->id, "next_hop", hop_of(q), NULL);
		uint32_t p = 0;
		while (p < np && picks[p].q != q)
			p++;
		if (p == np)
			picks[np++] = (struct pick){q, mm_job_new(m, qm->generation)};
		mm_job_add(picks[p].j, i);
	}
	if (nf > 0 && !qm_bounce(qm, m, fail, nf)) {
		/* the DSN could not be written: these recipients wait without
		 * a path, are tried again with the next table, and expire */
		struct mm_job *j = mm_job_new(m, qm->generation);
		for (uint32_t k = 0; k < nf; k++)
			mm_job_add(j, fail[k].idx);
		mm_queue_push(qm->unreachable, j);
	}
	/* recipients that stay where they waited for a retry go on waiting */
	for (uint32_t k = 0; k < np; k++)
		if (held && picks[k].q == from)
			mm_queue_hold(picks[k].q, picks[k].j);
		else
			mm_queue_push(picks[k].q, picks[k].j);
	if (back)
		back_hold(qm, back, v.self);
	for (uint32_t k = 0; k < np; k++)
		qm_kick(qm, picks[k].q);
	free(fail);
	free(picks);
	m->holds--;
	qm_msg_release(qm, m);
}

bool qm_job_moves(struct mm_qm *qm, const struct mm_queue *q, const struct mm_job *j)
{
	for (uint32_t k = 0; k < j->n; k++) {
		struct dest d;
		resolve(qm, j->msg, j->idx[k], &d);
		if (strcmp(d.key, q->key) != 0)
			return true;
	}
	return false;
}

void qm_reroute_job(struct mm_qm *qm, struct mm_queue *q, struct mm_job *j)
{
	j->from = q->num;
	mm_queue_push(qm->reroute, j);
}

void qm_reroute_drain(struct mm_qm *qm)
{
	struct mm_job *j;
	while ((j = mm_queue_pop(qm->reroute)) != NULL) {
		struct mm_queue *from = mm_queue_by_num(&qm->queues, j->from);
		qm_place(qm, j->msg, j->idx, j->n, from ? from : qm->reroute,
		         j->held && j->back_until == 0, j->back_ok);
		mm_job_free(j);
	}
}

static bool hold_passed(void *ctx, const struct mm_queue *q, const struct mm_job *j)
{
	(void)q;
	return j->held && j->back_until <= qm_now(ctx);
}

void qm_back_timer(struct mm_qm *qm)
{
	struct mm_job *due = mm_queue_extract(qm->reroute, hold_passed, qm), *j;
	while ((j = due) != NULL) {
		due = j->next;
		j->back_ok = true;
		mm_queue_push(qm->reroute, j);
	}
	arm_back(qm);
	qm_reroute_drain(qm);
}
