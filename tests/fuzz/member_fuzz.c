/* libFuzzer target: the member machine (node/core/member.h) fed what an
 * active master (or anything answering on 691) sends.
 *
 * Input: one flags byte, eight piece bytes, then the bytes of the stream.
 * The node starts, dials, and the connection opens (bit 0 of the flags:
 * insecure, no certificate; bit 1: a certificate naming a server, which
 * must be refused); the stream is fed in pieces, the piece bytes cycled: a
 * piece byte below 0x80 feeds that many bytes plus one, one at or above
 * 0x80 lets (byte & 0x7f) * 250 ms of virtual time pass (pings, deaths,
 * rounds; 16 such steps at most, then they feed too, so that every
 * input ends). Whenever the node dials again the new connection opens and the
 * stream goes on there. Bit 2: after every piece the node reports its
 * Internet bridgehead down or up (the overlay in every state). After every
 * step:
 *   - every frame the node sent is one whole frame that decodes;
 *   - every log line is one line;
 *   - the saved table decodes, and its digest is the base table's;
 *   - the base table is canonical (encoded, decoded, encoded: the same
 *     bytes) and the cached digest equals the digest computed afresh;
 *   - the view has base's entries but the group's own, which keeps base's
 *     version.
 * Then an orderly stop and the free (leaks: ASan).
 *
 * Built with -DMM_MEMBER_SEED it is the seed writer instead:
 *   member_seed DIR   writes the seeds of tests/fuzz/corpus/member. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "frame.h"
#include "member.h"
#include "table.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HEADER 9
#define NPIECE 8
#define LIMIT  (1u << 20)

/* --- the organization ---------------------------------------------------- */

static char *dup(const char *s)
{
	return mm_xstrdup(s);
}

static Mailmesh__Bridgehead *bh(const char *server, const char *addr)
{
	Mailmesh__Bridgehead *b = mm_xmalloc(sizeof(*b));
	mailmesh__bridgehead__init(b);
	b->server = dup(server);
	b->virtual_server = dup("SMTP");
	b->address = dup(addr);
	return b;
}

static mm_entry *group(const char *name, const char *server, const char *master, const char *m2)
{
	mm_entry *e = mm_xmalloc(sizeof(*e));
	mailmesh__group_entry__init(e);
	e->name = dup(name);
	e->master = dup(master);
	e->version = mm_xmalloc(sizeof(*e->version));
	mailmesh__version__init(e->version);
	e->version->major = 1;
	size_t nm = m2 ? 2 : 1;
	e->masters = mm_xcalloc(nm, sizeof(*e->masters));
	for (size_t i = 0; i < nm; i++) {
		Mailmesh__MasterCandidate *c = mm_xmalloc(sizeof(*c));
		mailmesh__master_candidate__init(c);
		c->name = dup(i ? m2 : master);
		c->routing_address = dup(i ? "127.0.9.2:691" : "127.0.9.1:691");
		c->priority = i ? 10 : 20;
		e->masters[e->n_masters++] = c;
	}
	Mailmesh__Server *s = mm_xmalloc(sizeof(*s));
	mailmesh__server__init(s);
	s->name = dup(server);
	s->virtual_servers = mm_xcalloc(1, sizeof(*s->virtual_servers));
	Mailmesh__VirtualServer *vs = mm_xmalloc(sizeof(*vs));
	mailmesh__virtual_server__init(vs);
	vs->name = dup("SMTP");
	vs->address = dup("127.0.0.1:25");
	s->virtual_servers[s->n_virtual_servers++] = vs;
	e->servers = mm_xcalloc(1, sizeof(*e->servers));
	e->servers[e->n_servers++] = s;
	return e;
}

/* G0: S0 (this node), candidates M0 (20) and M1 (10), the connector
 * Internet through a smart host from S0/SMTP. G1: S1, candidate N0. */
static void org(struct mm_table *t)
{
	mm_table_init(t);
	mm_entry *g0 = group("G0", "S0", "M0", "M1");
	Mailmesh__Connector *c = mm_xmalloc(sizeof(*c));
	mailmesh__connector__init(c);
	c->name = dup("Internet");
	c->type = MAILMESH__CONNECTOR_TYPE__CONNECTOR_SMTP;
	c->smart_host = dup("127.0.0.7:2526");
	c->local_bridgeheads = mm_xcalloc(1, sizeof(*c->local_bridgeheads));
	c->local_bridgeheads[c->n_local_bridgeheads++] = bh("S0", "127.0.0.1:25");
	g0->connectors = mm_xcalloc(1, sizeof(*g0->connectors));
	g0->connectors[g0->n_connectors++] = c;
	mm_table_merge(t, g0);
	mm_table_merge(t, group("G1", "S1", "N0", NULL));
}

