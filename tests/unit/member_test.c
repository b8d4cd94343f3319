/* The member machine (node/core/member.h) in virtual time: a fake
 * environment writes every action as a line of a transcript (dial, send
 * with the frame decoded, close, save, and the result bits of the event),
 * the tests play the master's side with real frames and compare the
 * transcript, step by step, with what must come out. Links against the
 * core, linkstate and libcrypto only (ctest core_purity_member). Each test
 * names, in a comment, the mutation of the machine it was seen to catch. */
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
#include "connstate.h"
#include "frame.h"
#include "member.h"
#include "route.h"
#include "synth.h"

/* --- the organization ---------------------------------------------------- */

/* G000000: S0-0 (this server) and S0-1; master candidates M0-A and M0-B
 * (priority 100) and M0-0 (50); SMTP connectors on S0-0: "Internet" smtp:*
 * through the smart host 127.0.0.7:2526, "Mx" smtp:*.mx by MX; C0-0 to
 * G000001 from S0-0 to S1-0. G000001: S1-0, candidate M1-A. */
static void add_master(mm_entry *e, const char *name, const char *addr, unsigned prio)
{
	Mailmesh__MasterCandidate *m = mm_xmalloc(sizeof(*m));
	mailmesh__master_candidate__init(m);
	m->name = mm_xstrdup(name);
	m->routing_address = mm_xstrdup(addr);
	m->priority = prio;
	e->masters = mm_xrealloc(e->masters, e->n_masters + 1, sizeof(*e->masters));
	e->masters[e->n_masters++] = m;
}

static void smtp_connector(mm_entry *e, const char *name, const char *space, const char *smart)
{
	Mailmesh__Connector *c = mm_xmalloc(sizeof(*c));
	mailmesh__connector__init(c);
	c->name = mm_xstrdup(name);
	c->type = MAILMESH__CONNECTOR_TYPE__CONNECTOR_SMTP;
	c->cost = 1;
	c->smart_host = mm_xstrdup(smart ? smart : "");
	c->local_bridgeheads = mm_xcalloc(1, sizeof(*c->local_bridgeheads));
	c->local_bridgeheads[0] = synth_bridgehead(0, 0);
	c->n_local_bridgeheads = 1;
	Mailmesh__AddressSpace *a = mm_xmalloc(sizeof(*a));
	mailmesh__address_space__init(a);
	a->type = mm_xstrdup("smtp");
	a->pattern = mm_xstrdup(space);
	a->cost = 1;
	c->address_spaces = mm_xcalloc(1, sizeof(*c->address_spaces));
	c->address_spaces[0] = a;
	c->n_address_spaces = 1;
	e->connectors = mm_xrealloc(e->connectors, e->n_connectors + 1, sizeof(*e->connectors));
	e->connectors[e->n_connectors++] = c;
}

static void org_table(struct mm_table *t)
{
	mm_table_init(t);
	mm_entry *g0 = synth_group(0, 2), *g1 = synth_group(1, 1);
	add_master(g0, "M0-0", "127.0.9.3:691", 50);
	add_master(g0, "M0-B", "127.0.9.2:691", 100);
	add_master(g0, "M0-A", "127.0.9.1:691", 100);
	g0->master = mm_xstrdup("M0-A");
	add_master(g1, "M1-A", "127.0.8.1:691", 100);
	g1->master = mm_xstrdup("M1-A");
	smtp_connector(g0, "Internet", "*", "[127.0.0.7]:2526");
	smtp_connector(g0, "Mx", "*.mx", NULL);
	synth_connector(g0, 0, 0, 1, 10, 0, 1);
	mm_table_merge(t, g0);
	mm_table_merge(t, g1);
}

/* --- the fake environment ------------------------------------------------ */

#define MAXT 8

struct fake {
	int64_t now;
	uint64_t rnd;
	struct {
		uint64_t key;
		int64_t at;
		bool armed;
	} timers[MAXT];
	struct mm_buf out, log;
	uint8_t *saved;
	size_t nsaved;
	struct mm_member m;
};

static int64_t f_now(void *ctx)
{
	return ((struct fake *)ctx)->now;
}

static uint32_t f_random(void *ctx)
{
	struct fake *f = ctx;
	f->rnd = f->rnd * 6364136223846793005ULL + 1442695040888963407ULL;
	return (uint32_t)(f->rnd >> 32);
}

static void f_arm(void *ctx, uint64_t key, int64_t at)
{
	struct fake *f = ctx;
	int free_slot = -1;
	for (int i = 0; i < MAXT; i++) {
		if (f->timers[i].armed && f->timers[i].key == key) {
			f->timers[i].at = at;
			return;
		}
		if (!f->timers[i].armed && free_slot < 0)
			free_slot = i;
	}
	assert_true(free_slot >= 0);
	f->timers[free_slot].key = key;
	f->timers[free_slot].at = at;
	f->timers[free_slot].armed = true;
}

static void f_cancel(void *ctx, uint64_t key)
{
	struct fake *f = ctx;
	for (int i = 0; i < MAXT; i++)
		if (f->timers[i].armed && f->timers[i].key == key)
			f->timers[i].armed = false;
}

static void f_dial(void *ctx, uint32_t conn, const char *address, const char *cand)
{
	mm_buf_printf(&((struct fake *)ctx)->out, "dial %u %s %s\n", conn, address, cand);
}

static void vstr(struct mm_buf *b, const Mailmesh__Version *v)
{
	if (v == NULL)
		mm_buf_adds(b, "none");
	else
		mm_buf_printf(b, "%llu.%llu.%llu.%llu", (unsigned long long)v->incarnation,
		              (unsigned long long)v->major, (unsigned long long)v->minor,
		              (unsigned long long)v->user);
}

/* One frame, as the transcript writes it. */
static void describe(struct mm_buf *b, const Mailmesh__Frame *f)
{
	switch (f->body_case) {
	case MAILMESH__FRAME__BODY_HELLO: {
		const Mailmesh__Hello *h = f->hello;
		mm_buf_printf(b, "hello %s %s %s %u.%u v=", h->name, h->group,
		              h->role == MAILMESH__ROLE__ROLE_NODE ? "node" : "other",
		              h->proto_major, h->proto_minor);
		vstr(b, h->version);
		mm_buf_printf(b, " inc=%llu", (unsigned long long)h->incarnation_seen);
		break;
	}
	case MAILMESH__FRAME__BODY_STATE_REPORT: {
		const Mailmesh__StateReport *r = f->state_report;
		mm_buf_printf(b, "report%s", r->snapshot ? " snapshot" : "");
		assert_string_equal(r->reporter, "S0-0");
		for (size_t i = 0; i < r->n_changes; i++) {
			const Mailmesh__ObjectState *o = r->changes[i];
			if (o->kind == MAILMESH__OBJECT_STATE__KIND__SERVER)
				mm_buf_printf(b, " server:%s", o->name);
			else
				mm_buf_printf(b, " bh:%s/%s/%s", o->name, o->server,
				              o->virtual_server);
			mm_buf_adds(b, o->down ? "=down" : "=up");
		}
		break;
	}
	case MAILMESH__FRAME__BODY_DIGEST_PROBE:
		mm_buf_printf(b, "probe n=%zu", f->digest_probe->n_entries);
		for (size_t i = 0; i < f->digest_probe->n_entries; i++) {
			mm_buf_printf(b, " %s@", f->digest_probe->entries[i]->group);
			vstr(b, f->digest_probe->entries[i]->version);
		}
		break;
	case MAILMESH__FRAME__BODY_PING: mm_buf_adds(b, "ping"); break;
	case MAILMESH__FRAME__BODY_PONG:
		mm_buf_printf(b, "pong %llu", (unsigned long long)f->pong->nonce);
		break;
	default: mm_buf_printf(b, "frame %d", (int)f->body_case); break;
	}
}

