/* The queue manager (node/core/qmgr.h) in virtual time: a fake
 * environment records every action, a RAM spool stands in for the disk,
 * and the tests drive events and read what the queue manager did. Links
 * against the core, linkstate and libcrypto only (ctest core_purity checks
 * it). Each test names, in a comment, the mutation of the queue manager it
 * was seen to catch. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "alloc.h"
#include "qmgr.h"
#include "smtp_parse.h"
#include "spool_ram.h"
#include "synth.h"
#include "trace.h"

/* --- the organization ---------------------------------------------------- */

/* Group G000000: S0-0 (this server, 127.0.0.1:25), S0-1 (127.0.0.2:25).
 * Group G000001: S1-0 (127.0.1.1:25). C0-0 goes G0 → G1 from S0-1 to S1-0.
 * SMTP connectors on S0-0: "Internet" smtp:* through a smart host, "Mx"
 * smtp:*.mx by MX, and "Backup" smtp:* cost 50 through another smart host.
 * Recipients in t.test: alice (S0-0), bob (S0-1), carol (S1-0). */
struct org {
	struct mm_directory dir;
	struct mm_router router;
};

static Mailmesh__Connector *smtp_connector(mm_entry *e, const char *name, const char *space,
                                           unsigned cost, const char *smart_host)
{
	Mailmesh__Connector *c = mm_xmalloc(sizeof(*c));
	mailmesh__connector__init(c);
	c->name = mm_xstrdup(name);
	c->type = MAILMESH__CONNECTOR_TYPE__CONNECTOR_SMTP;
	c->cost = cost;
	c->smart_host = mm_xstrdup(smart_host ? smart_host : "");
	c->local_bridgeheads = mm_xcalloc(1, sizeof(*c->local_bridgeheads));
	c->local_bridgeheads[0] = synth_bridgehead(0, 0);
	c->n_local_bridgeheads = 1;
	Mailmesh__AddressSpace *a = mm_xmalloc(sizeof(*a));
	mailmesh__address_space__init(a);
	a->type = mm_xstrdup("smtp");
	a->pattern = mm_xstrdup(space);
	a->cost = cost;
	c->address_spaces = mm_xcalloc(1, sizeof(*c->address_spaces));
	c->address_spaces[0] = a;
	c->n_address_spaces = 1;
	e->connectors = mm_xrealloc(e->connectors, e->n_connectors + 1, sizeof(*e->connectors));
	e->connectors[e->n_connectors++] = c;
	return c;
}

static void add_master(mm_entry *e)
{
	Mailmesh__MasterCandidate *m = mm_xmalloc(sizeof(*m));
	mailmesh__master_candidate__init(m);
	m->name = synth_name("M%u-%u", e->name[6] - '0', 0);
	m->routing_address = mm_xstrdup("127.0.9.9:691");
	m->priority = 100;
	e->masters = mm_xcalloc(1, sizeof(*e->masters));
	e->masters[0] = m;
	e->n_masters = 1;
	e->master = mm_xstrdup(m->name);
}

static void add_recipient(struct mm_directory *d, const char *mail, const char *home)
{
	d->recipients = mm_xrealloc(d->recipients, d->nrecipients + 1, sizeof(*d->recipients));
	d->recipients[d->nrecipients++] = (struct mm_recipient){mm_xstrdup(mail), mm_xstrdup(home),
	                                                        NULL, (uint32_t)d->nrecipients};
}

static void org_init(struct org *o, const char *internet_smart_host)
{
	*o = (struct org){0};
	struct mm_directory *d = &o->dir;
	mm_table_init(&d->table);
	mm_entry *g0 = synth_group(0, 2), *g1 = synth_group(1, 1);
	add_master(g0);
	add_master(g1);
	synth_connector(g0, 0, 0, 1, 10, 1, 1);
	smtp_connector(g0, "Internet", "*", 1, internet_smart_host);
	smtp_connector(g0, "Mx", "*.mx", 1, NULL);
	smtp_connector(g0, "Backup", "*", 50, "[127.0.0.9]:2526");
	mm_table_merge(&d->table, g0);
	mm_table_merge(&d->table, g1);
	d->domains = mm_xcalloc(1, sizeof(*d->domains));
	d->domains[d->ndomains++] = mm_xstrdup("t.test");
	add_recipient(d, "alice@t.test", "S0-0");
	add_recipient(d, "bob@t.test", "S0-1");
	add_recipient(d, "carol@t.test", "S1-0");
	mm_strmap_init(&d->by_mail);
	for (size_t i = 0; i < d->nrecipients; i++)
		mm_strmap_put(&d->by_mail, d->recipients[i].mail, (uint32_t)i);
	/* the virtual servers' names, as Received: lines give them */
	static const char *const vs[][2] = {
	    {"S0-0", "s0-0.t.test"}, {"S0-1", "s0-1.t.test"}, {"S1-0", "s1-0.t.test"}};
	d->vservers = mm_xcalloc(3, sizeof(*d->vservers));
	for (size_t i = 0; i < 3; i++)
		d->vservers[d->nvservers++] =
		    (struct mm_vserver_conf){.server = mm_xstrdup(vs[i][0]),
		                             .name = mm_xstrdup("SMTP"),
		                             .fqdn = mm_xstrdup(vs[i][1])};
	assert_true(mm_router_init(&o->router, &d->table, "S0-0"));
}

static void org_free(struct org *o)
{
	mm_router_free(&o->router);
	mm_directory_free(&o->dir);
}

/* --- the fake environment ------------------------------------------------ */

#define MAXT 64
#define MAXS 256

struct fsession {
	uint32_t sid;
	char addr[80];
	int tls;
	bool org;
	struct mm_smtpc_job *job; /* the transaction asked for, not answered */
	bool close_asked, ended;
};

struct fake {
	int64_t now, wall;
	uint64_t rnd;
	struct {
		uint64_t key;
		int64_t at;
		bool armed;
	} timers[MAXT];
	struct fsession s[MAXS];
	uint32_t ns;
	uint32_t mx_qnum[16];
	char mx_domain[16][64];
	uint32_t nmx;
	char mailbox[64][64];
	char *delivered[64];
	uint32_t ndelivered;
	int local_err;
	bool hold_sync; /* the syncer is slow: nothing becomes durable by itself */
	struct mm_buf track, log;
	struct mm_buf actions; /* every call of the environment, in order */
	struct mm_spool_ram spool;
	struct mm_qm qm;
	struct org org;
	struct mm_qm_conf conf;
};

static int64_t f_now(void *ctx)
{
	return ((struct fake *)ctx)->now;
}

static int64_t f_wall(void *ctx)
{
	struct fake *f = ctx;
	return f->wall + f->now;
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
	mm_buf_printf(&f->actions, "arm %llu %lld\n", (unsigned long long)key, (long long)at);
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
	mm_buf_printf(&f->actions, "cancel %llu\n", (unsigned long long)key);
	for (int i = 0; i < MAXT; i++)
		if (f->timers[i].armed && f->timers[i].key == key)
			f->timers[i].armed = false;
}

static void f_open(void *ctx, uint32_t sid, const struct mm_qm_target *t)
{
	struct fake *f = ctx;
	mm_buf_printf(&f->actions, "open %u %s %d\n", sid, t->address, t->tls);
	assert_true(f->ns < MAXS);
	struct fsession *s = &f->s[f->ns++];
	*s = (struct fsession){.sid = sid, .tls = t->tls, .org = t->org};
	snprintf(s->addr, sizeof(s->addr), "%s", t->address);
}

static struct fsession *fs(struct fake *f, uint32_t sid)
{
	for (uint32_t i = 0; i < f->ns; i++)
		if (f->s[i].sid == sid)
			return &f->s[i];
	fail_msg("no session %u", sid);
	return NULL;
}

static void f_send(void *ctx, uint32_t sid, struct mm_smtpc_job *job)
{
	struct fake *f = ctx;
	mm_buf_printf(&f->actions, "send %u %u\n", sid, job->nrcpt);
	struct fsession *s = fs(ctx, sid);
	if (s->ended)
		fail_msg("a job for session %u, which has ended", sid);
	s->job = job;
}

static void f_close(void *ctx, uint32_t sid)
{
	struct fake *f = ctx;
	mm_buf_printf(&f->actions, "close %u\n", sid);
	fs(ctx, sid)->close_asked = true;
}

static void f_mx(void *ctx, uint32_t qnum, const char *domain)
{
	struct fake *f = ctx;
	mm_buf_printf(&f->actions, "mx %u %s\n", qnum, domain);
	assert_true(f->nmx < 16);
	f->mx_qnum[f->nmx] = qnum;
	snprintf(f->mx_domain[f->nmx++], 64, "%s", domain);
}

static int f_local(void *ctx, const char *mailbox, const char *prefix, size_t plen,
                   const char *body, size_t len)
{
	struct fake *f = ctx;
	if (f->local_err)
		return f->local_err;
	assert_true(f->ndelivered < 64);
	snprintf(f->mailbox[f->ndelivered], 64, "%s", mailbox);
	char *m = mm_xmalloc(plen + len + 1);
	memcpy(m, prefix, plen);
	memcpy(m + plen, body, len);
	m[plen + len] = '\0';
	f->delivered[f->ndelivered++] = m;
	return 0;
}

static void f_link(void *ctx, const char *connector, const char *target, bool ok, const char *why)
{
	struct fake *f = ctx;
	(void)why;
	mm_buf_printf(&f->actions, "link %s %s %s\n", connector, target, ok ? "ok" : "failed");
}

