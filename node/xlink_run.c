/* X-LINK2STATE between routing groups, the node's side (DESIGN §5.2): who
 * this server exchanges with, and when; the exchanges themselves are the
 * sans-I/O machines of core/xlink.h.
 *
 * A server that is a local bridgehead of one of its group's routing-group
 * connectors exchanges with the remote bridgeheads of that connector:
 *
 *   - flooding: whenever the masters' table it holds (the member's base)
 *     changes, with every live remote bridgehead at once;
 *   - anti-entropy: every xlink_digest_interval_ms, with one live remote
 *     bridgehead of each connector, in turn (a DIGEST and its answer when
 *     nothing differs), so that a lost update heals without mail.
 *
 * Each exchange is a short SMTP session of its own (probe_start_xlink: TLS,
 * the peer's certificate must name the server dialled, AUTH EXTERNAL),
 * never a mail session's: a delivery never waits behind a table, and the
 * exchange's failure never counts against a mail path. One exchange per
 * peer at a time; a change while one runs asks for another after it.
 *
 * A peer that sent an entry failing a check (either side of a session) is
 * not heard for xlink_penalty_ms: its sessions get 454 and it is not
 * dialled. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "logfmt.h"
#include "node.h"
#include "xlink.h"

struct xpeer {
	struct xlinks *x;
	char *server, *address;
	bool live;     /* the table holds it up */
	bool listed;   /* a remote bridgehead of a connector still */
	bool busy;     /* an exchange runs */
	bool again;    /* the table changed while it ran */
	bool failing;  /* the last exchange failed (logged once) */
	uint32_t id;   /* of the running exchange */
	uint32_t conn; /* the session kept open with it (probe id), or 0 */
	bool reused;   /* the running exchange is on that kept session */
	struct mm_xlink_cli cli;
};

/* A routing-group connector of which this server is a local bridgehead. */
struct xconn {
	char *name;
	struct xpeer **peers; /* its remote bridgeheads' servers */
	size_t n, next;       /* next: anti-entropy's turn */
};

struct penalty {
	char *server;
	int64_t until_ms;
};

struct xlinks {
	struct node *n;
	struct mm_xlink_env env;
	struct probes *probes;
	struct xpeer **peers;
	size_t npeers;
	struct xconn *conns;
	size_t nconns;
	struct penalty *pen;
	size_t npen;
	uint8_t digest[MM_DIGEST_LEN]; /* of the base last flooded */
	bool flooded;
	uint32_t next_id;
	struct event *tick, *kick;
	bool kick_flood, started;
	/* kept sessions of peers gone, closed on the next turn (not from
	 * inside their own probe's callback) */
	uint32_t *drop;
	size_t ndrop;
};

/* --- the machines' environment --------------------------------------------- */

static const struct mm_table *env_table(void *ctx)
{
	struct xlinks *x = ctx;
	return routing_base(x->n);
}

static const char *env_group_of(void *ctx, const char *server)
{
	struct xlinks *x = ctx;
	const struct mm_table *t = &x->n->dir.table;
	for (size_t g = 0; g < t->n; g++)
		for (size_t s = 0; s < t->entries[g]->n_servers; s++)
			if (strcmp(t->entries[g]->servers[s]->name, server) == 0)
				return t->entries[g]->name;
	return NULL;
}

static bool env_take(void *ctx, const char *peer, mm_entry **e, size_t n, uint32_t *taken,
                     uint32_t *dropped, char *why, size_t whylen)
{
	struct xlinks *x = ctx;
	return routing_take(x->n, peer, e, n, taken, dropped, why, whylen);
}

static void env_log(void *ctx, const char *line)
{
	(void)ctx;
	node_log("%s", line);
}

/* --- penalties -------------------------------------------------------------- */

static int64_t penalized(struct xlinks *x, const char *server)
{
	int64_t now = node_now_ms();
	for (size_t i = 0; i < x->npen; i++)
		if (strcmp(x->pen[i].server, server) == 0 && x->pen[i].until_ms > now)
			return x->pen[i].until_ms - now;
	return 0;
}

static void penalize(struct xlinks *x, const char *server)
{
	int64_t now = node_now_ms(), until = now + (int64_t)x->n->set.xlink_penalty_ms;
	for (size_t i = 0; i < x->npen; i++)
		if (strcmp(x->pen[i].server, server) == 0 || x->pen[i].until_ms <= now) {
			free(x->pen[i].server);
			x->pen[i] = (struct penalty){mm_xstrdup(server), until};
			return;
		}
	x->pen = mm_xrealloc(x->pen, x->npen + 1, sizeof(*x->pen));
	x->pen[x->npen++] = (struct penalty){mm_xstrdup(server), until};
}