/* Every send is exactly one whole frame. */
static void f_send(void *ctx, uint32_t conn, const uint8_t *bytes, size_t len)
{
	struct fake *f = ctx;
	struct mm_frame_reader r;
	mm_frame_reader_init(&r, MM_FRAME_LIMIT_DEFAULT);
	Mailmesh__Frame *fr = NULL;
	assert_int_equal(mm_frame_feed(&r, bytes, len), MM_FRAME_NEED_MORE);
	assert_int_equal(mm_frame_next(&r, &fr), MM_FRAME_OK);
	assert_int_equal(r.len, 0);
	mm_buf_printf(&f->out, "send %u ", conn);
	describe(&f->out, fr);
	mm_buf_adds(&f->out, "\n");
	mailmesh__frame__free_unpacked(fr, NULL);
	mm_frame_reader_free(&r);
}

static void f_close(void *ctx, uint32_t conn)
{
	mm_buf_printf(&((struct fake *)ctx)->out, "close %u\n", conn);
}

static void f_save(void *ctx, const uint8_t *bytes, size_t len)
{
	struct fake *f = ctx;
	free(f->saved);
	f->saved = mm_xmalloc(len ? len : 1);
	memcpy(f->saved, bytes, len);
	f->nsaved = len;
	mm_buf_adds(&f->out, "save\n");
}

static void f_log(void *ctx, const char *line)
{
	mm_buf_printf(&((struct fake *)ctx)->log, "%s\n", line);
}

static const struct mm_member_conf base_conf = {.ping_interval_ms = 1000,
                                                .dead_after = 3,
                                                .retry_min_ms = 1000,
                                                .retry_max_ms = 8000,
                                                .retry_jitter_pct = 0,
                                                .frame_limit = 1 << 20};

static struct mm_member_env fake_env(struct fake *f)
{
	return (struct mm_member_env){.ctx = f,
	                              .now_ms = f_now,
	                              .random = f_random,
	                              .timer_arm = f_arm,
	                              .timer_cancel = f_cancel,
	                              .dial = f_dial,
	                              .send = f_send,
	                              .close = f_close,
	                              .save_table = f_save,
	                              .log = f_log};
}

/* A node from the table given (taken over), or the organization's. */
static struct fake *fake_boot(const struct mm_member_conf *conf, struct mm_table *t)
{
	struct fake *f = mm_xcalloc(1, sizeof(*f));
	f->now = 1000;
	f->rnd = 42;
	struct mm_table org;
	if (t == NULL) {
		org_table(&org);
		t = &org;
	}
	struct mm_member_env env = fake_env(f);
	assert_true(mm_member_init(&f->m, conf ? conf : &base_conf, &env, "S0-0", t));
	return f;
}

static struct fake *fake_new(void)
{
	return fake_boot(NULL, NULL);
}

static void fake_free(struct fake *f)
{
	mm_member_free(&f->m);
	mm_buf_free(&f->out);
	mm_buf_free(&f->log);
	free(f->saved);
	free(f);
}

/* The transcript since the last call (a new string). */
static char *take(struct fake *f)
{
	char *s = mm_xstrdup(f->out.p ? f->out.p : "");
	mm_buf_reset(&f->out);
	return s;
}

/* The transcript since the last call must be want. */
static void expect(struct fake *f, const char *want)
{
	char *got = take(f);
	if (strcmp(got, want) != 0)
		fail_msg("got\n%s-- want\n%s--\nlog:\n%s", got, want, f->log.p ? f->log.p : "");
	free(got);
}

static bool logged(const struct fake *f, const char *needle)
{
	return f->log.p && strstr(f->log.p, needle) != NULL;
}

static void flags(struct fake *f, unsigned r)
{
	if (r & MM_MEMBER_TABLE_CHANGED)
		mm_buf_adds(&f->out, "table-changed\n");
	if (r & MM_MEMBER_MASTER_CHANGED)
		mm_buf_adds(&f->out, "master-changed\n");
}

/* Fire every timer due up to t, in time order (ties: by key), moving the
 * clock. */
static void run_until(struct fake *f, int64_t t)
{
	for (uint32_t fired = 0;; fired++) {
		if (fired > 1000000)
			fail_msg("timers fire again and again at %lld", (long long)f->now);
		int best = -1;
		for (int i = 0; i < MAXT; i++)
			if (f->timers[i].armed && f->timers[i].at <= t &&
			    (best < 0 || f->timers[i].at < f->timers[best].at ||
			     (f->timers[i].at == f->timers[best].at &&
			      f->timers[i].key < f->timers[best].key)))
				best = i;
		if (best < 0)
			break;
		if (f->timers[best].at > f->now)
			f->now = f->timers[best].at;
		f->timers[best].armed = false;
		flags(f, mm_member_timer(&f->m, f->timers[best].key));
	}
	if (t > f->now)
		f->now = t;
}

static int64_t timer_at(const struct fake *f, uint64_t key)
{
	for (int i = 0; i < MAXT; i++)
		if (f->timers[i].armed && f->timers[i].key == key)
			return f->timers[i].at;
	return -1;
}

/* --- the master's side --------------------------------------------------- */

static unsigned feed(struct fake *f, uint32_t conn, Mailmesh__Frame *fr)
{
	size_t len;
	uint8_t *b = mm_frame_encode(fr, &len);
	unsigned r = mm_member_conn_data(&f->m, conn, b, len);
	free(b);
	return r;
}

static unsigned m_hello(struct fake *f, uint32_t conn, const char *name, const char *group,
                        Mailmesh__MasterState st, const char *active, uint32_t major,
                        uint32_t minor)
{
	Mailmesh__Hello h = MAILMESH__HELLO__INIT;
	h.name = (char *)name;
	h.group = (char *)group;
	h.role = MAILMESH__ROLE__ROLE_MASTER;
	h.proto_major = major;
	h.proto_minor = minor;
	h.master_state = st;
	h.active_master = (char *)(active ? active : "");
	Mailmesh__Frame fr = MAILMESH__FRAME__INIT;
	fr.body_case = MAILMESH__FRAME__BODY_HELLO;
	fr.hello = &h;
	return feed(f, conn, &fr);
}

