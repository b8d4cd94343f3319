/* The routing group master machine (rgmaster/master.h) in virtual time.
 *
 * A world holds up to three master candidates, each with a fake
 * environment (timers, the frames it sent per connection, the connections
 * it closed, its dials, its persisted incarnation, its log), and a small
 * network between them: a dial reaches the other candidate unless the two
 * are cut apart, frames go through the real framing (mm_frame_encode, then
 * mm_frame_reader) in order, a close reaches the other side, a cut drops
 * frames silently. Members are scripted by the tests: they open
 * connections, send Hello, reports and probes, and read what the master
 * sent them; "alive" members send a Ping every 500 ms of virtual time.
 *
 * The first tests are tables of numbered steps (the events fed, the frames
 * that must come out, the state that must show), in the manner of a
 * conformance suite; the election tests drive several candidates in code.
 * Each test names, in a comment, the mutation of the machine it was seen to
 * catch. Links against the machine, linkstate, proto and libcrypto only
 * (ctest master_purity checks it). */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "alloc.h"
#include "buf.h"
#include "frame.h"
#include "master.h"
#include "synth.h"

/* --- the organization ---------------------------------------------------- */

/* Group G000000: servers S0-0, S0-1, S0-2 (virtual server SMTP each);
 * candidates M-A (priority 200), M-B and M-C (100 each: M-B before M-C),
 * or M-A alone; connector C0-0 to G000001 from S0-1 to S1-0, and SMTP
 * connector Internet (smtp:*) with bridgeheads on S0-0 and S0-2.
 * Group G000001: server S1-0, candidate M1. */
static void add_candidate(mm_entry *e, const char *name, uint32_t prio, const char *addr)
{
	Mailmesh__MasterCandidate *m = mm_xmalloc(sizeof(*m));
	mailmesh__master_candidate__init(m);
	m->name = mm_xstrdup(name);
	m->routing_address = mm_xstrdup(addr);
	m->priority = prio;
	e->masters = mm_xrealloc(e->masters, e->n_masters + 1, sizeof(*e->masters));
	e->masters[e->n_masters++] = m;
}

static void org_build(struct mm_directory *d, int ncand, uint32_t internet_cost, int nservers)
{
	*d = (struct mm_directory){0};
	mm_table_init(&d->table);
	d->org = mm_xstrdup("Test");
	mm_entry *g0 = synth_group(0, (unsigned)nservers), *g1 = synth_group(1, 1);
	add_candidate(g0, "M-A", 200, "127.0.9.1:691");
	if (ncand > 1)
		add_candidate(g0, "M-B", 100, "127.0.9.2:691");
	if (ncand > 2)
		add_candidate(g0, "M-C", 100, "127.0.9.3:691");
	g0->master = mm_xstrdup("M-A");
	add_candidate(g1, "M1", 100, "127.0.9.9:691");
	g1->master = mm_xstrdup("M1");
	synth_connector(g0, 0, 0, 1, 10, 1, 1);
	Mailmesh__Connector *c = mm_xmalloc(sizeof(*c));
	mailmesh__connector__init(c);
	c->name = mm_xstrdup("Internet");
	c->type = MAILMESH__CONNECTOR_TYPE__CONNECTOR_SMTP;
	c->cost = internet_cost;
	c->local_bridgeheads = mm_xcalloc(2, sizeof(*c->local_bridgeheads));
	c->local_bridgeheads[c->n_local_bridgeheads++] = synth_bridgehead(0, 0);
	c->local_bridgeheads[c->n_local_bridgeheads++] = synth_bridgehead(0, 2);
	g0->connectors = mm_xrealloc(g0->connectors, g0->n_connectors + 1, sizeof(*g0->connectors));
	g0->connectors[g0->n_connectors++] = c;
	mm_table_merge(&d->table, g0);
	mm_table_merge(&d->table, g1);
}

/* --- the world ----------------------------------------------------------- */

#define MAXN     3
#define MAXT     64
#define MAXEV    4096
#define MAXLINK  32
#define MAXMEM   32
#define WALL0    1790000060000LL /* 2026, in ms; w + 4 is a multiple of 64 */
#define INC_BASE 1790000060ULL   /* its seconds: versions print as w+N */

struct sent {
	uint32_t conn;
	Mailmesh__Frame *f;
	bool taken;
};

struct world;

struct fnode {
	struct world *w;
	int idx;
	const char *name;
	bool up;
	struct mm_master m;
	struct {
		uint64_t key;
		int64_t at;
		bool armed;
	} timers[MAXT];
	struct sent *sent;
	size_t nsent, capsent;
	uint32_t closed[256];
	size_t nclosed;
	uint64_t persisted;
	int persist_err;
	uint64_t persist_log[32];
	size_t npersist;
	size_t sent_at_persist[32]; /* frames sent before each persist */
	int64_t wall_skew;
	bool no_render; /* the table renderer fails */
	uint64_t rnd;
	uint32_t next_in;
	struct mm_buf log;
};

enum ev_kind { EV_DIAL, EV_DELIVER, EV_CLOSED };

struct event {
	enum ev_kind kind;
	int node;
	uint32_t conn;
	int peer;
	uint8_t *bytes;
	size_t len;
};

struct link {
	int a, b;
	uint32_t ca, cb;
	bool up;
};

struct member {
	int node;
	uint32_t conn;
	bool alive;
};

struct world {
	int64_t now;
	struct fnode n[MAXN];
	int nn;
	bool cut[MAXN][MAXN];
	struct event ev[MAXEV];
	size_t evhead, evtail;
	struct link links[MAXLINK];
	size_t nlinks;
	struct member mem[MAXMEM];
	size_t nmem;
	int64_t next_ping;
	struct mm_buf transcript; /* every frame sent, as bytes */
	struct mm_master_conf conf;
	struct mm_directory dir;
};

static void push_ev(struct world *w, struct event e)
{
	assert_true(w->evtail - w->evhead < MAXEV);
	w->ev[w->evtail++ % MAXEV] = e;
}

static struct link *link_of(struct world *w, int node, uint32_t conn, int *peer, uint32_t *pconn)
{
	for (size_t i = 0; i < w->nlinks; i++) {
		struct link *l = &w->links[i];
		if (!l->up)
			continue;
		if (l->a == node && l->ca == conn) {
			*peer = l->b, *pconn = l->cb;
			return l;
		}
		if (l->b == node && l->cb == conn) {
			*peer = l->a, *pconn = l->ca;
			return l;
		}
	}
	return NULL;
}

static struct member *member_of(struct world *w, int node, uint32_t conn)
{
	for (size_t i = 0; i < w->nmem; i++)
		if (w->mem[i].node == node && w->mem[i].conn == conn)
			return &w->mem[i];
	return NULL;
}

static int64_t f_now(void *ctx)
{
	return ((struct fnode *)ctx)->w->now;
}

static int64_t f_wall(void *ctx)
{
	struct fnode *n = ctx;
	return WALL0 + n->w->now + n->wall_skew;
}

static uint32_t f_random(void *ctx)
{
	struct fnode *n = ctx;
	n->rnd = n->rnd * 6364136223846793005ULL + 1442695040888963407ULL;
	return (uint32_t)(n->rnd >> 32);
}

static void f_arm(void *ctx, uint64_t key, int64_t at)
{
	struct fnode *n = ctx;
	int free_slot = -1;
	for (int i = 0; i < MAXT; i++) {
		if (n->timers[i].armed && n->timers[i].key == key) {
			n->timers[i].at = at;
			return;
		}
		if (!n->timers[i].armed && free_slot < 0)
			free_slot = i;
	}
	assert_true(free_slot >= 0);
	n->timers[free_slot].key = key;
	n->timers[free_slot].at = at;
	n->timers[free_slot].armed = true;
}

static void f_cancel(void *ctx, uint64_t key)
{
	struct fnode *n = ctx;
	for (int i = 0; i < MAXT; i++)
		if (n->timers[i].armed && n->timers[i].key == key)
			n->timers[i].armed = false;
}

static void f_send(void *ctx, uint32_t conn, const Mailmesh__Frame *f)
{
	struct fnode *n = ctx;
	struct world *w = n->w;
	size_t len;
	uint8_t *b = mm_frame_encode(f, &len);
	mm_buf_printf(&w->transcript, "%d %" PRIu32 " ", n->idx, conn);
	for (size_t i = 0; i < len; i++)
		mm_buf_printf(&w->transcript, "%02x", b[i]);
	mm_buf_adds(&w->transcript, "\n");
	/* read back through the real reader: what a peer would get */
	struct mm_frame_reader r;
	mm_frame_reader_init(&r, MM_FRAME_LIMIT_DEFAULT);
	Mailmesh__Frame *g = NULL;
	assert_int_equal(mm_frame_feed(&r, b, len), MM_FRAME_NEED_MORE);
	assert_int_equal(mm_frame_next(&r, &g), MM_FRAME_OK);
	mm_frame_reader_free(&r);
	mm_grow(&n->sent, &n->capsent, n->nsent + 1, sizeof(*n->sent));
	n->sent[n->nsent++] = (struct sent){conn, g, false};
	int peer;
	uint32_t pconn;
	if (link_of(w, n->idx, conn, &peer, &pconn) && !w->cut[n->idx][peer])
		push_ev(w, (struct event){EV_DELIVER, peer, pconn, n->idx, b, len});
	else
		free(b);
}

static void f_close(void *ctx, uint32_t conn, const char *why)
{
	(void)why;
	struct fnode *n = ctx;
	struct world *w = n->w;
	assert_true(n->nclosed < 256);
	n->closed[n->nclosed++] = conn;
	int peer;
	uint32_t pconn;
	struct link *l = link_of(w, n->idx, conn, &peer, &pconn);
	if (l) {
		l->up = false;
		if (!w->cut[n->idx][peer])
			push_ev(w, (struct event){EV_CLOSED, peer, pconn, n->idx, NULL, 0});
	}
	struct member *mb = member_of(w, n->idx, conn);
	if (mb)
		mb->alive = false;
}

static void f_dial(void *ctx, uint32_t conn, const char *cand, const char *addr)
{
	(void)addr;
	struct fnode *n = ctx;
	int peer = -1;
	for (int i = 0; i < n->w->nn; i++)
		if (strcmp(n->w->n[i].name, cand) == 0)
			peer = i;
	push_ev(n->w, (struct event){EV_DIAL, n->idx, conn, peer, NULL, 0});
}

static int f_persist(void *ctx, uint64_t inc)
{
	struct fnode *n = ctx;
	if (n->persist_err)
		return n->persist_err;
	assert_true(n->npersist < 32);
	n->sent_at_persist[n->npersist] = n->nsent;
	n->persist_log[n->npersist++] = inc;
	n->persisted = inc;
	return 0;
}

static void f_log(void *ctx, const char *line)
{
	struct fnode *n = ctx;
	mm_buf_printf(&n->log, "%s\n", line);
}

static char *f_render(void *ctx, const struct mm_table *t, const char *server, const char *role,
                      bool json)
{
	struct fnode *n = ctx;
	if (n->no_render)
		return NULL;
	char buf[256];
	if (json)
		snprintf(buf, sizeof(buf), "{\"server\":\"%s\",\"role\":\"%s\",\"groups\":%zu}",
		         server, role, t->n);
	else
		snprintf(buf, sizeof(buf), "table of %zu groups by %s (%s)", t->n, server, role);
	return mm_xstrdup(buf);
}

