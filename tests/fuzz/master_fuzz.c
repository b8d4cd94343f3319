/* libFuzzer target: the routing group master machine (rgmaster/master.h)
 * fed frames from arbitrary bytes.
 *
 * The master is candidate M-A of group G000000 (servers S0-0..S0-2,
 * candidates M-A and M-B, two connectors), in virtual time. Five connection
 * slots: 0 a server's certificate (S0-0), 1 no certificate (insecure), 2 a
 * master's certificate (M-B, accepted), 3 an admin's (ops), 4 the master's
 * own dial to M-B. The input is a list of records, one op byte each:
 *   op % 8 in 0..3: feed a slot (op / 8 % 5): a length byte, then that
 *                   many bytes into the slot's mm_frame_reader; every frame
 *                   it yields goes to mm_master_frame; a reader error
 *                   closes the slot as a driver would
 *   4: time: the next byte * 64 ms, timers fired in order
 *   5: the peer closes a slot (op / 8 % 5); it reopens on its next bytes
 *   6: SIGHUP with the same directory, or (op & 8) one with a changed cost
 *   7: the pending dial is answered (open) or refused (op & 8)
 * A first byte below 128 lets the master become active first.
 *
 * Checked after every event: our group's entry never goes back to an older
 * version (the table's, and the one being made while active); the cached
 * digest is the table's digest; an active published master names itself;
 * every frame the machine sends encodes and reads back within its limit;
 * incarnations persisted only grow. ASan and UBSan watch the rest. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "frame.h"
#include "master.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NSLOT 5
#define MAXT  64

struct fz {
	int64_t now;
	uint64_t rnd;
	struct {
		uint64_t key;
		int64_t at;
		bool armed;
	} timers[MAXT];
	struct mm_master m;
	struct mm_directory dir;
	struct {
		uint32_t id;
		bool open;
		struct mm_frame_reader r;
	} slot[NSLOT];
	uint32_t next_id;
	uint32_t dial_id; /* pending dial, 0 when none */
	uint64_t last_persist;
	Mailmesh__Version last_table, last_own;
	bool have_table, have_own;
};

static void die(const char *what)
{
	fprintf(stderr, "master_fuzz: %s\n", what);
	abort();
}

static int64_t f_now(void *ctx)
{
	return ((struct fz *)ctx)->now;
}

static int64_t f_wall(void *ctx)
{
	return 1790000000000LL + ((struct fz *)ctx)->now;
}

static uint32_t f_random(void *ctx)
{
	struct fz *z = ctx;
	z->rnd = z->rnd * 6364136223846793005ULL + 1442695040888963407ULL;
	return (uint32_t)(z->rnd >> 32);
}

static void f_arm(void *ctx, uint64_t key, int64_t at)
{
	struct fz *z = ctx;
	int free_slot = -1;
	for (int i = 0; i < MAXT; i++) {
		if (z->timers[i].armed && z->timers[i].key == key) {
			z->timers[i].at = at;
			return;
		}
		if (!z->timers[i].armed && free_slot < 0)
			free_slot = i;
	}
	if (free_slot < 0)
		die("more timers than a master has");
	z->timers[free_slot].key = key;
	z->timers[free_slot].at = at;
	z->timers[free_slot].armed = true;
}

static void f_cancel(void *ctx, uint64_t key)
{
	struct fz *z = ctx;
	for (int i = 0; i < MAXT; i++)
		if (z->timers[i].armed && z->timers[i].key == key)
			z->timers[i].armed = false;
}

static void f_send(void *ctx, uint32_t conn, const Mailmesh__Frame *f)
{
	struct fz *z = ctx;
	size_t len;
	uint8_t *b = mm_frame_encode(f, &len);
	struct mm_frame_reader r;
	mm_frame_reader_init(&r, z->m.conf.frame_limit);
	Mailmesh__Frame *g = NULL;
	if (mm_frame_feed(&r, b, len) != MM_FRAME_NEED_MORE || mm_frame_next(&r, &g) != MM_FRAME_OK)
		die("a frame the master sent does not read back");
	(void)conn;
	mailmesh__frame__free_unpacked(g, NULL);
	mm_frame_reader_free(&r);
	free(b);
}