/* The entries are copied into the frame's bytes; they stay the caller's. */
static unsigned m_push(struct fake *f, uint32_t conn, bool full, mm_entry **e, size_t n)
{
	Mailmesh__TablePush p = MAILMESH__TABLE_PUSH__INIT;
	p.full = full;
	p.entries = e;
	p.n_entries = n;
	Mailmesh__Frame fr = MAILMESH__FRAME__INIT;
	fr.body_case = MAILMESH__FRAME__BODY_TABLE_PUSH;
	fr.table_push = &p;
	unsigned r = feed(f, conn, &fr);
	return r;
}

/* A newer copy of a group's entry as the member holds it (user + 1), as a
 * master issues it: a directory's baseline (incarnation 0) is taken to
 * incarnation 1, since baselines never travel. */
static mm_entry *newer(struct fake *f, const char *group)
{
	mm_entry *e = mm_entry_clone(mm_table_find(mm_member_base(&f->m), group));
	e->version->user++;
	if (e->version->incarnation == 0)
		e->version->incarnation = 1;
	return e;
}

static unsigned m_probe(struct fake *f, uint32_t conn, bool same)
{
	uint8_t d[MM_DIGEST_LEN];
	mm_table_digest(mm_member_base(&f->m), d);
	if (!same)
		d[0] ^= 1;
	Mailmesh__DigestProbe p = MAILMESH__DIGEST_PROBE__INIT;
	p.digest = (ProtobufCBinaryData){MM_DIGEST_LEN, d};
	Mailmesh__Frame fr = MAILMESH__FRAME__INIT;
	fr.body_case = MAILMESH__FRAME__BODY_DIGEST_PROBE;
	fr.digest_probe = &p;
	return feed(f, conn, &fr);
}

static unsigned m_ping(struct fake *f, uint32_t conn, uint64_t nonce)
{
	Mailmesh__Ping p = MAILMESH__PING__INIT;
	p.nonce = nonce;
	Mailmesh__Frame fr = MAILMESH__FRAME__INIT;
	fr.body_case = MAILMESH__FRAME__BODY_PING;
	fr.ping = &p;
	return feed(f, conn, &fr);
}

/* --- numbered steps ------------------------------------------------------ */

/* One event, as a step writes it:
 *   start | stop | advance MS
 *   open CONN KIND NAME | open CONN -          (- : no certificate)
 *   hello CONN NAME GROUP active|standby|none [ACTIVE] [major=N] [minor=N]
 *   closed CONN WHY
 *   push CONN GROUP                              (a newer copy of its entry)
 *   probe CONN same|diff | ping CONN NONCE | garbage CONN | huge CONN
 *   report CONNECTOR VSERVER up|down */
static void event(struct fake *f, const char *ev)
{
	char w[6][64] = {{0}};
	int n = sscanf(ev, "%63s %63s %63s %63s %63s %63s", w[0], w[1], w[2], w[3], w[4], w[5]);
	uint32_t conn = n > 1 ? (uint32_t)strtoul(w[1], NULL, 10) : 0;
	unsigned r = 0;
	if (strcmp(w[0], "start") == 0) {
		r = mm_member_start(&f->m);
	} else if (strcmp(w[0], "stop") == 0) {
		r = mm_member_stop(&f->m);
	} else if (strcmp(w[0], "advance") == 0) {
		run_until(f, f->now + strtol(w[1], NULL, 10));
	} else if (strcmp(w[0], "open") == 0) {
		struct mm_member_peer id = {w[2], w[3]};
		r = mm_member_conn_open(&f->m, conn, strcmp(w[2], "-") == 0 ? NULL : &id);
	} else if (strcmp(w[0], "hello") == 0) {
		Mailmesh__MasterState st =
		    strcmp(w[4], "active") == 0    ? MAILMESH__MASTER_STATE__MASTER_ACTIVE
		    : strcmp(w[4], "standby") == 0 ? MAILMESH__MASTER_STATE__MASTER_STANDBY
		                                   : MAILMESH__MASTER_STATE__MASTER_NONE;
		const char *active = NULL;
		uint32_t major = 1, minor = 0;
		for (int i = 5; i < n; i++) {
			if (strncmp(w[i], "major=", 6) == 0)
				major = (uint32_t)strtoul(w[i] + 6, NULL, 10);
			else if (strncmp(w[i], "minor=", 6) == 0)
				minor = (uint32_t)strtoul(w[i] + 6, NULL, 10);
			else
				active = w[i];
		}
		r = m_hello(f, conn, w[2], w[3], st, active, major, minor);
	} else if (strcmp(w[0], "closed") == 0) {
		r = mm_member_conn_closed(&f->m, conn, w[2]);
	} else if (strcmp(w[0], "push") == 0) {
		mm_entry *e = newer(f, w[2]);
		r = m_push(f, conn, false, &e, 1);
		mm_entry_free(e);
	} else if (strcmp(w[0], "probe") == 0) {
		r = m_probe(f, conn, strcmp(w[2], "same") == 0);
	} else if (strcmp(w[0], "ping") == 0) {
		r = m_ping(f, conn, strtoull(w[2], NULL, 10));
	} else if (strcmp(w[0], "garbage") == 0) {
		static const uint8_t junk[] = {0, 0, 0, 3, 0xff, 0xff, 0xff};
		r = mm_member_conn_data(&f->m, conn, junk, sizeof(junk));
	} else if (strcmp(w[0], "huge") == 0) {
		static const uint8_t big[] = {0x40, 0, 0, 0, 1};
		r = mm_member_conn_data(&f->m, conn, big, sizeof(big));
	} else if (strcmp(w[0], "report") == 0) {
		struct mm_bh_report rep = {w[1], w[2], strcmp(w[3], "down") == 0};
		r = mm_member_report(&f->m, &rep, 1);
	} else {
		fail_msg("unknown event %s", ev);
	}
	flags(f, r);
}

struct step {
	const char *event;
	const char *want; /* the transcript the event must give */
};

static void run_steps(struct fake *f, const char *name, const struct step *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		event(f, s[i].event);
		char *got = take(f);
		if (strcmp(got, s[i].want) != 0)
			fail_msg("%s, step %zu (%s): got\n%s-- want\n%s--\nlog:\n%s", name, i + 1,
			         s[i].event, got, s[i].want, f->log.p ? f->log.p : "");
		free(got);
	}
}

#define STEPS(f, s) run_steps(f, #s, s, sizeof(s) / sizeof(s[0]))

#define HELLO1 "send 1 hello S0-0 G000000 node 1.0 v=0.1.0.0 inc=0\n"
#define SNAP1  "send 1 report snapshot server:S0-0=up\nmaster-changed\n"