static const char *const node_names[MAXN] = {"M-A", "M-B", "M-C"};

static void node_boot(struct world *w, int i, uint64_t persisted)
{
	struct fnode *n = &w->n[i];
	n->up = true;
	n->persisted = persisted;
	memset(n->timers, 0, sizeof(n->timers));
	struct mm_master_env env = {.ctx = n,
	                            .now_ms = f_now,
	                            .wall_ms = f_wall,
	                            .random = f_random,
	                            .timer_arm = f_arm,
	                            .timer_cancel = f_cancel,
	                            .send = f_send,
	                            .close = f_close,
	                            .dial = f_dial,
	                            .persist_incarnation = f_persist,
	                            .log = f_log,
	                            .table_render = f_render};
	mm_master_init(&n->m, &w->conf, &env, n->name);
	assert_true(mm_master_start(&n->m, &w->dir, persisted));
}

/* A world of ncand candidates, all started at virtual time 1000 (those
 * beyond `boot` are not started). */
static struct world *world_new(int ncand, int boot)
{
	struct world *w = mm_xcalloc(1, sizeof(*w));
	w->now = 1000;
	w->next_ping = 1500;
	mm_master_conf_default(&w->conf);
	org_build(&w->dir, ncand, 5, 3);
	w->nn = ncand;
	for (int i = 0; i < ncand; i++) {
		struct fnode *n = &w->n[i];
		n->w = w;
		n->idx = i;
		n->name = node_names[i];
		n->rnd = 7 + (uint64_t)i;
		n->next_in = 100;
	}
	for (int i = 0; i < boot; i++)
		node_boot(w, i, 0);
	return w;
}

static void node_clear(struct fnode *n)
{
	for (size_t i = 0; i < n->nsent; i++)
		mailmesh__frame__free_unpacked(n->sent[i].f, NULL);
	free(n->sent);
	n->sent = NULL;
	n->nsent = n->capsent = 0;
}

/* The process dies: its peers see their connections close. */
static void node_kill(struct world *w, int i)
{
	struct fnode *n = &w->n[i];
	for (size_t k = 0; k < w->nlinks; k++) {
		struct link *l = &w->links[k];
		if (!l->up || (l->a != i && l->b != i))
			continue;
		l->up = false;
		int peer = l->a == i ? l->b : l->a;
		uint32_t pconn = l->a == i ? l->cb : l->ca;
		if (!w->cut[i][peer])
			push_ev(w, (struct event){EV_CLOSED, peer, pconn, i, NULL, 0});
	}
	for (size_t k = 0; k < w->nmem; k++)
		if (w->mem[k].node == i)
			w->mem[k].alive = false;
	mm_master_free(&n->m);
	n->up = false;
}

static void world_free(struct world *w)
{
	while (w->evhead < w->evtail)
		free(w->ev[w->evhead++ % MAXEV].bytes);
	for (int i = 0; i < w->nn; i++) {
		if (w->n[i].up)
			mm_master_free(&w->n[i].m);
		node_clear(&w->n[i]);
		mm_buf_free(&w->n[i].log);
	}
	mm_directory_free(&w->dir);
	mm_buf_free(&w->transcript);
	free(w);
}

/* Deliver every event queued, and those they cause. */
static void pump(struct world *w)
{
	while (w->evhead < w->evtail) {
		struct event e = w->ev[w->evhead++ % MAXEV];
		struct fnode *n = &w->n[e.node];
		if (!n->up) {
			free(e.bytes);
			continue;
		}
		switch (e.kind) {
		case EV_DIAL: {
			if (e.peer < 0 || !w->n[e.peer].up || w->cut[e.node][e.peer]) {
				mm_master_conn_closed(&n->m, e.conn);
				break;
			}
			struct fnode *p = &w->n[e.peer];
			uint32_t pc = p->next_in++;
			assert_true(w->nlinks < MAXLINK);
			size_t k;
			for (k = 0; k < w->nlinks && w->links[k].up; k++)
				;
			if (k == w->nlinks)
				w->nlinks++;
			w->links[k] = (struct link){e.node, e.peer, e.conn, pc, true};
			struct mm_peer_id pid = {n->name, MM_PEER_MASTER},
			                  did = {p->name, MM_PEER_MASTER};
			mm_master_conn_open(&p->m, pc, &pid, false, NULL);
			mm_master_conn_open(&n->m, e.conn, &did, true, p->name);
			break;
		}
		case EV_DELIVER: {
			struct mm_frame_reader r;
			mm_frame_reader_init(&r, MM_FRAME_LIMIT_DEFAULT);
			Mailmesh__Frame *f = NULL;
			mm_frame_feed(&r, e.bytes, e.len);
			assert_int_equal(mm_frame_next(&r, &f), MM_FRAME_OK);
			mm_frame_reader_free(&r);
			free(e.bytes);
			mm_master_frame(&n->m, e.conn, f);
			mailmesh__frame__free_unpacked(f, NULL);
			break;
		}
		case EV_CLOSED: mm_master_conn_closed(&n->m, e.conn); break;
		}
	}
}

static void member_frame(struct world *w, int node, uint32_t conn, Mailmesh__Frame *f);

/* Fire every timer due up to t, in time order (nodes in order at equal
 * times), moving the clock; alive members ping every 500 ms. */
static void run_until(struct world *w, int64_t t)
{
	pump(w);
	for (;;) {
		int bn = -1, bi = -1;
		for (int n = 0; n < w->nn; n++) {
			if (!w->n[n].up)
				continue;
			for (int i = 0; i < MAXT; i++)
				if (w->n[n].timers[i].armed && w->n[n].timers[i].at <= t &&
				    (bn < 0 || w->n[n].timers[i].at < w->n[bn].timers[bi].at))
					bn = n, bi = i;
		}
		int64_t at = bn >= 0 ? w->n[bn].timers[bi].at : t + 1;
		if (w->next_ping <= t && w->next_ping <= at) {
			if (w->next_ping > w->now)
				w->now = w->next_ping;
			w->next_ping += 500;
			for (size_t k = 0; k < w->nmem; k++)
				if (w->mem[k].alive && w->n[w->mem[k].node].up) {
					Mailmesh__Ping p = MAILMESH__PING__INIT;
					Mailmesh__Frame f = MAILMESH__FRAME__INIT;
					f.body_case = MAILMESH__FRAME__BODY_PING;
					f.ping = &p;
					member_frame(w, w->mem[k].node, w->mem[k].conn, &f);
				}
			pump(w);
			continue;
		}
		if (bn < 0)
			break;
		if (at > w->now)
			w->now = at;
		w->n[bn].timers[bi].armed = false;
		mm_master_timer(&w->n[bn].m, w->n[bn].timers[bi].key);
		pump(w);
	}
	if (t > w->now)
		w->now = t;
}

static void advance(struct world *w, int64_t ms)
{
	run_until(w, w->now + ms);
}

/* --- members ------------------------------------------------------------- */

static void member_frame(struct world *w, int node, uint32_t conn, Mailmesh__Frame *f)
{
	/* through the real framing, as the driver's reader would give it */
	size_t len;
	uint8_t *b = mm_frame_encode(f, &len);
	struct mm_frame_reader r;
	mm_frame_reader_init(&r, MM_FRAME_LIMIT_DEFAULT);
	Mailmesh__Frame *g = NULL;
	mm_frame_feed(&r, b, len);
	assert_int_equal(mm_frame_next(&r, &g), MM_FRAME_OK);
	mm_frame_reader_free(&r);
	free(b);
	mm_master_frame(&w->n[node].m, conn, g);
	mailmesh__frame__free_unpacked(g, NULL);
	pump(w);
}

/* kind: 's' server, 'm' master, 'a' admin, 0: no certificate */
static void member_open(struct world *w, int node, uint32_t conn, char kind, const char *name)
{
	struct mm_peer_id id = {name, kind == 'm'   ? MM_PEER_MASTER
	                              : kind == 'a' ? MM_PEER_ADMIN
	                                            : MM_PEER_SERVER};
	mm_master_conn_open(&w->n[node].m, conn, kind ? &id : NULL, false, NULL);
	assert_true(w->nmem < MAXMEM);
	struct member *mb = member_of(w, node, conn);
	if (mb == NULL)
		mb = &w->mem[w->nmem++];
	*mb = (struct member){node, conn, false};
	pump(w);
}

static void member_hello_v(struct world *w, int node, uint32_t conn, int role, const char *name,
                           const char *group, uint32_t major, const Mailmesh__Version *v,
                           uint64_t seen)
{
	Mailmesh__Hello h = MAILMESH__HELLO__INIT;
	h.name = (char *)name;
	h.group = (char *)group;
	h.proto_major = major;
	h.proto_minor = 3;
	h.role = role;
	h.version = (Mailmesh__Version *)v;
	h.incarnation_seen = seen;
	Mailmesh__Frame f = MAILMESH__FRAME__INIT;
	f.body_case = MAILMESH__FRAME__BODY_HELLO;
	f.hello = &h;
	struct member *mb = member_of(w, node, conn);
	if (mb)
		mb->alive = true;
	member_frame(w, node, conn, &f);
}

static void member_hello(struct world *w, int node, uint32_t conn, const char *name)
{
	member_hello_v(w, node, conn, MAILMESH__ROLE__ROLE_NODE, name, "G000000", 1, NULL, 0);
}

static void member_silent(struct world *w, int node, uint32_t conn)
{
	struct member *mb = member_of(w, node, conn);
	assert_non_null(mb);
	mb->alive = false;
}

/* A report: changes as "server:down", "bh:CONNECTOR/SERVER/VS:up",
 * "conn:NAME:down", separated by spaces; snapshot as told. */
static void member_report(struct world *w, int node, uint32_t conn, const char *reporter,
                          const char *changes, bool snapshot)
{
	Mailmesh__ObjectState os[8], *po[8];
	char buf[8][3][64];
	size_t n = 0;
	char spec[512];
	snprintf(spec, sizeof(spec), "%s", changes ? changes : "");
	for (char *save = NULL, *tok = strtok_r(spec, " ", &save); tok;
	     tok = strtok_r(NULL, " ", &save)) {
		assert_true(n < 8);
		mailmesh__object_state__init(&os[n]);
		char *last = strrchr(tok, ':');
		assert_non_null(last);
		os[n].down = strcmp(last + 1, "down") == 0;
		*last = '\0';
		if (strncmp(tok, "bh:", 3) == 0) {
			os[n].kind = MAILMESH__OBJECT_STATE__KIND__BRIDGEHEAD;
			assert_int_equal(sscanf(tok + 3, "%63[^/]/%63[^/]/%63s", buf[n][0],
			                        buf[n][1], buf[n][2]),
			                 3);
			os[n].name = buf[n][0];
			os[n].server = buf[n][1];
			os[n].virtual_server = buf[n][2];
		} else if (strncmp(tok, "conn:", 5) == 0) {
			os[n].kind = MAILMESH__OBJECT_STATE__KIND__CONNECTOR;
			snprintf(buf[n][0], 64, "%s", tok + 5);
			os[n].name = buf[n][0];
		} else {
			os[n].kind = MAILMESH__OBJECT_STATE__KIND__SERVER;
			snprintf(buf[n][0], 64, "%s", tok);
			os[n].name = buf[n][0];
		}
		po[n] = &os[n];
		n++;
	}
	Mailmesh__StateReport r = MAILMESH__STATE_REPORT__INIT;
	r.reporter = (char *)reporter;
	r.n_changes = n;
	r.changes = po;
	r.snapshot = snapshot;
	Mailmesh__Frame f = MAILMESH__FRAME__INIT;
	f.body_case = MAILMESH__FRAME__BODY_STATE_REPORT;
	f.state_report = &r;
	member_frame(w, node, conn, &f);
}