static void f_log(void *ctx, const char *line)
{
	struct fake *f = ctx;
	mm_buf_printf(&f->log, "%s\n", line);
}

static void f_track(void *ctx, const char *line)
{
	struct fake *f = ctx;
	mm_buf_printf(&f->track, "%s\n", line);
}

static const struct mm_qm_conf base_conf = {.retry_min_ms = 60000,
                                            .retry_max_ms = 3600000,
                                            .retry_jitter_pct = 0,
                                            .glitch_count = 3,
                                            .glitch_interval_ms = 1000,
                                            .dest_concurrency = 3,
                                            .expire_s = 172800,
                                            .mx_cache_ms = 300000,
                                            .local_batch = 64,
                                            .compact_after_ms = 0};

static void recovered(void *ctx, const struct mm_spool_msg *m)
{
	mm_qm_recovered(ctx, m);
}

/* A node over a fresh RAM spool, or over the one given (taken over, and
 * replayed as a restart would). */
static struct fake *fake_boot(const struct mm_qm_conf *conf, const char *smart_host,
                              struct mm_spool_ram *disk)
{
	struct fake *f = mm_xcalloc(1, sizeof(*f));
	f->now = 1000;
	f->wall = 1790000000000; /* 2026 */
	f->rnd = 42;
	f->conf = conf ? *conf : base_conf;
	if (disk) {
		f->spool = *disk;
		*disk = (struct mm_spool_ram){0};
	} else {
		mm_spool_ram_init(&f->spool);
	}
	org_init(&f->org, smart_host ? smart_host : "[127.0.0.7]:2526");
	struct mm_qm_env env = {.ctx = f,
	                        .now_ms = f_now,
	                        .wall_ms = f_wall,
	                        .random = f_random,
	                        .timer_arm = f_arm,
	                        .timer_cancel = f_cancel,
	                        .session_open = f_open,
	                        .session_send = f_send,
	                        .session_close = f_close,
	                        .resolve_mx = f_mx,
	                        .deliver_local = f_local,
	                        .link_result = f_link,
	                        .log = f_log,
	                        .track = f_track,
	                        .spool = mm_spool_ram_ops(),
	                        .spool_ctx = &f->spool};
	mm_qm_init(&f->qm, &f->conf, &env, "S0-0", "s0-0.t.test");
	mm_qm_table_changed(&f->qm, &f->org.dir, &f->org.router);
	if (disk)
		mm_spool_ram_replay(&f->spool, recovered, &f->qm);
	mm_qm_start(&f->qm);
	return f;
}

static struct fake *fake_new(const struct mm_qm_conf *conf, const char *smart_host)
{
	return fake_boot(conf, smart_host, NULL);
}

static void fake_free(struct fake *f)
{
	/* a segment released more often than it was taken: the file spool
	 * would delete a segment that still holds mail */
	if (f->spool.bad_releases)
		fail_msg("%u releases of a segment holding nothing", f->spool.bad_releases);
	mm_qm_free(&f->qm);
	mm_spool_ram_free(&f->spool);
	org_free(&f->org);
	for (uint32_t i = 0; i < f->ndelivered; i++)
		free(f->delivered[i]);
	mm_buf_free(&f->track);
	mm_buf_free(&f->log);
	mm_buf_free(&f->actions);
	free(f);
}

/* What a driver does between events: the spool's syncer makes what was
 * written durable, and what the queue manager asked to close ends. */
static void pump(struct fake *f)
{
	if (!f->hold_sync && f->spool.want > f->spool.durable)
		mm_qm_durable(&f->qm, mm_spool_ram_flush(&f->spool));
	for (uint32_t i = 0; i < f->ns; i++)
		if (f->s[i].close_asked && !f->s[i].ended) {
			f->s[i].ended = true;
			mm_qm_session_end(&f->qm, f->s[i].sid, false, true, NULL);
		}
}

/* Fire every timer due up to t, in time order, moving the clock. */
static void run_until(struct fake *f, int64_t t)
{
	for (;;) {
		int best = -1;
		for (int i = 0; i < MAXT; i++)
			if (f->timers[i].armed && f->timers[i].at <= t &&
			    (best < 0 || f->timers[i].at < f->timers[best].at))
				best = i;
		if (best < 0)
			break;
		if (f->timers[best].at > f->now)
			f->now = f->timers[best].at;
		f->timers[best].armed = false;
		mm_qm_timer(&f->qm, f->timers[best].key);
		pump(f);
	}
	if (t > f->now)
		f->now = t;
}

static int64_t timer_at(struct fake *f, uint64_t key)
{
	for (int i = 0; i < MAXT; i++)
		if (f->timers[i].armed && f->timers[i].key == key)
			return f->timers[i].at;
	return -1;
}

/* A message as a session would hand it over, made durable at once. */
static int send_msg_from(struct fake *f, const char *client, const char *sender,
                         const char *const *rcpts, uint8_t notify);

static int send_msg(struct fake *f, const char *sender, const char *const *rcpts, uint8_t notify)
{
	return send_msg_from(f, "192.0.2.1", sender, rcpts, notify);
}

/* As send_msg, from a client address of our choosing. */
static int send_msg_from(struct fake *f, const char *client, const char *sender,
                         const char *const *rcpts, uint8_t notify)
{
	struct mm_spool_rcpt r[8];
	uint32_t n = 0;
	while (rcpts[n]) {
		r[n] = (struct mm_spool_rcpt){rcpts[n], "", notify};
		n++;
	}
	struct mm_spool_msg sm = {.arrival = f_wall(f) / 1000,
	                          .sender = sender,
	                          .envid = "",
	                          .helo = "client.test",
	                          .client = client,
	                          .nrcpt = n,
	                          .rcpt = r};
	struct mm_spool_ops ops = mm_spool_ram_ops();
	sm.id = ops.new_id(&f->spool, f_wall(f));
	static const char body[] = "Subject: test\r\n\r\nhello\r\n";
	struct iovec iov = {(void *)body, sizeof(body) - 1};
	int e = mm_qm_submit(&f->qm, &sm, &iov, 1, NULL);
	if (e == 0)
		mm_qm_durable(&f->qm, mm_spool_ram_flush(&f->spool));
	pump(f);
	return e;
}

/* As send_msg_from, with a message text of our choosing. */
static void send_text(struct fake *f, const char *client, const char *rcpt, const char *text)
{
	struct mm_spool_rcpt r = {rcpt, "", 0};
	struct mm_spool_ops ops = mm_spool_ram_ops();
	struct mm_spool_msg sm = {.id = ops.new_id(&f->spool, f_wall(f)),
	                          .arrival = f_wall(f) / 1000,
	                          .sender = "s@example.org",
	                          .envid = "",
	                          .client = client,
	                          .nrcpt = 1,
	                          .rcpt = &r};
	struct iovec iov = {(void *)text, strlen(text)};
	assert_int_equal(mm_qm_submit(&f->qm, &sm, &iov, 1, NULL), 0);
	mm_qm_durable(&f->qm, mm_spool_ram_flush(&f->spool));
	pump(f);
}

/* As send_msg, but the driver does nothing else meanwhile (no pump). */
static void send_msg_nopump(struct fake *f, const char *sender, const char *const *rcpts)
{
	struct mm_spool_rcpt r = {rcpts[0], "", 0};
	struct mm_spool_ops ops = mm_spool_ram_ops();
	struct mm_spool_msg sm = {.id = ops.new_id(&f->spool, f_wall(f)),
	                          .arrival = f_wall(f) / 1000,
	                          .sender = sender,
	                          .nrcpt = 1,
	                          .rcpt = &r};
	struct iovec iov = {"x\r\n", 3};
	assert_int_equal(mm_qm_submit(&f->qm, &sm, &iov, 1, NULL), 0);
	mm_qm_durable(&f->qm, mm_spool_ram_flush(&f->spool));
}

static struct mm_queue *queue(struct fake *f, const char *name)
{
	struct mm_queue *q[4];
	size_t n = mm_qm_find(&f->qm, name, q, 4);
	return n == 1 ? q[0] : NULL;
}

static struct fsession *last_session(struct fake *f)
{
	return f->ns ? &f->s[f->ns - 1] : NULL;
}

/* The session greets; the queue manager gives it a job (or closes it). */
static void ready(struct fake *f, struct fsession *s)
{
	mm_qm_session_ready(&f->qm, s->sid);
	pump(f);
}

/* The next hop answers every recipient of the session's job with code. */
static void answer(struct fake *f, struct fsession *s, int code, const char *text)
{
	assert_non_null(s->job);
	struct mm_smtpc_job *j = s->job;
	s->job = NULL;
	for (uint32_t i = 0; i < j->nrcpt; i++) {
		j->res[i].code = code;
		snprintf(j->res[i].text, sizeof(j->res[i].text), "%s", text);
	}
	mm_qm_session_result(&f->qm, s->sid);
	pump(f);
}

static void fail_session(struct fake *f, struct fsession *s, bool connected, const char *why)
{
	s->ended = true;
	s->job = NULL;
	mm_qm_session_end(&f->qm, s->sid, true, connected, why);
	pump(f);
}