static int slot_of(struct fz *z, uint32_t conn)
{
	for (int i = 0; i < NSLOT; i++)
		if (z->slot[i].open && z->slot[i].id == conn)
			return i;
	return -1;
}

static void slot_drop(struct fz *z, int i)
{
	z->slot[i].open = false;
	mm_frame_reader_free(&z->slot[i].r);
}

static void f_close(void *ctx, uint32_t conn, const char *why)
{
	(void)why;
	struct fz *z = ctx;
	int i = slot_of(z, conn);
	if (i >= 0)
		slot_drop(z, i);
	if (conn == z->dial_id)
		z->dial_id = 0;
}

static void f_dial(void *ctx, uint32_t conn, const char *cand, const char *addr)
{
	(void)addr;
	struct fz *z = ctx;
	if (strcmp(cand, "M-B") != 0 || !(conn & MM_MASTER_CONN_OUT))
		die("a dial to something but the other candidate");
	z->dial_id = conn;
}

static int f_persist(void *ctx, uint64_t inc)
{
	struct fz *z = ctx;
	if (inc <= z->last_persist)
		die("an incarnation persisted again, or lower");
	z->last_persist = inc;
	return 0;
}

static char *f_render(void *ctx, const struct mm_table *t, const char *server, const char *role,
                      bool json)
{
	(void)ctx;
	(void)t;
	(void)server;
	(void)role;
	return mm_xstrdup(json ? "{}" : "table");
}

/* --- the organization ----------------------------------------------------- */

static char *name2(const char *fmt, unsigned a)
{
	char b[32];
	snprintf(b, sizeof(b), fmt, a);
	return mm_xstrdup(b);
}

static Mailmesh__Bridgehead *bridgehead(unsigned g, unsigned s)
{
	Mailmesh__Bridgehead *b = mm_xmalloc(sizeof(*b));
	mailmesh__bridgehead__init(b);
	char n[32];
	snprintf(n, sizeof(n), "S%u-%u", g, s);
	b->server = mm_xstrdup(n);
	b->virtual_server = mm_xstrdup("SMTP");
	snprintf(n, sizeof(n), "127.0.%u.%u:25", g, s + 1);
	b->address = mm_xstrdup(n);
	return b;
}