/* A member says hello and reports everything up. */
static void member_join(struct world *w, int node, uint32_t conn, const char *server)
{
	member_open(w, node, conn, 's', server);
	member_hello(w, node, conn, server);
	member_report(w, node, conn, server, NULL, true);
}

/* --- what came out -------------------------------------------------------- */

static void version_str(char *out, size_t n, const Mailmesh__Version *v)
{
	if (v == NULL) {
		snprintf(out, n, "-");
		return;
	}
	char inc[32];
	if (v->incarnation >= INC_BASE)
		snprintf(inc, sizeof(inc), "w+%" PRIu64, (uint64_t)(v->incarnation - INC_BASE));
	else
		snprintf(inc, sizeof(inc), "%" PRIu64, v->incarnation);
	snprintf(out, n, "%s.%" PRIu64 ".%" PRIu64 ".%" PRIu64, inc, v->major, v->minor, v->user);
}

static void frame_str(struct mm_buf *b, const Mailmesh__Frame *f)
{
	char v[64];
	switch (f->body_case) {
	case MAILMESH__FRAME__BODY_HELLO:
		if (f->hello->master_state == MAILMESH__MASTER_STATE__MASTER_ACTIVE)
			mm_buf_adds(b, "Hello(ACTIVE)");
		else
			mm_buf_printf(b, "Hello(STANDBY:%s)", f->hello->active_master);
		break;
	case MAILMESH__FRAME__BODY_TABLE_PUSH:
		mm_buf_adds(b, f->table_push->full ? "Push(full" : "Push(delta");
		for (size_t i = 0; i < f->table_push->n_entries; i++) {
			version_str(v, sizeof(v), f->table_push->entries[i]->version);
			mm_buf_printf(b, " %s@%s", f->table_push->entries[i]->name, v);
		}
		mm_buf_adds(b, ")");
		break;
	case MAILMESH__FRAME__BODY_DIGEST_PROBE:
		mm_buf_printf(b, "Probe(%zu)", f->digest_probe->n_entries);
		break;
	case MAILMESH__FRAME__BODY_REPLY: {
		/* the body, its final newline left out */
		size_t l = strlen(f->reply->json);
		if (l > 0 && f->reply->json[l - 1] == '\n')
			l--;
		mm_buf_printf(b, "Reply(%d %.*s)", f->reply->status, (int)l, f->reply->json);
		break;
	}
	case MAILMESH__FRAME__BODY_PING: mm_buf_adds(b, "Ping"); break;
	case MAILMESH__FRAME__BODY_PONG: mm_buf_adds(b, "Pong"); break;
	default: mm_buf_printf(b, "Frame(%d)", (int)f->body_case); break;
	}
}

/* The frames node sent on conn since the last take, Ping and Pong left
 * out, space-separated; a static-free buffer of the caller's. */
static const char *take(struct world *w, int node, uint32_t conn, struct mm_buf *b)
{
	struct fnode *n = &w->n[node];
	mm_buf_reset(b);
	mm_buf_adds(b, "");
	for (size_t i = 0; i < n->nsent; i++) {
		struct sent *s = &n->sent[i];
		if (s->conn != conn || s->taken)
			continue;
		s->taken = true;
		if (s->f->body_case == MAILMESH__FRAME__BODY_PING ||
		    s->f->body_case == MAILMESH__FRAME__BODY_PONG)
			continue;
		if (b->len)
			mm_buf_adds(b, " ");
		frame_str(b, s->f);
	}
	return b->p;
}

#define EXPECT_TAKE(w, node, conn, want)                                                     \
	do {                                                                                 \
		struct mm_buf tb_ = {0};                                                     \
		const char *got_ = take(w, node, conn, &tb_);                                \
		if (strcmp(got_, want) != 0)                                                 \
			fail_msg("%s:%d: conn %u of %s sent \"%s\", want \"%s\"", __FILE__,  \
			         __LINE__, (unsigned)(conn), (w)->n[node].name, got_, want); \
		mm_buf_free(&tb_);                                                           \
	} while (0)

static bool was_closed(struct world *w, int node, uint32_t conn)
{
	for (size_t i = 0; i < w->n[node].nclosed; i++)
		if (w->n[node].closed[i] == conn)
			return true;
	return false;
}

static bool logged(struct world *w, int node, const char *what)
{
	return w->n[node].log.p && strstr(w->n[node].log.p, what) != NULL;
}

/* Our group's entry as the machine makes it (while active: before it is
 * published too), else as it holds it. */
static const mm_entry *own(struct world *w, int node)
{
	const struct mm_master *m = &w->n[node].m;
	return m->own ? m->own : mm_master_entry(m);
}

static const char *own_version(struct world *w, int node, char buf[64])
{
	version_str(buf, 64, own(w, node)->version);
	return buf;
}

static bool server_down(struct world *w, int node, const char *s)
{
	const mm_entry *e = own(w, node);
	for (size_t i = 0; i < e->n_servers; i++)
		if (strcmp(e->servers[i]->name, s) == 0)
			return e->servers[i]->down;
	fail_msg("no server %s", s);
	return false;
}

static bool bh_down(struct world *w, int node, const char *conn, const char *server)
{
	const mm_entry *e = own(w, node);
	for (size_t i = 0; i < e->n_connectors; i++)
		if (strcmp(e->connectors[i]->name, conn) == 0)
			for (size_t j = 0; j < e->connectors[i]->n_local_bridgeheads; j++)
				if (strcmp(e->connectors[i]->local_bridgeheads[j]->server,
				           server) == 0)
					return e->connectors[i]->local_bridgeheads[j]->down;
	fail_msg("no bridgehead %s on %s", server, conn);
	return false;
}

/* --- steps --------------------------------------------------------------- */

enum op {
	OPEN,  /* conn, a: "s:NAME", "m:NAME", "a:NAME" (the certificate) or "-" (none) */
	HELLO, /* conn, a: "ROLE NAME GROUP MAJOR [SEEN]", ROLE node|master|admin, GROUP - for "" */
	REPORT,    /* conn, a: reporter, b: changes (member_report), x: snapshot */
	PING,      /* conn: a Ping */
	QUERY,     /* conn, a: "COMMAND ARG...", "-" an empty word */
	PROBE,     /* conn, a: "equal" (our digest) or "stale" (holds G000000@0.1.0.0 only) */
	SILENT,    /* conn: the member stops talking */
	GONE,      /* conn: the peer closed it */
	ADVANCE,   /* x ms of virtual time */
	SIGHUP,    /* a: "COST SERVERS": a new directory (Internet's cost, servers of G000000) */
	SENT,      /* conn, a: the frames sent on conn since the last SENT of conn */
	CLOSED,    /* conn: the machine closed it */
	VERSION,   /* a: our entry's version, as "w+4.1.0.0" */
	SERVER,    /* a: server, x: down */
	BH,        /* a: connector, b: server, x: down */
	LOG,       /* a: a piece of the log */
	NO_LEARN,  /* nothing learned: the highest incarnation seen is ours */
	MEMBERS,   /* x: member sessions */
	PUBLISHED, /* x: published */
};

struct step {
	int n;
	enum op op;
	uint32_t conn;
	const char *a, *b;
	int64_t x;
};

static int role_of(const char *s)
{
	return strcmp(s, "node") == 0     ? MAILMESH__ROLE__ROLE_NODE
	       : strcmp(s, "master") == 0 ? MAILMESH__ROLE__ROLE_MASTER
	       : strcmp(s, "admin") == 0  ? MAILMESH__ROLE__ROLE_ADMIN
	                                  : 9;
}

static void probe_frame(struct world *w, int node, uint32_t conn, bool equal)
{
	struct mm_master *m = &w->n[node].m;
	Mailmesh__EntrySummary s[4], *ps[4];
	uint8_t zero[MM_DIGEST_LEN] = {0};
	Mailmesh__DigestProbe p = MAILMESH__DIGEST_PROBE__INIT;
	if (equal) {
		const struct mm_table *t = mm_master_table(m);
		for (size_t i = 0; i < t->n && i < 4; i++) {
			mailmesh__entry_summary__init(&s[i]);
			s[i].group = t->entries[i]->name;
			s[i].version = t->entries[i]->version;
			ps[i] = &s[i];
			p.n_entries++;
		}
		p.digest.data = m->digest;
	} else {
		/* holds our entry at its version with other content, lacks
		 * G000001 */
		mailmesh__entry_summary__init(&s[0]);
		s[0].group = "G000000";
		s[0].version = mm_master_entry(m)->version;
		s[0].content_digest = (ProtobufCBinaryData){MM_DIGEST_LEN, zero};
		ps[0] = &s[0];
		p.n_entries = 1;
		p.digest.data = zero;
	}
	p.digest.len = MM_DIGEST_LEN;
	p.entries = ps;
	Mailmesh__Frame f = MAILMESH__FRAME__INIT;
	f.body_case = MAILMESH__FRAME__BODY_DIGEST_PROBE;
	f.digest_probe = &p;
	member_frame(w, node, conn, &f);
}