/* --- targets ---------------------------------------------------------------- */

static void drop_later(struct xlinks *x, uint32_t conn)
{
	if (conn == 0)
		return;
	x->drop = mm_xrealloc(x->drop, x->ndrop + 1, sizeof(*x->drop));
	x->drop[x->ndrop++] = conn;
	event_active(x->kick, 0, 0);
}

static void peer_free(struct xpeer *p)
{
	drop_later(p->x, p->conn);
	mm_xlink_cli_free(&p->cli);
	free(p->server);
	free(p->address);
	free(p);
}

static struct xpeer *peer_get(struct xlinks *x, const char *server)
{
	for (size_t i = 0; i < x->npeers; i++)
		if (strcmp(x->peers[i]->server, server) == 0)
			return x->peers[i];
	struct xpeer *p = mm_xcalloc(1, sizeof(*p));
	p->x = x;
	p->server = mm_xstrdup(server);
	x->peers = mm_xrealloc(x->peers, x->npeers + 1, sizeof(*x->peers));
	x->peers[x->npeers++] = p;
	return p;
}

static void conns_free(struct xlinks *x)
{
	for (size_t i = 0; i < x->nconns; i++) {
		free(x->conns[i].name);
		free(x->conns[i].peers);
	}
	free(x->conns);
	x->conns = NULL;
	x->nconns = 0;
}

/* A server up in its group's entry of t. */
static bool server_up(const struct mm_table *t, const char *group, const char *server)
{
	const mm_entry *g = mm_table_find(t, group);
	for (size_t s = 0; g && s < g->n_servers; s++)
		if (strcmp(g->servers[s]->name, server) == 0)
			return !g->servers[s]->down;
	return false;
}

/* The connectors and peers as the table the node routes with says (kept:
 * a peer's running exchange, the connectors' turns). */
static void targets(struct xlinks *x)
{
	struct node *n = x->n;
	const struct mm_table *t = routing_view(n);
	const char *group = env_group_of(x, n->self);
	const mm_entry *own = group ? mm_table_find(t, group) : NULL;
	size_t *turn = mm_xcalloc(x->nconns + 1, sizeof(*turn));
	char **names = mm_xcalloc(x->nconns + 1, sizeof(*names));
	size_t nold = x->nconns;
	for (size_t i = 0; i < nold; i++) {
		turn[i] = x->conns[i].next;
		names[i] = mm_xstrdup(x->conns[i].name);
	}
	conns_free(x);
	for (size_t i = 0; i < x->npeers; i++)
		x->peers[i]->listed = x->peers[i]->live = false;
	for (size_t c = 0; own && c < own->n_connectors; c++) {
		const Mailmesh__Connector *cn = own->connectors[c];
		if (cn->type != MAILMESH__CONNECTOR_TYPE__CONNECTOR_ROUTING_GROUP)
			continue;
		bool local = false;
		for (size_t b = 0; b < cn->n_local_bridgeheads; b++)
			local |= strcmp(cn->local_bridgeheads[b]->server, n->self) == 0;
		if (!local || cn->n_remote_bridgeheads == 0)
			continue;
		x->conns = mm_xrealloc(x->conns, x->nconns + 1, sizeof(*x->conns));
		struct xconn *xc = &x->conns[x->nconns++];
		*xc = (struct xconn){.name = mm_xstrdup(cn->name)};
		xc->peers = mm_xcalloc(cn->n_remote_bridgeheads, sizeof(*xc->peers));
		for (size_t i = 0; i < nold; i++)
			if (strcmp(names[i], cn->name) == 0)
				xc->next = turn[i];
		for (size_t b = 0; b < cn->n_remote_bridgeheads; b++) {
			const Mailmesh__Bridgehead *bh = cn->remote_bridgeheads[b];
			if (strcmp(bh->server, n->self) == 0)
				continue;
			struct xpeer *p = peer_get(x, bh->server);
			bool up = !bh->down && server_up(t, cn->target_group, bh->server);
			/* the first address of the server's, and an up one first */
			if (!p->listed || (up && !p->live)) {
				if (p->address && strcmp(p->address, bh->address) != 0 &&
				    !p->busy) {
					drop_later(x, p->conn); /* a session to the old address */
					p->conn = 0;
				}
				free(p->address);
				p->address = mm_xstrdup(bh->address);
			}
			p->listed = true;
			p->live |= up;
			bool dup = false;
			for (size_t k = 0; k < xc->n; k++)
				dup |= xc->peers[k] == p;
			if (!dup)
				xc->peers[xc->n++] = p;
		}
	}
	for (size_t i = 0; i < nold; i++)
		free(names[i]);
	free(names);
	free(turn);
	/* peers no connector lists go, unless an exchange runs (then at its end) */
	size_t k = 0;
	for (size_t i = 0; i < x->npeers; i++) {
		struct xpeer *p = x->peers[i];
		if (!p->listed && !p->busy)
			peer_free(p);
		else
			x->peers[k++] = p;
	}
	x->npeers = k;
}