/* Whether q holds a job for rcpt (waiting, held or out in a session). */
static bool queue_holds(struct fake *f, const struct mm_queue *q, const char *rcpt)
{
	(void)f;
	if (q == NULL)
		return false;
	const struct mm_job *lists[3] = {q->head, q->held, q->busy};
	for (int l = 0; l < 3; l++)
		for (const struct mm_job *j = lists[l]; j; j = j->next)
			for (uint32_t k = 0; k < j->n; k++)
				if (strcmp(j->msg->rcpt[j->idx[k]].addr, rcpt) == 0)
					return true;
	return false;
}

static bool tracked(struct fake *f, const char *needle)
{
	return f->track.p && strstr(f->track.p, needle) != NULL;
}

/* --- tests --------------------------------------------------------------- */

/* Which queue each recipient goes to. Mutation caught: the smart-host and
 * MX hop types swapped in resolve(). */
static void test_placement(void **state)
{
	(void)state;
	static const struct {
		const char *rcpt;
		const char *queue, *kind, *next_hop; /* queue NULL: a DSN instead */
	} rows[] = {
	    {"alice@t.test", "Local delivery", "local", NULL},
	    {"ALICE@T.TEST", "Local delivery", "local", NULL},
	    {"bob@t.test", "S0-1", "link", "127.0.0.2:25"},
	    {"carol@t.test", "S0-1", "link", "127.0.0.2:25"},
	    {"x@example.com", "Internet", "link", "127.0.0.7:2526"},
	    {"y@host.mx", "host.mx", "link", "host.mx"},
	    {"nobody@t.test", NULL, NULL, NULL},
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct fake *f = fake_new(NULL, NULL);
		const char *r[] = {rows[i].rcpt, NULL};
		assert_int_equal(send_msg(f, "sender@example.org", r, 0), 0);
		if (rows[i].queue == NULL) {
			if (!tracked(f, "NDR") || !tracked(f, "status=5.1.1"))
				fail_msg("%s: want an NDR 5.1.1, got %s", rows[i].rcpt, f->track.p);
			fake_free(f);
			continue;
		}
		char want[200];
		snprintf(want, sizeof(want), "queue=%s", rows[i].queue);
		if (strchr(rows[i].queue, ' '))
			snprintf(want, sizeof(want), "queue=\"%s\"", rows[i].queue);
		if (!tracked(f, want))
			fail_msg("%s: want %s, got %s", rows[i].rcpt, want, f->track.p);
		struct mm_queue *q[4];
		size_t n = mm_qm_find(&f->qm, rows[i].queue, q, 4);
		if (n != 1 || strcmp(mm_queue_kind_name(q[0]->kind), rows[i].kind) != 0)
			fail_msg("%s: %zu queues named %s", rows[i].rcpt, n, rows[i].queue);
		if (rows[i].next_hop && strcmp(q[0]->target, rows[i].next_hop) != 0)
			fail_msg("%s: next hop got %s, want %s", rows[i].rcpt, q[0]->target,
			         rows[i].next_hop);
		fake_free(f);
	}
	/* carol goes over C0-0 from its bridgehead S0-1: inside the group the
	 * hop is S0-1 either way, and from here no connector is served */
	struct fake *f = fake_new(NULL, NULL);
	const char *r[] = {"bob@t.test", "carol@t.test", NULL};
	send_msg(f, "s@example.org", r, 0);
	struct mm_queue *q = queue(f, "S0-1");
	assert_non_null(q);
	assert_null(q->connector);
	assert_int_equal(q->nrcpt, 2);
	assert_int_equal(mm_qm_queue_messages(&f->qm, q), 1);
	assert_int_equal(q->tls, MM_SMTPC_TLS_OPPORTUNISTIC);
	assert_true(q->org);
	assert_string_equal(queue(f, "Internet") ? "x" : "none", "none");
	fake_free(f);
}

/* Local delivery goes to the directory's mailbox, once per recipient.
 * Mutation caught: delivering to r->addr (ALICE@T.TEST gets a mailbox of
 * its own). */
static void test_local_mailbox(void **state)
{
	(void)state;
	struct fake *f = fake_new(NULL, NULL);
	const char *r[] = {"ALICE@T.TEST", NULL};
	send_msg(f, "s@example.org", r, 0);
	run_until(f, f->now);
	assert_int_equal(f->ndelivered, 1);
	assert_string_equal(f->mailbox[0], "alice@t.test");
	assert_non_null(strstr(f->delivered[0], "Delivered-To: alice@t.test\r\n"));
	assert_true(tracked(f, "DELIVERED"));
	/* a failing Maildir defers, and the retry delivers */
	f->local_err = ENOSPC;
	send_msg(f, "s@example.org", r, 0);
	run_until(f, f->now);
	assert_int_equal(f->ndelivered, 1);
	assert_true(tracked(f, "local delivery failed"));
	f->local_err = 0;
	run_until(f, f->now + 60000);
	assert_int_equal(f->ndelivered, 2);
	fake_free(f);
}

/* Glitch retry, then backoff, then up. Mutations caught: the glitch
 * count off by one (down after 3); backoff not doubling; held jobs not
 * released with the hop's retry (they waited retry_min_ms). */
static void test_retry_backoff(void **state)
{
	(void)state;
	struct fake *f = fake_new(NULL, NULL);
	const char *r[] = {"x@example.com", NULL};
	send_msg(f, "alice@t.test", r, 0);
	struct mm_queue *q = queue(f, "Internet");
	assert_non_null(q);
	/* every failure: when the next try comes, and whether it is down */
	static const struct {
		int64_t delay;
		bool down;
	} rows[] = {
	    {1000, false}, {1000, false},  {1000, false}, /* glitch retry */
	    {60000, true}, {120000, true}, {240000, true}, {480000, true},
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct fsession *s = last_session(f);
		if (s == NULL || s->ended)
			fail_msg("failure %zu: no session was opened", i + 1);
		int64_t t0 = f->now;
		fail_session(f, s, false, "4.4.1 connect refused");
		int64_t at = timer_at(f, q->num);
		if (at - t0 != rows[i].delay)
			fail_msg("failure %zu: next try after %lld ms, want %lld", i + 1,
			         (long long)(at - t0), (long long)rows[i].delay);
		if (q->st.down != rows[i].down)
			fail_msg("failure %zu: down %d, want %d", i + 1, q->st.down, rows[i].down);
		assert_int_equal(q->nheld, 1);
		run_until(f, at);
	}
	assert_non_null(strstr(f->log.p, "is down after 4 failures"));
	struct fsession *s = last_session(f);
	ready(f, s);
	answer(f, s, 250, "250 ok");
	assert_false(q->st.down);
	assert_non_null(strstr(f->log.p, "is up again"));
	assert_true(tracked(f, "DELIVERED"));
	fake_free(f);
}

/* Up means up: a hop down with its retry far away is ready the moment it
 * is found up -- its target answering (a probe of the detector, a
 * delivery), or the table holding it up again after down -- not at its
 * retry timer. Mutations caught: mm_qm_target_up doing nothing (no
 * session until the timer); qm_refresh_link without the down-to-up
 * transition (the same, by the table); qm_hop_up not releasing held jobs
 * (a session opens, nothing to give it). */
static void test_up_means_up(void **state)
{
	(void)state;
	for (int via_table = 0; via_table < 2; via_table++) {
		struct fake *f = fake_new(NULL, NULL);
		/* no Backup: down, Internet's mail waits for Internet */
		assert_true(mm_table_mark(&f->org.dir.table, "Backup", true));
		mm_router_update(&f->org.router, &f->org.dir.table);
		mm_qm_table_changed(&f->qm, &f->org.dir, &f->org.router);
		const char *r[] = {"x@example.com", NULL};
		send_msg(f, "alice@t.test", r, 0);
		struct mm_queue *q = queue(f, "Internet");
		/* four failures: down, the next try 60 s away */
		for (int i = 0; i < 4; i++) {
			fail_session(f, last_session(f), false, "4.4.1 connect refused");
			if (i < 3)
				run_until(f, timer_at(f, q->num));
		}
		assert_true(q->st.down);
		assert_int_equal(timer_at(f, q->num) - f->now, 60000);
		uint32_t sessions = f->ns;
		if (via_table) {
			/* the detector reported this server's bridgehead down, then up */
			mm_entry *e = mm_table_find(&f->org.dir.table, "G000000");
			assert_true(mm_entry_set_bridgehead(e, "Internet", "S0-0", "SMTP", true));
			mm_router_update(&f->org.router, &f->org.dir.table);
			mm_qm_table_changed(&f->qm, &f->org.dir, &f->org.router);
			pump(f);
			assert_int_equal(f->ns, sessions); /* down: nothing tried */
			assert_true(mm_entry_set_bridgehead(e, "Internet", "S0-0", "SMTP", false));
			mm_router_update(&f->org.router, &f->org.dir.table);
			mm_qm_table_changed(&f->qm, &f->org.dir, &f->org.router);
		} else {
			mm_qm_target_up(&f->qm, "127.0.0.7:2526");
		}
		pump(f);
		if (f->ns != sessions + 1)
			fail_msg("%s: %u sessions opened at once, want 1",
			         via_table ? "table" : "target", f->ns - sessions);
		struct fsession *s = last_session(f);
		ready(f, s);
		answer(f, s, 250, "250 ok");
		if (!tracked(f, "DELIVERED"))
			fail_msg("%s: not delivered", via_table ? "table" : "target");
		assert_false(q->st.down);
		fake_free(f);
	}
}