static void run_steps(struct world *w, int node, const struct step *st, size_t count)
{
	struct mm_master *m = &w->n[node].m;
	char buf[64];
	for (size_t i = 0; i < count; i++) {
		const struct step *s = &st[i];
		switch (s->op) {
		case OPEN:
			member_open(w, node, s->conn, s->a[0] == '-' ? 0 : s->a[0],
			            s->a[0] == '-' ? NULL : s->a + 2);
			break;
		case HELLO: {
			char role[16], name[64], group[64];
			unsigned major = 0;
			unsigned long long seen = 0;
			int k = sscanf(s->a, "%15s %63s %63s %u %llu", role, name, group, &major,
			               &seen);
			assert_true(k >= 4);
			member_hello_v(w, node, s->conn, role_of(role), name,
			               strcmp(group, "-") == 0 ? "" : group, major, NULL, seen);
			break;
		}
		case REPORT: member_report(w, node, s->conn, s->a, s->b, s->x != 0); break;
		case PING: {
			Mailmesh__Ping p = MAILMESH__PING__INIT;
			Mailmesh__Frame f = MAILMESH__FRAME__INIT;
			f.body_case = MAILMESH__FRAME__BODY_PING;
			f.ping = &p;
			member_frame(w, node, s->conn, &f);
			break;
		}
		case QUERY: {
			/* "COMMAND ARG...", space-separated; "-" for an empty one */
			char words[256], *args[8], *save = NULL;
			size_t nw = 0;
			snprintf(words, sizeof(words), "%s", s->a);
			for (char *t = strtok_r(words, " ", &save); t && nw < 8;
			     t = strtok_r(NULL, " ", &save))
				args[nw++] = strcmp(t, "-") == 0 ? (char *)"" : t;
			assert_true(nw >= 1);
			Mailmesh__Query q = MAILMESH__QUERY__INIT;
			q.command = args[0];
			q.n_args = nw - 1;
			q.args = args + 1;
			Mailmesh__Frame f = MAILMESH__FRAME__INIT;
			f.body_case = MAILMESH__FRAME__BODY_QUERY;
			f.query = &q;
			member_frame(w, node, s->conn, &f);
			break;
		}
		case PROBE: probe_frame(w, node, s->conn, strcmp(s->a, "equal") == 0); break;
		case SILENT: member_silent(w, node, s->conn); break;
		case GONE:
			member_silent(w, node, s->conn);
			mm_master_conn_closed(m, s->conn);
			pump(w);
			break;
		case ADVANCE: advance(w, s->x); break;
		case SIGHUP: {
			unsigned cost = 0, servers = 0;
			assert_int_equal(sscanf(s->a, "%u %u", &cost, &servers), 2);
			struct mm_directory d;
			org_build(&d, 1, cost, (int)servers);
			assert_true(mm_master_directory(m, &d));
			mm_directory_free(&d);
			pump(w);
			break;
		}
		case SENT: {
			struct mm_buf tb = {0};
			const char *got = take(w, node, s->conn, &tb);
			if (strcmp(got, s->a) != 0)
				fail_msg("step %d: conn %u sent \"%s\", want \"%s\"\nlog:\n%s",
				         s->n, (unsigned)s->conn, got, s->a, w->n[node].log.p);
			mm_buf_free(&tb);
			break;
		}
		case CLOSED:
			if (!was_closed(w, node, s->conn))
				fail_msg("step %d: conn %u is not closed\nlog:\n%s", s->n,
				         (unsigned)s->conn, w->n[node].log.p);
			break;
		case VERSION:
			if (strcmp(own_version(w, node, buf), s->a) != 0)
				fail_msg("step %d: version %s, want %s\nlog:\n%s", s->n, buf, s->a,
				         w->n[node].log.p);
			break;
		case SERVER:
			if (server_down(w, node, s->a) != (s->x != 0))
				fail_msg("step %d: server %s is %s", s->n, s->a,
				         s->x ? "up" : "down");
			break;
		case BH:
			if (bh_down(w, node, s->a, s->b) != (s->x != 0))
				fail_msg("step %d: bridgehead %s on %s is %s", s->n, s->b, s->a,
				         s->x ? "up" : "down");
			break;
		case LOG:
			if (!logged(w, node, s->a))
				fail_msg("step %d: no \"%s\" in the log:\n%s", s->n, s->a,
				         w->n[node].log.p);
			break;
		case NO_LEARN:
			if (m->highest_seen != m->incarnation || m->incarnation != INC_BASE + 4)
				fail_msg("step %d: highest seen %" PRIu64 ", incarnation %" PRIu64,
				         s->n, m->highest_seen, m->incarnation);
			break;
		case MEMBERS:
			if (mm_master_members(m) != (size_t)s->x)
				fail_msg("step %d: %zu members, want %d", s->n,
				         mm_master_members(m), (int)s->x);
			break;
		case PUBLISHED:
			if (mm_master_published(m) != (s->x != 0))
				fail_msg("step %d: published is %d", s->n,
				         (int)mm_master_published(m));
			break;
		}
	}
}

#define RUN(w, node, steps) run_steps(w, node, steps, sizeof(steps) / sizeof(steps[0]))

/* A group with M-A alone, active since 4000 (incarnation w+4), in its
 * grace until 7000. */
static struct world *single_active(void)
{
	struct world *w = mm_xcalloc(1, sizeof(*w));
	w->now = 1000;
	w->next_ping = 1500;
	mm_master_conf_default(&w->conf);
	org_build(&w->dir, 1, 5, 3);
	w->nn = 1;
	w->n[0] = (struct fnode){.w = w, .idx = 0, .name = "M-A", .rnd = 7, .next_in = 100};
	node_boot(w, 0, 0);
	advance(w, 3000);
	assert_int_equal(mm_master_role(&w->n[0].m), MM_MASTER_ACTIVE);
	return w;
}

/* G000001 is the directory's baseline (incarnation 0): it never travels */
#define FULL0(v) "Push(full G000000@" v ")"

/* Hello checks: a certificate naming another server, a node certificate
 * speaking as a master, a master certificate speaking as a node, an
 * unknown server, a server of another group, ourselves, an unknown major,
 * a frame before Hello, a second Hello, an admin sending more than Query:
 * each closed with a logged reason, and nothing it said is learned.
 * Mutations seen caught: cert_ok() returning true always (steps 3, 8, 27);
 * the group compare dropped from the node check (step 16); the major check
 * dropped (step 19); the "before Hello" close dropped (step 23); a second
 * Hello from a node accepted (step 33); mm_m_evidence() called before the
 * Hello checks (step 46). */
static const struct step hello_steps[] = {
    {1, OPEN, 1, "s:S0-0"},
    {2, HELLO, 1, "node S0-1 G000000 1 9000000000"},
    {3, CLOSED, 1},
    {4, LOG, 0, "Hello speaks as server \"S0-1\", the certificate names server \"S0-0\""},
    {5, REPORT, 1, "S0-1", "S0-1:down", 0}, /* on a closed connection: nothing */
    {6, OPEN, 2, "s:S0-0"},
    {7, HELLO, 2, "master M-B G000000 1"},
    {8, CLOSED, 2},
    {9, LOG, 0, "Hello speaks as master \"M-B\", the certificate names server \"S0-0\""},
    {10, OPEN, 3, "-"},
    {11, HELLO, 3, "node S9-9 G000000 1"},
    {12, CLOSED, 3},
    {13, LOG, 0, "Hello from server \"S9-9\" of group \"G000000\": not a server of group"},
    {14, OPEN, 4, "-"},
    {15, HELLO, 4, "node S0-0 G000001 1"},
    {16, CLOSED, 4},
    {17, OPEN, 5, "-"},
    {18, HELLO, 5, "node S0-0 G000000 2"},
    {19, CLOSED, 5},
    {20, LOG, 0, "protocol major 2 is unknown (this master speaks 1.0)"},
    {21, OPEN, 6, "-"},
    {22, PING, 6},
    {23, CLOSED, 6},
    {24, LOG, 0, "a frame (body 9) before Hello"},
    {25, OPEN, 7, "m:M-B"},
    {26, HELLO, 7, "node S0-2 G000000 1"},
    {27, CLOSED, 7},
    {28, OPEN, 8, "s:S0-0"},
    {29, HELLO, 8, "node S0-0 G000000 1"},
    {30, SENT, 8, "Hello(ACTIVE)"},
    {31, MEMBERS, 0, NULL, NULL, 1},
    {32, HELLO, 8, "node S0-0 G000000 1"},
    {33, CLOSED, 8},
    {34, LOG, 0, "a second Hello"},
    {35, MEMBERS, 0, NULL, NULL, 0},
    {36, OPEN, 9, "-"},
    {37, HELLO, 9, "master M-A G000000 1"},
    {38, CLOSED, 9},
    {39, OPEN, 10, "a:ops"},
    {40, HELLO, 10, "admin ops - 1"},
    {41, SENT, 10, "Hello(ACTIVE)"},
    {42, QUERY, 10, "table json"},
    {43, SENT, 10, "Reply(0 {\"server\":\"M-A\",\"role\":\"master-active\",\"groups\":2})"},
    {44, QUERY, 10, "freeze json q1"},
    {45, SENT, 10,
     "Reply(64 {\"server\":\"M-A\",\"role\":\"master-active\",\"error\":\"freeze is a node's "
     "command: a master answers table only (--connect to a server's routing address)\"})"},
    {46, NO_LEARN},
    {47, REPORT, 10, "ops", "ops:down", 0},
    {48, CLOSED, 10},
    {49, LOG, 0, "an admin sends only Query"},
    {50, OPEN, 11, "-"},
    {51, HELLO, 11, "robot S0-0 G000000 1"},
    {52, CLOSED, 11},
    {53, LOG, 0, "unknown role 9"},
    {54, VERSION, 0, "w+4.1.0.1"}, /* S0-0's session ended at step 33 */
    {55, SERVER, 0, "S0-0", NULL, 1},
    {56, SERVER, 0, "S0-1", NULL, 0}, /* the grace keeps its last state */
};

static void test_hello_checks(void **state)
{
	(void)state;
	struct world *w = single_active();
	RUN(w, 0, hello_steps);
	world_free(w);
}

/* Queries (docs/protocol.md "Queries"): args[0] is the format; table in
 * JSON and in text, from a node's session too; the format missing or
 * unknown, an argument too many, a node's verb, an unknown command, each
 * 64 with the error in the format asked for (JSON when it is not known); a
 * renderer that fails, 69; an unknown command's name quoted.
 * Mutations seen caught: the format ignored (text asked, JSON sent: step
 * 5); no check of args[0] (step 7, 9); table's extra argument accepted
 * (step 11); the error always in JSON (step 13); the command name not
 * quoted (step 15); 69 turned into 0 with an empty body (step 19). */
static const struct step query_steps[] = {
    {1, OPEN, 1, "a:ops"},
    {2, HELLO, 1, "admin ops - 1"},
    {3, SENT, 1, "Hello(ACTIVE)"},
    {4, QUERY, 1, "table text"},
    {5, SENT, 1, "Reply(0 table of 2 groups by M-A (master-active))"},
    {6, QUERY, 1, "table"},
    {7, SENT, 1,
     "Reply(64 {\"server\":\"M-A\",\"role\":\"master-active\",\"error\":\"a query's first "
     "argument is its output format, json or text, not \\\"\\\"\"})"},
    {8, QUERY, 1, "table xml"},
    {9, SENT, 1,
     "Reply(64 {\"server\":\"M-A\",\"role\":\"master-active\",\"error\":\"a query's first "
     "argument is its output format, json or text, not \\\"xml\\\"\"})"},
    {10, QUERY, 1, "table json extra"},
    {11, SENT, 1,
     "Reply(64 {\"server\":\"M-A\",\"role\":\"master-active\",\"error\":\"table takes no "
     "argument after its format\"})"},
    {12, QUERY, 1, "route text bob@example.test"},
    {13, SENT, 1,
     "Reply(64 rgmaster \"M-A\": route is a node's command: a master answers table only "
     "(--connect to a server's routing address))"},
    {14, QUERY, 1, "x\"y text"},
    {15, SENT, 1, "Reply(64 rgmaster \"M-A\": unknown command \"x\\\"y\": a master answers table)"},
    {16, OPEN, 2, "s:S0-0"},
    {17, HELLO, 2, "node S0-0 G000000 1"},
    {18, SENT, 2, "Hello(ACTIVE)"},
    {19, QUERY, 2, "table json"},
    {20, SENT, 2, "Reply(0 {\"server\":\"M-A\",\"role\":\"master-active\",\"groups\":2})"},
    {21, MEMBERS, 0, NULL, NULL, 1},
};

static void test_queries(void **state)
{
	(void)state;
	struct world *w = single_active();
	RUN(w, 0, query_steps);
	/* a renderer that fails: 69, the error in the format asked for */
	w->n[0].no_render = true;
	static const struct step fail_steps[] = {
	    {1, QUERY, 1, "table text"},
	    {2, SENT, 1, "Reply(69 rgmaster \"M-A\": the table cannot be rendered here)"},
	    {3, QUERY, 1, "table json"},
	    {4, SENT, 1,
	     "Reply(69 {\"server\":\"M-A\",\"role\":\"master-active\",\"error\":\"the table "
	     "cannot be rendered here\"})"},
	};
	RUN(w, 0, fail_steps);
	world_free(w);
}