static mm_entry *group(unsigned g, unsigned nservers, unsigned cost)
{
	mm_entry *e = mm_xmalloc(sizeof(*e));
	mailmesh__group_entry__init(e);
	e->name = name2("G%06u", g);
	e->version = mm_xmalloc(sizeof(*e->version));
	mailmesh__version__init(e->version);
	e->version->major = 1;
	e->servers = mm_xcalloc(nservers, sizeof(*e->servers));
	for (unsigned s = 0; s < nservers; s++) {
		Mailmesh__Server *sv = mm_xmalloc(sizeof(*sv));
		mailmesh__server__init(sv);
		char n[32];
		snprintf(n, sizeof(n), "S%u-%u", g, s);
		sv->name = mm_xstrdup(n);
		e->servers[e->n_servers++] = sv;
	}
	const char *cands[2] = {g ? "M1" : "M-A", "M-B"};
	e->masters = mm_xcalloc(2, sizeof(*e->masters));
	for (unsigned i = 0; i < (g ? 1u : 2u); i++) {
		Mailmesh__MasterCandidate *m = mm_xmalloc(sizeof(*m));
		mailmesh__master_candidate__init(m);
		m->name = mm_xstrdup(cands[i]);
		m->routing_address = name2("127.0.9.%u:691", i + 1);
		m->priority = 200 - 100 * i;
		e->masters[e->n_masters++] = m;
	}
	e->master = mm_xstrdup(cands[0]);
	if (g == 0) {
		e->connectors = mm_xcalloc(2, sizeof(*e->connectors));
		for (unsigned k = 0; k < 2; k++) {
			Mailmesh__Connector *c = mm_xmalloc(sizeof(*c));
			mailmesh__connector__init(c);
			c->name = mm_xstrdup(k ? "Internet" : "C0-0");
			c->type = k ? MAILMESH__CONNECTOR_TYPE__CONNECTOR_SMTP
			            : MAILMESH__CONNECTOR_TYPE__CONNECTOR_ROUTING_GROUP;
			c->cost = k ? cost : 10;
			c->target_group = mm_xstrdup(k ? "" : "G000001");
			c->local_bridgeheads = mm_xcalloc(2, sizeof(*c->local_bridgeheads));
			c->local_bridgeheads[c->n_local_bridgeheads++] = bridgehead(0, k ? 0 : 1);
			if (k)
				c->local_bridgeheads[c->n_local_bridgeheads++] = bridgehead(0, 2);
			else {
				c->remote_bridgeheads =
				    mm_xcalloc(1, sizeof(*c->remote_bridgeheads));
				c->remote_bridgeheads[c->n_remote_bridgeheads++] = bridgehead(1, 0);
			}
			e->connectors[e->n_connectors++] = c;
		}
	}
	mm_entry_canonicalize(e);
	return e;
}

static void org(struct mm_directory *d, unsigned cost)
{
	*d = (struct mm_directory){0};
	mm_table_init(&d->table);
	mm_table_merge(&d->table, group(0, 3, cost));
	mm_table_merge(&d->table, group(1, 1, 1));
}

/* --- driving ---------------------------------------------------------------- */

static void check(struct fz *z)
{
	const mm_entry *e = mm_master_entry(&z->m);
	if (e == NULL)
		die("no entry of our group");
	if (z->have_table && mm_version_cmp(e->version, &z->last_table) < 0)
		die("our group's entry went back to an older version");
	if (e->version) {
		z->last_table = *e->version;
		z->have_table = true;
	}
	if (z->m.own) {
		if (z->have_own && mm_version_cmp(z->m.own->version, &z->last_own) < 0)
			die("the entry being made went back to an older version");
		z->last_own = *z->m.own->version;
		z->have_own = true;
	}
	uint8_t d[MM_DIGEST_LEN];
	mm_table_digest(&z->m.table, d);
	if (memcmp(d, z->m.digest, MM_DIGEST_LEN) != 0)
		die("the cached digest is not the table's");
	if (mm_master_published(&z->m) && strcmp(e->master, "M-A") != 0)
		die("an active master's entry names another master");
}

static void run_timers(struct fz *z, int64_t until)
{
	for (int guard = 0; guard < 10000; guard++) {
		int best = -1;
		for (int i = 0; i < MAXT; i++)
			if (z->timers[i].armed && z->timers[i].at <= until &&
			    (best < 0 || z->timers[i].at < z->timers[best].at))
				best = i;
		if (best < 0)
			break;
		if (z->timers[best].at > z->now)
			z->now = z->timers[best].at;
		z->timers[best].armed = false;
		mm_master_timer(&z->m, z->timers[best].key);
		check(z);
	}
	if (until > z->now)
		z->now = until;
}

static const struct mm_peer_id ids[4] = {{"S0-0", MM_PEER_SERVER},
                                         {NULL, MM_PEER_SERVER},
                                         {"M-B", MM_PEER_MASTER},
                                         {"ops", MM_PEER_ADMIN}};