/* Expiry: 4.4.7 becomes 5.4.7 with the last error, in a DSN to the
 * sender. Mutation caught: expiry measured on the monotonic clock. */
static void test_expiry(void **state)
{
	(void)state;
	struct mm_qm_conf c = base_conf;
	c.expire_s = 3600;
	struct fake *f = fake_new(&c, NULL);
	const char *r[] = {"x@example.com", NULL};
	send_msg(f, "alice@t.test", r, 0);
	struct mm_queue *q = queue(f, "Internet");
	for (int i = 0; i < 20 && f->ndelivered == 0; i++) {
		struct fsession *s = last_session(f);
		if (s && !s->ended)
			fail_session(f, s, true, "4.4.2 lost connection with 127.0.0.7:2526");
		run_until(f, timer_at(f, q->num) > 0 ? timer_at(f, q->num) : f->now + 60000);
	}
	assert_int_equal(f->ndelivered, 1); /* the DSN, locally to alice */
	assert_string_equal(f->mailbox[0], "alice@t.test");
	assert_non_null(strstr(f->delivered[0], "Status: 5.4.7"));
	assert_non_null(strstr(f->delivered[0], "4.4.2 lost connection"));
	assert_true(tracked(f, "status=5.4.7"));
	assert_true(mm_queue_empty(q));
	fake_free(f);
}

/* Which DSN is owed. Mutations caught: a DSN to the null sender (a
 * bounce loop), NOTIFY=NEVER ignored, 4xx bounced. */
static void test_dsn_choice(void **state)
{
	(void)state;
	static const struct {
		const char *sender;
		uint8_t notify;
		int code;
		const char *text;
		bool dsn, done;
		const char *status;
	} rows[] = {
	    {"alice@t.test", 0, 550, "550 5.1.1 no such user", true, true, "5.1.1"},
	    {"alice@t.test", 0, 554, "554 transaction failed", true, true, "5.0.0"},
	    {"alice@t.test", MM_NOTIFY_FAILURE, 552, "552 5.2.2 full", true, true, "5.2.2"},
	    {"alice@t.test", MM_NOTIFY_NEVER, 550, "550 5.1.1 no", false, true, "5.1.1"},
	    {"alice@t.test", MM_NOTIFY_SUCCESS, 550, "550 5.1.1 no", false, true, "5.1.1"},
	    {"", 0, 550, "550 5.1.1 no", false, true, "5.1.1"},
	    {"alice@t.test", 0, 450, "450 4.2.1 busy", false, false, NULL},
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct fake *f = fake_new(NULL, NULL);
		const char *r[] = {"x@example.com", NULL};
		send_msg(f, rows[i].sender, r, rows[i].notify);
		struct fsession *s = last_session(f);
		ready(f, s);
		answer(f, s, rows[i].code, rows[i].text);
		run_until(f, f->now); /* local delivery of a DSN */
		bool got_dsn = f->ndelivered > 0;
		if (got_dsn != rows[i].dsn)
			fail_msg("row %zu: DSN %d, want %d", i, got_dsn, rows[i].dsn);
		struct mm_queue *q = queue(f, "Internet");
		bool done = q == NULL || q->nrcpt == 0;
		if (done != rows[i].done)
			fail_msg("row %zu: finished %d, want %d", i, done, rows[i].done);
		if (rows[i].sender[0] == '\0' && !tracked(f, "NDR-SUPPRESSED"))
			fail_msg("row %zu: no NDR-SUPPRESSED for the null sender", i);
		if (rows[i].status) {
			char want[32];
			snprintf(want, sizeof(want), "status=%s", rows[i].status);
			if (!tracked(f, want))
				fail_msg("row %zu: want %s in %s", i, want, f->track.p);
		}
		if (rows[i].dsn && strstr(f->delivered[0], rows[i].text) == NULL)
			fail_msg("row %zu: the DSN lacks the reply %s", i, rows[i].text);
		fake_free(f);
	}
}

/* MX rotation (RFC 5321 §5.1): an exchanger that cannot be reached hands
 * over to the next at once; when all failed the hop waits; the next round
 * starts at the best. Mutations caught: the round restarting at the
 * failed exchanger; the hop failing after the first exchanger. */
static void test_mx_failover(void **state)
{
	(void)state;
	struct fake *f = fake_new(NULL, NULL);
	const char *r[] = {"y@host.mx", NULL};
	send_msg(f, "alice@t.test", r, 0);
	assert_int_equal(f->nmx, 1);
	assert_string_equal(f->mx_domain[0], "host.mx");
	const char *addrs[] = {"192.0.2.10:25", "192.0.2.11:25", "192.0.2.12:25"};
	mm_qm_mx_answer(&f->qm, f->mx_qnum[0], MM_MX_OK, addrs, 3, NULL);
	pump(f);
	struct mm_queue *q = queue(f, "host.mx");
	for (int k = 0; k < 3; k++) {
		struct fsession *s = last_session(f);
		if (strcmp(s->addr, addrs[k]) != 0)
			fail_msg("try %d went to %s, want %s", k, s->addr, addrs[k]);
		if (k < 2 && timer_at(f, q->num) != -1)
			fail_msg("try %d: the hop waits before every exchanger was tried", k);
		fail_session(f, s, false, "4.4.1 connect refused");
	}
	assert_true(timer_at(f, q->num) > f->now); /* every exchanger failed: wait */
	assert_int_equal(q->nheld, 1);
	run_until(f, timer_at(f, q->num));
	assert_string_equal(last_session(f)->addr, addrs[0]);
	fake_free(f);
	/* answers that end in a DSN, or a wait */
	static const struct {
		enum mm_mx_status st;
		const char *why, *status;
	} rows[] = {
	    {MM_MX_NXDOMAIN, "5.4.4 host.mx: no such domain", "status=5.4.4"},
	    {MM_MX_NULLMX, "5.1.10 host.mx accepts no mail (null MX)", "status=5.1.10"},
	    {MM_MX_TEMP, "4.4.3 MX lookup of host.mx failed", NULL},
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		f = fake_new(NULL, NULL);
		send_msg(f, "alice@t.test", r, 0);
		mm_qm_mx_answer(&f->qm, f->mx_qnum[0], rows[i].st, NULL, 0, rows[i].why);
		pump(f);
		q = queue(f, "host.mx");
		if (rows[i].status && !tracked(f, rows[i].status))
			fail_msg("row %zu: want %s in %s", i, rows[i].status, f->track.p);
		if (!rows[i].status && (q->nheld != 1 || !tracked(f, "DEFERRED")))
			fail_msg("row %zu: want the job held", i);
		fake_free(f);
	}
}

/* Sessions per next hop: never more than dest_concurrency, never more
 * than there are jobs for. Mutation caught: opening dest_concurrency
 * sessions whatever the number of jobs. */
static void test_concurrency(void **state)
{
	(void)state;
	static const struct {
		int messages;
		uint32_t want;
	} rows[] = {{1, 1}, {2, 2}, {3, 3}, {10, 3}};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct fake *f = fake_new(NULL, NULL);
		const char *r[] = {"x@example.com", NULL};
		for (int m = 0; m < rows[i].messages; m++)
			send_msg(f, "alice@t.test", r, 0);
		if (f->ns != rows[i].want)
			fail_msg("%d messages: %u sessions, want %u", rows[i].messages, f->ns,
			         rows[i].want);
		/* the sessions carry everything, one job at a time each */
		int delivered = 0;
		for (int round = 0; round < 20 && delivered < rows[i].messages; round++)
			for (uint32_t k = 0; k < f->ns; k++) {
				struct fsession *s = &f->s[k];
				if (s->ended)
					continue;
				if (s->job == NULL && !s->close_asked)
					ready(f, s);
				if (s->job) {
					answer(f, s, 250, "250 ok");
					delivered++;
				}
			}
		assert_int_equal(delivered, rows[i].messages);
		assert_true(f->ns <= rows[i].want);
		fake_free(f);
	}
}

/* Freeze, thaw, retry. Mutations caught: a frozen queue still handing
 * jobs to a session; retry not thawing. */
static void test_freeze_thaw(void **state)
{
	(void)state;
	struct fake *f = fake_new(NULL, NULL);
	const char *r[] = {"x@example.com", NULL};
	send_msg(f, "alice@t.test", r, 0);
	struct mm_queue *q = queue(f, "Internet");
	mm_qm_freeze(&f->qm, q);
	ready(f, last_session(f));
	assert_true(last_session(f)->ended); /* no job for it: closed */
	assert_null(last_session(f)->job);
	send_msg(f, "alice@t.test", r, 0);
	assert_int_equal(f->ns, 1); /* frozen: no session opened */
	assert_int_equal(mm_queue_state(q, f->now), MM_QS_FROZEN);
	mm_qm_thaw(&f->qm, q);
	assert_int_equal(f->ns, 3);
	/* one session carries both (the next job goes to the session that
	 * is free), the other finds nothing and goes */
	ready(f, &f->s[1]);
	answer(f, &f->s[1], 250, "250 ok");
	answer(f, &f->s[1], 250, "250 ok");
	ready(f, &f->s[2]);
	assert_true(f->s[1].ended && f->s[2].ended);
	/* retry: a hop in backoff goes now, and a frozen one thaws */
	send_msg(f, "alice@t.test", r, 0);
	fail_session(f, last_session(f), false, "4.4.1 refused");
	assert_int_equal(mm_queue_state(q, f->now), MM_QS_RETRY);
	mm_qm_freeze(&f->qm, q);
	mm_qm_retry(&f->qm, q);
	assert_false(q->frozen);
	assert_false(last_session(f)->ended); /* a new one, now */
	fake_free(f);
}

