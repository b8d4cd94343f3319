/* The master machine's environment in rgmaster (master.h, struct
 * mm_master_env) and the 691 transport's events (net691.h) turned into
 * the machine's.
 *
 * Nothing reaches the machine from inside one of its own calls: timers
 * fire on a later turn of the loop, and the transport reports only from
 * libevent callbacks (a dial that fails at once is told on the next turn).
 * What the machine closes is forgotten at once (no event comes back for
 * it), but its struct waits in a grave until the next turn, because the
 * frame loop of its data callback may still be looking at it. */
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "frame.h"
#include "logfmt.h"
#include "rgm.h"
#include "table_view.h"

struct rgm_timer {
	struct rgm *r;
	uint64_t key;
	struct event *ev;
};

/* One connection the machine knows: its frame reader. */
struct rgm_conn {
	uint32_t id;
	struct mm_frame_reader reader;
	bool dead; /* closed: read nothing more from it */
	struct rgm_conn *next_dead;
};

/* --- clocks, randomness, the log ------------------------------------------ */

static int64_t now_ms(void *ctx)
{
	(void)ctx;
	return rgm_now_ms();
}

static int64_t wall_ms(void *ctx)
{
	(void)ctx;
	return rgm_wall_ms();
}

/* xorshift64*: Ping nonces, nothing that needs secrecy */
static uint32_t rnd(void *ctx)
{
	struct rgm *r = ctx;
	uint64_t x = r->rnd;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	r->rnd = x;
	return (uint32_t)((x * 0x2545F4914F6CDD1Dull) >> 32);
}

/* The machine's lines, but not those about a dial that failed as the
 * ones before it: the transport counts them (net691.h, mm_net_quiet). */
static void log_line(void *ctx, const char *line)
{
	struct rgm *r = ctx;
	if (r->net_ready && mm_net_quiet(&r->net))
		return;
	rgm_log("%s", line);
}

/* --- timers: one libevent timer per key ----------------------------------- */

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct rgm_timer *t = arg;
	/* the machine may cancel (and so free) t from inside: not touched after */
	mm_master_timer(&t->r->m, t->key);
}

static void timer_arm(void *ctx, uint64_t key, int64_t at_ms)
{
	struct rgm *r = ctx;
	struct rgm_timer *t = mm_u64map_get(&r->timers, key);
	if (t == NULL) {
		t = mm_xcalloc(1, sizeof(*t));
		*t = (struct rgm_timer){.r = r, .key = key};
		t->ev = evtimer_new(r->base, timer_cb, t);
		mm_u64map_put(&r->timers, key, t);
	}
	int64_t d = at_ms - rgm_now_ms();
	if (d < 0)
		d = 0;
	struct timeval tv = {(time_t)(d / 1000), (suseconds_t)(d % 1000) * 1000};
	evtimer_add(t->ev, &tv);
}

static void timer_cancel(void *ctx, uint64_t key)
{
	struct rgm *r = ctx;
	struct rgm_timer *t = mm_u64map_del(&r->timers, key);
	if (t) {
		event_free(t->ev);
		free(t);
	}
}

/* --- connections ---------------------------------------------------------- */

static void later_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct rgm *r = arg;
	struct rgm_conn *c;
	while ((c = r->grave) != NULL) {
		r->grave = c->next_dead;
		mm_frame_reader_free(&c->reader);
		free(c);
	}
}

static struct rgm_conn *conn_new(struct rgm *r, uint32_t id)
{
	struct rgm_conn *c = mm_xcalloc(1, sizeof(*c));
	c->id = id;
	mm_frame_reader_init(&c->reader, r->m.conf.frame_limit);
	/* the first frame is a Hello: a header announcing more is refused at
	 * once, not read up to the 16 MiB a table push may need */
	mm_frame_reader_first(&c->reader, RGM_HELLO_LIMIT);
	mm_u64map_put(&r->conns, id, c);
	return c;
}

/* Forget c; freed on the next turn. */
static void conn_bury(struct rgm *r, struct rgm_conn *c)
{
	mm_u64map_del(&r->conns, c->id);
	c->dead = true;
	c->next_dead = r->grave;
	r->grave = c;
	if (r->later == NULL)
		r->later = event_new(r->base, -1, 0, later_cb, r);
	event_active(r->later, 0, 0);
}

static void send_frame(void *ctx, uint32_t conn, const Mailmesh__Frame *f)
{
	struct rgm *r = ctx;
	size_t len;
	uint8_t *b = mm_frame_encode(f, &len);
	mm_net_send(&r->net, conn, b, len);
	free(b);
}

static void close_conn(void *ctx, uint32_t conn, const char *why)
{
	(void)why; /* the machine logged it */
	struct rgm *r = ctx;
	mm_net_close(&r->net, conn);
	struct rgm_conn *c = mm_u64map_get(&r->conns, conn);
	if (c)
		conn_bury(r, c);
}

static void dial(void *ctx, uint32_t conn, const char *candidate, const char *address)
{
	struct rgm *r = ctx;
	struct rgm_conn *old = mm_u64map_get(&r->conns, conn);
	if (old)
		conn_bury(r, old); /* a number the machine reuses: the old one is gone */
	conn_new(r, conn);
	/* the certificate must name master `candidate`, or the transport
	 * closes it and tells us (closed), before any byte is read */
	mm_net_dial(&r->net, conn, address, MM_CERT_MASTER, candidate);
}