/* --- exchanges -------------------------------------------------------------- */

static void start(struct xlinks *x, struct xpeer *p)
{
	if (p->busy) {
		p->again = true;
		return;
	}
	if (penalized(x, p->server) || p->address == NULL)
		return;
	p->busy = true;
	p->again = false;
	mm_xlink_cli_free(&p->cli);
	mm_xlink_cli_init(&p->cli, &x->env, p->server);
	/* the session of the last exchange, kept open: no connection, no TLS
	 * handshake, no AUTH -- a flood crosses a link in a round trip or two */
	p->reused = p->conn && probe_xlink_again(x->probes, p->conn, &p->cli);
	if (p->reused) {
		p->id = p->conn;
		return;
	}
	drop_later(x, p->conn); /* one it would not take again, if any */
	p->id = p->conn = ++x->next_id;
	probe_start_xlink(x->probes, p->id, p->address, p->server, &p->cli, true);
}

static struct xpeer *peer_by_id(struct xlinks *x, uint32_t id)
{
	for (size_t i = 0; i < x->npeers; i++)
		if (x->peers[i]->busy && x->peers[i]->id == id)
			return x->peers[i];
	return NULL;
}

static void done(void *ctx, uint32_t id, bool ok, const char *why)
{
	struct xlinks *x = ctx;
	struct xpeer *p = peer_by_id(x, id);
	if (p == NULL)
		return;
	p->busy = false;
	const struct mm_xlink_cli *c = &p->cli;
	char q[300], w[700];
	if (!ok || c->state != MM_XCLI_DONE)
		p->conn = 0; /* the probe is gone, or goes with its QUIT */
	if (!ok && p->reused && c->lines_ok == 0 && p->listed) {
		/* the kept session had ended (the peer's idle timeout, its 421)
		 * before the exchange got a good word back: at once on a new one */
		start(x, p);
		return;
	}
	if (ok && c->state == MM_XCLI_DONE) {
		if (p->failing)
			node_log("xlink: with %s again", mm_logfmt_quote(q, sizeof(q), p->server));
		p->failing = false;
		/* a quiet round is not news, but the benches count it */
		if (c->taken || c->sent || c->dropped || x->n->set.test_hooks)
			node_log(
			    "xlink: with %s: %s%u taken, %u dropped, %u sent; %zu octets out, %zu "
			    "in; on the wire %llu out, %llu in",
			    mm_logfmt_quote(q, sizeof(q), p->server), c->equal ? "equal, " : "",
			    c->taken, c->dropped, c->sent, c->bytes_out, c->bytes_in,
			    (unsigned long long)c->wire_out, (unsigned long long)c->wire_in);
	} else {
		if (c->refused) {
			penalize(x, p->server);
			node_log("xlink: with %s: %s; not heard for %llu ms",
			         mm_logfmt_quote(q, sizeof(q), p->server),
			         mm_logfmt_quote(w, sizeof(w), c->why),
			         (unsigned long long)x->n->set.xlink_penalty_ms);
		} else if (!p->failing) {
			/* once, until an exchange works again */
			node_log("xlink: with %s at %s: %s",
			         mm_logfmt_quote(q, sizeof(q), p->server), p->address,
			         mm_logfmt_quote(w, sizeof(w),
			                         c->why[0] ? c->why
			                         : why     ? why
			                                   : "failed"));
		}
		p->failing = true;
	}
	if (!p->listed) {
		for (size_t i = 0; i < x->npeers; i++)
			if (x->peers[i] == p) {
				x->peers[i] = x->peers[--x->npeers];
				break;
			}
		peer_free(p);
		return;
	}
	if (p->again)
		start(x, p);
}

/* Flooding: every live remote bridgehead (of a connector with none live,
 * the next in turn). Anti-entropy: one per connector, live ones first. */
static void round_of(struct xlinks *x, bool flood)
{
	targets(x);
	for (size_t c = 0; c < x->nconns; c++) {
		struct xconn *xc = &x->conns[c];
		size_t live = 0;
		for (size_t i = 0; i < xc->n; i++)
			live += xc->peers[i]->live;
		if (flood && live > 0) {
			for (size_t i = 0; i < xc->n; i++)
				if (xc->peers[i]->live)
					start(x, xc->peers[i]);
			continue;
		}
		for (size_t k = 0; k < xc->n; k++) {
			struct xpeer *p = xc->peers[xc->next++ % xc->n];
			if ((live == 0 || p->live) && !penalized(x, p->server)) {
				start(x, p);
				break;
			}
		}
	}
}