/* Reroute on a table change. Mutations caught: only the unreachable
 * queue rerouted (mail stays on the failed connector); a frozen queue
 * emptied; the REROUTED line without the old next hop. */
static void test_reroute(void **state)
{
	(void)state;
	struct fake *f = fake_new(NULL, NULL);
	const char *r[] = {"x@example.com", NULL};
	send_msg(f, "alice@t.test", r, 0); /* held after a failure */
	fail_session(f, last_session(f), false, "4.4.1 refused");
	send_msg(f, "alice@t.test", r, 0); /* and one out in a session */
	run_until(f, f->now + 1000);
	struct fsession *busy = last_session(f);
	ready(f, busy);
	assert_non_null(busy->job);
	struct mm_queue *internet = queue(f, "Internet");
	assert_int_equal(internet->nbusy, 1);
	/* the connector goes down: its mail moves to Backup, but the job in
	 * the session finishes where it is */
	assert_true(mm_table_mark(&f->org.dir.table, "Internet", true));
	mm_router_update(&f->org.router, &f->org.dir.table);
	mm_qm_table_changed(&f->qm, &f->org.dir, &f->org.router);
	pump(f);
	struct mm_queue *backup = queue(f, "Backup");
	assert_non_null(backup);
	assert_int_equal(backup->nrcpt, 1);
	assert_int_equal(internet->nrcpt, 1); /* the busy one */
	assert_true(tracked(f, "REROUTED"));
	assert_true(tracked(f, "old_next_hop=127.0.0.7:2526"));
	assert_true(tracked(f, "next_hop=127.0.0.9:2526"));
	/* the busy job comes back deferred: under the new table it moves */
	answer(f, busy, 451, "451 4.3.0 try later");
	assert_int_equal(internet->nrcpt, 0);
	assert_int_equal(backup->nrcpt, 2);
	/* both down: no path; back up: out of "unreachable" at once */
	mm_qm_freeze(&f->qm, backup);
	assert_true(mm_table_mark(&f->org.dir.table, "Backup", true));
	mm_router_update(&f->org.router, &f->org.dir.table);
	mm_qm_table_changed(&f->qm, &f->org.dir, &f->org.router);
	assert_int_equal(backup->nrcpt, 2); /* frozen: it keeps what it holds */
	/* thawed, what it held follows the table: no path now */
	mm_qm_thaw(&f->qm, backup);
	assert_int_equal(backup->nrcpt, 0);
	assert_int_equal(f->qm.unreachable->nrcpt, 2);
	const char *r2[] = {"z@example.com", NULL};
	send_msg(f, "alice@t.test", r2, 0);
	assert_int_equal(f->qm.unreachable->nrcpt, 3);
	assert_true(mm_table_mark(&f->org.dir.table, "Internet", false));
	mm_router_update(&f->org.router, &f->org.dir.table);
	mm_qm_table_changed(&f->qm, &f->org.dir, &f->org.router);
	assert_int_equal(f->qm.unreachable->nrcpt, 0);
	assert_int_equal(internet->nrcpt, 3);
	fake_free(f);
}

/* Mail that would go straight back to the server it came from, under the
 * table it arrived with, waits in "Messages pending reroute" for a table
 * change or back_hold_ms, then goes. Mutations caught: must_wait answering
 * false (bob's mail from S0-1 went straight back); qm_back_timer not
 * placing what it released (it stayed held past the hold); table_changed
 * not releasing the held jobs (it waited for the hold after a change). */
static void test_back_to_sender(void **state)
{
	(void)state;
	struct mm_qm_conf c = base_conf;
	c.back_hold_ms = 5000;
	struct fake *f = fake_new(&c, NULL);
	const char *bob[] = {"bob@t.test", NULL};
	/* from S0-1 (127.0.0.2 is its virtual server) for a recipient homed
	 * there: held */
	send_msg_from(f, "127.0.0.2", "s@t.test", bob, 0);
	assert_int_equal(f->qm.reroute->nrcpt, 1);
	assert_null(queue(f, "S0-1"));
	assert_true(tracked(f, "held=\"back to sender\""));
	/* from anyone else: straight there */
	send_msg(f, "s@t.test", bob, 0);
	assert_non_null(queue(f, "S0-1"));
	assert_int_equal(queue(f, "S0-1")->nrcpt, 1);
	/* the hold passes with the table unchanged: it goes back after all */
	run_until(f, f->now + 4900);
	assert_int_equal(f->qm.reroute->nrcpt, 1);
	run_until(f, f->now + 200);
	assert_int_equal(f->qm.reroute->nrcpt, 0);
	assert_int_equal(queue(f, "S0-1")->nrcpt, 2);
	/* held again; a table change releases it at once, wherever that table
	 * says (the change is the news the sender had) */
	send_msg_from(f, "127.0.0.2", "s@t.test", bob, 0);
	assert_int_equal(f->qm.reroute->nrcpt, 1);
	assert_true(mm_table_mark(&f->org.dir.table, "Internet", true));
	mm_router_update(&f->org.router, &f->org.dir.table);
	mm_qm_table_changed(&f->qm, &f->org.dir, &f->org.router);
	assert_int_equal(f->qm.reroute->nrcpt, 0);
	assert_int_equal(queue(f, "S0-1")->nrcpt, 3);
	/* the same client as an IPv6 socket shows it, twice a second apart:
	 * both held, each released at its own time (mutations: sent_by
	 * without the ::ffff: unwrap; qm_back_timer not arming again for the
	 * second job -- it stayed held) */
	send_msg_from(f, "::ffff:127.0.0.2", "s@t.test", bob, 0);
	run_until(f, f->now + 1000);
	send_msg_from(f, "::FFFF:127.0.0.2", "s@t.test", bob, 0);
	assert_int_equal(f->qm.reroute->nrcpt, 2);
	run_until(f, f->now + 4100);
	assert_int_equal(f->qm.reroute->nrcpt, 1);
	run_until(f, f->now + 1000);
	assert_int_equal(f->qm.reroute->nrcpt, 0);
	assert_int_equal(queue(f, "S0-1")->nrcpt, 5);
	fake_free(f);
}

/* Split horizon: under the table it arrived with, a message is not sent
 * to a server its trace (the Received: lines mailmesh wrote) names while
 * another route exists; with none it waits, longer with every pass
 * through this server. Mutations caught: split_horizon answering false at
 * once (row "far, been at S0-1" held, not by FarBackup); trace.c not
 * stopping at another MTA's Received: (the list row held); by_clause
 * taking a "by" anywhere in the field (the HELO row held); back_hold_for
 * not doubling (released at 5 s, not 10 s); no cap at retry_max_ms (held
 * past 30 s). */
static void test_split_horizon(void **state)
{
	(void)state;
	struct mm_qm_conf c = base_conf;
	c.back_hold_ms = 5000;
	c.retry_max_ms = 30000;
	struct fake *f = fake_new(&c, NULL);
	/* *.far: Far by S0-1 (cost 1), FarBackup by this server (cost 50) */
	mm_entry *e = mm_table_find(&f->org.dir.table, "G000000");
	Mailmesh__Connector *far = smtp_connector(e, "Far", "*.far", 1, "[127.0.0.6]:2526");
	mailmesh__bridgehead__free_unpacked(far->local_bridgeheads[0], NULL);
	far->local_bridgeheads[0] = synth_bridgehead(0, 1);
	smtp_connector(e, "FarBackup", "*.far", 50, "[127.0.0.7]:2526");
	mm_entry_canonicalize(e);
	e->version->major++;
	mm_router_update(&f->org.router, &f->org.dir.table);
	mm_qm_table_changed(&f->qm, &f->org.dir, &f->org.router);
#define RCVD(by) \
	"Received: from c ([192.0.2.9])\r\n\tby " by " (mailmesh) with ESMTP id 1;\r\n\tdate\r\n"
#define BODY "Subject: x\r\n\r\nbody\r\n"
	static const struct {
		const char *rcpt, *text, *queue;
	} rows[] = {
	    {"x@a.far", BODY, "S0-1"}, /* no trace */
	    {"y@a.far", RCVD("s0-0.t.test") RCVD("S0-1.T.TEST") BODY,
	     "FarBackup"}, /* been at S0-1 */
	    /* been at S0-1 on an earlier journey: a list sent it back */
	    {"z@a.far",
	     RCVD("s0-0.t.test") "Received: from s0-0.t.test ([192.0.2.3])\r\n\tby list.example "
	                         "(Postfix) with ESMTP id 2;\r\n\tdate\r\n" RCVD("s0-1.t.test")
	                             BODY,
	     "S0-1"},
	    /* a HELO name cannot make a server visited */
	    {"w@a.far",
	     "Received: from x by s0-1.t.test (mailmesh) ([192.0.2.9])\r\n\tby s0-0.t.test "
	     "(mailmesh) with ESMTP id 3;\r\n\tdate\r\n" BODY,
	     "S0-1"},
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		send_text(f, "192.0.2.1", rows[i].rcpt, rows[i].text);
		struct mm_queue *q = queue(f, rows[i].queue);
		if (q == NULL || !queue_holds(f, q, rows[i].rcpt))
			fail_msg("%s: not in %s (reroute holds %u)", rows[i].rcpt, rows[i].queue,
			         f->qm.reroute->nrcpt);
	}
	assert_int_equal(f->qm.reroute->nrcpt, 0);
	/* bob lives on S0-1: no other route. Twice through here already:
	 * held 2 x 5 s, then offered back */
	send_text(f, "192.0.2.1", "bob@t.test",
	          RCVD("s0-0.t.test") RCVD("s0-1.t.test") RCVD("s0-0.t.test") BODY);
	assert_int_equal(f->qm.reroute->nrcpt, 1);
	assert_true(tracked(f, "held=\"back to sender\""));
	run_until(f, f->now + 9900);
	assert_int_equal(f->qm.reroute->nrcpt, 1);
	run_until(f, f->now + 200);
	assert_int_equal(f->qm.reroute->nrcpt, 0);
	assert_true(queue_holds(f, queue(f, "S0-1"), "bob@t.test"));
	/* twelve passes: held retry_max_ms (30 s), not 5 s x 2^11 */
	send_text(f, "192.0.2.1", "bob@t.test",
	          RCVD("s0-0.t.test") RCVD("s0-1.t.test") RCVD("s0-0.t.test") RCVD("s0-0.t.test")
	              RCVD("s0-0.t.test") RCVD("s0-0.t.test") RCVD("s0-0.t.test")
	                  RCVD("s0-0.t.test") RCVD("s0-0.t.test") RCVD("s0-0.t.test")
	                      RCVD("s0-0.t.test") RCVD("s0-0.t.test") RCVD("s0-0.t.test") BODY);
	assert_int_equal(f->qm.reroute->nrcpt, 1);
	run_until(f, f->now + 29900);
	assert_int_equal(f->qm.reroute->nrcpt, 1);
	run_until(f, f->now + 200);
	assert_int_equal(f->qm.reroute->nrcpt, 0);
#undef RCVD
#undef BODY
	fake_free(f);
}