static int persist(void *ctx, uint64_t incarnation)
{
	struct rgm *r = ctx;
	int e = rgm_state_write(r->state_dir, incarnation);
	if (e == 0)
		rgm_log("incarnation %llu written to %s/incarnation",
		        (unsigned long long)incarnation, r->state_dir);
	return e;
}

static char *render(void *ctx, const struct mm_table *t, const char *server, const char *role,
                    bool json)
{
	struct rgm *r = ctx;
	return mm_table_render(t, r->org, server, role, json);
}

/* DESIGN §5.2: every entry we issue, signed with our key */
static void sign(void *ctx, mm_entry *e)
{
	struct rgm *r = ctx;
	if (!mm_entry_sign(e, r->signer.key, r->signer.cert, r->signer.certlen))
		rgm_log("cannot sign the entry of group %s: it goes unsigned, and no one takes "
		        "it",
		        e->name);
}

void rgm_env(struct rgm *r, struct mm_master_env *env)
{
	*env = (struct mm_master_env){.ctx = r,
	                              .now_ms = now_ms,
	                              .wall_ms = wall_ms,
	                              .random = rnd,
	                              .timer_arm = timer_arm,
	                              .timer_cancel = timer_cancel,
	                              .send = send_frame,
	                              .close = close_conn,
	                              .dial = dial,
	                              .persist_incarnation = persist,
	                              .log = log_line,
	                              .table_render = render,
	                              .sign = r->signer.key ? sign : NULL};
}

/* --- the transport's events ----------------------------------------------- */

static void net_opened(void *ctx, uint32_t conn, const struct mm_net_peer *peer)
{
	struct rgm *r = ctx;
	struct mm_peer_id id, *idp = NULL;
	if (peer) {
		id.name = peer->name;
		id.kind = peer->kind == MM_CERT_SERVER   ? MM_PEER_SERVER
		          : peer->kind == MM_CERT_MASTER ? MM_PEER_MASTER
		                                         : MM_PEER_ADMIN;
		idp = &id;
	}
	bool outgoing = (conn & MM_NET_OUT) != 0;
	if (outgoing) {
		if (mm_u64map_get(&r->conns, conn) == NULL) {
			mm_net_close(&r->net, conn); /* not ours (any more) */
			return;
		}
		mm_master_conn_open(&r->m, conn, idp, true, NULL);
		return;
	}
	conn_new(r, conn);
	mm_master_conn_open(&r->m, conn, idp, false, NULL);
}

/* A connection whose bytes are not frames: closed, the others go on. */
static void conn_broken(struct rgm *r, struct rgm_conn *c, const char *why)
{
	uint32_t id = c->id;
	rgm_log("conn %u: %s: closed", (unsigned)id, why);
	mm_net_close(&r->net, id);
	conn_bury(r, c);
	mm_master_conn_closed(&r->m, id);
}

static void net_data(void *ctx, uint32_t conn, const uint8_t *p, size_t n)
{
	struct rgm *r = ctx;
	struct rgm_conn *c = mm_u64map_get(&r->conns, conn);
	if (c == NULL || c->dead)
		return;
	if (mm_frame_feed(&c->reader, p, n) == MM_FRAME_TOO_BIG) {
		conn_broken(r, c, "a frame over the limit (64 KiB until Hello)");
		return;
	}
	for (;;) {
		Mailmesh__Frame *f = NULL;
		enum mm_frame_status st = mm_frame_next(&c->reader, &f);
		if (st == MM_FRAME_NEED_MORE)
			return;
		if (st != MM_FRAME_OK) {
			conn_broken(r, c,
			            st == MM_FRAME_TOO_BIG ? "a frame over the limit"
			                                   : "a frame that does not decode");
			return;
		}
		mm_master_frame(&r->m, conn, f);
		mailmesh__frame__free_unpacked(f, NULL);
		if (c->dead) /* the machine closed it: nothing more from it */
			return;
	}
}

static void net_closed(void *ctx, uint32_t conn, const char *why)
{
	struct rgm *r = ctx;
	struct rgm_conn *c = mm_u64map_get(&r->conns, conn);
	if (c == NULL)
		return;
	/* the machine says "closed by the peer" (and, of a dial, that it
	 * failed); anything else is news, unless a dial failed so before */
	if (strcmp(why, "closed by the peer") != 0 && !mm_net_quiet(&r->net)) {
		char q[300];
		rgm_log("conn %u: %s", (unsigned)conn, mm_logfmt_quote(q, sizeof(q), why));
	}
	conn_bury(r, c);
	mm_master_conn_closed(&r->m, conn);
}

static void net_log(void *ctx, const char *line)
{
	(void)ctx;
	rgm_log("%s", line);
}

void rgm_net_ops(struct rgm *r, struct mm_net_ops *ops)
{
	*ops = (struct mm_net_ops){
	    .ctx = r, .opened = net_opened, .data = net_data, .closed = net_closed, .log = net_log};
}

void rgm_env_free(struct rgm *r)
{
	for (size_t i = 0; i < r->timers.cap; i++) {
		struct rgm_timer *t = r->timers.slots[i].value;
		if (t) {
			event_free(t->ev);
			free(t);
		}
	}
	mm_u64map_free(&r->timers);
	for (size_t i = 0; i < r->conns.cap; i++) {
		struct rgm_conn *c = r->conns.slots[i].value;
		if (c) {
			mm_frame_reader_free(&c->reader);
			free(c);
		}
	}
	mm_u64map_free(&r->conns);
	later_cb(-1, 0, r);
	if (r->later)
		event_free(r->later);
	r->later = NULL;
}