static void arm_tick(struct xlinks *x)
{
	/* ± 10 %: bridgeheads started together do not stay in step */
	uint64_t iv = x->n->set.xlink_digest_interval_ms;
	uint64_t ms = iv - iv / 10 + (iv / 5 ? node_random(x->n) % (iv / 5 + 1) : 0);
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
	evtimer_add(x->tick, &tv);
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct xlinks *x = arg;
	round_of(x, false);
	arm_tick(x);
}

static void kick_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct xlinks *x = arg;
	for (size_t i = 0; i < x->ndrop; i++)
		probe_drop(x->probes, x->drop[i]);
	x->ndrop = 0;
	if (x->started && !x->kick_flood)
		return; /* only sessions to close */
	/* the first kick is the start's round of anti-entropy */
	bool flood = x->kick_flood;
	x->kick_flood = false;
	x->started = true;
	round_of(x, flood);
}

struct xlinks *xlinks_new(struct node *n)
{
	struct xlinks *x = mm_xcalloc(1, sizeof(*x));
	x->n = n;
	x->env = (struct mm_xlink_env){.ctx = x,
	                               .table = env_table,
	                               .group_of = env_group_of,
	                               .take = env_take,
	                               .log = env_log,
	                               .limit = (size_t)n->set.xlink_max_transfer};
	x->probes = probes_new(n, done, x);
	x->tick = evtimer_new(n->base, tick_cb, x);
	x->kick = event_new(n->base, -1, 0, kick_cb, x);
	/* at start, a round of anti-entropy: what changed while it was away */
	event_active(x->kick, 0, 0);
	arm_tick(x);
	return x;
}

void xlinks_table_changed(struct xlinks *x)
{
	if (x == NULL)
		return;
	uint8_t d[MM_DIGEST_LEN];
	mm_table_digest(routing_base(x->n), d);
	if (x->flooded && memcmp(d, x->digest, sizeof(d)) == 0)
		return;
	memcpy(x->digest, d, sizeof(d));
	/* the first digest is the start's: the start's round covers it */
	if (x->flooded) {
		x->kick_flood = true;
		event_active(x->kick, 0, 0);
	}
	x->flooded = true;
}

void xlinks_drop_sessions(struct xlinks *x)
{
	if (x == NULL)
		return;
	for (size_t i = 0; i < x->npeers; i++)
		if (!x->peers[i]->busy) {
			drop_later(x, x->peers[i]->conn);
			x->peers[i]->conn = 0;
		}
}

enum mm_xlink_result xlinks_serve(struct xlinks *x, struct mm_xlink_srv **slot, const char *peer,
                                  const char *arg, struct mm_buf *out)
{
	char q[300];
	if (x == NULL) {
		mm_buf_adds(out, "454 4.7.0 X-LINK2STATE: this server's routing engine is off\r\n");
		return MM_XLINK_ERROR;
	}
	int64_t left = penalized(x, peer);
	if (left > 0) {
		mm_buf_printf(out,
		              "454 4.7.0 X-LINK2STATE: %s sent an entry that failed a check; not "
		              "heard for %lld ms more\r\n",
		              mm_logfmt_quote(q, sizeof(q), peer), (long long)left);
		return MM_XLINK_ERROR;
	}
	if (*slot == NULL) {
		*slot = mm_xcalloc(1, sizeof(**slot));
		mm_xlink_srv_init(*slot, &x->env, peer);
	}
	enum mm_xlink_result r = mm_xlink_srv_command(*slot, arg, out);
	if (r == MM_XLINK_CLOSE)
		penalize(x, peer);
	return r;
}

void xlinks_session_free(struct mm_xlink_srv *s)
{
	if (s == NULL)
		return;
	mm_xlink_srv_free(s);
	free(s);
}

void xlinks_free(struct xlinks *x)
{
	if (x == NULL)
		return;
	probes_free(x->probes);
	event_free(x->tick);
	event_free(x->kick);
	conns_free(x);
	for (size_t i = 0; i < x->npeers; i++) {
		x->peers[i]->conn = 0; /* closed with the probes */
		peer_free(x->peers[i]);
	}
	free(x->peers);
	for (size_t i = 0; i < x->npen; i++)
		free(x->pen[i].server);
	free(x->pen);
	free(x->drop);
	free(x);
}