#ifndef MM_MEMBER_SEED

/* --- the fake environment ------------------------------------------------ */

static void die(const char *what)
{
	fprintf(stderr, "member_fuzz: %s\n", what);
	abort();
}

struct fake {
	int64_t now;
	uint64_t rnd;
	struct {
		int64_t at;
		bool armed;
	} timers[4]; /* by key: MM_MEMBER_TIMER_* */
	uint32_t dialled;
	bool saved;
	bool verbose;                  /* MEMBER_FUZZ_LOG set: the log to stderr */
	uint8_t digest[MM_DIGEST_LEN]; /* of the table saved last */
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
	if (key == 0 || key > 3)
		die("a timer key that is not MM_MEMBER_TIMER_*");
	f->timers[key].at = at;
	f->timers[key].armed = true;
}

static void f_cancel(void *ctx, uint64_t key)
{
	struct fake *f = ctx;
	if (key == 0 || key > 3)
		die("a timer key that is not MM_MEMBER_TIMER_*");
	f->timers[key].armed = false;
}

static void f_dial(void *ctx, uint32_t conn, const char *address, const char *cand)
{
	struct fake *f = ctx;
	if (conn <= f->dialled || address == NULL || cand == NULL)
		die("a dial with a number already used");
	f->dialled = conn;
}

static void f_send(void *ctx, uint32_t conn, const uint8_t *bytes, size_t len)
{
	(void)ctx, (void)conn;
	struct mm_frame_reader r;
	mm_frame_reader_init(&r, MM_FRAME_LIMIT_DEFAULT);
	Mailmesh__Frame *fr = NULL;
	if (mm_frame_feed(&r, bytes, len) != MM_FRAME_NEED_MORE ||
	    mm_frame_next(&r, &fr) != MM_FRAME_OK || r.len != 0)
		die("a frame sent is not one whole frame that decodes");
	mailmesh__frame__free_unpacked(fr, NULL);
	mm_frame_reader_free(&r);
}

static void f_close(void *ctx, uint32_t conn)
{
	(void)ctx, (void)conn;
}

static void f_save(void *ctx, const uint8_t *bytes, size_t len)
{
	struct fake *f = ctx;
	struct mm_table t;
	if (!mm_table_decode(bytes, len, LIMIT, &t))
		die("the saved table does not decode");
	mm_table_digest(&t, f->digest);
	mm_table_free(&t);
	f->saved = true;
}

static void f_log(void *ctx, const char *line)
{
	if (((struct fake *)ctx)->verbose)
		fprintf(stderr, "%s\n", line);
	if (strpbrk(line, "\r\n") != NULL)
		die("a log line with a line break in it");
}

/* --- properties ---------------------------------------------------------- */

static void check(struct fake *f)
{
	struct mm_member *m = &f->m;
	const struct mm_table *base = mm_member_base(m), *view = mm_member_table(m);
	size_t len1, len2;
	uint8_t *b1 = mm_table_encode(base, &len1);
	struct mm_table t;
	if (!mm_table_decode(b1, len1, LIMIT, &t))
		die("the base table does not decode");
	uint8_t *b2 = mm_table_encode(&t, &len2);
	if (len1 != len2 || memcmp(b1, b2, len1) != 0)
		die("the base table is not canonical");
	uint8_t d1[MM_DIGEST_LEN], d2[MM_DIGEST_LEN];
	mm_table_digest(&t, d1);
	mm_table_digest_cached(&m->base, &m->dcache, d2);
	if (memcmp(d1, d2, MM_DIGEST_LEN) != 0)
		die("the cached digest is not the table's");
	if (f->saved && memcmp(d1, f->digest, MM_DIGEST_LEN) != 0)
		die("the saved table is not the base table");
	free(b1);
	free(b2);
	mm_table_free(&t);
	if (view->n != base->n)
		die("the view and the base table differ in entries");
	for (size_t i = 0; i < base->n; i++) {
		const mm_entry *b = base->entries[i], *v = view->entries[i];
		if (strcmp(b->name, m->group) != 0) {
			if (v != b)
				die("the view overlays another group's entry");
			continue;
		}
		if (mm_version_cmp(v->version, b->version) != 0)
			die("the view's entry does not keep the master's version");
		if (v != b && v != m->view_own)
			die("the view's own entry is neither base's nor the overlay");
	}
}