/* A node connected to M0-A as its active master; the transcript emptied. */
static struct fake *connected(void)
{
	struct fake *f = fake_new();
	static const struct step s[] = {
	    {"start", "dial 1 127.0.9.1:691 M0-A\n"},
	    {"open 1 master M0-A", HELLO1},
	    {"hello 1 M0-A G000000 active", SNAP1},
	};
	STEPS(f, s);
	return f;
}

/* --- tests: the connection ----------------------------------------------- */

/* Hello goes first with the node's name, group, role, protocol 1.0 and the
 * version it holds of its group's entry; an unknown minor version of the
 * master's is accepted; the snapshot follows at once, then pings when the
 * node has sent nothing for an interval (whatever it received), and pongs
 * to pings. Mutations caught: proto_minor set to 1 (step 2); h.version
 * left out (step 2); the snapshot not sent (step 3); the ping timer
 * re-armed from last_rx, or a ping only when nothing was received (the
 * timer comes due in the past again and again: run_until fails). */
static void test_hello(void **state)
{
	(void)state;
	struct fake *f = fake_new();
	static const struct step s[] = {
	    {"start", "dial 1 127.0.9.1:691 M0-A\n"},
	    {"open 1 master M0-A", HELLO1},
	    {"hello 1 M0-A G000000 active minor=7", SNAP1},
	    {"advance 999", ""},
	    {"advance 1", "send 1 ping\n"},
	    {"advance 500", ""},
	    {"ping 1 77", "send 1 pong 77\n"},
	    {"advance 999", ""},
	    {"advance 1", "send 1 ping\n"},
	    {"advance 600", ""},
	    {"probe 1 same", ""},
	    {"advance 400", "send 1 ping\n"},
	};
	STEPS(f, s);
	assert_string_equal(mm_member_master(&f->m), "M0-A");
	assert_int_equal(timer_at(f, MM_MEMBER_TIMER_PING), f->now + 1000);
	/* moved lazily when it fires: from the dial's 4000 to the pong's
	 * 2500 + 3000 (and at 5500 on to the probe's 4100 + 3000) */
	assert_int_equal(timer_at(f, MM_MEMBER_TIMER_DEAD), 2500 + 3000);
	fake_free(f);
}

/* The Hello's digest is the base table's, and its incarnation the highest
 * seen. Mutation caught: incarnation_seen not raised by a pushed entry of
 * the group (the second Hello says inc=0). */
static void test_hello_digest_incarnation(void **state)
{
	(void)state;
	struct fake *f = connected();
	mm_entry *e = newer(f, "G000000");
	e->version->incarnation = 1700000000;
	flags(f, m_push(f, 1, false, &e, 1));
	mm_entry_free(e);
	free(take(f));
	static const struct step s[] = {
	    {"closed 1 reset", "dial 2 127.0.9.1:691 M0-A\nmaster-changed\n"},
	    {"open 2 master M0-A",
	     "send 2 hello S0-0 G000000 node 1.0 v=1700000000.1.0.1 inc=1700000000\n"},
	};
	STEPS(f, s);
	fake_free(f);
}

/* A standby names the active master and closes: the node dials that one.
 * Mutations caught: the redirect ignored (step 3 dials M0-B, the next in
 * order, not M0-0 that the standby named); the standby's connection left
 * open (no close 1). */
static void test_standby_redirect(void **state)
{
	(void)state;
	struct fake *f = fake_new();
	static const struct step s[] = {
	    {"start", "dial 1 127.0.9.1:691 M0-A\n"},
	    {"open 1 master M0-A", HELLO1},
	    {"hello 1 M0-A G000000 standby M0-0", "close 1\ndial 2 127.0.9.3:691 M0-0\n"},
	    {"open 2 master M0-0", "send 2 hello S0-0 G000000 node 1.0 v=0.1.0.0 inc=0\n"},
	    {"hello 2 M0-0 G000000 active",
	     "send 2 report snapshot server:S0-0=up\nmaster-changed\n"},
	};
	STEPS(f, s);
	assert_string_equal(mm_member_master(&f->m), "M0-0");
	fake_free(f);
}

/* Candidates in order (priority, then name); the next one when a dial
 * fails or a standby knows no master; a round over all of them, then a
 * wait that doubles. A standby naming a master outside the group is not
 * followed. Mutations caught: candidates sorted by name only (M0-0, of
 * priority 50, first: step 1); the round counter not raised (step 11
 * dials after 1000 ms); no wait between rounds (step 5 dials at once). */
static void test_next_candidate(void **state)
{
	(void)state;
	struct fake *f = fake_new();
	static const struct step s[] = {
	    {"start", "dial 1 127.0.9.1:691 M0-A\n"},
	    {"closed 1 refused", "dial 2 127.0.9.2:691 M0-B\n"},
	    {"open 2 master M0-B", "send 2 hello S0-0 G000000 node 1.0 v=0.1.0.0 inc=0\n"},
	    {"hello 2 M0-B G000000 standby M1-A", "close 2\ndial 3 127.0.9.3:691 M0-0\n"},
	    {"closed 3 timeout", ""},
	    {"advance 999", ""},
	    {"advance 1", "dial 4 127.0.9.1:691 M0-A\n"},
	    {"closed 4 refused", "dial 5 127.0.9.2:691 M0-B\n"},
	    {"closed 5 refused", "dial 6 127.0.9.3:691 M0-0\n"},
	    {"closed 6 refused", ""},
	    {"advance 1999", ""},
	    {"advance 1", "dial 7 127.0.9.1:691 M0-A\n"},
	};
	STEPS(f, s);
	assert_true(logged(f, "\"M1-A\" is not a master candidate of G000000"));
	assert_true(logged(f, "next round in 2000 ms"));
	fake_free(f);
}

/* The certificate must name the candidate dialled, kind master: a server's
 * certificate under the candidate's name, a master of another group, or no
 * certificate while not insecure close the connection before anything is
 * read, and what comes on it later is refused. Mutations caught: the kind
 * not compared (step 2 sends a Hello); the name not compared (step 3). */