static void slot_open(struct fz *z, int i)
{
	if (z->slot[i].open)
		return;
	if (i == 4) {
		if (z->dial_id == 0)
			return;
		z->slot[i].id = z->dial_id;
		z->dial_id = 0;
		z->slot[i].open = true;
		mm_frame_reader_init(&z->slot[i].r, 1u << 20);
		mm_master_conn_open(&z->m, z->slot[i].id, &ids[2], true, "M-B");
		check(z);
		return;
	}
	z->slot[i].id = ++z->next_id;
	z->slot[i].open = true;
	mm_frame_reader_init(&z->slot[i].r, 1u << 20);
	mm_master_conn_open(&z->m, z->slot[i].id, i == 1 ? NULL : &ids[i], false, NULL);
	check(z);
}

static void feed(struct fz *z, int i, const uint8_t *p, size_t n)
{
	slot_open(z, i);
	if (!z->slot[i].open)
		return;
	uint32_t id = z->slot[i].id;
	enum mm_frame_status st = mm_frame_feed(&z->slot[i].r, p, n);
	Mailmesh__Frame *f;
	while (st == MM_FRAME_NEED_MORE && z->slot[i].open &&
	       (st = mm_frame_next(&z->slot[i].r, &f)) == MM_FRAME_OK) {
		mm_master_frame(&z->m, id, f);
		mailmesh__frame__free_unpacked(f, NULL);
		check(z);
		st = MM_FRAME_NEED_MORE;
	}
	if (z->slot[i].open && (st == MM_FRAME_TOO_BIG || st == MM_FRAME_BAD)) {
		slot_drop(z, i); /* the driver closes a connection whose frame is bad */
		mm_master_conn_closed(&z->m, id);
		check(z);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz *z = mm_xcalloc(1, sizeof(*z));
	z->now = 1000;
	z->rnd = 1;
	org(&z->dir, 5);
	struct mm_master_conf conf;
	mm_master_conf_default(&conf);
	struct mm_master_env env = {.ctx = z,
	                            .now_ms = f_now,
	                            .wall_ms = f_wall,
	                            .random = f_random,
	                            .timer_arm = f_arm,
	                            .timer_cancel = f_cancel,
	                            .send = f_send,
	                            .close = f_close,
	                            .dial = f_dial,
	                            .persist_incarnation = f_persist,
	                            .table_render = f_render};
	mm_master_init(&z->m, &conf, &env, "M-A");
	if (!mm_master_start(&z->m, &z->dir, 7))
		die("start");
	check(z);
	size_t at = 0;
	if (size > 0 && data[0] < 128) {
		run_timers(z, z->now + 3000);
		at = 1;
	}
	while (at < size) {
		uint8_t op = data[at++];
		int s = (op / 8) % NSLOT;
		switch (op % 8) {
		case 0:
		case 1:
		case 2:
		case 3: {
			size_t n = at < size ? data[at++] : 0;
			if (n > size - at)
				n = size - at;
			feed(z, s, data + at, n);
			at += n;
			break;
		}
		case 4: {
			int64_t ms = at < size ? (int64_t)data[at++] * 64 : 64;
			run_timers(z, z->now + ms);
			break;
		}
		case 5:
			if (z->slot[s].open) {
				uint32_t id = z->slot[s].id;
				slot_drop(z, s);
				mm_master_conn_closed(&z->m, id);
				check(z);
			}
			break;
		case 6: {
			struct mm_directory d;
			org(&d, op & 8 ? 9 : 5);
			mm_master_directory(&z->m, &d);
			mm_directory_free(&d);
			check(z);
			break;
		}
		case 7:
			if (op & 8) {
				if (z->dial_id) {
					uint32_t id = z->dial_id;
					z->dial_id = 0;
					mm_master_conn_closed(&z->m, id);
					check(z);
				}
			} else {
				slot_open(z, 4);
			}
			break;
		}
	}
	for (int i = 0; i < NSLOT; i++)
		if (z->slot[i].open)
			slot_drop(z, i);
	mm_master_free(&z->m);
	mm_directory_free(&z->dir);
	free(z);
	return 0;
}