static void fire(struct fake *f, int64_t until)
{
	for (;;) {
		int best = -1;
		for (int k = 1; k <= 3; k++)
			if (f->timers[k].armed && f->timers[k].at <= until &&
			    (best < 0 || f->timers[k].at < f->timers[best].at))
				best = k;
		if (best < 0)
			break;
		if (f->timers[best].at > f->now)
			f->now = f->timers[best].at;
		f->timers[best].armed = false;
		mm_member_timer(&f->m, (uint64_t)best);
		check(f);
	}
	if (until > f->now)
		f->now = until;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t flags = 0, piece[NPIECE];
	memset(piece, 0x7f, sizeof(piece));
	if (size >= HEADER) {
		flags = data[0];
		memcpy(piece, data + 1, NPIECE);
		data += HEADER;
		size -= HEADER;
	}
	struct fake *f = mm_xcalloc(1, sizeof(*f));
	f->now = 1000;
	f->rnd = 7;
	f->verbose = getenv("MEMBER_FUZZ_LOG") != NULL;
	struct mm_member_conf conf = MM_MEMBER_DEFAULTS;
	conf.frame_limit = LIMIT;
	conf.insecure = flags & 1;
	struct mm_member_env env = {f,      f_now,  f_random, f_arm,  f_cancel,
	                            f_dial, f_send, f_close,  f_save, f_log};
	struct mm_table t;
	org(&t);
	if (!mm_member_init(&f->m, &conf, &env, "S0", &t))
		die("S0 is not in its table");
	mm_member_start(&f->m);
	const struct mm_member_peer server = {"server", "S9"};
	uint32_t opened = 0;
	size_t off = 0, k = 0;
	bool down = false;
	unsigned ntime = 0;
	while (off < size) {
		if (f->m.state == MM_MEMBER_DIALING && f->m.conn != opened) {
			opened = f->m.conn;
			const struct mm_member_peer id = {"master", f->m.peer};
			mm_member_conn_open(&f->m, opened,
			                    conf.insecure ? NULL
			                    : (flags & 2) ? &server
			                                  : &id);
			check(f);
		}
		uint8_t p = piece[k++ % NPIECE];
		if ((p & 0x80) && ntime < 16) {
			ntime++;
			fire(f, f->now + (int64_t)(p & 0x7f) * 250);
		} else {
			p &= 0x7f;
			size_t n = size - off < (size_t)p + 1 ? size - off : (size_t)p + 1;
			mm_member_conn_data(&f->m, f->m.conn ? f->m.conn : opened, data + off, n);
			off += n;
			check(f);
		}
		if (flags & 4) {
			down = !down;
			struct mm_bh_report r = {"Internet", "SMTP", down};
			mm_member_report(&f->m, &r, 1);
			check(f);
		}
	}
	mm_member_stop(&f->m);
	check(f);
	mm_member_free(&f->m);
	free(f);
	return 0;
}

#else /* MM_MEMBER_SEED */

/* --- seeds --------------------------------------------------------------- */

struct out {
	uint8_t *p;
	size_t n;
};

static void add(struct out *o, Mailmesh__Frame *fr)
{
	size_t n;
	uint8_t *b = mm_frame_encode(fr, &n);
	o->p = mm_xrealloc(o->p, o->n + n, 1);
	memcpy(o->p + o->n, b, n);
	o->n += n;
	free(b);
}

static void hello(struct out *o, const char *name, Mailmesh__MasterState st, const char *active,
                  uint32_t major)
{
	Mailmesh__Hello h = MAILMESH__HELLO__INIT;
	h.name = (char *)name;
	h.group = (char *)"G0";
	h.role = MAILMESH__ROLE__ROLE_MASTER;
	h.proto_major = major;
	h.master_state = st;
	h.active_master = (char *)active;
	Mailmesh__Frame fr = MAILMESH__FRAME__INIT;
	fr.body_case = MAILMESH__FRAME__BODY_HELLO;
	fr.hello = &h;
	add(o, &fr);
}