static void test_identity(void **state)
{
	(void)state;
	struct fake *f = fake_new();
	static const struct step s[] = {
	    {"start", "dial 1 127.0.9.1:691 M0-A\n"},
	    {"open 1 server M0-A", "close 1\ndial 2 127.0.9.2:691 M0-B\n"},
	    {"open 2 master M1-A", "close 2\ndial 3 127.0.9.3:691 M0-0\n"},
	    {"push 2 G000001", ""},
	    {"hello 2 M0-B G000000 active", ""},
	    {"open 3 -", "close 3\n"},
	};
	STEPS(f, s);
	assert_true(logged(f, "its certificate names \"server\" \"M0-A\", not master M0-A"));
	assert_true(logged(f, "names \"master\" \"M1-A\", not master M0-B"));
	assert_true(logged(f, "refused: not the active master's"));
	assert_null(mm_member_master(&f->m));
	assert_null(f->saved);
	fake_free(f);
	/* insecure: the Hello is the identity, and it must be the candidate
	 * of this group */
	struct mm_member_conf c = base_conf;
	c.insecure = true;
	f = fake_boot(&c, NULL);
	static const struct step s2[] = {
	    {"start", "dial 1 127.0.9.1:691 M0-A\n"},
	    {"open 1 -", HELLO1},
	    {"hello 1 M0-A G000001 active", "close 1\ndial 2 127.0.9.2:691 M0-B\n"},
	    {"open 2 -", "send 2 hello S0-0 G000000 node 1.0 v=0.1.0.0 inc=0\n"},
	    {"hello 2 M1-A G000001 active", "close 2\ndial 3 127.0.9.3:691 M0-0\n"},
	};
	STEPS(f, s2);
	assert_true(logged(f, "the peer says it is \"M0-A\" of \"G000001\", not M0-A of G000000"));
	fake_free(f);
}

/* An unknown major version closes with a logged reason. Mutation caught:
 * the major not checked (step 3 sends the snapshot). */
static void test_unknown_major(void **state)
{
	(void)state;
	struct fake *f = fake_new();
	static const struct step s[] = {
	    {"start", "dial 1 127.0.9.1:691 M0-A\n"},
	    {"open 1 master M0-A", HELLO1},
	    {"hello 1 M0-A G000000 active major=2", "close 1\ndial 2 127.0.9.2:691 M0-B\n"},
	};
	STEPS(f, s);
	assert_true(logged(f, "unknown protocol major version 2 (this node speaks 1)"));
	fake_free(f);
}

/* A push before the master's Hello, or on a connection that is not the
 * active master's (a standby's, once closed), is refused: nothing merged,
 * nothing saved. Mutations caught: frames other than Hello accepted in
 * MM_MEMBER_HELLO (step 3 saves); data on a closed connection read as the
 * current one's (step 10 saves). */
static void test_push_refused(void **state)
{
	(void)state;
	struct fake *f = fake_new();
	const Mailmesh__Version *v1 = mm_table_find(mm_member_base(&f->m), "G000001")->version;
	assert_int_equal(v1->user, 0);
	static const struct step s[] = {
	    {"start", "dial 1 127.0.9.1:691 M0-A\n"},
	    {"open 1 master M0-A", HELLO1},
	    {"push 1 G000001", "close 1\ndial 2 127.0.9.2:691 M0-B\n"},
	    {"open 2 master M0-B", "send 2 hello S0-0 G000000 node 1.0 v=0.1.0.0 inc=0\n"},
	    {"hello 2 M0-B G000000 standby M0-A", "close 2\ndial 3 127.0.9.1:691 M0-A\n"},
	    {"push 2 G000001", ""},
	    {"push 1 G000001", ""},
	    {"open 3 master M0-A", "send 3 hello S0-0 G000000 node 1.0 v=0.1.0.0 inc=0\n"},
	    {"hello 3 M0-A G000000 active",
	     "send 3 report snapshot server:S0-0=up\nmaster-changed\n"},
	    {"push 2 G000001", ""},
	};
	STEPS(f, s);
	assert_true(logged(f, "frame 4 before the peer's Hello"));
	assert_null(f->saved);
	assert_int_equal(mm_table_find(mm_member_base(&f->m), "G000001")->version->user, 0);
	fake_free(f);
}

/* A frame that does not decode, or one announced over the limit, closes
 * that connection only; the node dials again at once. Mutation caught: a
 * TOO_BIG reader status ignored (step 3 is silent). */
static void test_bad_frames(void **state)
{
	(void)state;
	struct fake *f = connected();
	static const struct step s[] = {
	    {"garbage 1", "close 1\ndial 2 127.0.9.1:691 M0-A\nmaster-changed\n"},
	    {"open 2 master M0-A", "send 2 hello S0-0 G000000 node 1.0 v=0.1.0.0 inc=0\n"},
	    {"huge 2", "close 2\ndial 3 127.0.9.2:691 M0-B\n"},
	};
	STEPS(f, s);
	assert_true(logged(f, "a frame that does not decode"));
	assert_true(logged(f, "a frame over the limit of 1048576 bytes"));
	fake_free(f);
}

/* Pings while idle; a master silent for dead_after intervals is dead: the
 * connection closes and a new round starts at the first candidate. Frames
 * from the master keep it alive. Mutations caught: last_rx not updated on
 * data (step 3 kills a live master); dead after dead_after - 1 intervals
 * (step 3 too). */
static void test_master_dead(void **state)
{
	(void)state;
	struct fake *f = connected();
	static const struct step s[] = {
	    {"advance 1000", "send 1 ping\n"},
	    {"ping 1 5", "send 1 pong 5\n"},
	    {"advance 2999", "send 1 ping\nsend 1 ping\n"},
	    {"advance 1", "send 1 ping\nclose 1\ndial 2 127.0.9.1:691 M0-A\nmaster-changed\n"},
	};
	STEPS(f, s);
	assert_true(logged(f, "nothing received for 3000 ms (3 intervals)"));
	assert_null(mm_member_master(&f->m));
	/* a dial that hangs is given up after the same interval */
	static const struct step s2[] = {
	    {"advance 2999", ""},
	    {"advance 1", "close 2\ndial 3 127.0.9.2:691 M0-B\n"},
	};
	STEPS(f, s2);
	fake_free(f);
}

/* --- tests: state reports ------------------------------------------------- */

/* The snapshot after connecting names the server up and every bridgehead
 * that is down; later changes go at once; a change to what is known sends
 * nothing; before an orderly stop the server goes down, and nothing is
 * dialled after. Mutations caught: the snapshot naming items that are up
 * (step 5 has bh:Mx/S0-0/SMTP=up); report() sending when nothing changed
 * (step 6); stop() closing without the report (step 10). */
static void test_reports(void **state)
{
	(void)state;
	struct fake *f = fake_new();
	static const struct step s[] = {
	    {"report Internet SMTP down", "table-changed\n"},
	    {"report Mx SMTP up", ""},
	    {"start", "dial 1 127.0.9.1:691 M0-A\n"},
	    {"open 1 master M0-A", HELLO1},
	    {"hello 1 M0-A G000000 active",
	     "send 1 report snapshot server:S0-0=up bh:Internet/S0-0/SMTP=down\nmaster-changed\n"},
	    {"report Internet SMTP down", ""},
	    {"report C0-0 SMTP down", "send 1 report bh:C0-0/S0-0/SMTP=down\ntable-changed\n"},
	    {"report Internet SMTP up", "send 1 report bh:Internet/S0-0/SMTP=up\ntable-changed\n"},
	    {"report Nonesuch SMTP down", ""},
	    {"stop", "send 1 report server:S0-0=down\nclose 1\nmaster-changed\n"},
	    {"advance 60000", ""},
	};
	STEPS(f, s);
	fake_free(f);
}

