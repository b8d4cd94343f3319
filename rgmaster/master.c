/* The master machine (master.h): lifetime, the directory, connections and
 * their liveness, Hello and its checks, the dispatch of frames, timers,
 * queries and the views. What a member's frames do is in master_members.c,
 * what a candidate's do and who is active in master_election.c.
 *
 * Hello checks, in order: the protocol major, a name, the role; then the
 * certificate (when the driver gives one) must name the same object of the
 * same kind (a server's certificate cannot speak as a master, nor one
 * server as another), and the object must be ours: a server of our group
 * for a node, another candidate of our group for a master, the candidate we
 * dialled on an outgoing connection. Any failure closes the connection with
 * a logged reason, and nothing it sent is learned. */
#include "master-internal.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "frame.h"
#include "logfmt.h"

void mm_master_conf_default(struct mm_master_conf *c)
{
	*c = (struct mm_master_conf){.ping_interval_ms = 1000,
	                             .dead_after = 3,
	                             .probe_interval_ms = 5000,
	                             .settle_ms = 2000,
	                             .retry_ms = 1000,
	                             .frame_limit = MM_FRAME_LIMIT_DEFAULT};
}

/* --- helpers shared by the files of the machine --------------------------- */

int64_t mm_m_now(struct mm_master *m)
{
	return m->env.now_ms(m->env.ctx);
}

int64_t mm_m_dead_ms(const struct mm_master *m)
{
	return (int64_t)m->conf.ping_interval_ms * m->conf.dead_after;
}

void mm_m_log(struct mm_master *m, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (m->env.log)
		m->env.log(m->env.ctx, line);
}

const char *mm_m_q(char out[QUOTE_LEN], const char *s)
{
	return mm_logfmt_quote(out, QUOTE_LEN, s);
}

void mm_m_send(struct mm_master *m, struct mm_master_conn *c, Mailmesh__Frame *f)
{
	f->seq = ++c->seq;
	c->last_tx = mm_m_now(m);
	m->env.send(m->env.ctx, c->id, f);
}

static int cmp_conn(const void *a, const void *b)
{
	uint32_t x = (*(struct mm_master_conn *const *)a)->id;
	uint32_t y = (*(struct mm_master_conn *const *)b)->id;
	return (x > y) - (x < y);
}

struct mm_master_conn **mm_m_conns(const struct mm_master *m, size_t *n)
{
	struct mm_master_conn **v = mm_xcalloc(m->conns.used + 1, sizeof(*v));
	*n = 0;
	for (size_t i = 0; i < m->conns.cap; i++)
		if (m->conns.slots[i].value)
			v[(*n)++] = m->conns.slots[i].value;
	if (*n > 1)
		qsort(v, *n, sizeof(*v), cmp_conn);
	return v;
}

mm_entry *mm_m_table_own(const struct mm_master *m)
{
	return m->group ? mm_table_find(&m->table, m->group) : NULL;
}

const char *mm_m_active_name(const struct mm_master *m)
{
	if (m->role == MM_MASTER_ACTIVE)
		return m->self;
	for (size_t i = 0; i < m->ncand; i++)
		if (m->cand[i].nlive && m->cand[i].state == MAILMESH__MASTER_STATE__MASTER_ACTIVE)
			return m->cand[i].name;
	return "";
}

void mm_m_table_changed(struct mm_master *m)
{
	mm_table_digest_cached(&m->table, &m->dcache, m->digest);
	if (m->env.table_changed)
		m->env.table_changed(m->env.ctx);
}

static void conn_arm(struct mm_master *m, struct mm_master_conn *c)
{
	int64_t at = c->last_rx + mm_m_dead_ms(m);
	if (c->kind != CONN_NEW || c->hello_sent) {
		int64_t ping = c->last_tx + m->conf.ping_interval_ms;
		if (ping < at)
			at = ping;
	}
	m->env.timer_arm(m->env.ctx, c->id, at);
}