/* A smart host that changes is another next hop, and a TLS policy that
 * changes is followed. Mutation caught: queues keyed by name (mail went on
 * to the old smart host after the change). */
static void test_smart_host_change(void **state)
{
	(void)state;
	struct fake *f = fake_new(NULL, NULL);
	const char *r[] = {"x@example.com", NULL};
	send_msg(f, "alice@t.test", r, 0);
	fail_session(f, last_session(f), false, "4.4.1 refused");
	struct mm_queue *old = queue(f, "Internet");
	mm_entry *e = mm_table_find(&f->org.dir.table, "G000000");
	for (size_t i = 0; i < e->n_connectors; i++)
		if (strcmp(e->connectors[i]->name, "Internet") == 0) {
			free(e->connectors[i]->smart_host);
			e->connectors[i]->smart_host = mm_xstrdup("[127.0.0.8]:2526");
			e->connectors[i]->tls_policy = MAILMESH__TLS_POLICY__TLS_REQUIRED;
		}
	e->version->major++;
	mm_router_update(&f->org.router, &f->org.dir.table);
	mm_qm_table_changed(&f->qm, &f->org.dir, &f->org.router);
	pump(f);
	struct mm_queue *q[4];
	assert_int_equal(mm_qm_find(&f->qm, "Internet", q, 4), 2);
	struct mm_queue *now = q[0] == old ? q[1] : q[0];
	assert_int_equal(old->nrcpt, 0);
	assert_int_equal(now->nrcpt, 1);
	assert_string_equal(now->target, "127.0.0.8:2526");
	assert_int_equal(now->tls, MM_SMTPC_TLS_REQUIRED);
	assert_int_equal(old->tls, MM_SMTPC_TLS_REQUIRED);
	assert_string_equal(last_session(f)->addr, "127.0.0.8:2526");
	assert_int_equal(last_session(f)->tls, MM_SMTPC_TLS_REQUIRED);
	assert_true(mm_qm_find(&f->qm, now->id, q, 4) == 1 && q[0] == now);
	fake_free(f);
}

/* The commit pipeline: nothing resolves before it is durable, owners hear
 * in log order, a failed put keeps nothing. Mutations caught: resolving
 * on put; a failed sync answering 250. */
static void test_commit(void **state)
{
	(void)state;
	struct fake *f = fake_new(NULL, NULL);
	struct mm_spool_rcpt rc = {"alice@t.test", "", 0};
	struct mm_spool_msg sm = {.id = 7, .sender = "s@example.org", .nrcpt = 1, .rcpt = &rc};
	struct iovec iov = {"x\r\n", 3};
	int owner1, owner2, owner3;
	assert_int_equal(mm_qm_submit(&f->qm, &sm, &iov, 1, &owner1), 0);
	sm.id = 8;
	assert_int_equal(mm_qm_submit(&f->qm, &sm, &iov, 1, &owner2), 0);
	struct mm_qm_resolved r;
	assert_false(mm_qm_next_resolved(&f->qm, &r));
	assert_int_equal(mm_qm_committing(&f->qm, NULL), 2);
	assert_int_equal(f->qm.local->nrcpt, 0);
	mm_qm_disown(&f->qm, &owner2);
	mm_qm_durable(&f->qm, mm_spool_ram_flush(&f->spool));
	assert_true(mm_qm_next_resolved(&f->qm, &r));
	assert_ptr_equal(r.owner, &owner1);
	assert_int_equal(r.err, 0);
	assert_string_equal(r.idhex, "0000000000000007");
	assert_false(mm_qm_next_resolved(&f->qm, &r)); /* owner2 went away */
	assert_int_equal(f->qm.local->nrcpt, 2);       /* both routed all the same */
	f->spool.fail_put = ENOSPC;
	sm.id = 9;
	assert_int_equal(mm_qm_submit(&f->qm, &sm, &iov, 1, &owner3), ENOSPC);
	assert_int_equal(mm_qm_committing(&f->qm, NULL), 0);
	sm.id = 10;
	assert_int_equal(mm_qm_submit(&f->qm, &sm, &iov, 1, &owner3), 0);
	assert_int_equal(f->spool.live[1], 3);
	mm_qm_sync_failed(&f->qm, EIO);
	assert_true(mm_qm_next_resolved(&f->qm, &r));
	assert_int_equal(r.err, EIO);
	assert_int_equal(f->qm.local->nrcpt, 2);
	assert_int_equal(f->spool.live[1], 2); /* the failed one let go of its segment */
	fake_free(f);
}

/* Compaction: copies replace the old ones only once durable, and the
 * segments' counts stay right when a message finishes meanwhile.
 * Mutations caught: releasing the old segment before the copy is durable;
 * not releasing the copy of a message that finished. */
static void test_compaction(void **state)
{
	(void)state;
	struct fake *f = fake_new(NULL, NULL);
	const char *r[] = {"x@example.com", NULL};
	send_msg(f, "alice@t.test", r, 0);
	send_msg(f, "alice@t.test", r, 0);
	assert_int_equal(f->spool.live[1], 2);
	f->spool.seg = 2; /* segment 1 is old now */
	f->hold_sync = true;
	mm_qm_tick(&f->qm);
	assert_int_equal(f->spool.live[1], 2); /* not durable yet */
	assert_int_equal(f->spool.live[2], 2);
	/* one message finishes before the copies are durable; the session
	 * then carries the other, which the next hop defers */
	struct fsession *s = &f->s[0];
	ready(f, s);
	answer(f, s, 250, "250 ok");
	assert_int_equal(f->spool.live[1], 1);
	answer(f, s, 451, "451 4.3.0 later");
	mm_qm_durable(&f->qm, mm_spool_ram_flush(&f->spool));
	f->hold_sync = false;
	assert_int_equal(f->spool.live[1], 0);
	assert_int_equal(f->spool.live[2], 1);
	assert_non_null(strstr(f->log.p, "1 queued message(s) moved out of segment 00000001"));
	/* the moved message reads back from its new place and goes */
	mm_qm_retry(&f->qm, queue(f, "Internet"));
	for (uint32_t i = 0; i < f->ns; i++)
		if (!f->s[i].ended && !f->s[i].job)
			ready(f, &f->s[i]);
	s = last_session(f);
	assert_non_null(s->job);
	assert_non_null(strstr(s->job->body, "hello"));
	answer(f, s, 250, "250 ok");
	assert_int_equal(f->spool.live[2], 0);
	fake_free(f);
}

/* Several jobs for a domain whose best exchanger is dead: every session
 * that finds it dead hands over, and they all reach the next one; the hop
 * waits only when every exchanger failed in the round. Mutation caught:
 * failed sessions counted instead of failed exchangers (the hop failed
 * after naddrs failed sessions: the backup never got the mail, which
 * expired). */
static void test_mx_failover_many(void **state)
{
	(void)state;
	struct fake *f = fake_new(NULL, NULL);
	const char *r[] = {"y@host.mx", NULL};
	send_msg(f, "alice@t.test", r, 0);
	send_msg(f, "alice@t.test", r, 0);
	send_msg(f, "alice@t.test", r, 0);
	const char *addrs[] = {"192.0.2.10:25", "192.0.2.20:25"};
	mm_qm_mx_answer(&f->qm, f->mx_qnum[0], MM_MX_OK, addrs, 2, NULL);
	pump(f);
	struct mm_queue *q = queue(f, "host.mx");
	assert_int_equal(f->ns, 3);
	for (uint32_t i = 0; i < 3; i++) /* the best is dead */
		fail_session(f, &f->s[i], false, "4.4.1 connect refused");
	assert_int_equal(timer_at(f, q->num), -1); /* no wait: the next one is there */
	assert_int_equal(q->nheld, 0);
	int delivered = 0;
	for (int round = 0; round < 10 && delivered < 3; round++)
		for (uint32_t i = 3; i < f->ns; i++) {
			struct fsession *s = &f->s[i];
			if (s->ended)
				continue;
			if (strcmp(s->addr, addrs[1]) != 0)
				fail_msg("session %u went to %s after the best failed", i, s->addr);
			if (!s->job && !s->close_asked)
				ready(f, s);
			if (s->job) {
				answer(f, s, 250, "250 ok");
				delivered++;
			}
		}
	assert_int_equal(delivered, 3);
	fake_free(f);
}