/* While no master is reachable, a down and then an up of one bridgehead
 * cancel: neither goes, the snapshot says nothing of it, and the view is
 * back to the master's entry. Mutation caught: the snapshot naming every
 * item (bh:Internet/S0-0/SMTP=up in step 5). */
static void test_pending_cancel(void **state)
{
	(void)state;
	struct fake *f = fake_new();
	const mm_entry *base0 = mm_table_find(mm_member_base(&f->m), "G000000");
	static const struct step s[] = {
	    {"report Internet SMTP down", "table-changed\n"},
	    {"report Internet SMTP up", "table-changed\n"},
	    {"start", "dial 1 127.0.9.1:691 M0-A\n"},
	    {"open 1 master M0-A", HELLO1},
	    {"hello 1 M0-A G000000 active", SNAP1},
	};
	STEPS(f, s);
	assert_ptr_equal(mm_table_find(mm_member_table(&f->m), "G000000"), base0);
	fake_free(f);
}

static const Mailmesh__Bridgehead *bh_of(const struct mm_table *t, const char *conn)
{
	const mm_entry *e = mm_table_find(t, "G000000");
	for (size_t c = 0; c < e->n_connectors; c++)
		if (strcmp(e->connectors[c]->name, conn) == 0)
			return e->connectors[c]->local_bridgeheads[0];
	fail_msg("no connector %s", conn);
	return NULL;
}

/* The node's own report applies to its routing at once, with no master:
 * mail for example.com leaves the failed Internet connector (unreachable
 * here: it is the only way out), the base table and the version stay the
 * master's. The master's newer entry supersedes the overlay once it says
 * the same (the view's entry is base's own object again); a newer entry
 * that does not say it yet (sent before the report arrived) keeps the
 * overlay; the node's own server stays up in its view whatever a master
 * thought. Mutations caught: the overlay not applied again after a merge
 * (step b: Internet up in the view); the overlay applied to base (base
 * marks down before the master said so); view_refresh freeing the old copy
 * before making the new one (the new copy at the old address: the router
 * takes it for the entry it knows and routes over C0-0 still). */
static void test_overlay(void **state)
{
	(void)state;
	struct fake *f = fake_new();
	struct mm_router r;
	assert_true(mm_router_init(&r, mm_member_table(&f->m), "S0-0"));
	struct mm_route rt;
	mm_route_to_domain(&r, "example.com", "k", &rt);
	assert_int_equal(rt.kind, MM_ROUTE_EXTERNAL);

	flags(f, mm_member_report(&f->m, &(struct mm_bh_report){"Internet", "SMTP", true}, 1));
	expect(f, "table-changed\n");
	mm_router_update(&r, mm_member_table(&f->m));
	mm_route_to_domain(&r, "example.com", "k", &rt);
	assert_int_equal(rt.kind, MM_ROUTE_UNREACHABLE);
	assert_true(bh_of(mm_member_table(&f->m), "Internet")->down);
	assert_false(bh_of(mm_member_base(&f->m), "Internet")->down);
	assert_int_equal(mm_table_find(mm_member_table(&f->m), "G000000")->version->minor, 0);
	assert_int_equal(mm_member_unconfirmed(&f->m), 1);
	/* a second change: a new copy, at another address than the one the
	 * router knows (its caches know entries by address and version) */
	const mm_entry *before = mm_table_find(mm_member_table(&f->m), "G000000");
	flags(f, mm_member_report(&f->m, &(struct mm_bh_report){"C0-0", "SMTP", true}, 1));
	expect(f, "table-changed\n");
	assert_ptr_not_equal(mm_table_find(mm_member_table(&f->m), "G000000"), before);
	mm_router_update(&r, mm_member_table(&f->m));
	mm_route_to_server(&r, "S1-0", "k", &rt);
	assert_int_equal(rt.kind, MM_ROUTE_UNREACHABLE);
	flags(f, mm_member_report(&f->m, &(struct mm_bh_report){"C0-0", "SMTP", false}, 1));
	expect(f, "table-changed\n");
	mm_router_update(&r, mm_member_table(&f->m));
	mm_route_to_server(&r, "S1-0", "k", &rt);
	assert_int_equal(rt.kind, MM_ROUTE_INTER);

	/* (a) the master comes: the snapshot says it */
	static const struct step s[] = {
	    {"start", "dial 1 127.0.9.1:691 M0-A\n"},
	    {"open 1 master M0-A", HELLO1},
	    {"hello 1 M0-A G000000 active",
	     "send 1 report snapshot server:S0-0=up bh:Internet/S0-0/SMTP=down\nmaster-changed\n"},
	};
	STEPS(f, s);
	/* (b) a newer entry sent before the master read the report, and in
	 * which the master thought this server down */
	mm_entry *e = newer(f, "G000000");
	assert_true(mm_entry_set_server(e, "S0-0", true));
	flags(f, m_push(f, 1, false, &e, 1));
	mm_entry_free(e);
	expect(f, "save\ntable-changed\n");
	mm_router_update(&r, mm_member_table(&f->m));
	mm_route_to_domain(&r, "example.com", "k", &rt);
	assert_int_equal(rt.kind, MM_ROUTE_UNREACHABLE);
	assert_true(bh_of(mm_member_table(&f->m), "Internet")->down);
	const mm_entry *v = mm_table_find(mm_member_table(&f->m), "G000000");
	assert_false(v->servers[0]->down);
	assert_int_equal(v->version->user, 2);
	assert_int_equal(mm_member_unconfirmed(&f->m), 2);
	/* (c) the master's entry that reflects it: superseded */
	e = mm_entry_clone(mm_table_find(mm_member_base(&f->m), "G000000"));
	assert_true(mm_entry_set_server(e, "S0-0", false));
	assert_true(mm_entry_set_bridgehead(e, "Internet", "S0-0", "SMTP", true));
	flags(f, m_push(f, 1, false, &e, 1));
	mm_entry_free(e);
	expect(f, "save\ntable-changed\n");
	assert_ptr_equal(mm_table_find(mm_member_table(&f->m), "G000000"),
	                 mm_table_find(mm_member_base(&f->m), "G000000"));
	assert_int_equal(mm_member_unconfirmed(&f->m), 0);
	mm_router_update(&r, mm_member_table(&f->m));
	mm_route_to_domain(&r, "example.com", "k", &rt);
	assert_int_equal(rt.kind, MM_ROUTE_UNREACHABLE);
	/* (d) up again: at once, then confirmed */
	flags(f, mm_member_report(&f->m, &(struct mm_bh_report){"Internet", "SMTP", false}, 1));
	expect(f, "send 1 report bh:Internet/S0-0/SMTP=up\ntable-changed\n");
	mm_router_update(&r, mm_member_table(&f->m));
	mm_route_to_domain(&r, "example.com", "k", &rt);
	assert_int_equal(rt.kind, MM_ROUTE_EXTERNAL);
	assert_int_equal(mm_member_unconfirmed(&f->m), 1);
	mm_router_free(&r);
	fake_free(f);
}