/* Reports: the grace of a new master (no push before every server
 * reported), the full table at publication, a bridgehead report bumping
 * minor once with a delta of our entry alone to every member, a report
 * that changes nothing (no bump, no push), one server reporting for
 * another (refused), a report of a connector as a whole (skipped), one
 * report with a minor and a user change (one bump of each), a snapshot
 * bringing back up what it does not name. Each report after the
 * publication comes 100 ms after the last: one version per member per
 * 100 ms (test_version_rate).
 * Mutations seen caught: publishing at the first report (step 5); the
 * delta carrying the whole table (step 17); a bump for a report that
 * changes nothing (the version published, step 12); the reporter check
 * dropped (step 28); the bridgehead owner check dropped (step 26); the
 * one-bump-per-report normalisation dropped (step 35); a snapshot not
 * bringing up the bridgeheads it does not name (step 40). */
static const struct step report_steps[] = {
    {1, OPEN, 1, "s:S0-0"},
    {2, HELLO, 1, "node S0-0 G000000 1"},
    {3, SENT, 1, "Hello(ACTIVE)"},
    {4, REPORT, 1, "S0-0", NULL, 1},
    {5, SENT, 1, ""},
    {6, OPEN, 2, "s:S0-1"},
    {7, HELLO, 2, "node S0-1 G000000 1"},
    {8, REPORT, 2, "S0-1", NULL, 1},
    {9, OPEN, 3, "s:S0-2"},
    {10, HELLO, 3, "node S0-2 G000000 1"},
    {11, REPORT, 3, "S0-2", NULL, 1},
    {12, SENT, 1, FULL0("w+4.1.0.0")},
    {13, SENT, 2, "Hello(ACTIVE) " FULL0("w+4.1.0.0")},
    {14, SENT, 3, "Hello(ACTIVE) " FULL0("w+4.1.0.0")},
    {15, LOG, 0, "published group G000000 at version (1790000064, 1, 0, 0): every server"},
    {16, ADVANCE, 0, NULL, NULL, 100}, /* the reporter's next window */
    {16, REPORT, 2, "S0-1", "bh:C0-0/S0-1/SMTP:down", 0},
    {17, SENT, 1, "Push(delta G000000@w+4.1.1.0)"},
    {18, SENT, 2, "Push(delta G000000@w+4.1.1.0)"},
    {19, SENT, 3, "Push(delta G000000@w+4.1.1.0)"},
    {20, BH, 0, "C0-0", "S0-1", 1},
    {21, ADVANCE, 0, NULL, NULL, 100}, /* the reporter's next window */
    {21, REPORT, 2, "S0-1", "bh:C0-0/S0-1/SMTP:down", 0},
    {22, SENT, 1, ""},
    {23, SENT, 2, ""},
    {24, VERSION, 0, "w+4.1.1.0"},
    {25, ADVANCE, 0, NULL, NULL, 100}, /* the reporter's next window */
    {25, REPORT, 2, "S0-1", "bh:Internet/S0-2/SMTP:down", 0},
    {26, LOG, 0, "report from server \"S0-1\" names server \"S0-2\": refused"},
    {27, ADVANCE, 0, NULL, NULL, 100}, /* the reporter's next window */
    {27, REPORT, 2, "S0-2", "S0-2:down", 0},
    {28, LOG, 0, "report from server \"S0-1\" for \"S0-2\" refused"},
    {29, SENT, 1, ""},
    {30, VERSION, 0, "w+4.1.1.0"},
    {31, SERVER, 0, "S0-2", NULL, 0},
    {32, ADVANCE, 0, NULL, NULL, 100}, /* the reporter's next window */
    {32, REPORT, 2, "S0-1", "conn:C0-0:down", 0},
    {33, LOG, 0, "report of connector \"C0-0\" as a whole: not a member's to report"},
    {34, ADVANCE, 0, NULL, NULL, 100}, /* the reporter's next window */
    {34, REPORT, 2, "S0-1", "bh:C0-0/S0-1/SMTP:up S0-1:down S0-1:up S0-1:down", 0},
    {35, SENT, 3, "Push(delta G000000@w+4.1.2.1)"},
    {36, SERVER, 0, "S0-1", NULL, 1},
    {37, ADVANCE, 0, NULL, NULL, 100}, /* the reporter's next window */
    {37, REPORT, 1, "S0-0", "bh:Internet/S0-0/SMTP:down", 0},
    {38, BH, 0, "Internet", "S0-0", 1},
    {39, ADVANCE, 0, NULL, NULL, 100}, /* the reporter's next window */
    {39, REPORT, 1, "S0-0", NULL, 1},
    {40, BH, 0, "Internet", "S0-0", 0},
    {41, VERSION, 0, "w+4.1.4.1"},
    {42, ADVANCE, 0, NULL, NULL, 100}, /* the reporter's next window */
    {42, REPORT, 2, "S0-1", NULL, 1},
    {43, SERVER, 0, "S0-1", NULL, 0},
    {44, VERSION, 0, "w+4.1.4.2"},
    {45, SENT, 3,
     "Push(delta G000000@w+4.1.3.1) Push(delta G000000@w+4.1.4.1) "
     "Push(delta G000000@w+4.1.4.2)"},
};

static void test_reports(void **state)
{
	(void)state;
	struct world *w = single_active();
	RUN(w, 0, report_steps);
	world_free(w);
}

/* Liveness: the grace keeps every server's last state for one dead
 * interval, then absent servers go down in one user bump; a silent member
 * is closed after dead_after intervals and its server goes down (user), a
 * member closing its connection too; a member that reconnects and reports
 * comes back up; a second session of one server replaces the first
 * without a down mark.
 * Mutations seen caught: marking absent servers down at activation (the
 * version published, step 7); no down mark at the end of a session (step
 * 20); dead after 2 intervals instead of 3 (step 16); the first report of
 * a session not bringing its server up (step 26); a replaced session
 * marking its server down (step 32); no full table for a member that
 * comes once published (step 24). */
static const struct step liveness_steps[] = {
    {1, OPEN, 1, "s:S0-0"},
    {2, HELLO, 1, "node S0-0 G000000 1"},
    {3, REPORT, 1, "S0-0", NULL, 1},
    {4, ADVANCE, 0, NULL, NULL, 2900},
    {5, SENT, 1, "Hello(ACTIVE)"},
    {6, ADVANCE, 0, NULL, NULL, 100},
    {7, SENT, 1, FULL0("w+4.1.0.1")},
    {8, SERVER, 0, "S0-1", NULL, 1},
    {9, LOG, 0, "after the grace, 2 absent servers marked down"},
    {10, OPEN, 2, "s:S0-1"},
    {11, HELLO, 2, "node S0-1 G000000 1"},
    {12, REPORT, 2, "S0-1", NULL, 1},
    {13, SENT, 1, "Push(delta G000000@w+4.1.0.2)"},
    {14, SILENT, 2},
    {15, ADVANCE, 0, NULL, NULL, 2400},
    {16, SERVER, 0, "S0-1", NULL, 0},
    {17, ADVANCE, 0, NULL, NULL, 700},
    {18, CLOSED, 2},
    {19, LOG, 0, "dead: nothing received for 3"},
    {20, SERVER, 0, "S0-1", NULL, 1},
    {21, SENT, 1, "Push(delta G000000@w+4.1.0.3)"},
    {22, OPEN, 3, "s:S0-1"},
    {23, HELLO, 3, "node S0-1 G000000 1"},
    {24, SENT, 3, "Hello(ACTIVE) " FULL0("w+4.1.0.3")},
    {25, REPORT, 3, "S0-1", "bh:C0-0/S0-1/SMTP:up", 0},
    {26, SERVER, 0, "S0-1", NULL, 0},
    {27, SENT, 1, "Push(delta G000000@w+4.1.0.4)"},
    {28, OPEN, 4, "s:S0-1"},
    {29, HELLO, 4, "node S0-1 G000000 1"},
    {30, CLOSED, 3},
    {31, LOG, 0, "replaced by a new connection of the same server"},
    {32, SERVER, 0, "S0-1", NULL, 0},
    {33, SENT, 1, ""},
    {34, GONE, 4},
    {35, SERVER, 0, "S0-1", NULL, 1},
    {36, SENT, 1, "Push(delta G000000@w+4.1.0.5)"},
    {37, MEMBERS, 0, NULL, NULL, 1},
};

static void test_liveness(void **state)
{
	(void)state;
	struct world *w = single_active();
	RUN(w, 0, liveness_steps);
	world_free(w);
}

/* SIGHUP: the same directory bumps nothing; a changed one (a connector's
 * cost) bumps major and keeps every live state (a server down, a
 * bridgehead down); a server new in the directory is down until it is
 * live.
 * Mutations seen caught: the rebuild taking the directory's "all up" for
 * servers, or dropping the bridgeheads' states (step 9: the same directory
 * is no longer "unchanged"); a major bump for an unchanged directory (step
 * 9); a server new in the directory up before it is live (step 17). */
static const struct step directory_steps[] = {
    {1, OPEN, 1, "s:S0-0"},
    {2, HELLO, 1, "node S0-0 G000000 1"},
    {3, REPORT, 1, "S0-0", NULL, 1},
    {4, OPEN, 2, "s:S0-1"},
    {5, HELLO, 2, "node S0-1 G000000 1"},
    {6, REPORT, 2, "S0-1", "bh:C0-0/S0-1/SMTP:down", 1},
    {7, ADVANCE, 0, NULL, NULL, 3000},
    {8, SIGHUP, 0, "5 3"},
    {9, LOG, 0, "directory: group G000000 unchanged"},
    {10, VERSION, 0, "w+4.1.1.1"},
    {11, SIGHUP, 0, "7 3"},
    {12, SERVER, 0, "S0-2", NULL, 1},
    {13, BH, 0, "C0-0", "S0-1", 1},
    {14, VERSION, 0, "w+4.2.1.1"},
    {15, SENT, 1, "Hello(ACTIVE) " FULL0("w+4.1.1.1") " Push(delta G000000@w+4.2.1.1)"},
    {16, SIGHUP, 0, "7 4"},
    {17, SERVER, 0, "S0-3", NULL, 1},
    {18, SERVER, 0, "S0-0", NULL, 0},
    {19, VERSION, 0, "w+4.3.1.1"},
    {20, OPEN, 3, "s:S0-3"},
    {21, HELLO, 3, "node S0-3 G000000 1"},
    {22, REPORT, 3, "S0-3", NULL, 1},
    {23, SERVER, 0, "S0-3", NULL, 0},
    {24, VERSION, 0, "w+4.3.1.2"},
};

static void test_directory(void **state)
{
	(void)state;
	struct world *w = single_active();
	RUN(w, 0, directory_steps);
	world_free(w);
}

/* Anti-entropy: every probe_interval_ms a DigestProbe with the digest
 * alone to every member; an answer with our digest gets nothing, one that
 * holds our entry at its version with other content gets that entry (and
 * not G000001, which it lacks: a baseline never travels).
 * Mutations seen caught: the probe timer not re-armed (step 9); the delta
 * ignoring content digests (step 13); the probe carrying the summary
 * (steps 7, 9: Probe(2)). Dropping the equal-digest check is not caught:
 * it only saves computing an empty delta. */