void mm_m_send_hello(struct mm_master *m, struct mm_master_conn *c)
{
	const mm_entry *own = mm_m_table_own(m);
	Mailmesh__Hello h = MAILMESH__HELLO__INIT;
	h.name = m->self;
	h.group = m->group;
	h.digest.data = m->digest;
	h.digest.len = MM_DIGEST_LEN;
	h.proto_major = MM_MASTER_PROTO_MAJOR;
	h.proto_minor = MM_MASTER_PROTO_MINOR;
	h.role = MAILMESH__ROLE__ROLE_MASTER;
	h.version = own ? own->version : NULL;
	h.master_state = m->role == MM_MASTER_ACTIVE ? MAILMESH__MASTER_STATE__MASTER_ACTIVE
	                                             : MAILMESH__MASTER_STATE__MASTER_STANDBY;
	h.active_master = (char *)mm_m_active_name(m);
	h.priority = m->priority;
	h.incarnation_seen = m->highest_seen > m->incarnation ? m->highest_seen : m->incarnation;
	Mailmesh__Frame f = MAILMESH__FRAME__INIT;
	f.body_case = MAILMESH__FRAME__BODY_HELLO;
	f.hello = &h;
	bool first = !c->hello_sent;
	c->hello_sent = true;
	if (c->kind == CONN_MASTER || c->outgoing) {
		free(m->said_active);
		m->said_active = mm_xstrdup(h.active_master);
	}
	mm_m_send(m, c, &f);
	if (first)
		conn_arm(m, c);
}

/* Drop c from the machine: what it was goes (a member's server, a
 * candidate's liveness, a redial), then c itself. */
static void conn_forget(struct mm_master *m, struct mm_master_conn *c)
{
	mm_u64map_del(&m->conns, c->id);
	m->env.timer_cancel(m->env.ctx, c->id);
	if (c->kind == CONN_NODE)
		mm_m_member_gone(m, c);
	if (c->kind == CONN_MASTER || c->outgoing)
		mm_m_cand_gone(m, c);
	free(c->id_name);
	free(c->name);
	free(c);
}

void mm_m_close(struct mm_master *m, struct mm_master_conn *c, const char *why)
{
	mm_m_log(m, "conn %" PRIu32 " closed: %s", c->id, why);
	m->env.close(m->env.ctx, c->id, why);
	conn_forget(m, c);
}