/* --- tests: the table ----------------------------------------------------- */

/* A delta merges: the newer entry is taken, an older one ignored, and the
 * table is saved on every change and only then; a node restarted from the
 * saved bytes holds what it saved and says so in its Hello. Mutations
 * caught: save() on every push, changed or not (step 2 saves); the saved
 * table encoded from the view (the restarted node's base has the overlay's
 * mark). */
static void test_merge_save_restart(void **state)
{
	(void)state;
	struct fake *f = connected();
	flags(f, mm_member_report(&f->m, &(struct mm_bh_report){"Mx", "SMTP", true}, 1));
	free(take(f));
	mm_entry *e[2] = {newer(f, "G000000"), newer(f, "G000001")};
	e[1]->version->minor = 4;
	flags(f, m_push(f, 1, false, e, 2));
	expect(f, "save\ntable-changed\n");
	/* the same again, and an older one: nothing */
	flags(f, m_push(f, 1, false, e, 2));
	e[1]->version->minor = 3;
	flags(f, m_push(f, 1, false, &e[1], 1));
	expect(f, "");
	mm_entry_free(e[0]);
	mm_entry_free(e[1]);
	assert_int_equal(mm_table_find(mm_member_base(&f->m), "G000001")->version->minor, 4);

	struct mm_table t;
	assert_non_null(f->saved);
	assert_true(mm_table_decode(f->saved, f->nsaved, 1 << 20, &t));
	uint8_t a[MM_DIGEST_LEN], b[MM_DIGEST_LEN];
	mm_table_digest(&t, a);
	mm_table_digest(mm_member_base(&f->m), b);
	assert_memory_equal(a, b, MM_DIGEST_LEN);
	fake_free(f);

	f = fake_boot(NULL, &t);
	assert_false(bh_of(mm_member_base(&f->m), "Mx")->down);
	static const struct step s[] = {
	    {"start", "dial 1 127.0.9.1:691 M0-A\n"},
	    {"open 1 master M0-A", "send 1 hello S0-0 G000000 node 1.0 v=1.1.0.1 inc=1\n"},
	};
	STEPS(f, s);
	fake_free(f);
}

/* Equal versions with different content: every node keeps the entry of
 * the greater digest, whatever the order, and logs the conflict; view and
 * saved table follow. Mutation caught: CONFLICT_WON not counted as a
 * change (the node that got the lesser entry first keeps it in its view
 * and its saved table). */
static void test_conflict(void **state)
{
	(void)state;
	struct fake *f[2] = {connected(), connected()};
	mm_entry *x = newer(f[0], "G000001"), *y = newer(f[0], "G000001");
	assert_true(mm_entry_set_server(y, "S1-0", true));
	y->version->user = x->version->user; /* same version, other content */
	uint8_t dx[MM_DIGEST_LEN], dy[MM_DIGEST_LEN];
	mm_entry_digest(x, dx);
	mm_entry_digest(y, dy);
	const uint8_t *want = memcmp(dx, dy, MM_DIGEST_LEN) > 0 ? dx : dy;
	mm_entry *order[2][2] = {{x, y}, {y, x}};
	for (int k = 0; k < 2; k++) {
		flags(f[k], m_push(f[k], 1, false, &order[k][0], 1));
		flags(f[k], m_push(f[k], 1, false, &order[k][1], 1));
		uint8_t d[MM_DIGEST_LEN];
		mm_entry_digest(mm_table_find(mm_member_base(&f[k]->m), "G000001"), d);
		assert_memory_equal(d, want, MM_DIGEST_LEN);
		assert_true(
		    logged(f[k], "member: conflict on \"G000001\" at version (1, 1, 0, 1)"));
	}
	/* base, view and saved table alike */
	uint8_t d[2][3][MM_DIGEST_LEN];
	for (int k = 0; k < 2; k++) {
		struct mm_table t;
		assert_true(mm_table_decode(f[k]->saved, f[k]->nsaved, 1 << 20, &t));
		mm_table_digest(&t, d[k][0]);
		mm_table_free(&t);
		mm_table_digest(mm_member_base(&f[k]->m), d[k][1]);
		mm_table_digest(mm_member_table(&f[k]->m), d[k][2]);
	}
	assert_memory_equal(d[0], d[1], sizeof(d[0]));
	assert_memory_equal(d[0][0], d[0][1], MM_DIGEST_LEN);
	assert_memory_equal(d[0][0], d[0][2], MM_DIGEST_LEN);
	mm_entry_free(x);
	mm_entry_free(y);
	fake_free(f[0]);
	fake_free(f[1]);
}

/* A digest probe that differs is answered with the node's summary (its
 * digest and every entry's version and content digest), so that the
 * master sends the delta; an equal one with nothing. Mutations caught: the comparison
 * inverted (step 1 answers); summaries left out (n=0). */
static void test_digest_probe(void **state)
{
	(void)state;
	struct fake *f = connected();
	static const struct step s[] = {
	    {"probe 1 same", ""},
	    {"probe 1 diff", "send 1 probe n=2 G000000@0.1.0.0 G000001@0.1.0.0\n"},
	    {"push 1 G000001", "save\ntable-changed\n"},
	    {"probe 1 diff", "send 1 probe n=2 G000000@0.1.0.0 G000001@1.1.0.1\n"},
	};
	STEPS(f, s);
	fake_free(f);
}

/* A directory's baseline (incarnation 0) never travels: an entry of
 * incarnation 0 in a push is not taken, however new its version, so a
 * node's other groups are its own directory's until a master issues them.
 * Mutation caught: on_push taking entries of incarnation 0 (the node took
 * the master's stale copy of another group over its own directory's). */
static void test_baseline_not_taken(void **state)
{
	(void)state;
	struct fake *f = connected();
	mm_entry *e = mm_entry_clone(mm_table_find(mm_member_base(&f->m), "G000001"));
	e->version->user += 5;
	assert_true(mm_entry_set_server(e, "S1-0", true));
	e->version->incarnation = 0;
	uint8_t before[MM_DIGEST_LEN], after[MM_DIGEST_LEN];
	mm_table_digest(mm_member_base(&f->m), before);
	flags(f, m_push(f, 1, false, &e, 1));
	mm_entry_free(e);
	expect(f, "");
	mm_table_digest(mm_member_base(&f->m), after);
	assert_memory_equal(before, after, MM_DIGEST_LEN);
	fake_free(f);
}

/* --- tests: with the detector -------------------------------------------- */

struct cs_fake {
	struct fake *f;
	struct mm_connstate cs;
	uint32_t probes;
};

static int64_t cs_now(void *ctx)
{
	return ((struct cs_fake *)ctx)->f->now;
}