static const struct step probe_steps[] = {
    {1, OPEN, 1, "s:S0-0"},
    {2, HELLO, 1, "node S0-0 G000000 1"},
    {3, REPORT, 1, "S0-0", NULL, 1},
    {4, ADVANCE, 0, NULL, NULL, 3000},
    {5, SENT, 1, "Hello(ACTIVE) " FULL0("w+4.1.0.1")},
    {6, ADVANCE, 0, NULL, NULL, 5000},
    {7, SENT, 1, "Probe(0)"},
    {8, ADVANCE, 0, NULL, NULL, 5000},
    {9, SENT, 1, "Probe(0)"},
    {10, PROBE, 1, "equal"},
    {11, SENT, 1, ""},
    {12, PROBE, 1, "stale"},
    {13, SENT, 1, "Push(delta G000000@w+4.1.0.1)"},
};

static void test_probe(void **state)
{
	(void)state;
	struct world *w = single_active();
	RUN(w, 0, probe_steps);
	world_free(w);
}

/* --- the election ---------------------------------------------------------- */

static bool hello_active_before(struct world *w, int node, size_t upto)
{
	for (size_t i = 0; i < upto && i < w->n[node].nsent; i++) {
		const Mailmesh__Frame *f = w->n[node].sent[i].f;
		if (f->body_case == MAILMESH__FRAME__BODY_TABLE_PUSH ||
		    (f->body_case == MAILMESH__FRAME__BODY_HELLO &&
		     f->hello->master_state == MAILMESH__MASTER_STATE__MASTER_ACTIVE))
			return true;
	}
	return false;
}

/* The newest version of G000000 node pushed on conn. */
static const Mailmesh__Version *pushed_version(struct world *w, int node, uint32_t conn)
{
	const Mailmesh__Version *best = NULL;
	for (size_t i = 0; i < w->n[node].nsent; i++) {
		const struct sent *s = &w->n[node].sent[i];
		if (s->conn != conn || s->f->body_case != MAILMESH__FRAME__BODY_TABLE_PUSH)
			continue;
		for (size_t k = 0; k < s->f->table_push->n_entries; k++) {
			const mm_entry *e = s->f->table_push->entries[k];
			if (strcmp(e->name, "G000000") == 0 && mm_version_cmp(e->version, best) > 0)
				best = e->version;
		}
	}
	return best;
}

/* What a member does with what it was pushed: versions it holds never go
 * back (it keeps the newest), and it would say so in its next Hello. */
struct held {
	Mailmesh__Version v;
	bool any;
};

static void held_take(struct held *h, struct world *w, int node, uint32_t conn)
{
	const Mailmesh__Version *v = pushed_version(w, node, conn);
	if (v && (!h->any || mm_version_cmp(v, &h->v) > 0)) {
		h->v = *v;
		h->any = true;
	}
}

static void join_held(struct world *w, int node, uint32_t conn, const char *server,
                      const struct held *h)
{
	member_open(w, node, conn, 's', server);
	member_hello_v(w, node, conn, MAILMESH__ROLE__ROLE_NODE, server, "G000000", 1,
	               h->any ? &h->v : NULL, h->any ? h->v.incarnation : 0);
	member_report(w, node, conn, server, NULL, true);
}

static int nactive(struct world *w)
{
	int n = 0;
	for (int i = 0; i < w->nn; i++)
		n += w->n[i].up && mm_master_role(&w->n[i].m) == MM_MASTER_ACTIVE;
	return n;
}

/* A single candidate: STARTING for one dead interval (a member is answered
 * STANDBY and closed, its Hello counted), then active with incarnation
 * max(persisted + 1, highest seen + 1, wall-clock seconds), persisted once
 * before anything of it is published.
 * Mutations seen caught: becoming active at start (the role at 2999); the
 * wall-clock floor dropped (row 1); the persisted incarnation ignored at
 * start (row 2); what a member's Hello says not counted while starting
 * (row 3). (Saying ACTIVE before the persist is caught by
 * test_two_candidates: here there is no candidate to say it to.) */
static void test_single_election(void **state)
{
	(void)state;
	static const struct {
		uint64_t persisted, seen, want;
	} rows[] = {
	    {5, 77, INC_BASE + 4},
	    {5000000000ULL, 0, 5000000064ULL}, /* rounded up to rank 0 mod 64 */
	    {5, 1790100000ULL, 1790100032ULL}, /* a day ahead of the clock: taken */
	};
	for (size_t r = 0; r < sizeof(rows) / sizeof(rows[0]); r++) {
		struct world *w = world_new(1, 0);
		node_boot(w, 0, rows[r].persisted);
		advance(w, 1000);
		member_open(w, 0, 1, 's', "S0-0");
		Mailmesh__Version v = MAILMESH__VERSION__INIT;
		v.incarnation = rows[r].seen;
		member_hello_v(w, 0, 1, MAILMESH__ROLE__ROLE_NODE, "S0-0", "G000000", 1, &v,
		               rows[r].seen);
		EXPECT_TAKE(w, 0, 1, "Hello(STANDBY:)");
		assert_true(was_closed(w, 0, 1));
		advance(w, 1999);
		assert_int_equal(mm_master_role(&w->n[0].m), MM_MASTER_STARTING);
		assert_int_equal(w->n[0].npersist, 0);
		advance(w, 1);
		assert_int_equal(mm_master_role(&w->n[0].m), MM_MASTER_ACTIVE);
		assert_int_equal(w->n[0].npersist, 1);
		assert_int_equal(w->n[0].persist_log[0], rows[r].want);
		assert_int_equal(mm_master_incarnation(&w->n[0].m), rows[r].want);
		assert_false(hello_active_before(w, 0, w->n[0].sent_at_persist[0]));
		member_join(w, 0, 2, "S0-0");
		EXPECT_TAKE(w, 0, 2, "Hello(ACTIVE)");
		advance(w, 3000);
		assert_int_equal(w->n[0].npersist, 1); /* once per activation */
		const Mailmesh__Version *pv = pushed_version(w, 0, 2);
		assert_non_null(pv);
		assert_int_equal(pv->incarnation, rows[r].want);
		world_free(w);
	}
}

/* A persist that fails: not active, members answered STANDBY, retried
 * retry_ms later, then active above.
 * Mutation seen caught: ignoring persist_incarnation's error (the role and
 * the STANDBY answer). */
static void test_persist_failure(void **state)
{
	(void)state;
	struct world *w = world_new(1, 0);
	w->n[0].persist_err = ENOSPC;
	node_boot(w, 0, 0);
	advance(w, 3000);
	assert_int_equal(mm_master_role(&w->n[0].m), MM_MASTER_STANDBY);
	assert_true(logged(w, 0, "becoming active: cannot persist incarnation 1790000064"));
	member_open(w, 0, 1, 's', "S0-0");
	member_hello(w, 0, 1, "S0-0");
	EXPECT_TAKE(w, 0, 1, "Hello(STANDBY:)");
	assert_true(was_closed(w, 0, 1));
	advance(w, 1000);
	assert_int_equal(mm_master_role(&w->n[0].m), MM_MASTER_STANDBY);
	w->n[0].persist_err = 0;
	advance(w, 1000);
	assert_int_equal(mm_master_role(&w->n[0].m), MM_MASTER_ACTIVE);
	/* w + 6, rounded up to rank 0 modulo 64 */
	assert_int_equal(w->n[0].persist_log[0], INC_BASE + 68);
	member_open(w, 0, 2, 's', "S0-0");
	member_hello(w, 0, 2, "S0-0");
	EXPECT_TAKE(w, 0, 2, "Hello(ACTIVE)");
	world_free(w);
}

/* Two candidates A (200) and B (100), then three members on A. */
static struct world *pair_with_members(void)
{
	struct world *w = world_new(2, 2);
	advance(w, 3000);
	member_join(w, 0, 1, "S0-0");
	member_join(w, 0, 2, "S0-1");
	member_join(w, 0, 3, "S0-2");
	return w;
}

/* Two candidates: the higher wins; the lower answers a member STANDBY with
 * the active's name and closes; the standby holds the active's entry (the
 * active pushes to candidates); exactly one active.
 * Mutations seen caught: better computed the wrong way round (both active,
 * or B active); the standby naming "" as the active master; no push to
 * candidates (B's entry); the standby not answering a probe that differs
 * (G000001 stays stale); Hello ACTIVE to B before the persist. */
static void test_two_candidates(void **state)
{
	(void)state;
	struct world *w = pair_with_members();
	assert_int_equal(mm_master_role(&w->n[0].m), MM_MASTER_ACTIVE);
	assert_int_equal(mm_master_role(&w->n[1].m), MM_MASTER_STANDBY);
	assert_int_equal(nactive(w), 1);
	assert_false(hello_active_before(w, 0, w->n[0].sent_at_persist[0]));
	assert_string_equal(mm_master_active(&w->n[1].m), "M-A");
	member_open(w, 1, 1, 's', "S0-0");
	member_hello(w, 1, 1, "S0-0");
	EXPECT_TAKE(w, 1, 1, "Hello(STANDBY:M-A)");
	assert_true(was_closed(w, 1, 1));
	EXPECT_TAKE(w, 0, 1, "Hello(ACTIVE) " FULL0("w+4.1.0.0"));
	const mm_entry *b = mm_master_entry(&w->n[1].m);
	assert_int_equal(mm_version_cmp(b->version, mm_master_entry(&w->n[0].m)->version), 0);
	assert_string_equal(b->master, "M-A");
	/* anti-entropy between candidates: B's copy of our entry goes stale
	 * (a push lost), the active's next probe finds it, B answers with its
	 * summary, A pushes it again */
	struct mm_master *mb = &w->n[1].m;
	mm_entry *g0 = mm_table_find(&mb->table, "G000000");
	g0->version->major = 0;
	mm_digest_cache_free(&mb->dcache);
	mm_table_digest_cached(&mb->table, &mb->dcache, mb->digest);
	advance(w, 5000);
	assert_int_equal(mm_table_find(&mb->table, "G000000")->version->major, 1);
	world_free(w);
}

/* The active dies: the standby takes over one dead interval after the last
 * frame it had from it, with a new incarnation, and versions continue
 * upward for the members that come to it.
 * Mutations seen caught: heard_at not taken from the lost active (taking
 * over at once: "not yet"); candidates that are not live kept up at the
 * publication (M-A down). */
static void test_failover(void **state)
{
	(void)state;
	struct world *w = pair_with_members();
	advance(w, 5000);
	struct held h[3] = {0};
	for (int i = 0; i < 3; i++)
		held_take(&h[i], w, 0, (uint32_t)i + 1);
	Mailmesh__Version last = *mm_master_entry(&w->n[0].m)->version;
	node_kill(w, 0);
	advance(w, 1000);
	assert_int_equal(mm_master_role(&w->n[1].m), MM_MASTER_STANDBY); /* not yet */
	advance(w, 2500);
	assert_int_equal(mm_master_role(&w->n[1].m), MM_MASTER_ACTIVE);
	assert_true(mm_master_incarnation(&w->n[1].m) > last.incarnation);
	join_held(w, 1, 1, "S0-0", &h[0]);
	join_held(w, 1, 2, "S0-1", &h[1]);
	join_held(w, 1, 3, "S0-2", &h[2]);
	const Mailmesh__Version *v = pushed_version(w, 1, 1);
	assert_non_null(v);
	assert_true(mm_version_cmp(v, &last) > 0);
	const mm_entry *e = mm_master_entry(&w->n[1].m);
	assert_string_equal(e->master, "M-B");
	for (size_t i = 0; i < e->n_masters; i++)
		if (strcmp(e->masters[i]->name, "M-A") == 0)
			assert_true(e->masters[i]->down);
	world_free(w);
}