static void close_fmt(struct mm_master *m, struct mm_master_conn *c, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void close_fmt(struct mm_master *m, struct mm_master_conn *c, const char *fmt, ...)
{
	char why[768];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	mm_m_close(m, c, why);
}

/* --- lifetime ----------------------------------------------------------- */

void mm_master_init(struct mm_master *m, const struct mm_master_conf *conf,
                    const struct mm_master_env *env, const char *self)
{
	*m = (struct mm_master){.env = *env, .role = MM_MASTER_STARTING};
	if (conf)
		m->conf = *conf;
	else
		mm_master_conf_default(&m->conf);
	if (m->conf.ping_interval_ms == 0)
		m->conf.ping_interval_ms = 1;
	if (m->conf.dead_after == 0)
		m->conf.dead_after = 1;
	if (m->conf.probe_interval_ms == 0)
		m->conf.probe_interval_ms = 1;
	if (m->conf.frame_limit < 1024)
		m->conf.frame_limit = 1024;
	m->self = mm_xstrdup(self);
	mm_table_init(&m->table);
	mm_table_init(&m->dir);
	mm_digest_cache_init(&m->dcache);
}

static void free_servers(struct mm_master *m)
{
	for (size_t i = 0; i < m->nservers; i++)
		free(m->servers[i].name);
	free(m->servers);
	m->servers = NULL;
	m->nservers = 0;
}

void mm_master_free(struct mm_master *m)
{
	size_t n;
	struct mm_master_conn **v = mm_m_conns(m, &n);
	for (size_t i = 0; i < n; i++) {
		free(v[i]->id_name);
		free(v[i]->name);
		free(v[i]);
	}
	free(v);
	mm_u64map_free(&m->conns);
	for (size_t i = 0; i < m->ncand; i++) {
		free(m->cand[i].name);
		free(m->cand[i].address);
		free(m->cand[i].active_name);
	}
	free(m->cand);
	free_servers(m);
	mm_entry_free(m->own);
	mm_entry_free(m->dir_entry);
	mm_table_free(&m->table);
	mm_table_free(&m->dir);
	mm_digest_cache_free(&m->dcache);
	free(m->self);
	free(m->group);
	free(m->said_active);
	*m = (struct mm_master){0};
}

/* The group whose candidates include self, and self's priority. */
static const mm_entry *find_group(const struct mm_master *m, const struct mm_directory *dir,
                                  uint32_t *priority)
{
	for (size_t g = 0; g < dir->table.n; g++) {
		const mm_entry *e = dir->table.entries[g];
		for (size_t i = 0; i < e->n_masters; i++)
			if (strcmp(e->masters[i]->name, m->self) == 0) {
				*priority = e->masters[i]->priority;
				return e;
			}
	}
	return NULL;
}

/* The servers of the directory's entry; sessions of servers that stay are
 * kept, those of servers that went are closed. */
static void servers_build(struct mm_master *m, const mm_entry *e)
{
	size_t oldn = m->nservers;
	struct mm_master_server *old = m->servers;
	m->servers = mm_xcalloc(e->n_servers + 1, sizeof(*m->servers));
	m->nservers = e->n_servers;
	for (size_t i = 0; i < e->n_servers; i++)
		m->servers[i].name = mm_xstrdup(e->servers[i]->name);
	size_t n;
	struct mm_master_conn **v = mm_m_conns(m, &n);
	for (size_t i = 0; i < n; i++) {
		struct mm_master_conn *c = v[i];
		if (c->kind != CONN_NODE || c->server == NO_INDEX)
			continue;
		size_t j = mm_m_server_index(m, old[c->server].name);
		if (j != NO_INDEX) {
			m->servers[j].session = c;
			m->servers[j].reported = old[c->server].reported;
			c->server = j;
			continue;
		}
		c->server = NO_INDEX; /* no down mark for a server that is gone */
		mm_m_close(m, c, "no longer a server of the group in the directory");
	}
	free(v);
	for (size_t i = 0; i < oldn; i++)
		free(old[i].name);
	free(old);
}

bool mm_master_start(struct mm_master *m, const struct mm_directory *dir,
                     uint64_t persisted_incarnation)
{
	uint32_t prio = 0;
	const mm_entry *mine = find_group(m, dir, &prio);
	char q[QUOTE_LEN];
	if (mine == NULL) {
		mm_m_log(m, "start: %s is no master candidate of any routing group",
		         mm_m_q(q, m->self));
		return false;
	}
	if (persisted_incarnation > MM_MASTER_INCARNATION_MAX) {
		mm_m_log(m, "start: persisted incarnation %" PRIu64 " is out of range",
		         persisted_incarnation);
		return false;
	}
	m->group = mm_xstrdup(mine->name);
	m->priority = prio;
	for (size_t g = 0; g < dir->table.n; g++) {
		mm_table_merge(&m->table, mm_entry_clone(dir->table.entries[g]));
		mm_table_merge(&m->dir, mm_entry_clone(dir->table.entries[g]));
	}
	m->dir_entry = mm_entry_clone(mine);
	servers_build(m, mine);
	m->persisted = m->highest_seen = persisted_incarnation;
	m->started = true;
	m->role = MM_MASTER_STANDBY;
	m->started_at = m->heard_at = mm_m_now(m);
	mm_m_cands_build(m, mine);
	mm_m_table_changed(m);
	m->env.timer_arm(m->env.ctx, MM_MASTER_TIMER_ELECT, m->started_at + mm_m_dead_ms(m));
	mm_m_log(m,
	         "start: candidate %s of group %s, priority %" PRIu32 ", %zu other candidates,"
	         " %zu servers, persisted incarnation %" PRIu64,
	         mm_m_q(q, m->self), mine->name, prio, m->ncand, m->nservers,
	         persisted_incarnation);
	for (size_t i = 0; i < m->ncand; i++)
		mm_m_dial(m, i);
	mm_m_evaluate(m);
	return true;
}

/* Equal but for the version: nothing to publish. */
static bool same_but_version(mm_entry *a, mm_entry *b)
{
	Mailmesh__Version *va = a->version, *vb = b->version;
	a->version = b->version = NULL;
	size_t la = mailmesh__group_entry__get_packed_size(a);
	size_t lb = mailmesh__group_entry__get_packed_size(b);
	bool same = la == lb;
	if (same) {
		uint8_t *pa = mm_xmalloc(la + 1), *pb = mm_xmalloc(lb + 1);
		mailmesh__group_entry__pack(a, pa);
		mailmesh__group_entry__pack(b, pb);
		same = memcmp(pa, pb, la) == 0;
		free(pa);
		free(pb);
	}
	a->version = va;
	b->version = vb;
	return same;
}

/* Another group's entry that is only a directory copy (incarnation 0, as
 * every directory builds them at one version) gives way to the new
 * directory's: by the merge rule equal versions would be settled by
 * digest, and the old copy kept half the time. Returns true when it was
 * replaced by different content; false when there is no such copy (or it
 * is the same), and the merge decides. A new object: the digest cache
 * knows entries by address and version. */
static bool replace_directory_copy(struct mm_master *m, const mm_entry *e)
{
	for (size_t i = 0; i < m->table.n; i++) {
		mm_entry *have = m->table.entries[i];
		if (strcmp(have->name, e->name) != 0)
			continue;
		if (have->version == NULL || have->version->incarnation != 0)
			return false;
		uint8_t a[MM_DIGEST_LEN], b[MM_DIGEST_LEN];
		mm_entry_digest(have, a);
		mm_entry_digest(e, b);
		if (memcmp(a, b, sizeof(a)) == 0)
			return false;
		m->table.entries[i] = mm_entry_clone(e);
		mm_entry_free(have);
		return true;
	}
	return false;
}

bool mm_master_directory(struct mm_master *m, const struct mm_directory *dir)
{
	if (!m->started)
		return false;
	uint32_t prio = 0;
	const mm_entry *mine = find_group(m, dir, &prio);
	char q[QUOTE_LEN];
	if (mine == NULL || strcmp(mine->name, m->group) != 0) {
		mm_m_log(m,
		         "directory: %s is no longer a candidate of group %s: the directory in use"
		         " stays (restart to move it)",
		         mm_m_q(q, m->self), m->group);
		return false;
	}
	bool changed = false;
	for (size_t g = 0; g < dir->table.n; g++) {
		const mm_entry *e = dir->table.entries[g];
		if (strcmp(e->name, m->group) == 0)
			continue;
		if (replace_directory_copy(m, e)) {
			changed = true;
			continue;
		}
		enum mm_merge r = mm_table_merge(&m->table, mm_entry_clone(e));
		changed |= r == MM_MERGE_NEWER || r == MM_MERGE_CONFLICT_WON;
	}
	mm_entry_free(m->dir_entry);
	m->dir_entry = mm_entry_clone(mine);
	mm_table_free(&m->dir);
	mm_table_init(&m->dir);
	for (size_t g = 0; g < dir->table.n; g++)
		mm_table_merge(&m->dir, mm_entry_clone(dir->table.entries[g]));
	m->priority = prio;
	servers_build(m, mine);
	mm_m_cands_build(m, mine);
	for (size_t i = 0; i < m->ncand; i++)
		if (m->cand[i].out == 0)
			mm_m_dial(m, i);
	if (changed)
		mm_m_table_changed(m);
	if (m->role == MM_MASTER_ACTIVE && m->own) {
		mm_entry *e = mm_m_rebuild(m, m->own);
		if (same_but_version(e, m->own)) {
			mm_entry_free(e);
			mm_m_log(m, "directory: group %s unchanged", m->group);
		} else {
			e->version->major++;
			mm_entry_free(m->own);
			m->own = e;
			mm_m_log(m, "directory: group %s rebuilt, live states kept: major %" PRIu64,
			         m->group, e->version->major);
			mm_m_own_changed(m);
		}
		mm_m_maybe_publish(m);
	}
	mm_m_evaluate(m);
	return true;
}

/* --- connections -------------------------------------------------------- */

void mm_master_conn_open(struct mm_master *m, uint32_t conn, const struct mm_peer_id *tls_identity,
                         bool outgoing, const char *dialled)
{
	(void)dialled; /* the machine knows whom it dialled on conn */
	struct mm_master_conn *c = mm_u64map_get(&m->conns, conn);
	int64_t now = mm_m_now(m);
	char q1[QUOTE_LEN], q2[QUOTE_LEN];
	if (outgoing) {
		if (c == NULL || !c->outgoing || c->open) {
			mm_m_log(m, "conn %" PRIu32 ": open for a connection not dialled", conn);
			return;
		}
		c->open = true;
		c->last_rx = c->last_tx = now;
		if (tls_identity) {
			c->has_id = true;
			c->id_kind = tls_identity->kind;
			c->id_name = mm_xstrdup(tls_identity->name ? tls_identity->name : "");
		}
		const char *want = m->cand[c->cand].name;
		if (tls_identity &&
		    (tls_identity->kind != MM_PEER_MASTER || strcmp(c->id_name, want) != 0)) {
			close_fmt(m, c, "certificate names %s (kind %d), dialled master %s",
			          mm_m_q(q1, c->id_name), (int)tls_identity->kind,
			          mm_m_q(q2, want));
			return;
		}
		mm_m_send_hello(m, c);
		return;
	}
	if (c != NULL || (conn & MM_MASTER_CONN_OUT) || !m->started) {
		mm_m_log(m, "conn %" PRIu32 ": refused (%s)", conn,
		         !m->started ? "not started" : "number in use or reserved");
		m->env.close(m->env.ctx, conn, "refused");
		return;
	}
	c = mm_xcalloc(1, sizeof(*c));
	c->id = conn;
	c->kind = CONN_NEW;
	c->cand = c->server = NO_INDEX;
	c->last_rx = c->last_tx = now;
	if (tls_identity) {
		c->has_id = true;
		c->id_kind = tls_identity->kind;
		c->id_name = mm_xstrdup(tls_identity->name ? tls_identity->name : "");
	}
	mm_u64map_put(&m->conns, conn, c);
	conn_arm(m, c);
}

void mm_master_conn_closed(struct mm_master *m, uint32_t conn)
{
	struct mm_master_conn *c = mm_u64map_get(&m->conns, conn);
	if (c == NULL)
		return; /* closed by us already */
	if (c->kind != CONN_NEW || c->open)
		mm_m_log(m, "conn %" PRIu32 " closed by the peer", conn);
	else if (c->outgoing && c->cand != NO_INDEX)
		mm_m_log(m, "conn %" PRIu32 ": dialling %s failed", conn, m->cand[c->cand].name);
	conn_forget(m, c);
}

static const char *kind_name(enum mm_peer_kind k)
{
	switch (k) {
	case MM_PEER_SERVER: return "server";
	case MM_PEER_MASTER: return "master";
	case MM_PEER_ADMIN: return "admin";
	}
	return "unknown";
}

/* The certificate (when there is one) names kind and name exactly. */
static bool cert_ok(struct mm_master *m, struct mm_master_conn *c, enum mm_peer_kind kind,
                    const char *name)
{
	if (!c->has_id || (c->id_kind == kind && strcmp(c->id_name, name) == 0))
		return true;
	char q1[QUOTE_LEN], q2[QUOTE_LEN];
	close_fmt(m, c, "Hello speaks as %s %s, the certificate names %s %s", kind_name(kind),
	          mm_m_q(q1, name), kind_name(c->id_kind), mm_m_q(q2, c->id_name));
	return false;
}

static void hello(struct mm_master *m, struct mm_master_conn *c, const Mailmesh__Hello *h)
{
	char q1[QUOTE_LEN], q2[QUOTE_LEN];
	if (c->kind == CONN_MASTER) {
		/* a candidate says its master state changed */
		if (h->role != MAILMESH__ROLE__ROLE_MASTER || strcmp(h->name, c->name) != 0) {
			close_fmt(m, c, "a second Hello names another peer: %s",
			          mm_m_q(q1, h->name));
			return;
		}
		mm_m_cand_hello(m, c, h, false);
		return;
	}
	if (c->kind != CONN_NEW) {
		mm_m_close(m, c, "a second Hello");
		return;
	}
	if (h->proto_major != MM_MASTER_PROTO_MAJOR) {
		close_fmt(m, c, "protocol major %" PRIu32 " is unknown (this master speaks %d.%d)",
		          h->proto_major, MM_MASTER_PROTO_MAJOR, MM_MASTER_PROTO_MINOR);
		return;
	}
	if (h->name[0] == '\0') {
		mm_m_close(m, c, "Hello without a name");
		return;
	}
	if (c->outgoing) {
		const char *want = m->cand[c->cand].name;
		if (h->role != MAILMESH__ROLE__ROLE_MASTER || strcmp(h->name, want) != 0) {
			close_fmt(m, c, "dialled master %s, Hello speaks for %s", mm_m_q(q1, want),
			          mm_m_q(q2, h->name));
			return;
		}
		c->name = mm_xstrdup(h->name);
		mm_m_cand_hello(m, c, h, true);
		return;
	}
	switch (h->role) {
	case MAILMESH__ROLE__ROLE_NODE: {
		if (!cert_ok(m, c, MM_PEER_SERVER, h->name))
			return;
		size_t s = mm_m_server_index(m, h->name);
		if (s == NO_INDEX || strcmp(h->group, m->group) != 0) {
			close_fmt(m, c,
			          "Hello from server %s of group %s: not a server of group %s",
			          mm_m_q(q1, h->name), mm_m_q(q2, h->group), m->group);
			return;
		}
		c->kind = CONN_NODE;
		c->name = mm_xstrdup(h->name);
		c->server = s;
		mm_m_member_hello(m, c, h);
		return;
	}
	case MAILMESH__ROLE__ROLE_MASTER: {
		if (!cert_ok(m, c, MM_PEER_MASTER, h->name))
			return;
		size_t i = mm_m_cand_index(m, h->name);
		if (i == NO_INDEX || strcmp(h->group, m->group) != 0) {
			close_fmt(m, c,
			          "Hello from master %s of group %s: not another candidate of"
			          " group %s",
			          mm_m_q(q1, h->name), mm_m_q(q2, h->group), m->group);
			return;
		}
		c->name = mm_xstrdup(h->name);
		c->cand = i;
		mm_m_cand_hello(m, c, h, true);
		return;
	}
	case MAILMESH__ROLE__ROLE_ADMIN:
		if (!cert_ok(m, c, MM_PEER_ADMIN, h->name))
			return;
		c->kind = CONN_ADMIN;
		c->name = mm_xstrdup(h->name);
		mm_m_log(m, "conn %" PRIu32 ": admin %s", c->id, mm_m_q(q1, h->name));
		mm_m_send_hello(m, c);
		return;
	default: close_fmt(m, c, "Hello with an unknown role %d", (int)h->role); return;
	}
}

static void reply(struct mm_master *m, struct mm_master_conn *c, int status, const char *json)
{
	Mailmesh__Reply r = MAILMESH__REPLY__INIT;
	r.status = status;
	r.json = (char *)json;
	Mailmesh__Frame f = MAILMESH__FRAME__INIT;
	f.body_case = MAILMESH__FRAME__BODY_REPLY;
	f.reply = &r;
	mm_m_send(m, c, &f);
}

/* A JSON string: quotes, backslashes and control characters escaped. */
static void json_string(struct mm_buf *b, const char *s)
{
	mm_buf_adds(b, "\"");
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			mm_buf_printf(b, "\\%c", *p);
		else if (*p < 0x20)
			mm_buf_printf(b, "\\u%04x", *p);
		else
			mm_buf_add(b, p, 1);
	}
	mm_buf_adds(b, "\"");
}