/* A connector tightened to TLS required: a session opened under the old
 * policy (still connecting) carries nothing; a new one goes under the
 * new. Mutation caught: next_job without the policy check (the job left
 * in a session negotiated as opportunistic). */
static void test_tls_tightened(void **state)
{
	(void)state;
	struct fake *f = fake_new(NULL, NULL);
	const char *r[] = {"x@example.com", NULL};
	send_msg(f, "alice@t.test", r, 0);
	struct fsession *old = last_session(f);
	assert_int_equal(old->tls, MM_SMTPC_TLS_OPPORTUNISTIC);
	mm_entry *e = mm_table_find(&f->org.dir.table, "G000000");
	for (size_t i = 0; i < e->n_connectors; i++)
		if (strcmp(e->connectors[i]->name, "Internet") == 0)
			e->connectors[i]->tls_policy = MAILMESH__TLS_POLICY__TLS_REQUIRED;
	e->version->major++;
	mm_router_update(&f->org.router, &f->org.dir.table);
	mm_qm_table_changed(&f->qm, &f->org.dir, &f->org.router);
	ready(f, old);
	assert_null(old->job);
	assert_true(old->ended);
	struct fsession *now = last_session(f);
	assert_ptr_not_equal(now, old);
	assert_int_equal(now->tls, MM_SMTPC_TLS_REQUIRED);
	ready(f, now);
	assert_non_null(now->job);
	fake_free(f);
}

/* A frozen queue keeps its mail through a failed session and an MX answer
 * that would bounce, and follows the table when thawed. Mutations caught:
 * qm_defer rerouting the job that comes back from its session of a frozen
 * queue; mx_answer bouncing a frozen queue's jobs; mm_qm_thaw not rerouting
 * (the old jobs went to the smart host the table no longer names). */
static void test_frozen_holds(void **state)
{
	(void)state;
	struct fake *f = fake_new(NULL, NULL);
	const char *r[] = {"x@example.com", NULL};
	send_msg(f, "alice@t.test", r, 0);
	send_msg(f, "alice@t.test", r, 0);
	struct mm_queue *internet = queue(f, "Internet");
	ready(f, &f->s[0]); /* one job out in a session, one waiting */
	assert_non_null(f->s[0].job);
	mm_qm_freeze(&f->qm, internet);
	assert_true(mm_table_mark(&f->org.dir.table, "Internet", true));
	mm_router_update(&f->org.router, &f->org.dir.table);
	mm_qm_table_changed(&f->qm, &f->org.dir, &f->org.router);
	assert_int_equal(internet->nrcpt, 2);
	for (uint32_t i = 0; i < f->ns; i++)
		if (!f->s[i].ended)
			fail_session(f, &f->s[i], false, "4.4.1 refused");
	assert_int_equal(internet->nrcpt, 2);
	assert_null(queue(f, "Backup"));
	mm_qm_thaw(&f->qm, internet);
	assert_int_equal(internet->nrcpt, 0);
	assert_non_null(queue(f, "Backup"));
	assert_int_equal(queue(f, "Backup")->nrcpt, 2);
	for (uint32_t i = 0; i < f->ns; i++)
		if (!f->s[i].ended && strcmp(f->s[i].addr, "127.0.0.7:2526") == 0)
			fail_msg("a session to the old smart host after the thaw");
	/* an MX answer that would bounce leaves a frozen queue alone */
	const char *r2[] = {"y@host.mx", NULL};
	send_msg(f, "alice@t.test", r2, 0);
	struct mm_queue *mx = queue(f, "host.mx");
	mm_qm_freeze(&f->qm, mx);
	mm_qm_mx_answer(&f->qm, f->mx_qnum[0], MM_MX_NXDOMAIN, NULL, 0, "5.4.4 no such domain");
	pump(f);
	assert_int_equal(mx->nrcpt, 1);
	assert_false(tracked(f, "status=5.4.4"));
	fake_free(f);
}

/* A session that dies with a job: the job is deferred with the reason and
 * waits for the hop's retry, and the dead session is given nothing.
 * Mutation caught: the job in flight held before hop_failed set the retry
 * time (it waited retry_min_ms, not the glitch interval). f_send fails on
 * a job for an ended session. */
static void test_session_dies(void **state)
{
	(void)state;
	struct fake *f = fake_new(NULL, NULL);
	const char *r[] = {"x@example.com", NULL};
	send_msg(f, "alice@t.test", r, 0);
	send_msg(f, "alice@t.test", r, 0);
	struct fsession *s = &f->s[0];
	ready(f, s);
	assert_non_null(s->job);
	int64_t t0 = f->now;
	fail_session(f, s, true, "4.4.2 lost connection");
	struct mm_queue *q = queue(f, "Internet");
	assert_int_equal(q->nheld + q->nready + q->nbusy, 2);
	assert_int_equal(q->held_at, t0 + 1000); /* the glitch interval, not retry_min_ms */
	assert_true(tracked(f, "4.4.2 lost connection"));
	fake_free(f);
}

/* A session saying QUIT is no capacity: a new job gets a session of its
 * own. Mutation caught: the closing sessions counted as free (the job
 * waited for a QUIT to finish). */
static void test_closing_capacity(void **state)
{
	(void)state;
	struct fake *f = fake_new(NULL, NULL);
	const char *r[] = {"x@example.com", NULL};
	send_msg(f, "alice@t.test", r, 0);
	struct fsession *s = &f->s[0];
	ready(f, s);
	struct mm_smtpc_job *j = s->job;
	s->job = NULL;
	j->res[0].code = 250;
	mm_qm_session_result(&f->qm, s->sid); /* no pump: its QUIT is slow */
	assert_true(s->close_asked);
	send_msg_nopump(f, "alice@t.test", r);
	assert_int_equal(f->ns, 2);
	fake_free(f);
}

/* An empty queue whose hop went down goes from the view after a minute
 * like any other. Mutation caught: the idle check requiring !st.down (one
 * queue left forever per dead destination). */
static void test_gc_down_queue(void **state)
{
	(void)state;
	struct mm_qm_conf c = base_conf;
	c.glitch_count = 0;
	c.expire_s = 60;
	struct fake *f = fake_new(&c, NULL);
	const char *r[] = {"y@host.mx", NULL};
	send_msg(f, "alice@t.test", r, 0);
	const char *addrs[] = {"192.0.2.10:25"};
	mm_qm_mx_answer(&f->qm, f->mx_qnum[0], MM_MX_OK, addrs, 1, NULL);
	pump(f);
	fail_session(f, last_session(f), false, "4.4.1 refused");
	struct mm_queue *q = queue(f, "host.mx");
	assert_true(q->st.down);
	for (int i = 0; i < 200 && queue(f, "host.mx"); i++) {
		run_until(f, f->now + 1000);
		for (uint32_t k = 0; k < f->ns; k++)
			if (!f->s[k].ended)
				fail_session(f, &f->s[k], false, "4.4.1 refused");
		mm_qm_tick(&f->qm);
	}
	assert_null(queue(f, "host.mx"));
	assert_non_null(strstr(f->log.p, "forgotten while down"));
	fake_free(f);
}

/* A session with nothing to carry waits session_idle_ms for the next job
 * (the connection cache), takes it when it comes, and says QUIT when its
 * time is up; the next hop closing it meanwhile is no failure. Mutations
 * caught: qm_kick opening a new session while one waits idle; session_end
 * counting the close of an idle session against the hop. */
static void test_connection_cache(void **state)
{
	(void)state;
	struct mm_qm_conf c = base_conf;
	c.session_idle_ms = 2000;
	struct fake *f = fake_new(&c, NULL);
	const char *r[] = {"x@example.com", NULL};
	send_msg(f, "alice@t.test", r, 0);
	struct fsession *s = &f->s[0];
	ready(f, s);
	answer(f, s, 250, "250 ok");
	assert_false(s->close_asked); /* idle, kept */
	run_until(f, f->now + 500);
	send_msg(f, "alice@t.test", r, 0);
	assert_int_equal(f->ns, 1); /* no new session: the idle one takes it */
	assert_non_null(s->job);
	answer(f, s, 250, "250 ok");
	run_until(f, f->now + 2001);
	assert_true(s->close_asked); /* its time was up */
	/* an idle session the next hop closes: the hop is fine */
	send_msg(f, "alice@t.test", r, 0);
	struct fsession *t = last_session(f);
	ready(f, t);
	answer(f, t, 250, "250 ok");
	fail_session(f, t, true, "4.4.2 lost connection with 127.0.0.7:2526");
	struct mm_queue *q = queue(f, "Internet");
	assert_int_equal(q->st.failures, 0);
	assert_int_equal(timer_at(f, q->num), -1);
	send_msg(f, "alice@t.test", r, 0);
	assert_false(last_session(f)->ended); /* a new one, at once */
	fake_free(f);
}