/* After a failover the better candidate returns: it starts as a standby,
 * learns the entry, waits settle_ms, takes over above it; the old active
 * steps down, closes its members (they follow) and says STANDBY naming it.
 * Returns the world for the determinism test. */
static struct world *returning(void)
{
	struct world *w = pair_with_members();
	advance(w, 2000);
	uint64_t persisted_a = w->n[0].persisted;
	node_kill(w, 0);
	advance(w, 4000);
	member_join(w, 1, 11, "S0-0");
	member_join(w, 1, 12, "S0-1");
	member_join(w, 1, 13, "S0-2");
	advance(w, 1000);
	node_boot(w, 0, persisted_a);
	advance(w, 1900); /* settling */
	assert_int_not_equal(mm_master_role(&w->n[0].m), MM_MASTER_ACTIVE);
	assert_int_equal(mm_master_role(&w->n[1].m), MM_MASTER_ACTIVE);
	advance(w, 200);
	return w;
}

/* Mutations seen caught: no step-down on a better candidate claiming
 * ACTIVE (two active); members not closed at the step-down; the returning
 * candidate taking over without settling (the role at 1900). */
static void test_return(void **state)
{
	(void)state;
	struct world *w = returning();
	assert_int_equal(mm_master_role(&w->n[0].m), MM_MASTER_ACTIVE);
	assert_int_equal(mm_master_role(&w->n[1].m), MM_MASTER_STANDBY);
	assert_int_equal(nactive(w), 1);
	assert_true(was_closed(w, 1, 11) && was_closed(w, 1, 12) && was_closed(w, 1, 13));
	assert_true(logged(w, 1, "stepping down: M-A is active"));
	assert_true(mm_master_incarnation(&w->n[0].m) > mm_master_incarnation(&w->n[1].m));
	struct held h[3] = {0};
	for (int i = 0; i < 3; i++)
		held_take(&h[i], w, 1, (uint32_t)i + 11);
	join_held(w, 0, 21, "S0-0", &h[0]);
	join_held(w, 0, 22, "S0-1", &h[1]);
	join_held(w, 0, 23, "S0-2", &h[2]);
	const Mailmesh__Version *v = pushed_version(w, 0, 21);
	assert_non_null(v);
	assert_true(mm_version_cmp(v, &h[0].v) > 0);
	assert_string_equal(mm_master_entry(&w->n[1].m)->master, "M-A");
	world_free(w);
}

/* A master restarts with its state deleted: with the clock right the
 * wall-clock floor keeps it above; with the clock a day behind, the
 * members' Hello (the version they hold) makes it go above before it
 * publishes. Versions seen by members never go backwards.
 * Row 3 sets the clock so that it gives the very incarnation of the first
 * life: only the versions the members hold tell.
 * Mutations seen caught: the member Hello's version not taken as evidence
 * (row 2); evidence compared by incarnation only, not the whole version
 * (row 3); evidence ignored altogether. */
static void test_state_deleted(void **state)
{
	(void)state;
	static const int64_t skews[] = {0, -86400000LL, 0};
	for (size_t r = 0; r < 3; r++) {
		struct world *w = world_new(1, 1);
		advance(w, 3000);
		member_join(w, 0, 1, "S0-0");
		member_join(w, 0, 2, "S0-1");
		member_join(w, 0, 3, "S0-2");
		member_report(w, 0, 2, "S0-1", "bh:C0-0/S0-1/SMTP:down", false);
		struct held h[3] = {0};
		for (int i = 0; i < 3; i++)
			held_take(&h[i], w, 0, (uint32_t)i + 1);
		node_kill(w, 0);
		w->n[0].wall_skew = skews[r];
		if (r == 2) /* the clock gives the very incarnation it had: w+4 */
			w->n[0].wall_skew = 4000 - (w->now + 3000);
		node_boot(w, 0, 0); /* --state deleted */
		advance(w, 3000);
		assert_int_equal(mm_master_role(&w->n[0].m), MM_MASTER_ACTIVE);
		join_held(w, 0, 11, "S0-0", &h[0]);
		join_held(w, 0, 12, "S0-1", &h[1]);
		join_held(w, 0, 13, "S0-2", &h[2]);
		for (int i = 0; i < 3; i++) {
			const Mailmesh__Version *v = pushed_version(w, 0, (uint32_t)i + 11);
			assert_non_null(v);
			assert_true(mm_version_cmp(v, &h[i].v) > 0);
		}
		if (r > 0)
			assert_true(logged(w, 0, "holds a version of group G000000 above ours"));
		world_free(w);
	}
}

/* A partition: each side gets an active master (mail keeps flowing); one
 * member moves to B's side. After the heal exactly one is active, the best
 * one, and it issues a version above both sides.
 * Mutations seen caught: the worse active not stepping down on seeing the
 * better one (two active); a candidate's Hello not taken as evidence (A's
 * incarnation after the heal); evidence ignored altogether (the version
 * compares); members not closed at the step-down (conn 12). */
static void test_partition(void **state)
{
	(void)state;
	struct world *w = pair_with_members();
	advance(w, 2000);
	w->cut[0][1] = w->cut[1][0] = true;
	advance(w, 4000);
	assert_int_equal(nactive(w), 2);
	/* S0-1 is on B's side now */
	struct held h1 = {0};
	held_take(&h1, w, 0, 2);
	member_silent(w, 0, 2);
	mm_master_conn_closed(&w->n[0].m, 2);
	join_held(w, 1, 12, "S0-1", &h1);
	advance(w, 4000);
	held_take(&h1, w, 1, 12);
	Mailmesh__Version vb = h1.v;
	assert_true(mm_master_incarnation(&w->n[1].m) > mm_master_incarnation(&w->n[0].m));
	assert_true(server_down(w, 1, "S0-0"));
	w->cut[0][1] = w->cut[1][0] = false;
	advance(w, 3000);
	assert_int_equal(nactive(w), 1);
	assert_int_equal(mm_master_role(&w->n[0].m), MM_MASTER_ACTIVE);
	assert_true(was_closed(w, 1, 12));
	/* B's Hello was enough: A is above it before any member comes over */
	assert_true(mm_master_incarnation(&w->n[0].m) > vb.incarnation);
	join_held(w, 0, 22, "S0-1", &h1);
	advance(w, 100);
	const Mailmesh__Version *va = pushed_version(w, 0, 1);
	assert_true(mm_version_cmp(va, &vb) > 0);
	assert_true(mm_version_cmp(pushed_version(w, 0, 22), &vb) > 0);
	assert_false(server_down(w, 0, "S0-1"));
	world_free(w);
}

/* A better candidate that cannot persist stays STANDBY naming no active
 * master: after two dead intervals it no longer holds the worse one back;
 * once it can persist it takes over and the worse steps down.
 * Mutation seen caught: blocking on any live better candidate (B never
 * active). */
static void test_stuck_better(void **state)
{
	(void)state;
	struct world *w = world_new(2, 0);
	w->n[0].persist_err = EIO;
	node_boot(w, 0, 0);
	node_boot(w, 1, 0);
	advance(w, 5900);
	assert_int_equal(nactive(w), 0);
	advance(w, 200);
	assert_int_equal(mm_master_role(&w->n[1].m), MM_MASTER_ACTIVE);
	/* a member: without one B publishes nothing, and A learns nothing */
	member_join(w, 1, 1, "S0-0");
	w->n[0].persist_err = 0;
	advance(w, 6000);
	assert_int_equal(mm_master_role(&w->n[0].m), MM_MASTER_ACTIVE);
	assert_int_equal(mm_master_role(&w->n[1].m), MM_MASTER_STANDBY);
	world_free(w);
}

/* Three candidates: M-A (200), then M-B before M-C (100 each, by name).
 * When M-A dies M-B takes over and M-C follows it; when M-B cannot persist,
 * it says it knows no active master any more, and M-C takes over once M-B
 * has been stuck for two dead intervals.
 * Mutations seen caught: equal priorities ordered by name the wrong way
 * (M-C active); no Hello when the active master a standby knows changes
 * (M-C never active in the second part). */
static void test_three_candidates(void **state)
{
	(void)state;
	for (int stuck = 0; stuck < 2; stuck++) {
		struct world *w = world_new(3, 3);
		advance(w, 4000);
		assert_int_equal(mm_master_role(&w->n[0].m), MM_MASTER_ACTIVE);
		assert_int_equal(nactive(w), 1);
		w->n[1].persist_err = stuck ? EIO : 0;
		node_kill(w, 0);
		advance(w, 3500);
		if (!stuck) {
			assert_int_equal(mm_master_role(&w->n[1].m), MM_MASTER_ACTIVE);
			assert_int_equal(mm_master_role(&w->n[2].m), MM_MASTER_STANDBY);
			member_open(w, 2, 1, 's', "S0-0");
			member_hello(w, 2, 1, "S0-0");
			EXPECT_TAKE(w, 2, 1, "Hello(STANDBY:M-B)");
		} else {
			assert_int_equal(nactive(w), 0);
			advance(w, 6000);
			assert_int_equal(mm_master_role(&w->n[2].m), MM_MASTER_ACTIVE);
			assert_int_equal(mm_master_role(&w->n[1].m), MM_MASTER_STANDBY);
		}
		assert_int_equal(nactive(w), 1);
		world_free(w);
	}
}

/* Incarnations out of range (2^53 - 1 and over) are no evidence: a member
 * claiming UINT64_MAX changes nothing, a candidate pushing our entry at
 * 2^60 to a standby is not taken, a persisted one is refused at start.
 * Mutations seen caught: the range check dropped from mm_m_evidence (the
 * incarnation wraps: persisted again, and below the claim); the merge of
 * such an entry by a standby (its version in the table). */
static void test_incarnation_range(void **state)
{
	(void)state;
	struct world *w = single_active();
	member_open(w, 0, 1, 's', "S0-0");
	member_hello_v(w, 0, 1, MAILMESH__ROLE__ROLE_NODE, "S0-0", "G000000", 1, NULL, UINT64_MAX);
	assert_true(logged(w, 0, "claims incarnation 18446744073709551615 of group G000000: out"));
	assert_int_equal(mm_master_incarnation(&w->n[0].m), INC_BASE + 4);
	assert_int_equal(w->n[0].npersist, 1);
	EXPECT_TAKE(w, 0, 1, "Hello(ACTIVE)");
	world_free(w);

	/* exactly the maximum: refused too, since no incarnation could go
	 * above it (refused twice over: by ">=", and by take_incarnation
	 * never writing above the maximum -- neither mutation alone shows) */
	w = single_active();
	member_open(w, 0, 1, 's', "S0-0");
	member_hello_v(w, 0, 1, MAILMESH__ROLE__ROLE_NODE, "S0-0", "G000000", 1, NULL,
	               MM_MASTER_INCARNATION_MAX);
	assert_true(logged(w, 0, "claims incarnation 9007199254740991 of group G000000: out"));
	assert_int_equal(mm_master_incarnation(&w->n[0].m), INC_BASE + 4);
	assert_int_equal(w->n[0].npersist, 1);
	world_free(w);

	w = pair_with_members();
	Mailmesh__Version v = MAILMESH__VERSION__INIT;
	v.incarnation = 1ull << 60;
	v.major = 1;
	Mailmesh__GroupEntry e = MAILMESH__GROUP_ENTRY__INIT, *pe = &e;
	e.name = "G000000";
	e.master = "M-A";
	e.version = &v;
	Mailmesh__TablePush p = MAILMESH__TABLE_PUSH__INIT;
	p.n_entries = 1;
	p.entries = &pe;
	Mailmesh__Frame f = MAILMESH__FRAME__INIT;
	f.body_case = MAILMESH__FRAME__BODY_TABLE_PUSH;
	f.table_push = &p;
	struct mm_master *b = &w->n[1].m;
	mm_master_frame(b, b->cand[0].out, &f);
	assert_true(mm_master_entry(b)->version->incarnation < 1ull << 53);
	assert_true(b->highest_seen < 1ull << 53);
	struct mm_master x;
	struct mm_master_env env = b->env;
	mm_master_init(&x, NULL, &env, "M-B");
	assert_false(mm_master_start(&x, &w->dir, 1ull << 60));
	mm_master_free(&x);
	world_free(w);
}