/* An error answer in the format asked for: {"server", "role", "error"},
 * or one line of text for the operator's terminal. */
static void refuse(struct mm_master *m, struct mm_master_conn *c, int status, bool json,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void refuse(struct mm_master *m, struct mm_master_conn *c, int status, bool json,
                   const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	struct mm_buf b = {0};
	if (json) {
		mm_buf_adds(&b, "{\"server\":");
		json_string(&b, m->self);
		mm_buf_adds(&b, ",\"role\":");
		json_string(&b, mm_master_role_name(m));
		mm_buf_adds(&b, ",\"error\":");
		json_string(&b, msg);
		mm_buf_adds(&b, "}\n");
	} else {
		char q[QUOTE_LEN];
		mm_buf_printf(&b, "rgmaster %s: %s\n", mm_m_q(q, m->self), msg);
	}
	mm_buf_add(&b, "", 1);
	reply(m, c, status, b.p);
	mm_buf_free(&b);
}

/* docs/protocol.md "Queries": command, then args[0] the format ("json" or
 * "text"), then the command's own arguments. A master answers table. */
static void query(struct mm_master *m, struct mm_master_conn *c, const Mailmesh__Query *qy)
{
	static const char *const node_verbs[] = {"route", "queues", "queue",
	                                         "retry", "freeze", "thaw"};
	char q[QUOTE_LEN];
	const char *fmt = qy->n_args > 0 ? qy->args[0] : "";
	bool json = strcmp(fmt, "text") != 0;
	if (strcmp(fmt, "json") != 0 && strcmp(fmt, "text") != 0) {
		refuse(m, c, 64, true,
		       "a query's first argument is its output format, json or text, not %s",
		       mm_m_q(q, fmt));
		return;
	}
	if (strcmp(qy->command, "table") != 0) {
		bool nodes = false;
		for (size_t i = 0; i < sizeof(node_verbs) / sizeof(node_verbs[0]); i++)
			nodes |= strcmp(qy->command, node_verbs[i]) == 0;
		if (nodes)
			refuse(
			    m, c, 64, json,
			    "%s is a node's command: a master answers table only (--connect to a "
			    "server's routing address)",
			    qy->command);
		else
			refuse(m, c, 64, json, "unknown command %s: a master answers table",
			       mm_m_q(q, qy->command));
		return;
	}
	if (qy->n_args != 1) {
		refuse(m, c, 64, json, "table takes no argument after its format");
		return;
	}
	char *doc = m->env.table_render ? m->env.table_render(m->env.ctx, &m->table, m->self,
	                                                      mm_master_role_name(m), json)
	                                : NULL;
	if (doc == NULL) {
		refuse(m, c, 69, json, "the table cannot be rendered here");
		return;
	}
	reply(m, c, 0, doc);
	free(doc);
}

static void pong(struct mm_master *m, struct mm_master_conn *c, const Mailmesh__Ping *p)
{
	Mailmesh__Pong r = MAILMESH__PONG__INIT;
	r.nonce = p->nonce;
	Mailmesh__Frame f = MAILMESH__FRAME__INIT;
	f.body_case = MAILMESH__FRAME__BODY_PONG;
	f.pong = &r;
	mm_m_send(m, c, &f);
}

void mm_master_frame(struct mm_master *m, uint32_t conn, const Mailmesh__Frame *f)
{
	struct mm_master_conn *c = mm_u64map_get(&m->conns, conn);
	if (c == NULL || (c->outgoing && !c->open))
		return;
	c->last_rx = mm_m_now(m);
	if (c->kind == CONN_MASTER && c->cand != NO_INDEX)
		m->cand[c->cand].last_rx = c->last_rx;
	if (f->body_case == MAILMESH__FRAME__BODY_HELLO) {
		hello(m, c, f->hello);
		return;
	}
	if (c->kind == CONN_NEW) {
		close_fmt(m, c, "a frame (body %d) before Hello", (int)f->body_case);
		return;
	}
	switch (f->body_case) {
	case MAILMESH__FRAME__BODY_PING: pong(m, c, f->ping); return;
	case MAILMESH__FRAME__BODY_QUERY: query(m, c, f->query); return;
	case MAILMESH__FRAME__BODY_PONG:
	case MAILMESH__FRAME__BODY_ACK:
	case MAILMESH__FRAME__BODY__NOT_SET: return; /* liveness only; a later minor's frame */
	default: break;
	}
	if (c->kind == CONN_ADMIN) {
		close_fmt(m, c, "an admin sends only Query (body %d)", (int)f->body_case);
		return;
	}
	switch (f->body_case) {
	case MAILMESH__FRAME__BODY_STATE_REPORT:
		if (c->kind == CONN_NODE)
			mm_m_report(m, c, f->state_report);
		else
			mm_m_log(m, "conn %" PRIu32 ": a StateReport from a master is ignored",
			         c->id);
		return;
	case MAILMESH__FRAME__BODY_TABLE_PUSH:
		/* a member never pushes: its entries come from us. Taking one
		 * would let one server's certificate add a group whose servers
		 * shadow ours in every member's router. */
		if (c->kind != CONN_MASTER) {
			close_fmt(m, c, "a TablePush from member %s: only candidates push",
			          c->name ? c->name : "?");
			return;
		}
		mm_m_table_push(m, c, f->table_push);
		return;
	case MAILMESH__FRAME__BODY_DIGEST_PROBE: mm_m_digest_probe(m, c, f->digest_probe); return;
	case MAILMESH__FRAME__BODY_ENTRY_OFFER:
		if (c->kind != CONN_NODE) {
			close_fmt(m, c, "an EntryOffer from a candidate: only members offer");
			return;
		}
		mm_m_entry_offer(m, c, f->entry_offer);
		return;
	default: return; /* a Reply nobody asked for */
	}
}

/* --- timers ------------------------------------------------------------- */

static void conn_timer(struct mm_master *m, uint32_t id)
{
	struct mm_master_conn *c = mm_u64map_get(&m->conns, id);
	if (c == NULL || (c->outgoing && !c->open))
		return;
	int64_t now = mm_m_now(m), dead = mm_m_dead_ms(m);
	if (now - c->last_rx >= dead) {
		close_fmt(m, c, "dead: nothing received for %" PRId64 " ms%s", now - c->last_rx,
		          c->kind == CONN_NEW ? " (no Hello)" : "");
		return;
	}
	if ((c->kind != CONN_NEW || c->hello_sent) &&
	    now - c->last_tx >= (int64_t)m->conf.ping_interval_ms) {
		Mailmesh__Ping p = MAILMESH__PING__INIT;
		p.nonce = m->env.random ? m->env.random(m->env.ctx) : 0;
		Mailmesh__Frame f = MAILMESH__FRAME__INIT;
		f.body_case = MAILMESH__FRAME__BODY_PING;
		f.ping = &p;
		mm_m_send(m, c, &f);
	}
	conn_arm(m, c);
}

void mm_master_timer(struct mm_master *m, uint64_t key)
{
	if (!m->started)
		return;
	if (key < (1ull << 32)) {
		conn_timer(m, (uint32_t)key);
		return;
	}
	switch (key >> 32) {
	case MM_MASTER_TIMER_ELECT >> 32: mm_m_elect_timer(m); return;
	case MM_MASTER_TIMER_GRACE >> 32: mm_m_publish(m, true); return;
	case MM_MASTER_TIMER_PROBE >> 32: mm_m_probe(m); return;
	case MM_MASTER_TIMER_ISSUE >> 32: mm_m_issue_timer(m); return;
	case MM_MASTER_TIMER_DIAL >> 32: {
		size_t i = (size_t)(key & 0xffffffffu);
		if (i < m->ncand && m->cand[i].out == 0)
			mm_m_dial(m, i);
		return;
	}
	}
}

/* --- views -------------------------------------------------------------- */

enum mm_master_role mm_master_role(const struct mm_master *m)
{
	if (m->role == MM_MASTER_STANDBY &&
	    m->env.now_ms(m->env.ctx) < m->started_at + mm_m_dead_ms(m))
		return MM_MASTER_STARTING;
	return m->role;
}

const char *mm_master_role_name(const struct mm_master *m)
{
	return m->role == MM_MASTER_ACTIVE ? "master-active" : "master-standby";
}

const struct mm_table *mm_master_table(const struct mm_master *m)
{
	return &m->table;
}

const mm_entry *mm_master_entry(const struct mm_master *m)
{
	return mm_m_table_own(m);
}

const char *mm_master_active(const struct mm_master *m)
{
	const char *a = mm_m_active_name(m);
	return a[0] ? a : NULL;
}

uint64_t mm_master_incarnation(const struct mm_master *m)
{
	return m->incarnation;
}

bool mm_master_published(const struct mm_master *m)
{
	return m->role == MM_MASTER_ACTIVE && m->published;
}

size_t mm_master_members(const struct mm_master *m)
{
	size_t n = 0;
	for (size_t i = 0; i < m->nservers; i++)
		n += m->servers[i].session != NULL;
	return n;
}

void mm_master_trust(struct mm_master *m, struct mm_trust *trust)
{
	m->trust = trust;
}