/* The table's entries, each made newer (user + bump), as one push. */
static void push(struct out *o, uint64_t bump, bool bh_down)
{
	struct mm_table t;
	org(&t);
	for (size_t i = 0; i < t.n; i++)
		t.entries[i]->version->user += bump;
	if (bh_down)
		t.entries[0]->connectors[0]->local_bridgeheads[0]->down = true;
	Mailmesh__TablePush p = MAILMESH__TABLE_PUSH__INIT;
	p.full = bump == 1;
	p.entries = t.entries;
	p.n_entries = t.n;
	Mailmesh__Frame fr = MAILMESH__FRAME__INIT;
	fr.body_case = MAILMESH__FRAME__BODY_TABLE_PUSH;
	fr.table_push = &p;
	add(o, &fr);
	mm_table_free(&t);
}

static void probe(struct out *o)
{
	uint8_t d[MM_DIGEST_LEN] = {1};
	Mailmesh__DigestProbe p = MAILMESH__DIGEST_PROBE__INIT;
	p.digest = (ProtobufCBinaryData){MM_DIGEST_LEN, d};
	Mailmesh__Frame fr = MAILMESH__FRAME__INIT;
	fr.body_case = MAILMESH__FRAME__BODY_DIGEST_PROBE;
	fr.digest_probe = &p;
	add(o, &fr);
}

static void ping(struct out *o)
{
	Mailmesh__Ping p = MAILMESH__PING__INIT;
	p.nonce = 9;
	Mailmesh__Frame fr = MAILMESH__FRAME__INIT;
	fr.body_case = MAILMESH__FRAME__BODY_PING;
	fr.ping = &p;
	add(o, &fr);
}

static void put(const char *dir, const char *name, uint8_t flags, const uint8_t piece[NPIECE],
                struct out *o)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	if (f == NULL || fwrite(&flags, 1, 1, f) != 1 || fwrite(piece, 1, NPIECE, f) != NPIECE ||
	    (o->n && fwrite(o->p, 1, o->n, f) != o->n) || fclose(f) != 0) {
		perror(path);
		exit(1);
	}
	free(o->p);
	*o = (struct out){0};
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: member_seed DIR\n");
		return 64;
	}
	const char *dir = argv[1];
	static const uint8_t whole[NPIECE] = {0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f};
	static const uint8_t bits[NPIECE] = {3, 0x84, 40, 0x81, 200 & 0x7f, 0x8c, 9, 0x7f};
	struct out o = {0};
	/* the active master: push, newer push with the bridgehead down,
	 * digest probe, ping */
	hello(&o, "M0", MAILMESH__MASTER_STATE__MASTER_ACTIVE, "", 1);
	push(&o, 1, false);
	push(&o, 2, true);
	probe(&o);
	ping(&o);
	put(dir, "active", 0, whole, &o);
	hello(&o, "M0", MAILMESH__MASTER_STATE__MASTER_ACTIVE, "", 1);
	push(&o, 1, false);
	probe(&o);
	ping(&o);
	put(dir, "active-pieces", 4, bits, &o);
	/* insecure, a standby that names M1, then M1 active: the first piece
	 * is the standby's Hello exactly (what follows it on a connection
	 * that closed is lost, as on a socket) */
	hello(&o, "M0", MAILMESH__MASTER_STATE__MASTER_STANDBY, "M1", 1);
	uint8_t first[NPIECE];
	memcpy(first, whole, NPIECE);
	first[0] = (uint8_t)(o.n - 1);
	hello(&o, "M1", MAILMESH__MASTER_STATE__MASTER_ACTIVE, "", 1);
	push(&o, 3, true);
	put(dir, "redirect", 1, first, &o);
	/* an unknown major; a push before the Hello */
	hello(&o, "M0", MAILMESH__MASTER_STATE__MASTER_ACTIVE, "", 2);
	put(dir, "major", 0, whole, &o);
	push(&o, 1, false);
	hello(&o, "M0", MAILMESH__MASTER_STATE__MASTER_ACTIVE, "", 1);
	put(dir, "push-first", 0, whole, &o);
	/* a server's certificate */
	hello(&o, "M0", MAILMESH__MASTER_STATE__MASTER_ACTIVE, "", 1);
	put(dir, "server-cert", 2, whole, &o);
	return 0;
}

#endif