/* What the connector-state detector hears: a connector hop's session that
 * could not start, and one that got through its greeting; never a
 * recipient's 4xx, never an MX queue. Mutation caught: link_result called
 * on every failed session end (a 4xx to a recipient counted against the
 * smart host). */
static void test_link_results(void **state)
{
	(void)state;
	struct fake *f = fake_new(NULL, NULL);
	const char *r[] = {"x@example.com", NULL};
	send_msg(f, "alice@t.test", r, 0);
	fail_session(f, last_session(f), false, "4.4.1 refused");
	assert_non_null(strstr(f->actions.p, "link Internet 127.0.0.7:2526 failed\n"));
	send_msg(f, "alice@t.test", r, 0);
	run_until(f, f->now + 1000);
	struct fsession *s = last_session(f);
	ready(f, s);
	assert_non_null(strstr(f->actions.p, "link Internet 127.0.0.7:2526 ok\n"));
	mm_buf_reset(&f->actions);
	answer(f, s, 451, "451 4.2.1 mailbox busy");       /* a recipient's 4xx */
	assert_non_null(s->job);                           /* the session goes on */
	fail_session(f, s, true, "4.4.2 lost connection"); /* after its greeting */
	assert_true(f->actions.p == NULL || strstr(f->actions.p, "link ") == NULL);
	const char *m[] = {"y@host.mx", NULL};
	send_msg(f, "alice@t.test", m, 0);
	const char *addrs[] = {"192.0.2.10:25"};
	mm_qm_mx_answer(&f->qm, f->mx_qnum[0], MM_MX_OK, addrs, 1, NULL);
	pump(f);
	fail_session(f, last_session(f), false, "4.4.1 refused");
	assert_true(f->actions.p == NULL || strstr(f->actions.p, "link Mx") == NULL);
	fake_free(f);
}

/* Compaction, then a power cut: the copies carry the done flags, so a
 * recipient finished before the copy is not delivered again. Mutation
 * caught: compact.c writing the copy without its done flags. */
static void test_compaction_recovery(void **state)
{
	(void)state;
	struct fake *f = fake_new(NULL, NULL);
	const char *r[] = {"x@example.com", "alice@t.test", NULL};
	send_msg(f, "s@example.org", r, 0);
	run_until(f, f->now); /* alice delivered: done */
	assert_int_equal(f->ndelivered, 1);
	f->spool.seg = 2;
	mm_qm_tick(&f->qm);
	pump(f);
	assert_int_equal(f->spool.live[1], 0);
	assert_int_equal(f->spool.live[2], 1);
	mm_spool_ram_crash(&f->spool);
	struct mm_spool_ram disk = f->spool;
	f->spool = (struct mm_spool_ram){0};
	fake_free(f);
	f = fake_boot(NULL, NULL, &disk);
	run_until(f, f->now);
	assert_int_equal(f->ndelivered, 0);
	assert_int_equal(queue(f, "Internet")->nrcpt, 1);
	fake_free(f);
}

/* A power cut: what was durable comes back, what was done stays done, what
 * was never durable is gone (and was never promised). Mutation caught:
 * recovering a recipient whose DONE was written. */
static void test_recovery(void **state)
{
	(void)state;
	struct fake *f = fake_new(NULL, NULL);
	const char *r[] = {"x@example.com", "alice@t.test", NULL};
	send_msg(f, "s@example.org", r, 0);
	run_until(f, f->now); /* alice delivered, x waits */
	assert_int_equal(f->ndelivered, 1);
	mm_qm_durable(&f->qm, mm_spool_ram_flush(&f->spool)); /* the DONE too */
	struct mm_spool_rcpt rc = {"bob@t.test", "", 0};
	struct mm_spool_msg sm = {.id = 99, .sender = "lost@example.org", .nrcpt = 1, .rcpt = &rc};
	struct iovec iov = {"x\r\n", 3};
	int owner;
	assert_int_equal(mm_qm_submit(&f->qm, &sm, &iov, 1, &owner), 0); /* never durable */
	mm_spool_ram_crash(&f->spool);
	struct mm_spool_ram disk = f->spool;
	f->spool = (struct mm_spool_ram){0};
	fake_free(f);
	f = fake_boot(NULL, NULL, &disk);
	assert_true(tracked(f, "RECOVERED"));
	assert_false(tracked(f, "lost@example.org"));
	struct mm_queue *q = queue(f, "Internet");
	assert_non_null(q);
	assert_int_equal(q->nrcpt, 1);
	run_until(f, f->now);
	assert_int_equal(f->ndelivered, 0); /* alice is not delivered twice */
	fake_free(f);
}

/* Virtual time replays byte for byte: the same events give the same
 * tracking log, node log and calls of the environment (timers armed,
 * sessions opened, jobs sent), with jitter, so the random numbers matter
 * (they come from the environment only). */
static void test_replay(void **state)
{
	(void)state;
	struct mm_qm_conf c = base_conf;
	c.retry_jitter_pct = 30;
	char *runs[2][2];
	for (int k = 0; k < 2; k++) {
		struct fake *f = fake_new(&c, NULL);
		const char *r[] = {"x@example.com", "bob@t.test", "alice@t.test", NULL};
		for (int m = 0; m < 5; m++)
			send_msg(f, "alice@t.test", r, 0);
		for (int round = 0; round < 30; round++) {
			for (uint32_t i = 0; i < f->ns; i++) {
				struct fsession *s = &f->s[i];
				if (s->ended)
					continue;
				if ((i + (uint32_t)round) % 3 == 0) {
					fail_session(f, s, round % 2, "4.4.2 lost");
					continue;
				}
				if (s->job == NULL && !s->close_asked)
					ready(f, s);
				if (s->job)
					answer(f, s, round % 4 ? 250 : 451, "ok or not");
			}
			run_until(f, f->now + 30000);
		}
		mm_buf_add(&f->track, f->actions.p, f->actions.len); /* timers, sessions too */
		mm_buf_add(&f->track, "", 1);
		runs[k][0] = mm_xstrdup(f->track.p);
		runs[k][1] = mm_xstrdup(f->log.p ? f->log.p : "");
		fake_free(f);
	}
	assert_string_equal(runs[0][0], runs[1][0]);
	assert_string_equal(runs[0][1], runs[1][1]);
	for (int k = 0; k < 2; k++)
		free(runs[k][0]), free(runs[k][1]);
}

/* The Message-ID the tracking log's RECEIVED line carries (meshsim ties
 * queue ids to messages by it): found case-insensitively in the header
 * section, blanks trimmed, a folded value taken from its next line, none
 * in the body, a long one cut (mutation: mm_trace_message_id not stopping
 * at the blank line -- the body's "Message-ID:" taken). */
static char *mid(const char *text)
{
	struct iovec iov = {.iov_base = (void *)text, .iov_len = strlen(text)};
	return mm_trace_message_id(&iov, 1);
}

static void test_tracking_message_id(void **state)
{
	(void)state;
	char *m = mid("Received: from x\r\n\tby a (mailmesh)\r\nmessage-id:   <1.2@meshsim> \r\n"
	              "Subject: s\r\n\r\nbody\r\n");
	assert_string_equal(m, "<1.2@meshsim>");
	free(m);
	m = mid("Message-ID:\r\n  <folded@x>\r\n\r\n");
	assert_string_equal(m, "<folded@x>");
	free(m);
	assert_null(mid("Subject: none\r\n\r\nMessage-ID: <in-the-body@x>\r\n"));
	assert_null(mid("Message-ID:   \r\n\r\n"));
	char big[1200 + 64];
	memset(big, 'a', sizeof(big));
	memcpy(big, "Message-ID: <", 13);
	memcpy(big + sizeof(big) - 5, "\r\n\r\n", 5);
	big[sizeof(big) - 1] = '\0';
	m = mid(big);
	assert_int_equal(strlen(m), MM_MESSAGE_ID_MAX);
	free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_placement),
	    cmocka_unit_test(test_tracking_message_id),
	    cmocka_unit_test(test_local_mailbox),
	    cmocka_unit_test(test_retry_backoff),
	    cmocka_unit_test(test_expiry),
	    cmocka_unit_test(test_dsn_choice),
	    cmocka_unit_test(test_mx_failover),
	    cmocka_unit_test(test_concurrency),
	    cmocka_unit_test(test_freeze_thaw),
	    cmocka_unit_test(test_reroute),
	    cmocka_unit_test(test_back_to_sender),
	    cmocka_unit_test(test_split_horizon),
	    cmocka_unit_test(test_up_means_up),
	    cmocka_unit_test(test_smart_host_change),
	    cmocka_unit_test(test_commit),
	    cmocka_unit_test(test_compaction),
	    cmocka_unit_test(test_recovery),
	    cmocka_unit_test(test_replay),
	    cmocka_unit_test(test_mx_failover_many),
	    cmocka_unit_test(test_tls_tightened),
	    cmocka_unit_test(test_frozen_holds),
	    cmocka_unit_test(test_session_dies),
	    cmocka_unit_test(test_closing_capacity),
	    cmocka_unit_test(test_gc_down_queue),
	    cmocka_unit_test(test_compaction_recovery),
	    cmocka_unit_test(test_connection_cache),
	    cmocka_unit_test(test_link_results),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
