/* The member machine (member.h): candidates and rounds, Hello, the
 * snapshot and reports, merges of pushes, anti-entropy answers, liveness;
 * and the view, base with this server's own state laid over it. */
#include "member.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "hopstate.h"
#include "logfmt.h"

struct mm_member_item {
	char *connector, *vserver;
	bool down;
};

static void mlog(struct mm_member *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void mlog(struct mm_member *m, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	m->env.log(m->env.ctx, line);
}

static int64_t now_ms(struct mm_member *m)
{
	return m->env.now_ms(m->env.ctx);
}

/* --- the two tables ------------------------------------------------------ */

static mm_entry *own_base(const struct mm_member *m)
{
	return mm_table_find(&m->base, m->group);
}

static Mailmesh__Bridgehead *own_bh(const struct mm_member *m, const mm_entry *e, const char *conn,
                                    const char *vs)
{
	for (size_t c = 0; c < e->n_connectors; c++) {
		const Mailmesh__Connector *cn = e->connectors[c];
		if (strcmp(cn->name, conn) != 0)
			continue;
		for (size_t b = 0; b < cn->n_local_bridgeheads; b++) {
			Mailmesh__Bridgehead *bh = cn->local_bridgeheads[b];
			if (strcmp(bh->server, m->self) == 0 && strcmp(bh->virtual_server, vs) == 0)
				return bh;
		}
		return NULL;
	}
	return NULL;
}

static Mailmesh__Server *own_server(const struct mm_member *m, const mm_entry *e)
{
	for (size_t s = 0; s < e->n_servers; s++)
		if (strcmp(e->servers[s]->name, m->self) == 0)
			return e->servers[s];
	return NULL;
}

/* Items whose bridgehead the group's entry no longer has go. */
static void prune(struct mm_member *m, const mm_entry *e)
{
	size_t k = 0;
	for (size_t i = 0; i < m->nitems; i++) {
		struct mm_member_item *it = &m->items[i];
		if (own_bh(m, e, it->connector, it->vserver) == NULL) {
			free(it->connector);
			free(it->vserver);
			continue;
		}
		m->items[k++] = *it;
	}
	m->nitems = k;
}

static size_t differing(const struct mm_member *m, const mm_entry *e)
{
	size_t n = 0;
	const Mailmesh__Server *s = own_server(m, e);
	if (s && s->down)
		n++;
	for (size_t i = 0; i < m->nitems; i++) {
		const Mailmesh__Bridgehead *bh =
		    own_bh(m, e, m->items[i].connector, m->items[i].vserver);
		if (bh && bh->down != m->items[i].down)
			n++;
	}
	return n;
}

/* The overlay on a copy of the group's entry: marks only, the version
 * stays the master's. */
static void overlay(const struct mm_member *m, mm_entry *e)
{
	Mailmesh__Server *s = own_server(m, e);
	if (s)
		s->down = false;
	for (size_t i = 0; i < m->nitems; i++) {
		Mailmesh__Bridgehead *bh = own_bh(m, e, m->items[i].connector, m->items[i].vserver);
		if (bh)
			bh->down = m->items[i].down;
	}
}

/* Build the view again after base or the overlay changed; true when what
 * the node routes with changed. The overlaid copy is a new object made
 * before the one it replaces is freed, so that a router's caches (which
 * know entries by address and version) never mistake the one for the
 * other; one copy at most per event. */
static bool view_refresh(struct mm_member *m, bool base_changed)
{
	mm_entry *own = own_base(m);
	if (own)
		prune(m, own);
	mm_entry *next = NULL;
	if (own && differing(m, own) > 0) {
		next = mm_entry_clone(own);
		overlay(m, next);
	}
	bool changed = base_changed;
	if (!base_changed) {
		if (next && m->view_own) {
			uint8_t a[MM_DIGEST_LEN], b[MM_DIGEST_LEN];
			mm_entry_digest(next, a);
			mm_entry_digest(m->view_own, b);
			if (memcmp(a, b, MM_DIGEST_LEN) == 0) {
				mm_entry_free(next);
				next = m->view_own;
			} else {
				changed = true;
			}
		} else {
			changed = next != m->view_own;
		}
	}
	if (next != m->view_own) {
		mm_entry *old = m->view_own;
		m->view_own = next;
		mm_entry_free(old);
	}
	mm_grow(&m->view.entries, &m->view.cap, m->base.n ? m->base.n : 1,
	        sizeof(*m->view.entries));
	m->view.n = m->base.n;
	for (size_t i = 0; i < m->base.n; i++)
		m->view.entries[i] =
		    m->base.entries[i] == own && m->view_own ? m->view_own : m->base.entries[i];
	return changed;
}

static void base_digest(struct mm_member *m, uint8_t out[MM_DIGEST_LEN])
{
	mm_table_digest_cached(&m->base, &m->dcache, out);
}

static void save(struct mm_member *m)
{
	size_t len;
	uint8_t *bytes = mm_table_encode(&m->base, &len);
	m->env.save_table(m->env.ctx, bytes, len);
	free(bytes);
}

static void note_incarnation(struct mm_member *m, uint64_t inc)
{
	if (inc > m->incarnation_seen)
		m->incarnation_seen = inc;
}

bool mm_member_init(struct mm_member *m, const struct mm_member_conf *conf,
                    const struct mm_member_env *env, const char *self, struct mm_table *table)
{
	const char *group = NULL;
	for (size_t i = 0; i < table->n && !group; i++)
		for (size_t s = 0; s < table->entries[i]->n_servers && !group; s++)
			if (strcmp(table->entries[i]->servers[s]->name, self) == 0)
				group = table->entries[i]->name;
	if (group == NULL)
		return false;
	*m = (struct mm_member){0};
	m->conf = *conf;
	if (m->conf.dead_after == 0)
		m->conf.dead_after = 1;
	if (m->conf.frame_limit == 0)
		m->conf.frame_limit = MM_FRAME_LIMIT_DEFAULT;
	m->env = *env;
	m->self = mm_xstrdup(self);
	m->group = mm_xstrdup(group);
	m->base = *table;
	mm_table_init(table);
	mm_digest_cache_init(&m->dcache);
	mm_frame_reader_init(&m->reader, m->conf.frame_limit);
	const mm_entry *own = own_base(m);
	if (own->version)
		note_incarnation(m, own->version->incarnation);
	view_refresh(m, true);
	return true;
}

static uint64_t incarnation_of(const mm_entry *e)
{
	return e->version ? e->version->incarnation : 0;
}

static bool same_entry(const mm_entry *a, const mm_entry *b)
{
	uint8_t x[MM_DIGEST_LEN], y[MM_DIGEST_LEN];
	mm_entry_digest(a, x);
	mm_entry_digest(b, y);
	return memcmp(x, y, MM_DIGEST_LEN) == 0;
}

/* The merged entries in name order, into out (pointers: t's kept ones and
 * new copies of dir's); *changed when it differs from t. */
static size_t merged(const struct mm_table *t, const struct mm_table *dir, mm_entry ***out,
                     bool *changed)
{
	size_t cap = t->n + dir->n, n = 0, i = 0, k = 0;
	mm_entry **e = mm_xcalloc(cap ? cap : 1, sizeof(*e));
	*changed = false;
	while (i < t->n || k < dir->n) {
		int c = i == t->n     ? 1
		        : k == dir->n ? -1
		                      : strcmp(t->entries[i]->name, dir->entries[k]->name);
		if (c < 0) { /* the directory has this group no more */
			if (incarnation_of(t->entries[i]) > 0)
				e[n++] = t->entries[i];
			else
				*changed = true;
			i++;
		} else if (c > 0) { /* a group new in the directory */
			e[n++] = mm_entry_clone(dir->entries[k++]);
			*changed = true;
		} else {
			const mm_entry *old = t->entries[i++], *d = dir->entries[k++];
			if (incarnation_of(old) > 0 || same_entry(old, d)) {
				e[n++] = (mm_entry *)old;
			} else {
				e[n++] = mm_entry_clone(d);
				*changed = true;
			}
		}
	}
	*out = e;
	return n;
}

/* Replace t's entries by the merged ones; those not kept are returned in
 * *dead (to free once no cache can mistake a new entry for one of them). */
static size_t take_merged(struct mm_table *t, mm_entry **e, size_t n, mm_entry ***dead)
{
	size_t nd = 0;
	*dead = mm_xcalloc(t->n ? t->n : 1, sizeof(**dead));
	for (size_t i = 0; i < t->n; i++) {
		bool kept = false;
		for (size_t k = 0; k < n && !kept; k++)
			kept = e[k] == t->entries[i];
		if (!kept)
			(*dead)[nd++] = t->entries[i];
	}
	free(t->entries);
	t->entries = e;
	t->n = t->cap = n;
	return nd;
}

static void free_dead(mm_entry **dead, size_t n)
{
	for (size_t i = 0; i < n; i++)
		mm_entry_free(dead[i]);
	free(dead);
}

bool mm_member_merge_directory(struct mm_table *t, const struct mm_table *dir)
{
	mm_entry **e;
	bool changed;
	size_t n = merged(t, dir, &e, &changed);
	if (!changed) {
		free(e);
		return false;
	}
	mm_entry **dead;
	size_t ndead = take_merged(t, e, n, &dead);
	free_dead(dead, ndead);
	return true;
}

unsigned mm_member_directory(struct mm_member *m, const struct mm_table *dir)
{
	mm_member_directory_cands(m, dir);
	mm_entry **e;
	bool changed;
	size_t n = merged(&m->base, dir, &e, &changed);
	if (!changed) {
		free(e);
		return 0;
	}
	/* the node's own group must still hold this server */
	const mm_entry *own = NULL;
	for (size_t i = 0; i < n && !own; i++)
		if (strcmp(e[i]->name, m->group) == 0)
			own = e[i];
	bool self = false;
	for (size_t s = 0; own && s < own->n_servers && !self; s++)
		self = strcmp(own->servers[s]->name, m->self) == 0;
	if (!self) {
		for (size_t i = 0; i < n; i++) {
			bool old = false;
			for (size_t k = 0; k < m->base.n && !old; k++)
				old = m->base.entries[k] == e[i];
			if (!old)
				mm_entry_free(e[i]);
		}
		free(e);
		mlog(m,
		     "member: the directory has no server %s in group %s (or the group's "
		     "entry a master issued has not); the table is kept (a move needs a "
		     "restart)",
		     m->self, m->group);
		return 0;
	}
	mm_entry **dead;
	size_t ndead = take_merged(&m->base, e, n, &dead);
	if (own->version)
		note_incarnation(m, own->version->incarnation);
	mlog(m, "member: the directory's entries applied under the masters' (%zu groups)",
	     m->base.n);
	save(m);
	unsigned r = view_refresh(m, true) ? MM_MEMBER_TABLE_CHANGED : 0;
	/* Entries built from a directory all carry one version, so a digest
	 * cache would take a new one at a freed one's address for it: the
	 * replaced entries go only after the cache has seen the new ones (the
	 * driver updates its router before anything else is allocated). */
	uint8_t d[MM_DIGEST_LEN];
	base_digest(m, d);
	free_dead(dead, ndead);
	return r;
}

static void dcands_free(struct mm_member *m);

static void cands_free(struct mm_member *m)
{
	for (size_t i = 0; i < m->ncands; i++) {
		free(m->cands[i].name);
		free(m->cands[i].address);
	}
	free(m->cands);
	m->cands = NULL;
	m->ncands = m->next_cand = 0;
}

void mm_member_free(struct mm_member *m)
{
	m->env.timer_cancel(m->env.ctx, MM_MEMBER_TIMER_DIAL);
	m->env.timer_cancel(m->env.ctx, MM_MEMBER_TIMER_PING);
	m->env.timer_cancel(m->env.ctx, MM_MEMBER_TIMER_DEAD);
	cands_free(m);
	dcands_free(m);
	for (size_t i = 0; i < m->nitems; i++) {
		free(m->items[i].connector);
		free(m->items[i].vserver);
	}
	free(m->items);
	free(m->peer);
	mm_frame_reader_free(&m->reader);
	mm_entry_free(m->view_own);
	free(m->view.entries);
	mm_table_free(&m->base);
	mm_digest_cache_free(&m->dcache);
	free(m->self);
	free(m->group);
	*m = (struct mm_member){0};
}

const struct mm_table *mm_member_table(const struct mm_member *m)
{
	return &m->view;
}

const struct mm_table *mm_member_base(const struct mm_member *m)
{
	return &m->base;
}

const char *mm_member_master(const struct mm_member *m)
{
	return m->state == MM_MEMBER_ESTABLISHED ? m->peer : NULL;
}

size_t mm_member_unconfirmed(const struct mm_member *m)
{
	const mm_entry *own = own_base(m);
	return own ? differing(m, own) : 0;
}

/* --- frames out ---------------------------------------------------------- */

static void send_frame(struct mm_member *m, Mailmesh__Frame *f)
{
	f->seq = ++m->seq;
	size_t len;
	uint8_t *bytes = mm_frame_encode(f, &len);
	m->env.send(m->env.ctx, m->conn, bytes, len);
	free(bytes);
	m->last_tx = now_ms(m);
}

static void send_hello(struct mm_member *m)
{
	Mailmesh__Hello h = MAILMESH__HELLO__INIT;
	Mailmesh__Version v = MAILMESH__VERSION__INIT;
	uint8_t d[MM_DIGEST_LEN];
	const mm_entry *own = own_base(m);
	if (own->version) {
		v.incarnation = own->version->incarnation;
		v.major = own->version->major;
		v.minor = own->version->minor;
		v.user = own->version->user;
		h.version = &v;
	}
	base_digest(m, d);
	h.name = m->self;
	h.group = m->group;
	h.digest = (ProtobufCBinaryData){MM_DIGEST_LEN, d};
	h.proto_major = 1;
	h.proto_minor = 0;
	h.role = MAILMESH__ROLE__ROLE_NODE;
	h.incarnation_seen = m->incarnation_seen;
	Mailmesh__Frame f = MAILMESH__FRAME__INIT;
	f.body_case = MAILMESH__FRAME__BODY_HELLO;
	f.hello = &h;
	send_frame(m, &f);
}

/* A StateReport of the items given (and the server's own state first when
 * server is set). */
static void send_report(struct mm_member *m, bool snapshot, const bool *server_down,
                        const struct mm_member_item *it, size_t n)
{
	Mailmesh__ObjectState *os = mm_xcalloc(n + 1, sizeof(*os));
	Mailmesh__ObjectState **ptr = mm_xcalloc(n + 1, sizeof(*ptr));
	size_t k = 0;
	if (server_down) {
		mailmesh__object_state__init(&os[k]);
		os[k].kind = MAILMESH__OBJECT_STATE__KIND__SERVER;
		os[k].name = m->self;
		os[k].down = *server_down;
		ptr[k] = &os[k];
		k++;
	}
	for (size_t i = 0; i < n; i++) {
		mailmesh__object_state__init(&os[k]);
		os[k].kind = MAILMESH__OBJECT_STATE__KIND__BRIDGEHEAD;
		os[k].name = it[i].connector;
		os[k].server = m->self;
		os[k].virtual_server = it[i].vserver;
		os[k].down = it[i].down;
		ptr[k] = &os[k];
		k++;
	}
	Mailmesh__StateReport r = MAILMESH__STATE_REPORT__INIT;
	r.reporter = m->self;
	r.snapshot = snapshot;
	r.n_changes = k;
	r.changes = ptr;
	Mailmesh__Frame f = MAILMESH__FRAME__INIT;
	f.body_case = MAILMESH__FRAME__BODY_STATE_REPORT;
	f.state_report = &r;
	send_frame(m, &f);
	free(ptr);
	free(os);
}

/* Everything this server knows of itself: its server up, and every
 * bridgehead that is down (a snapshot says the others are up). */
static void send_snapshot(struct mm_member *m)
{
	struct mm_member_item *down = mm_xcalloc(m->nitems ? m->nitems : 1, sizeof(*down));
	size_t n = 0;
	for (size_t i = 0; i < m->nitems; i++)
		if (m->items[i].down)
			down[n++] = m->items[i];
	bool up = false;
	send_report(m, true, &up, down, n);
	free(down);
}

/* The answer to a probe whose digest is not ours: our summary, with the
 * content digest of every entry, so that the master finds what we lack,
 * hold older, or hold at its version with other content. */
static void send_summary(struct mm_member *m)
{
	uint8_t d[MM_DIGEST_LEN];
	base_digest(m, d);
	struct mm_summary sum;
	mm_table_summary(&m->base, &sum);
	Mailmesh__DigestProbe p = MAILMESH__DIGEST_PROBE__INIT;
	p.digest = (ProtobufCBinaryData){MM_DIGEST_LEN, d};
	p.n_entries = sum.n;
	p.entries = sum.p;
	Mailmesh__Frame f = MAILMESH__FRAME__INIT;
	f.body_case = MAILMESH__FRAME__BODY_DIGEST_PROBE;
	f.digest_probe = &p;
	send_frame(m, &f);
	mm_summary_free(&sum);
}

/* --- rounds over the candidates ------------------------------------------ */

static int cmp_cand(const void *a, const void *b)
{
	const Mailmesh__MasterCandidate *x = *(Mailmesh__MasterCandidate *const *)a;
	const Mailmesh__MasterCandidate *y = *(Mailmesh__MasterCandidate *const *)b;
	if (x->priority != y->priority)
		return x->priority > y->priority ? -1 : 1;
	return strcmp(x->name, y->name);
}

static void dcands_free(struct mm_member *m)
{
	for (size_t i = 0; i < m->ndcands; i++) {
		free(m->dcands[i].name);
		free(m->dcands[i].address);
	}
	free(m->dcands);
	m->dcands = NULL;
	m->ndcands = 0;
}

void mm_member_directory_cands(struct mm_member *m, const struct mm_table *dir)
{
	m->dir = dir; /* which masters are candidates of which group */
	dcands_free(m);
	const mm_entry *e = mm_table_find(dir, m->group);
	if (e == NULL || e->n_masters == 0)
		return;
	m->dcands = mm_xcalloc(e->n_masters, sizeof(*m->dcands));
	for (size_t i = 0; i < e->n_masters; i++)
		m->dcands[i] = (struct mm_member_dcand){mm_xstrdup(e->masters[i]->name),
		                                        mm_xstrdup(e->masters[i]->routing_address),
		                                        e->masters[i]->priority};
	m->ndcands = e->n_masters;
}

/* The group's candidates, as the table has them now and the directory
 * names them (its address and priority win): priority, then name. */
static void load_cands(struct mm_member *m)
{
	cands_free(m);
	const mm_entry *own = own_base(m);
	size_t n = 0, cap = own->n_masters + m->ndcands;
	if (cap == 0)
		return;
	Mailmesh__MasterCandidate *all = mm_xcalloc(cap, sizeof(*all));
	for (size_t i = 0; i < own->n_masters; i++)
		all[n++] = *own->masters[i];
	for (size_t d = 0; d < m->ndcands; d++) {
		size_t i = 0;
		while (i < n && strcmp(all[i].name, m->dcands[d].name) != 0)
			i++;
		if (i == n)
			all[n++] = (Mailmesh__MasterCandidate)MAILMESH__MASTER_CANDIDATE__INIT;
		all[i].name = m->dcands[d].name;
		all[i].routing_address = m->dcands[d].address;
		all[i].priority = m->dcands[d].priority;
	}
	Mailmesh__MasterCandidate **c = mm_xcalloc(n, sizeof(*c));
	for (size_t i = 0; i < n; i++)
		c[i] = &all[i];
	qsort(c, n, sizeof(*c), cmp_cand);
	m->cands = mm_xcalloc(n, sizeof(*m->cands));
	for (size_t i = 0; i < n; i++)
		m->cands[i] = (struct mm_member_cand){mm_xstrdup(c[i]->name),
		                                      mm_xstrdup(c[i]->routing_address)};
	m->ncands = n;
	free(c);
	free(all);
}

static const struct mm_member_cand *cand(const struct mm_member *m, const char *name)
{
	for (size_t i = 0; i < m->ncands; i++)
		if (strcmp(m->cands[i].name, name) == 0)
			return &m->cands[i];
	return NULL;
}

static int64_t dead_ms(const struct mm_member *m)
{
	return (int64_t)m->conf.ping_interval_ms * m->conf.dead_after;
}

static void dial(struct mm_member *m, const struct mm_member_cand *c)
{
	m->conn = ++m->next_conn;
	free(m->peer);
	m->peer = mm_xstrdup(c->name);
	mm_frame_reader_free(&m->reader);
	mm_frame_reader_init(&m->reader, m->conf.frame_limit);
	m->seq = 0;
	m->state = MM_MEMBER_DIALING;
	int64_t now = now_ms(m);
	m->last_rx = m->last_tx = now;
	/* the dial, TLS and the peer's Hello within one dead interval */
	m->env.timer_arm(m->env.ctx, MM_MEMBER_TIMER_DEAD, now + dead_ms(m));
	m->env.dial(m->env.ctx, m->conn, c->address, c->name);
}

/* The next candidate of the round, or the wait before the next round. */
static void next_candidate(struct mm_member *m)
{
	if (m->state == MM_MEMBER_STOPPED)
		return;
	m->env.timer_cancel(m->env.ctx, MM_MEMBER_TIMER_DEAD);
	m->env.timer_cancel(m->env.ctx, MM_MEMBER_TIMER_PING);
	if (m->next_cand < m->ncands) {
		dial(m, &m->cands[m->next_cand++]);
		return;
	}
	m->round++;
	uint32_t wait =
	    mm_backoff_ms(m->conf.retry_min_ms, m->conf.retry_max_ms, m->conf.retry_jitter_pct,
	                  m->round, m->env.random(m->env.ctx));
	mlog(m, "member: no active master of %s reached (%zu candidates), next round in %u ms",
	     m->group, m->ncands, wait);
	m->state = MM_MEMBER_WAIT;
	m->conn = 0;
	m->env.timer_arm(m->env.ctx, MM_MEMBER_TIMER_DIAL, now_ms(m) + wait);
}

static void new_round(struct mm_member *m)
{
	load_cands(m);
	m->redirects = 0;
	next_candidate(m);
}

/* The connection ends here (closed by us): move on. */
static unsigned drop(struct mm_member *m, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static unsigned drop(struct mm_member *m, const char *fmt, ...)
{
	char why[600], q[300];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	bool was = m->state == MM_MEMBER_ESTABLISHED;
	mlog(m, "member: closing connection %u to %s: %s", m->conn,
	     mm_logfmt_quote(q, sizeof(q), m->peer), why);
	m->env.close(m->env.ctx, m->conn);
	m->conn = 0;
	if (was) {
		m->round = 0;
		new_round(m);
		return MM_MEMBER_MASTER_CHANGED;
	}
	next_candidate(m);
	return 0;
}

unsigned mm_member_start(struct mm_member *m)
{
	if (m->state != MM_MEMBER_IDLE)
		return 0;
	m->round = 0;
	new_round(m);
	return 0;
}

unsigned mm_member_stop(struct mm_member *m)
{
	unsigned r = 0;
	if (m->state == MM_MEMBER_ESTABLISHED) {
		bool down = true;
		send_report(m, false, &down, NULL, 0);
		mlog(m, "member: stopping, %s reported down to %s", m->self, m->peer);
		r = MM_MEMBER_MASTER_CHANGED;
	} else {
		mlog(m, "member: stopping with no master connected");
	}
	if (m->conn && m->state != MM_MEMBER_WAIT)
		m->env.close(m->env.ctx, m->conn);
	m->conn = 0;
	m->state = MM_MEMBER_STOPPED;
	m->env.timer_cancel(m->env.ctx, MM_MEMBER_TIMER_DIAL);
	m->env.timer_cancel(m->env.ctx, MM_MEMBER_TIMER_PING);
	m->env.timer_cancel(m->env.ctx, MM_MEMBER_TIMER_DEAD);
	return r;
}

/* --- connection events --------------------------------------------------- */

unsigned mm_member_conn_open(struct mm_member *m, uint32_t conn, const struct mm_member_peer *peer)
{
	if (conn == 0 || conn != m->conn || m->state != MM_MEMBER_DIALING)
		return 0;
	char q1[200], q2[200];
	if (peer == NULL && !m->conf.insecure)
		return drop(m, "no certificate, and not insecure");
	if (peer != NULL && (peer->kind == NULL || peer->name == NULL ||
	                     strcmp(peer->kind, "master") != 0 || strcmp(peer->name, m->peer) != 0))
		return drop(m, "its certificate names %s %s, not master %s",
		            mm_logfmt_quote(q1, sizeof(q1), peer->kind),
		            mm_logfmt_quote(q2, sizeof(q2), peer->name), m->peer);
	m->state = MM_MEMBER_HELLO;
	send_hello(m);
	return 0;
}

unsigned mm_member_conn_closed(struct mm_member *m, uint32_t conn, const char *why)
{
	if (conn == 0 || conn != m->conn ||
	    (m->state != MM_MEMBER_DIALING && m->state != MM_MEMBER_HELLO &&
	     m->state != MM_MEMBER_ESTABLISHED))
		return 0;
	char q[300], qw[300];
	bool was = m->state == MM_MEMBER_ESTABLISHED;
	mlog(m, "member: connection %u to %s %s: %s", conn, mm_logfmt_quote(q, sizeof(q), m->peer),
	     m->state == MM_MEMBER_DIALING ? "failed" : "closed",
	     mm_logfmt_quote(qw, sizeof(qw), why ? why : "closed by the peer"));
	m->conn = 0;
	if (was) {
		m->round = 0;
		new_round(m);
		return MM_MEMBER_MASTER_CHANGED;
	}
	next_candidate(m);
	return 0;
}

/* The peer's Hello: the active master, or a standby's redirect. */
static unsigned on_hello(struct mm_member *m, const Mailmesh__Hello *h)
{
	char q1[200], q2[200];
	if (h->proto_major != 1)
		return drop(m, "unknown protocol major version %u (this node speaks 1)",
		            h->proto_major);
	if (h->role != MAILMESH__ROLE__ROLE_MASTER)
		return drop(m, "the peer's Hello is not a master's (role %d)", (int)h->role);
	if (strcmp(h->name, m->peer) != 0 || strcmp(h->group, m->group) != 0)
		return drop(m, "the peer says it is %s of %s, not %s of %s",
		            mm_logfmt_quote(q1, sizeof(q1), h->name),
		            mm_logfmt_quote(q2, sizeof(q2), h->group), m->peer, m->group);
	if (h->version)
		note_incarnation(m, h->version->incarnation);
	note_incarnation(m, h->incarnation_seen);
	if (h->master_state == MAILMESH__MASTER_STATE__MASTER_ACTIVE) {
		m->state = MM_MEMBER_ESTABLISHED;
		m->round = 0;
		mlog(m, "member: %s is the active master of %s (connection %u)", m->peer, m->group,
		     m->conn);
		send_snapshot(m);
		m->env.timer_arm(m->env.ctx, MM_MEMBER_TIMER_PING,
		                 m->last_tx + m->conf.ping_interval_ms);
		return MM_MEMBER_MASTER_CHANGED;
	}
	if (h->master_state != MAILMESH__MASTER_STATE__MASTER_STANDBY)
		return drop(m, "the peer is not a master candidate (master state %d)",
		            (int)h->master_state);
	/* a standby: it names the active master it knows, and closes */
	const struct mm_member_cand *to = h->active_master[0] ? cand(m, h->active_master) : NULL;
	char q[300];
	mlog(m, "member: %s is a standby; active master %s", m->peer,
	     mm_logfmt_quote(q, sizeof(q), h->active_master));
	m->env.close(m->env.ctx, m->conn);
	m->conn = 0;
	if (to && strcmp(to->name, m->peer) != 0 && m->redirects < m->ncands) {
		m->redirects++;
		m->env.timer_cancel(m->env.ctx, MM_MEMBER_TIMER_DEAD);
		dial(m, to);
	} else {
		if (h->active_master[0] && to == NULL)
			mlog(m, "member: %s is not a master candidate of %s",
			     mm_logfmt_quote(q, sizeof(q), h->active_master), m->group);
		next_candidate(m);
	}
	return 0;
}

static bool entry_valid(const mm_entry *e)
{
	return e != NULL && e->name[0] != '\0';
}

void mm_member_trust(struct mm_member *m, struct mm_trust *trust, const struct mm_table *dir)
{
	m->trust = trust;
	m->dir = dir;
}

/* DESIGN §5.2, in its order: a baseline never travels; a group the
 * directory lacks is dropped; the node's own group comes from its master
 * alone; then the version (newer, or equal with other content: the
 * conflict rule may take it), cheap, first; then the signature. */
static enum mm_take judge(struct mm_member *m, const mm_entry *e, bool from_master, char *why,
                          size_t whylen)
{
	char q[300];
	if (incarnation_of(e) == 0)
		return MM_TAKE_DROPPED;
	if (m->dir && mm_table_find(m->dir, e->name) == NULL)
		return MM_TAKE_DROPPED;
	if (!from_master && strcmp(e->name, m->group) == 0)
		return MM_TAKE_DROPPED;
	const mm_entry *have = mm_table_find(&m->base, e->name);
	if (have) {
		int c = mm_version_cmp(e->version, have->version);
		if (c < 0 || (c == 0 && same_entry(e, have)))
			return MM_TAKE_DROPPED;
	}
	if (m->trust == NULL)
		return MM_TAKE_TAKEN;
	char signer[MM_CERT_NAME_MAX + 1];
	enum mm_entry_check k =
	    mm_entry_check(m->trust, e, m->dir ? mm_table_find(m->dir, e->name) : NULL, signer);
	if (k == MM_ENTRY_OK)
		return MM_TAKE_TAKEN;
	snprintf(why, whylen, "entry of group %s at version (%llu, %llu, %llu, %llu): %s%s%s",
	         mm_logfmt_quote(q, sizeof(q), e->name), (unsigned long long)incarnation_of(e),
	         (unsigned long long)(e->version ? e->version->major : 0),
	         (unsigned long long)(e->version ? e->version->minor : 0),
	         (unsigned long long)(e->version ? e->version->user : 0), mm_entry_check_name(k),
	         signer[0] ? ", signed by " : "", signer);
	return k == MM_ENTRY_REVOKED || k == MM_ENTRY_NOT_CANDIDATE ? MM_TAKE_DISOWNED
	                                                            : MM_TAKE_REFUSED;
}

/* Merge one judged entry (taken over); true when base changed. */
static bool merge_one(struct mm_member *m, mm_entry *e)
{
	char name[256], q[300];
	snprintf(name, sizeof(name), "%s", e->name);
	Mailmesh__Version v = MAILMESH__VERSION__INIT;
	if (e->version)
		v = *e->version;
	if (strcmp(name, m->group) == 0)
		note_incarnation(m, v.incarnation);
	enum mm_merge r = mm_table_merge(&m->base, e);
	if (r == MM_MERGE_CONFLICT_WON || r == MM_MERGE_CONFLICT_LOST) {
		uint8_t d[MM_DIGEST_LEN];
		char hex[2 * MM_DIGEST_LEN + 1];
		mm_entry_digest(mm_table_find(&m->base, name), d);
		mm_digest_hex(d, hex);
		mlog(m,
		     "member: conflict on %s at version (%llu, %llu, %llu, %llu): kept %s, "
		     "digest %s (the greater wins)",
		     mm_logfmt_quote(q, sizeof(q), name), (unsigned long long)v.incarnation,
		     (unsigned long long)v.major, (unsigned long long)v.minor,
		     (unsigned long long)v.user,
		     r == MM_MERGE_CONFLICT_WON ? "the one received" : "ours", hex);
	}
	return r == MM_MERGE_NEWER || r == MM_MERGE_CONFLICT_WON;
}

/* An EntryOffer of base's entries of these groups (those a master issued)
 * to the master, when one is connected. */
static void offer(struct mm_member *m, char *const *groups, size_t n)
{
	if (m->state != MM_MEMBER_ESTABLISHED || n == 0)
		return;
	Mailmesh__GroupEntry **es = mm_xcalloc(n, sizeof(*es));
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		mm_entry *e = mm_table_find(&m->base, groups[i]);
		if (e && incarnation_of(e) > 0)
			es[k++] = e;
	}
	if (k > 0) {
		Mailmesh__EntryOffer o = MAILMESH__ENTRY_OFFER__INIT;
		o.n_entries = k;
		o.entries = es;
		Mailmesh__Frame f = MAILMESH__FRAME__INIT;
		f.body_case = MAILMESH__FRAME__BODY_ENTRY_OFFER;
		f.entry_offer = &o;
		send_frame(m, &f);
	}
	free(es);
}

unsigned mm_member_take(struct mm_member *m, mm_entry **e, size_t n, const char *peer,
                        enum mm_take *res, char *why, size_t whylen)
{
	char q[300], w[600];
	bool changed = false;
	char **taken = mm_xcalloc(n + 1, sizeof(*taken));
	size_t nt = 0;
	if (whylen)
		why[0] = '\0';
	bool refused = false;
	for (size_t i = 0; i < n; i++) {
		/* after a refusal the session ends: what follows is not judged
		 * (each judgement may cost a chain's verification) */
		res[i] = refused || !entry_valid(e[i]) ? MM_TAKE_DROPPED
		                                       : judge(m, e[i], false, w, sizeof(w));
		refused |= res[i] == MM_TAKE_REFUSED;
		if (res[i] == MM_TAKE_REFUSED || res[i] == MM_TAKE_DISOWNED)
			mlog(m, "member: from %s: %s: dropped", mm_logfmt_quote(q, sizeof(q), peer),
			     w);
		if (res[i] == MM_TAKE_REFUSED && whylen && why[0] == '\0')
			snprintf(why, whylen, "%s", w);
		if (res[i] != MM_TAKE_TAKEN) {
			mm_entry_free(e[i]);
			continue;
		}
		taken[nt++] = mm_xstrdup(e[i]->name);
		changed |= merge_one(m, e[i]);
	}
	offer(m, taken, nt);
	for (size_t i = 0; i < nt; i++)
		free(taken[i]);
	free(taken);
	if (!changed)
		return 0;
	save(m);
	return view_refresh(m, true) ? MM_MEMBER_TABLE_CHANGED : 0;
}

static void on_request(struct mm_member *m, const Mailmesh__EntryRequest *r)
{
	offer(m, r->groups, r->n_groups);
}

static unsigned on_push(struct mm_member *m, Mailmesh__TablePush *p)
{
	for (size_t i = 0; i < p->n_entries; i++)
		if (!entry_valid(p->entries[i]))
			return drop(m, "a pushed entry has no group name");
	bool changed = false;
	char why[600], q[300];
	for (size_t i = 0; i < p->n_entries; i++) {
		mm_entry *e = p->entries[i];
		p->entries[i] = NULL; /* taken over */
		enum mm_take t = judge(m, e, true, why, sizeof(why));
		if (t == MM_TAKE_REFUSED || t == MM_TAKE_DISOWNED)
			mlog(m, "member: from master %s: %s: dropped",
			     mm_logfmt_quote(q, sizeof(q), m->peer ? m->peer : "?"), why);
		if (t != MM_TAKE_TAKEN) {
			mm_entry_free(e);
			continue;
		}
		changed |= merge_one(m, e);
	}
	p->n_entries = 0; /* every entry was taken */
	if (!changed)
		return 0;
	save(m);
	return view_refresh(m, true) ? MM_MEMBER_TABLE_CHANGED : 0;
}

static void on_probe(struct mm_member *m, const Mailmesh__DigestProbe *p)
{
	uint8_t d[MM_DIGEST_LEN];
	base_digest(m, d);
	if (p->digest.len == MM_DIGEST_LEN && memcmp(p->digest.data, d, MM_DIGEST_LEN) == 0)
		return;
	send_summary(m);
}

/* One frame; returns the result bits, and *gone when the connection is. */
static unsigned on_frame(struct mm_member *m, Mailmesh__Frame *f, bool *gone)
{
	uint32_t conn = m->conn;
	unsigned r = 0;
	if (m->state == MM_MEMBER_HELLO) {
		if (f->body_case != MAILMESH__FRAME__BODY_HELLO)
			r = drop(m, "frame %d before the peer's Hello", (int)f->body_case);
		else
			r = on_hello(m, f->hello);
		*gone = m->conn != conn || m->state != MM_MEMBER_ESTABLISHED;
		return r;
	}
	switch (f->body_case) {
	case MAILMESH__FRAME__BODY_TABLE_PUSH: r = on_push(m, f->table_push); break;
	case MAILMESH__FRAME__BODY_DIGEST_PROBE: on_probe(m, f->digest_probe); break;
	case MAILMESH__FRAME__BODY_ENTRY_REQUEST: on_request(m, f->entry_request); break;
	case MAILMESH__FRAME__BODY_PING: {
		Mailmesh__Pong pong = MAILMESH__PONG__INIT;
		pong.nonce = f->ping->nonce;
		Mailmesh__Frame out = MAILMESH__FRAME__INIT;
		out.body_case = MAILMESH__FRAME__BODY_PONG;
		out.pong = &pong;
		send_frame(m, &out);
		break;
	}
	case MAILMESH__FRAME__BODY_HELLO: r = drop(m, "a second Hello from the master"); break;
	case MAILMESH__FRAME__BODY_STATE_REPORT:
	case MAILMESH__FRAME__BODY_QUERY:
		r = drop(m, "frame %d is not a master's to send", (int)f->body_case);
		break;
	default: break; /* Pong, Ack, Reply, or a body of a later minor version */
	}
	*gone = m->conn != conn;
	return r;
}

unsigned mm_member_conn_data(struct mm_member *m, uint32_t conn, const uint8_t *data, size_t n)
{
	if (conn == 0 || conn != m->conn ||
	    (m->state != MM_MEMBER_HELLO && m->state != MM_MEMBER_ESTABLISHED)) {
		/* a connection we closed, or not yet opened: nothing it says
		 * counts */
		if (n > 0)
			mlog(m,
			     "member: %zu bytes on connection %u refused: not the active master's",
			     n, conn);
		return 0;
	}
	m->last_rx = now_ms(m);
	enum mm_frame_status st = mm_frame_feed(&m->reader, data, n);
	unsigned r = 0;
	while (st != MM_FRAME_TOO_BIG) {
		Mailmesh__Frame *f = NULL;
		st = mm_frame_next(&m->reader, &f);
		if (st != MM_FRAME_OK)
			break;
		bool gone = false;
		r |= on_frame(m, f, &gone);
		mailmesh__frame__free_unpacked(f, NULL);
		if (gone)
			return r;
	}
	if (st == MM_FRAME_TOO_BIG)
		return r | drop(m, "a frame over the limit of %u bytes", m->conf.frame_limit);
	if (st == MM_FRAME_BAD)
		return r | drop(m, "a frame that does not decode");
	return r;
}

unsigned mm_member_timer(struct mm_member *m, uint64_t key)
{
	int64_t now = now_ms(m);
	switch (key) {
	case MM_MEMBER_TIMER_DIAL:
		if (m->state == MM_MEMBER_WAIT)
			new_round(m);
		return 0;
	case MM_MEMBER_TIMER_PING:
		if (m->state != MM_MEMBER_ESTABLISHED)
			return 0;
		if (now >= m->last_tx + m->conf.ping_interval_ms) {
			Mailmesh__Ping ping = MAILMESH__PING__INIT;
			ping.nonce = m->seq + 1;
			Mailmesh__Frame f = MAILMESH__FRAME__INIT;
			f.body_case = MAILMESH__FRAME__BODY_PING;
			f.ping = &ping;
			send_frame(m, &f);
		}
		m->env.timer_arm(m->env.ctx, MM_MEMBER_TIMER_PING,
		                 m->last_tx + m->conf.ping_interval_ms);
		return 0;
	case MM_MEMBER_TIMER_DEAD:
		if (m->state != MM_MEMBER_DIALING && m->state != MM_MEMBER_HELLO &&
		    m->state != MM_MEMBER_ESTABLISHED)
			return 0;
		if (now < m->last_rx + dead_ms(m)) {
			m->env.timer_arm(m->env.ctx, MM_MEMBER_TIMER_DEAD, m->last_rx + dead_ms(m));
			return 0;
		}
		return drop(m, "nothing received for %lld ms (%u intervals)",
		            (long long)(now - m->last_rx), m->conf.dead_after);
	default: return 0;
	}
}

/* --- this server's own state --------------------------------------------- */

unsigned mm_member_report(struct mm_member *m, const struct mm_bh_report *r, size_t n)
{
	if (n == 0)
		return 0;
	const mm_entry *own = own_base(m);
	struct mm_member_item *send = mm_xcalloc(n, sizeof(*send));
	size_t nsend = 0;
	for (size_t i = 0; i < n; i++) {
		const Mailmesh__Bridgehead *bh = own_bh(m, own, r[i].connector, r[i].vserver);
		if (bh == NULL)
			continue; /* not a bridgehead of this server in the table */
		struct mm_member_item *it = NULL;
		for (size_t k = 0; k < m->nitems && !it; k++)
			if (strcmp(m->items[k].connector, r[i].connector) == 0 &&
			    strcmp(m->items[k].vserver, r[i].vserver) == 0)
				it = &m->items[k];
		/* what is known: the item, or for a new one the table's mark */
		bool known = it ? it->down : bh->down;
		if (it == NULL) {
			mm_grow(&m->items, &m->capitems, m->nitems + 1, sizeof(*m->items));
			it = &m->items[m->nitems++];
			*it = (struct mm_member_item){mm_xstrdup(r[i].connector),
			                              mm_xstrdup(r[i].vserver), r[i].down};
		}
		it->down = r[i].down;
		if (known == r[i].down)
			continue;
		mlog(m, "member: bridgehead %s/%s on %s %s", m->self, r[i].vserver, r[i].connector,
		     r[i].down ? "down" : "up");
		send[nsend++] = *it;
	}
	/* the items sent point into m->items, unchanged until send_report */
	if (nsend > 0 && m->state == MM_MEMBER_ESTABLISHED)
		send_report(m, false, NULL, send, nsend);
	free(send);
	return view_refresh(m, false) ? MM_MEMBER_TABLE_CHANGED : 0;
}