/* Two runs of the same events give the same frames, byte for byte.
 * Mutation seen caught: ping nonces from anything but env.random. */
static void test_determinism(void **state)
{
	(void)state;
	struct world *a = returning(), *b = returning();
	assert_true(a->transcript.len > 1000);
	assert_int_equal(a->transcript.len, b->transcript.len);
	assert_memory_equal(a->transcript.p, b->transcript.p, a->transcript.len);
	world_free(a);
	world_free(b);
}

/* A push over the frame limit goes as several frames, each under it. */
static void test_split(void **state)
{
	(void)state;
	struct world *w = mm_xcalloc(1, sizeof(*w));
	w->now = 1000;
	w->next_ping = 1500;
	mm_master_conf_default(&w->conf);
	w->conf.frame_limit = 1024;
	org_build(&w->dir, 1, 5, 3);
	/* groups of 4 servers, about 400 bytes each, as their masters issued
	 * them (incarnation 5: entries that travel) */
	for (unsigned g = 2; g < 12; g++) {
		mm_entry *e = synth_group(g, 4);
		e->version->incarnation = 5;
		mm_table_merge(&w->dir.table, e);
	}
	w->nn = 1;
	w->n[0] = (struct fnode){.w = w, .idx = 0, .name = "M-A", .rnd = 7, .next_in = 100};
	node_boot(w, 0, 0);
	advance(w, 3000);
	member_join(w, 0, 1, "S0-0");
	advance(w, 3000);
	size_t frames = 0, entries = 0;
	for (size_t i = 0; i < w->n[0].nsent; i++) {
		const struct sent *s = &w->n[0].sent[i];
		if (s->conn != 1 || s->f->body_case != MAILMESH__FRAME__BODY_TABLE_PUSH)
			continue;
		assert_true(mailmesh__frame__get_packed_size(s->f) <= 1024);
		frames++;
		entries += s->f->table_push->n_entries;
	}
	assert_true(frames > 1);
	assert_int_equal(entries, 11); /* G000001 is a baseline: it never travels */
	world_free(w);
}

/* DESIGN §5.1: incarnations distinct per candidate. Two candidates cut
 * from each other from the start both become active in the same second;
 * each rounds its incarnation up to its rank modulo 64, so they differ
 * and neither issues a version the other issues with other content.
 * Mutation caught: next_incarnation without the rounding (both w+4). */
static void test_rank_incarnations(void **state)
{
	(void)state;
	struct world *w = world_new(2, 0);
	w->cut[0][1] = w->cut[1][0] = true;
	node_boot(w, 0, 0);
	node_boot(w, 1, 0);
	advance(w, 4000);
	assert_int_equal(nactive(w), 2);
	uint64_t a = mm_master_incarnation(&w->n[0].m), b = mm_master_incarnation(&w->n[1].m);
	if (a == b || a % 64 != 0 || b % 64 != 1 || a < INC_BASE || b < INC_BASE)
		fail_msg("incarnations %llu and %llu: want distinct, 0 and 1 modulo 64",
		         (unsigned long long)a, (unsigned long long)b);
	world_free(w);
}

/* DESIGN §5.1: a master that has heard from no member at all publishes
 * nothing, even after the grace -- cut off from its group it would mark
 * every server down above every version the members hold. The first
 * member's report publishes at once (the grace is over).
 * Mutation caught: mm_m_publish without the any_reported check (published
 * after the grace with every server down). */
static void test_no_members_no_publish(void **state)
{
	(void)state;
	struct world *w = single_active();
	advance(w, 10000);
	assert_false(logged(w, 0, "published group"));
	assert_true(logged(w, 0, "no member has reported: publishing nothing"));
	member_join(w, 0, 1, "S0-0");
	assert_true(logged(w, 0, "published group G000000"));
	assert_false(server_down(w, 0, "S0-0"));
	assert_true(server_down(w, 0, "S0-1"));
	world_free(w);
}

/* DESIGN §5.1: at most one version per reporting member per 100 ms. A
 * member flips a bridgehead 1,000 times a second for a second: at most
 * ten versions (and one more at the end of the last window; fewer when a
 * window ends on the state the members hold), and the last state is the
 * one the entry holds and was pushed. Mutation caught: mm_m_report issuing
 * at once (a thousand versions and pushes). */
static void test_version_rate(void **state)
{
	(void)state;
	struct world *w = single_active();
	member_join(w, 0, 1, "S0-0");
	member_join(w, 0, 2, "S0-1");
	member_join(w, 0, 3, "S0-2");
	advance(w, 100);
	size_t before = 0;
	for (size_t i = 0; i < w->n[0].nsent; i++)
		before += w->n[0].sent[i].conn == 2 &&
		          w->n[0].sent[i].f->body_case == MAILMESH__FRAME__BODY_TABLE_PUSH;
	uint64_t minor0 = own(w, 0)->version->minor;
	for (int k = 0; k < 1000; k++) {
		member_report(
		    w, 0, 1, "S0-0",
		    k % 2 == 0 ? "bh:Internet/S0-0/SMTP:down" : "bh:Internet/S0-0/SMTP:up", false);
		advance(w, 1);
	}
	member_report(w, 0, 1, "S0-0", "bh:Internet/S0-0/SMTP:down", false);
	advance(w, 200);
	size_t pushes = 0;
	for (size_t i = 0; i < w->n[0].nsent; i++)
		pushes += w->n[0].sent[i].conn == 2 &&
		          w->n[0].sent[i].f->body_case == MAILMESH__FRAME__BODY_TABLE_PUSH;
	pushes -= before;
	uint64_t versions = own(w, 0)->version->minor - minor0;
	/* a window whose end finds the state the members hold makes none */
	if (versions > 11 || pushes != versions || versions < 1)
		fail_msg(
		    "%llu versions, %zu pushes in a second of flapping: want 1..11, one push each",
		    (unsigned long long)versions, pushes);
	assert_true(bh_down(w, 0, "Internet", "S0-0"));
	const Mailmesh__Version *pv = pushed_version(w, 0, 2);
	assert_int_equal(mm_version_cmp(pv, own(w, 0)->version), 0);
	world_free(w);
}

/* A member that claims a version of our group above ours costs a new
 * incarnation (a persist and a push to every member) at most once per dead
 * interval, however often it claims: here a summary every 10 ms for 5 s
 * (dead interval 3 s: at most two). Mutation caught: mm_m_evidence without
 * the member_reinc_after check (a persist per summary). */
static void test_member_evidence_rate(void **state)
{
	(void)state;
	struct world *w = single_active();
	member_join(w, 0, 1, "S0-0");
	advance(w, 100);
	size_t persists = w->n[0].npersist;
	for (int k = 0; k < 500; k++) {
		Mailmesh__Version v = *own(w, 0)->version;
		v.incarnation++;
		Mailmesh__EntrySummary s = MAILMESH__ENTRY_SUMMARY__INIT, *ps = &s;
		s.group = "G000000";
		s.version = &v;
		uint8_t zero[MM_DIGEST_LEN] = {0};
		Mailmesh__DigestProbe p = MAILMESH__DIGEST_PROBE__INIT;
		p.digest = (ProtobufCBinaryData){MM_DIGEST_LEN, zero};
		p.n_entries = 1;
		p.entries = &ps;
		Mailmesh__Frame f = MAILMESH__FRAME__INIT;
		f.body_case = MAILMESH__FRAME__BODY_DIGEST_PROBE;
		f.digest_probe = &p;
		member_frame(w, 0, 1, &f);
		advance(w, 10);
	}
	size_t n = w->n[0].npersist - persists;
	if (n < 1 || n > 2)
		fail_msg("%zu new incarnations for 500 claims in 5 s: want 1 or 2", n);
	world_free(w);
}

/* A candidate whose clock is a year ahead (DESIGN §5.2, issue #15): B is
 * active first with an incarnation a year up; when it dies and comes back
 * below A, A goes above B's version -- the clock bound that ignored such
 * evidence wedged the group (members took B's incarnation, A published
 * below it for ever). Mutation caught: mm_m_evidence ignoring a claim more
 * than a year ahead of its clock (A's versions stay below what the
 * members hold). */
static void test_clock_ahead(void **state)
{
	(void)state;
	struct world *w = world_new(2, 0);
	w->n[1].wall_skew = 366LL * 86400 * 1000;
	node_boot(w, 1, 0); /* B alone: active a year up */
	advance(w, 4000);
	assert_int_equal(mm_master_role(&w->n[1].m), MM_MASTER_ACTIVE);
	member_join(w, 1, 1, "S0-0");
	advance(w, 4000); /* the grace: published */
	struct held h = {0};
	held_take(&h, w, 1, 1);
	if (!h.any || h.v.incarnation <= INC_BASE + 365ull * 86400)
		fail_msg("B's pushed incarnation %llu (any %d), its own %llu\n%s",
		         (unsigned long long)h.v.incarnation, h.any,
		         (unsigned long long)mm_master_incarnation(&w->n[1].m), w->n[1].log.p);
	node_kill(w, 1);
	node_boot(w, 0, 0); /* A, with a right clock */
	advance(w, 4000);
	join_held(w, 0, 2, "S0-0", &h);
	advance(w, 4000);
	const Mailmesh__Version *va = pushed_version(w, 0, 2);
	assert_non_null(va);
	if (mm_version_cmp(va, &h.v) <= 0)
		fail_msg("A pushes incarnation %llu, the member holds %llu",
		         (unsigned long long)va->incarnation, (unsigned long long)h.v.incarnation);
	world_free(w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_hello_checks),
	    cmocka_unit_test(test_queries),
	    cmocka_unit_test(test_reports),
	    cmocka_unit_test(test_liveness),
	    cmocka_unit_test(test_directory),
	    cmocka_unit_test(test_probe),
	    cmocka_unit_test(test_single_election),
	    cmocka_unit_test(test_persist_failure),
	    cmocka_unit_test(test_two_candidates),
	    cmocka_unit_test(test_failover),
	    cmocka_unit_test(test_return),
	    cmocka_unit_test(test_state_deleted),
	    cmocka_unit_test(test_partition),
	    cmocka_unit_test(test_stuck_better),
	    cmocka_unit_test(test_three_candidates),
	    cmocka_unit_test(test_incarnation_range),
	    cmocka_unit_test(test_rank_incarnations),
	    cmocka_unit_test(test_no_members_no_publish),
	    cmocka_unit_test(test_version_rate),
	    cmocka_unit_test(test_member_evidence_rate),
	    cmocka_unit_test(test_clock_ahead),
	    cmocka_unit_test(test_determinism),
	    cmocka_unit_test(test_split),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