static void cs_arm(void *ctx, uint64_t key, int64_t at)
{
	(void)ctx, (void)key, (void)at;
}

static void cs_cancel(void *ctx, uint64_t key)
{
	(void)ctx, (void)key;
}

static void cs_probe(void *ctx, uint32_t id, const struct mm_cs_probe *p)
{
	(void)id, (void)p;
	((struct cs_fake *)ctx)->probes++;
}

static void cs_log(void *ctx, const char *line)
{
	f_log(((struct cs_fake *)ctx)->f, line);
}

/* What the driver does after a detector event: the changes to the member. */
static void drain(struct cs_fake *c)
{
	const struct mm_bh_report *r;
	size_t n = mm_connstate_changes(&c->cs, &r);
	flags(c->f, mm_member_report(&c->f->m, r, n));
	mm_connstate_clear(&c->cs);
}

/* The detector's changes reach the member through one call: the first
 * sync tells every bridgehead (up: nothing to send), the glitch retry's
 * down goes to the master at once and into the view. A node restarted
 * from a table in which the master holds its bridgehead down starts with
 * it down (and probes it at once). Mutation caught: the sync starting
 * every connector up whatever the table (no probe at once, the view's
 * Internet up after the restart). */
static void test_detector_to_member(void **state)
{
	(void)state;
	struct cs_fake c = {.f = connected()};
	struct mm_cs_conf conf = MM_CS_DEFAULTS;
	conf.glitch_count = 0;
	struct mm_cs_env env = {&c, cs_now, cs_arm, cs_cancel, cs_probe, cs_log};
	mm_connstate_init(&c.cs, &conf, &env, "S0-0");
	mm_connstate_sync(&c.cs, mm_member_table(&c.f->m));
	drain(&c);
	expect(c.f, "");
	mm_connstate_delivery(&c.cs, "Internet", "127.0.0.7:2526", false, "4.4.1 refused");
	drain(&c);
	expect(c.f, "send 1 report bh:Internet/S0-0/SMTP=down\ntable-changed\n");
	mm_connstate_delivery(&c.cs, "Mx", "example.mx", false, "4.4.1 refused");
	drain(&c);
	expect(c.f, "");
	/* the master reflects it (in an incarnation of its own); the node
	 * restarts from its saved table */
	mm_entry *e = mm_entry_clone(mm_table_find(mm_member_base(&c.f->m), "G000000"));
	mm_entry_set_bridgehead(e, "Internet", "S0-0", "SMTP", true);
	e->version->incarnation = 1;
	flags(c.f, m_push(c.f, 1, false, &e, 1));
	mm_entry_free(e);
	expect(c.f, "save\ntable-changed\n");
	struct mm_table t;
	assert_true(mm_table_decode(c.f->saved, c.f->nsaved, 1 << 20, &t));
	mm_connstate_free(&c.cs);
	fake_free(c.f);

	c = (struct cs_fake){.f = fake_boot(NULL, &t)};
	env.ctx = &c;
	mm_connstate_init(&c.cs, &conf, &env, "S0-0");
	mm_connstate_sync(&c.cs, mm_member_table(&c.f->m));
	drain(&c);
	expect(c.f, "");
	assert_true(mm_connstate_down(&c.cs, "Internet"));
	assert_true(bh_of(mm_member_table(&c.f->m), "Internet")->down);
	static const struct step s[] = {
	    {"start", "dial 1 127.0.9.1:691 M0-A\n"},
	    {"open 1 master M0-A", "send 1 hello S0-0 G000000 node 1.0 v=1.1.1.0 inc=1\n"},
	    {"hello 1 M0-A G000000 active",
	     "send 1 report snapshot server:S0-0=up bh:Internet/S0-0/SMTP=down\nmaster-changed\n"},
	};
	STEPS(c.f, s);
	mm_connstate_free(&c.cs);
	fake_free(c.f);
}

/* Two runs of the same events (with jitter, so the environment's random
 * numbers matter) give the same transcript and log, byte for byte. */
static void test_replay(void **state)
{
	(void)state;
	struct mm_member_conf conf = base_conf;
	conf.retry_jitter_pct = 30;
	char *runs[2][2];
	for (int k = 0; k < 2; k++) {
		struct fake *f = fake_boot(&conf, NULL);
		event(f, "start");
		for (int round = 0; round < 12; round++) {
			uint32_t conn = f->m.conn;
			if (f->m.state == MM_MEMBER_DIALING) {
				if (round % 3 == 0)
					flags(f, mm_member_conn_closed(&f->m, conn, "refused"));
				else
					flags(f, mm_member_conn_open(&f->m, conn,
					                             &(struct mm_member_peer){
					                                 "master", f->m.peer}));
			}
			conn = f->m.conn;
			if (f->m.state == MM_MEMBER_HELLO)
				flags(f, m_hello(f, conn, f->m.peer, "G000000",
				                 round % 4 ? MAILMESH__MASTER_STATE__MASTER_ACTIVE
				                           : MAILMESH__MASTER_STATE__MASTER_STANDBY,
				                 "M0-B", 1, 0));
			conn = f->m.conn;
			if (f->m.state == MM_MEMBER_ESTABLISHED) {
				mm_entry *e = newer(f, round % 2 ? "G000000" : "G000001");
				flags(f, m_push(f, conn, false, &e, 1));
				mm_entry_free(e);
				flags(f, m_probe(f, conn, round % 2));
				flags(f, mm_member_report(
				             &f->m,
				             &(struct mm_bh_report){"Internet", "SMTP", round % 2},
				             1));
			}
			run_until(f, f->now + 1500 * (round % 5));
		}
		runs[k][0] = take(f);
		runs[k][1] = mm_xstrdup(f->log.p ? f->log.p : "");
		fake_free(f);
	}
	assert_string_equal(runs[0][0], runs[1][0]);
	assert_string_equal(runs[0][1], runs[1][1]);
	assert_non_null(strstr(runs[0][0], "send"));
	for (int k = 0; k < 2; k++)
		free(runs[k][0]), free(runs[k][1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_hello),
	    cmocka_unit_test(test_hello_digest_incarnation),
	    cmocka_unit_test(test_standby_redirect),
	    cmocka_unit_test(test_next_candidate),
	    cmocka_unit_test(test_identity),
	    cmocka_unit_test(test_unknown_major),
	    cmocka_unit_test(test_push_refused),
	    cmocka_unit_test(test_bad_frames),
	    cmocka_unit_test(test_master_dead),
	    cmocka_unit_test(test_reports),
	    cmocka_unit_test(test_pending_cancel),
	    cmocka_unit_test(test_overlay),
	    cmocka_unit_test(test_merge_save_restart),
	    cmocka_unit_test(test_conflict),
	    cmocka_unit_test(test_digest_probe),
	    cmocka_unit_test(test_baseline_not_taken),
	    cmocka_unit_test(test_detector_to_member),
	    cmocka_unit_test(test_replay),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
