/* The master machine's members (master.h): a server's session after its
 * Hello, its state reports applied to our group's entry with the right
 * version bumps, the pushes of every change to every member and candidate,
 * the full table to a new member, the periodic DigestProbe and the repair
 * of a member whose digest differs, entries of other groups that members
 * hand us, the grace of a new active master and its publication, and a
 * server going down when its session ends.
 *
 * The entry: `own` is our group's entry as we make it while active; the
 * table holds a copy of it once published (before, the table holds what the
 * previous master published, which is what members already have). Every
 * change goes to own first; published, it is copied into the table and
 * pushed at once as a delta (that entry only, full = false) with the digest
 * of the whole table after it. */
#include "master-internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"

/* --- servers ------------------------------------------------------------ */

size_t mm_m_server_index(const struct mm_master *m, const char *name)
{
	size_t lo = 0, hi = m->nservers;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(m->servers[mid].name, name);
		if (c == 0)
			return mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NO_INDEX;
}

bool mm_m_server_live(const struct mm_master *m, const char *name)
{
	size_t i = mm_m_server_index(m, name);
	return i != NO_INDEX && m->servers[i].session != NULL;
}

void mm_m_set_master_field(mm_entry *e, const char *name)
{
	if (strcmp(e->master, name) == 0)
		return;
	if (e->master != protobuf_c_empty_string)
		free(e->master);
	e->master = mm_xstrdup(name);
}

/* --- the entry: rebuild, states ----------------------------------------- */

static const Mailmesh__Connector *find_connector(const mm_entry *e, const char *name)
{
	for (size_t i = 0; e && i < e->n_connectors; i++)
		if (strcmp(e->connectors[i]->name, name) == 0)
			return e->connectors[i];
	return NULL;
}

static const Mailmesh__Bridgehead *find_bh(Mailmesh__Bridgehead *const *bh, size_t n,
                                           const char *server, const char *vserver)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(bh[i]->server, server) == 0 &&
		    strcmp(bh[i]->virtual_server, vserver) == 0)
			return bh[i];
	return NULL;
}

static void copy_bh_states(Mailmesh__Bridgehead **to, size_t n, Mailmesh__Bridgehead *const *from,
                           size_t nfrom)
{
	for (size_t i = 0; i < n; i++) {
		const Mailmesh__Bridgehead *b =
		    find_bh(from, nfrom, to[i]->server, to[i]->virtual_server);
		if (b)
			to[i]->down = b->down;
	}
}

mm_entry *mm_m_rebuild(struct mm_master *m, const mm_entry *live)
{
	mm_entry *e = mm_entry_clone(m->dir_entry);
	Mailmesh__Version *v = e->version;
	if (v == NULL) {
		v = e->version = mm_xmalloc(sizeof(*v));
		mailmesh__version__init(v);
	}
	if (live && live->version) {
		v->incarnation = live->version->incarnation;
		v->major = live->version->major;
		v->minor = live->version->minor;
		v->user = live->version->user;
	}
	if (live)
		mm_m_set_master_field(e, live->master);
	for (size_t i = 0; i < e->n_servers; i++) {
		Mailmesh__Server *s = e->servers[i];
		const Mailmesh__Server *l = NULL;
		for (size_t j = 0; live && j < live->n_servers && !l; j++)
			if (strcmp(live->servers[j]->name, s->name) == 0)
				l = live->servers[j];
		/* a server new to the entry is down until it is live */
		s->down = l ? l->down : !mm_m_server_live(m, s->name);
	}
	for (size_t i = 0; i < e->n_masters; i++) {
		Mailmesh__MasterCandidate *c = e->masters[i];
		const Mailmesh__MasterCandidate *l = NULL;
		for (size_t j = 0; live && j < live->n_masters && !l; j++)
			if (strcmp(live->masters[j]->name, c->name) == 0)
				l = live->masters[j];
		if (strcmp(c->name, m->self) == 0)
			c->down = false;
		else
			c->down = l ? l->down : !mm_m_cand_live(m, c->name);
	}
	for (size_t i = 0; i < e->n_connectors; i++) {
		Mailmesh__Connector *c = e->connectors[i];
		const Mailmesh__Connector *l = find_connector(live, c->name);
		if (l == NULL)
			continue;
		c->down = l->down;
		copy_bh_states(c->local_bridgeheads, c->n_local_bridgeheads, l->local_bridgeheads,
		               l->n_local_bridgeheads);
		copy_bh_states(c->remote_bridgeheads, c->n_remote_bridgeheads,
		               l->remote_bridgeheads, l->n_remote_bridgeheads);
	}
	mm_entry_canonicalize(e);
	return e;
}

/* Which numbers the difference of two entries of the same shape belongs
 * to: bridgeheads and connectors (minor), servers and candidates (user). */
static void state_diff(const mm_entry *a, const mm_entry *b, bool *minor, bool *user)
{
	*minor = *user = false;
	for (size_t i = 0; i < a->n_servers && i < b->n_servers; i++)
		*user |= a->servers[i]->down != b->servers[i]->down;
	for (size_t i = 0; i < a->n_masters && i < b->n_masters; i++)
		*user |= a->masters[i]->down != b->masters[i]->down;
	for (size_t i = 0; i < a->n_connectors && i < b->n_connectors; i++) {
		const Mailmesh__Connector *x = a->connectors[i], *y = b->connectors[i];
		*minor |= x->down != y->down;
		for (size_t j = 0; j < x->n_local_bridgeheads && j < y->n_local_bridgeheads; j++)
			*minor |= x->local_bridgeheads[j]->down != y->local_bridgeheads[j]->down;
		for (size_t j = 0; j < x->n_remote_bridgeheads && j < y->n_remote_bridgeheads; j++)
			*minor |= x->remote_bridgeheads[j]->down != y->remote_bridgeheads[j]->down;
	}
}

/* --- pushes ------------------------------------------------------------- */

static bool push_target(const struct mm_master_conn *c)
{
	return (c->kind == CONN_NODE || c->kind == CONN_MASTER) && c->hello_sent;
}

static void send_push(struct mm_master *m, struct mm_master_conn *only, bool full,
                      const mm_entry *const *entries, size_t n)
{
	Mailmesh__TablePush p = MAILMESH__TABLE_PUSH__INIT;
	p.full = full;
	p.n_entries = n;
	p.entries = (Mailmesh__GroupEntry **)entries;
	p.digest.data = m->digest;
	p.digest.len = MM_DIGEST_LEN;
	Mailmesh__Frame f = MAILMESH__FRAME__INIT;
	f.body_case = MAILMESH__FRAME__BODY_TABLE_PUSH;
	f.table_push = &p;
	/* what convergence costs on the wire: the frame and its 4-byte length */
	size_t bytes = mailmesh__frame__get_packed_size(&f) + 4;
	if (only) {
		mm_m_send(m, only, &f);
		mm_m_log(m, "push: %s%zu entries, %zu bytes, to conn %" PRIu32,
		         full ? "full, " : "", n, bytes, only->id);
		return;
	}
	size_t nc, sent = 0;
	struct mm_master_conn **v = mm_m_conns(m, &nc);
	for (size_t i = 0; i < nc; i++)
		if (push_target(v[i])) {
			mm_m_send(m, v[i], &f);
			sent++;
		}
	free(v);
	mm_m_log(m, "push: %s%zu entries, %zu bytes, to %zu peers", full ? "full, " : "", n, bytes,
	         sent);
}

/* Entries in frames under the frame limit: a push too big for one frame
 * goes as several, an entry too big for any is left out (logged). */
void mm_m_push_entries(struct mm_master *m, struct mm_master_conn *only, bool full,
                       const mm_entry *const *all, size_t nall)
{
	const size_t overhead = 96; /* seq, tags, lengths, full, the digest */
	size_t budget = m->conf.frame_limit - overhead;
	size_t i = 0;
	/* DESIGN §3: a directory's baseline entries (incarnation 0) never
	 * travel; every process builds its own from its own directory */
	const mm_entry **entries = mm_xcalloc(nall + 1, sizeof(*entries));
	size_t n = 0;
	for (size_t k = 0; k < nall; k++)
		if (all[k]->version && all[k]->version->incarnation > 0)
			entries[n++] = all[k];
	if (n == 0) {
		send_push(m, only, full, entries, 0);
		free(entries);
		return;
	}
	while (i < n) {
		size_t first = i, size = 0;
		while (i < n) {
			size_t es = mailmesh__group_entry__get_packed_size(entries[i]) + 11;
			if (es > budget && i == first) {
				char q[QUOTE_LEN];
				mm_m_log(m,
				         "push: entry of group %s is %zu bytes, over the frame"
				         " limit: not sent",
				         mm_m_q(q, entries[i]->name), es);
				first = ++i;
				continue;
			}
			if (size + es > budget)
				break;
			size += es;
			i++;
		}
		if (i > first)
			send_push(m, only, full, entries + first, i - first);
	}
	free(entries);
}

void mm_m_push_full(struct mm_master *m, struct mm_master_conn *c)
{
	mm_m_push_entries(m, c, true, (const mm_entry *const *)m->table.entries, m->table.n);
}

/* Replace our group's entry in the table with a copy of own. */
static void table_take_own(struct mm_master *m)
{
	mm_entry *copy = mm_entry_clone(m->own);
	/* DESIGN §5.2: every entry a master issues is signed by it */
	if (m->env.sign)
		m->env.sign(m->env.ctx, copy);
	for (size_t i = 0; i < m->table.n; i++)
		if (strcmp(m->table.entries[i]->name, m->group) == 0) {
			mm_entry_free(m->table.entries[i]);
			m->table.entries[i] = copy;
			mm_m_table_changed(m);
			return;
		}
	mm_table_merge(&m->table, copy);
	mm_m_table_changed(m);
}

void mm_m_own_set_master(struct mm_master *m, const char *name, bool down)
{
	if (m->own == NULL)
		return;
	/* mm_entry_set_master elects by the marks; the active master is us */
	bool changed = mm_entry_set_master(m->own, name, down);
	mm_m_set_master_field(m->own, m->self);
	if (changed)
		mm_m_own_changed(m);
}

void mm_m_own_changed(struct mm_master *m)
{
	if (m->role != MM_MASTER_ACTIVE || m->own == NULL || !m->published)
		return;
	/* whatever changes were held go out with this version */
	m->pending_minor = m->pending_user = false;
	table_take_own(m);
	const mm_entry *e = mm_m_table_own(m);
	mm_m_push_entries(m, NULL, false, &e, 1);
}

/* --- grace and publication ---------------------------------------------- */

void mm_m_own_begin(struct mm_master *m)
{
	const mm_entry *base = mm_m_table_own(m);
	mm_entry *e = mm_m_rebuild(m, base);
	uint64_t major = base && base->version ? base->version->major : 1;
	e->version->incarnation = m->incarnation;
	e->version->major = major;
	mm_m_set_master_field(e, m->self);
	for (size_t i = 0; i < e->n_masters; i++)
		if (mm_m_cand_live(m, e->masters[i]->name))
			e->masters[i]->down = false;
	mm_entry_free(m->own);
	m->own = e;
	m->published = false;
	m->grace_over = false;
	m->pending_minor = m->pending_user = false;
	for (size_t i = 0; i < m->nservers; i++)
		m->servers[i].reported = false;
}

static bool any_reported(const struct mm_master *m)
{
	for (size_t i = 0; i < m->nservers; i++)
		if (m->servers[i].reported)
			return true;
	return m->nservers == 0;
}

void mm_m_publish(struct mm_master *m, bool grace_over)
{
	if (m->role != MM_MASTER_ACTIVE || m->own == NULL || m->published)
		return;
	if (grace_over && !any_reported(m)) {
		/* DESIGN §5.1: a master that has heard from no member at all
		 * publishes nothing -- cut off from its group it would announce
		 * every server down, above every version the members hold */
		if (!m->grace_over)
			mm_m_log(m, "no member has reported: publishing nothing until one does");
		m->grace_over = true;
		m->env.timer_cancel(m->env.ctx, MM_MASTER_TIMER_GRACE);
		return;
	}
	/* absent servers and candidates that are not live go down: one change */
	uint64_t user = m->own->version->user;
	size_t absent = 0;
	for (size_t i = 0; i < m->nservers; i++)
		if (m->servers[i].session == NULL && !m->servers[i].reported)
			absent += mm_entry_set_server(m->own, m->servers[i].name, true);
	bool gone = false;
	for (size_t i = 0; i < m->ncand; i++)
		if (m->cand[i].nlive == 0)
			gone |= mm_entry_set_master(m->own, m->cand[i].name, true);
	if (absent || gone)
		m->own->version->user = user + 1;
	mm_m_set_master_field(m->own, m->self);
	m->published = true;
	m->env.timer_cancel(m->env.ctx, MM_MASTER_TIMER_GRACE);
	table_take_own(m);
	const Mailmesh__Version *v = m->own->version;
	mm_m_log(m,
	         "published group %s at version (%" PRIu64 ", %" PRIu64 ", %" PRIu64 ", %" PRIu64
	         ")%s, %zu absent servers marked down",
	         m->group, v->incarnation, v->major, v->minor, v->user,
	         grace_over ? " after the grace" : ": every server reported", absent);
	size_t nc;
	struct mm_master_conn **cs = mm_m_conns(m, &nc);
	for (size_t i = 0; i < nc; i++)
		if (push_target(cs[i]))
			mm_m_push_full(m, cs[i]);
	free(cs);
	m->env.timer_arm(m->env.ctx, MM_MASTER_TIMER_PROBE,
	                 mm_m_now(m) + m->conf.probe_interval_ms);
}

void mm_m_maybe_publish(struct mm_master *m)
{
	if (m->role != MM_MASTER_ACTIVE || m->published)
		return;
	if (m->grace_over && any_reported(m)) {
		mm_m_publish(m, true);
		return;
	}
	for (size_t i = 0; i < m->nservers; i++)
		if (!m->servers[i].reported)
			return;
	mm_m_publish(m, false);
}

/* --- member sessions ---------------------------------------------------- */

void mm_m_member_hello(struct mm_master *m, struct mm_master_conn *c, const Mailmesh__Hello *h)
{
	char q[QUOTE_LEN];
	if (m->role != MM_MASTER_ACTIVE)
		mm_m_member_claim(m, c, h->version, h->incarnation_seen); /* counted */
	if (m->role != MM_MASTER_ACTIVE) {
		const char *active = mm_m_active_name(m);
		mm_m_send_hello(m, c);
		c->server = NO_INDEX; /* it was never our member: no down mark */
		char why[256];
		snprintf(why, sizeof(why), "standby: the active master is %s",
		         active[0] ? active : "unknown");
		mm_m_close(m, c, why);
		return;
	}
	struct mm_master_server *s = &m->servers[c->server];
	if (s->session && s->session != c) {
		struct mm_master_conn *old = s->session;
		old->server = NO_INDEX;
		s->session = NULL;
		mm_m_close(m, old, "replaced by a new connection of the same server");
	}
	s->session = c;
	mm_m_log(m, "conn %" PRIu32 ": member %s", c->id, mm_m_q(q, c->name));
	mm_m_send_hello(m, c);
	mm_m_member_claim(m, c, h->version, h->incarnation_seen);
	if (m->published)
		mm_m_push_full(m, c);
}

void mm_m_member_gone(struct mm_master *m, struct mm_master_conn *c)
{
	if (c->server == NO_INDEX || c->server >= m->nservers)
		return;
	struct mm_master_server *s = &m->servers[c->server];
	if (s->session != c)
		return;
	s->session = NULL;
	if (m->role != MM_MASTER_ACTIVE || m->own == NULL)
		return;
	if (mm_entry_set_server(m->own, s->name, true)) {
		mm_m_log(m, "server %s down: its session ended", s->name);
		mm_m_own_changed(m);
	}
}

/* A change names this (connector, virtual server) of the reporter. */
static bool named_bh(const Mailmesh__StateReport *r, const char *conn, const char *vserver)
{
	for (size_t i = 0; i < r->n_changes; i++) {
		const Mailmesh__ObjectState *o = r->changes[i];
		if (o->kind == MAILMESH__OBJECT_STATE__KIND__BRIDGEHEAD &&
		    strcmp(o->name, conn) == 0 && strcmp(o->virtual_server, vserver) == 0)
			return true;
	}
	return false;
}

static void issue(struct mm_master *m, struct mm_master_conn *c);
static void arm_issue(struct mm_master *m);

void mm_m_report(struct mm_master *m, struct mm_master_conn *c, const Mailmesh__StateReport *r)
{
	char q1[QUOTE_LEN], q2[QUOTE_LEN], q3[QUOTE_LEN];
	if (m->role != MM_MASTER_ACTIVE || m->own == NULL || c->server == NO_INDEX)
		return;
	const char *me = c->name;
	if (strcmp(r->reporter, me) != 0) {
		mm_m_log(m, "conn %" PRIu32 ": report from server %s for %s refused", c->id,
		         mm_m_q(q1, me), mm_m_q(q2, r->reporter));
		return;
	}
	for (size_t i = 0; i < r->n_changes; i++) {
		const Mailmesh__ObjectState *o = r->changes[i];
		const char *whose = o->kind == MAILMESH__OBJECT_STATE__KIND__SERVER ? o->name
		                    : o->kind == MAILMESH__OBJECT_STATE__KIND__BRIDGEHEAD
		                        ? o->server
		                        : me;
		if (strcmp(whose, me) != 0) {
			mm_m_log(m,
			         "conn %" PRIu32 ": report from server %s names server %s:"
			         " refused",
			         c->id, mm_m_q(q1, me), mm_m_q(q2, whose));
			return;
		}
	}
	mm_entry *before = mm_entry_clone(m->own);
	bool named_server = false;
	for (size_t i = 0; i < r->n_changes; i++) {
		const Mailmesh__ObjectState *o = r->changes[i];
		switch (o->kind) {
		case MAILMESH__OBJECT_STATE__KIND__SERVER:
			named_server = true;
			mm_entry_set_server(m->own, me, o->down);
			break;
		case MAILMESH__OBJECT_STATE__KIND__BRIDGEHEAD: {
			const Mailmesh__Connector *cn = find_connector(m->own, o->name);
			if (cn == NULL || o->virtual_server[0] == '\0' ||
			    !find_bh(cn->local_bridgeheads, cn->n_local_bridgeheads, me,
			             o->virtual_server)) {
				mm_m_log(m,
				         "conn %" PRIu32 ": report names no bridgehead %s/%s on"
				         " connector %s: skipped",
				         c->id, mm_m_q(q1, me), mm_m_q(q2, o->virtual_server),
				         mm_m_q(q3, o->name));
				break;
			}
			mm_entry_set_bridgehead(m->own, o->name, me, o->virtual_server, o->down);
			break;
		}
		default:
			mm_m_log(m,
			         "conn %" PRIu32 ": report of connector %s as a whole: not a"
			         " member's to report, skipped",
			         c->id, mm_m_q(q1, o->name));
			break;
		}
	}
	if (r->snapshot) {
		if (!named_server)
			mm_entry_set_server(m->own, me, false);
		for (size_t i = 0; i < m->own->n_connectors; i++) {
			const Mailmesh__Connector *cn = m->own->connectors[i];
			for (size_t j = 0; j < cn->n_local_bridgeheads; j++) {
				const Mailmesh__Bridgehead *b = cn->local_bridgeheads[j];
				if (strcmp(b->server, me) == 0 && b->down &&
				    !named_bh(r, cn->name, b->virtual_server))
					mm_entry_set_bridgehead(m->own, cn->name, me,
					                        b->virtual_server, false);
			}
		}
	} else if (!c->reported && !named_server) {
		mm_entry_set_server(m->own, me, false); /* the first report: it is up */
	}
	/* one report, one change: at most one bump of each number */
	bool minor, user;
	state_diff(before, m->own, &minor, &user);
	m->own->version->minor = before->version->minor;
	m->own->version->user = before->version->user;
	mm_entry_free(before);
	c->reported = true;
	m->servers[c->server].reported = true;
	m->pending_minor |= minor;
	m->pending_user |= user;
	if ((minor || user) && m->published && mm_m_now(m) < c->issue_after) {
		/* DESIGN §5.1: at most one version per reporting member per
		 * MM_MASTER_ISSUE_MS -- a member flapping a bridgehead a
		 * thousand times a second would otherwise make a version and a
		 * push to every member each time. The state is in own; the
		 * version that carries it waits for the window's end (or goes
		 * with any version made before). */
		c->issue_pending = true;
		arm_issue(m);
	} else if (minor || user) {
		issue(m, c);
	}
	mm_m_maybe_publish(m);
}

/* The next version: every change held so far, one bump of each number
 * they touch; c (may be NULL) starts a new window. */
static void issue(struct mm_master *m, struct mm_master_conn *c)
{
	/* published: what differs from the entry members hold (a change held
	 * and undone within its window makes no version) */
	const mm_entry *pub = mm_m_table_own(m);
	if (m->published && pub)
		state_diff(pub, m->own, &m->pending_minor, &m->pending_user);
	if (m->pending_minor || m->pending_user) {
		m->own->version->minor += m->pending_minor;
		m->own->version->user += m->pending_user;
		m->pending_minor = m->pending_user = false;
		if (c) {
			c->issue_after = mm_m_now(m) + MM_MASTER_ISSUE_MS;
			c->issue_pending = false;
		}
		mm_m_own_changed(m);
	}
}

/* The issue timer at the soonest end of a window with a change held. */
static void arm_issue(struct mm_master *m)
{
	int64_t at = 0;
	size_t nc;
	struct mm_master_conn **v = mm_m_conns(m, &nc);
	for (size_t i = 0; i < nc; i++)
		if (v[i]->issue_pending && (at == 0 || v[i]->issue_after < at))
			at = v[i]->issue_after;
	free(v);
	if (at)
		m->env.timer_arm(m->env.ctx, MM_MASTER_TIMER_ISSUE, at);
}

void mm_m_issue_timer(struct mm_master *m)
{
	int64_t now = mm_m_now(m);
	size_t nc;
	struct mm_master_conn **v = mm_m_conns(m, &nc);
	bool due = false;
	for (size_t i = 0; i < nc; i++)
		if (v[i]->issue_pending && v[i]->issue_after <= now) {
			v[i]->issue_pending = false;
			v[i]->issue_after = now + MM_MASTER_ISSUE_MS;
			due = true;
		}
	free(v);
	if (due && m->role == MM_MASTER_ACTIVE && m->own && m->published)
		issue(m, NULL);
	arm_issue(m);
}

/* --- digests and other groups' entries ------------------------------------ */

void mm_m_probe(struct mm_master *m)
{
	if (m->role != MM_MASTER_ACTIVE || !m->published)
		return;
	/* DESIGN §5.1: the digest alone -- a quiet organization of a thousand
	 * groups costs a digest per member per probe; a member that differs
	 * answers with its summary */
	Mailmesh__DigestProbe p = MAILMESH__DIGEST_PROBE__INIT;
	p.digest.data = m->digest;
	p.digest.len = MM_DIGEST_LEN;
	Mailmesh__Frame f = MAILMESH__FRAME__INIT;
	f.body_case = MAILMESH__FRAME__BODY_DIGEST_PROBE;
	f.digest_probe = &p;
	size_t nc;
	struct mm_master_conn **v = mm_m_conns(m, &nc);
	for (size_t i = 0; i < nc; i++)
		if (push_target(v[i]))
			mm_m_send(m, v[i], &f);
	free(v);
	m->env.timer_arm(m->env.ctx, MM_MASTER_TIMER_PROBE,
	                 mm_m_now(m) + m->conf.probe_interval_ms);
}

static bool digest_equal(const struct mm_master *m, ProtobufCBinaryData d)
{
	return d.len == MM_DIGEST_LEN && memcmp(d.data, m->digest, MM_DIGEST_LEN) == 0;
}

static void request_newer(struct mm_master *m, struct mm_master_conn *c,
                          const Mailmesh__DigestProbe *p);

void mm_m_digest_probe(struct mm_master *m, struct mm_master_conn *c,
                       const Mailmesh__DigestProbe *p)
{
	for (size_t i = 0; i < p->n_entries; i++)
		if (strcmp(p->entries[i]->group, m->group) == 0) {
			if (c->kind == CONN_MASTER)
				mm_m_evidence(m, p->entries[i]->version, 0, c->name, false);
			else
				mm_m_member_claim(m, c, p->entries[i]->version, 0);
		}
	if (!m->started)
		return;
	if (m->role == MM_MASTER_ACTIVE) {
		/* an answer: push what it lacks, holds older, or holds at the
		 * same version with other content (repaired by the conflict
		 * rule at its end) */
		if (!m->published || digest_equal(m, p->digest))
			return;
		if (c->kind == CONN_NODE)
			request_newer(m, c, p);
		const mm_entry **delta;
		size_t n =
		    mm_table_delta(&m->table, (const Mailmesh__EntrySummary *const *)p->entries,
		                   p->n_entries, &delta);
		if (n)
			mm_m_push_entries(m, c, false, delta, n);
		free(delta);
		return;
	}
	/* a standby probed by the active master answers when it differs; an
	 * answer (it has entries) is not answered */
	if (c->kind != CONN_MASTER || p->n_entries > 0 || digest_equal(m, p->digest))
		return;
	struct mm_summary sum;
	mm_table_summary(&m->table, &sum);
	Mailmesh__DigestProbe a = MAILMESH__DIGEST_PROBE__INIT;
	a.digest.data = m->digest;
	a.digest.len = MM_DIGEST_LEN;
	a.n_entries = sum.n;
	a.entries = sum.p;
	Mailmesh__Frame f = MAILMESH__FRAME__INIT;
	f.body_case = MAILMESH__FRAME__BODY_DIGEST_PROBE;
	f.digest_probe = &a;
	mm_m_send(m, c, &f);
	mm_summary_free(&sum);
}

/* The entries of these groups, as the table now holds them, to every
 * member and candidate (active and published only). */
static void push_changed(struct mm_master *m, char *const *names, size_t nnames)
{
	if (m->role != MM_MASTER_ACTIVE || !m->published)
		return;
	const mm_entry **es = mm_xcalloc(nnames, sizeof(*es));
	size_t n = 0;
	for (size_t i = 0; i < nnames; i++) {
		const mm_entry *e = mm_table_find(&m->table, names[i]);
		bool dup = false;
		for (size_t j = 0; j < n && !dup; j++)
			dup = es[j] == e;
		if (e && !dup)
			es[n++] = e;
	}
	mm_m_push_entries(m, NULL, false, es, n);
	free(es);
}

/* Would e replace what we hold (newer, or equal with other content for
 * the conflict rule), and does it pass the checks of signed entries? A
 * refusal is logged. */
static bool entry_passes(struct mm_master *m, const mm_entry *e, const char *from)
{
	const mm_entry *have = mm_table_find(&m->table, e->name);
	if (have) {
		int c = mm_version_cmp(e->version, have->version);
		uint8_t a[MM_DIGEST_LEN], b[MM_DIGEST_LEN];
		if (c < 0)
			return false;
		if (c == 0) {
			mm_entry_digest(e, a);
			mm_entry_digest(have, b);
			if (memcmp(a, b, MM_DIGEST_LEN) == 0)
				return false;
		}
	}
	if (m->trust == NULL)
		return true;
	char signer[MM_CERT_NAME_MAX + 1], q1[QUOTE_LEN], q2[QUOTE_LEN];
	enum mm_entry_check k =
	    mm_entry_check(m->trust, e, mm_table_find(&m->dir, e->name), signer);
	if (k == MM_ENTRY_OK)
		return true;
	mm_m_log(m, "entry of group %s from %s: %s%s%s: dropped", mm_m_q(q1, e->name),
	         mm_m_q(q2, from), mm_entry_check_name(k), signer[0] ? ", signed by " : "", signer);
	return false;
}

static void send_request(struct mm_master *m, struct mm_master_conn *c, char **groups, size_t n)
{
	if (n == 0)
		return;
	Mailmesh__EntryRequest r = MAILMESH__ENTRY_REQUEST__INIT;
	r.n_groups = n;
	r.groups = groups;
	Mailmesh__Frame f = MAILMESH__FRAME__INIT;
	f.body_case = MAILMESH__FRAME__BODY_ENTRY_REQUEST;
	f.entry_request = &r;
	mm_m_send(m, c, &f);
}

/* A member's summary names entries of other groups newer than ours (a
 * bridgehead learned them over X-LINK2STATE while we did not hear): ask
 * for them. */
static void request_newer(struct mm_master *m, struct mm_master_conn *c,
                          const Mailmesh__DigestProbe *p)
{
	char **want = mm_xcalloc(p->n_entries + 1, sizeof(*want));
	size_t n = 0;
	for (size_t i = 0; i < p->n_entries; i++) {
		const Mailmesh__EntrySummary *s = p->entries[i];
		if (strcmp(s->group, m->group) == 0 || s->version == NULL ||
		    s->version->incarnation == 0 || mm_table_find(&m->dir, s->group) == NULL)
			continue;
		const mm_entry *have = mm_table_find(&m->table, s->group);
		if (have == NULL || mm_version_cmp(s->version, have->version) > 0)
			want[n++] = s->group;
	}
	send_request(m, c, want, n);
	free(want);
}

void mm_m_member_claim(struct mm_master *m, struct mm_master_conn *c, const Mailmesh__Version *v,
                       uint64_t incarnation_seen)
{
	if (m->trust == NULL) {
		mm_m_evidence(m, v, incarnation_seen, c->name, true);
		return;
	}
	/* counted as seen all the same: a candidate becoming active goes
	 * above it; only an entry a candidate signed moves an active master */
	uint64_t seen = incarnation_seen;
	if (v && v->incarnation > seen)
		seen = v->incarnation;
	if (seen < MM_MASTER_INCARNATION_MAX && seen > m->highest_seen)
		m->highest_seen = seen;
	if (m->role != MM_MASTER_ACTIVE || m->own == NULL)
		return;
	const Mailmesh__Version *own = m->own->version;
	if (incarnation_seen <= own->incarnation && mm_version_cmp(v, own) <= 0)
		return;
	char *g = m->group;
	send_request(m, c, &g, 1);
}

void mm_m_entry_offer(struct mm_master *m, struct mm_master_conn *c, const Mailmesh__EntryOffer *o)
{
	char q[QUOTE_LEN];
	char **changed = mm_xcalloc(o->n_entries + 1, sizeof(*changed));
	size_t nchanged = 0;
	for (size_t i = 0; i < o->n_entries; i++) {
		const mm_entry *e = o->entries[i];
		if (e->name[0] == '\0' || e->version == NULL || e->version->incarnation == 0)
			continue; /* a directory's baseline never travels */
		if (mm_table_find(&m->dir, e->name) == NULL)
			continue; /* a group our directory lacks */
		if (strcmp(e->name, m->group) == 0) {
			/* our own group: evidence, when a candidate signed it */
			char signer[MM_CERT_NAME_MAX + 1];
			if (m->trust == NULL ||
			    mm_entry_check(m->trust, e, m->dir_entry, signer) == MM_ENTRY_OK)
				mm_m_evidence(m, e->version, 0, c->name, true);
			else
				mm_m_log(m,
				         "conn %" PRIu32 ": an entry of our group from %s that no "
				         "candidate signed: no evidence",
				         c->id, mm_m_q(q, c->name));
			continue;
		}
		if (!entry_passes(m, e, c->name))
			continue;
		enum mm_merge r = mm_table_merge(&m->table, mm_entry_clone(e));
		if (r == MM_MERGE_NEWER || r == MM_MERGE_CONFLICT_WON)
			changed[nchanged++] = e->name;
	}
	if (nchanged) {
		mm_m_log(m, "conn %" PRIu32 ": %zu entries of other groups taken from %s", c->id,
		         nchanged, mm_m_q(q, c->name));
		mm_m_table_changed(m);
		push_changed(m, changed, nchanged);
	}
	free(changed);
}

void mm_m_table_push(struct mm_master *m, struct mm_master_conn *c, const Mailmesh__TablePush *p)
{
	char q[QUOTE_LEN];
	bool take_own = m->role != MM_MASTER_ACTIVE && c->kind == CONN_MASTER;
	char **changed = mm_xcalloc(p->n_entries + 1, sizeof(*changed));
	size_t nchanged = 0;
	for (size_t i = 0; i < p->n_entries; i++) {
		const mm_entry *e = p->entries[i];
		if (e->name[0] == '\0')
			continue;
		bool ours = strcmp(e->name, m->group) == 0;
		if (ours)
			mm_m_evidence(m, e->version, 0, c->name, c->kind != CONN_MASTER);
		if (ours && !take_own)
			continue; /* our entry is ours to make */
		if (ours && e->version && e->version->incarnation > MM_MASTER_INCARNATION_MAX)
			continue; /* we could never go above it (logged as evidence) */
		if (e->version == NULL || e->version->incarnation == 0)
			continue; /* a directory's baseline never travels */
		if (!entry_passes(m, e, c->name))
			continue;
		enum mm_merge r = mm_table_merge(&m->table, mm_entry_clone(e));
		if (r == MM_MERGE_CONFLICT_WON || r == MM_MERGE_CONFLICT_LOST)
			mm_m_log(m,
			         "conn %" PRIu32 ": conflict on group %s (equal versions, other"
			         " content): %s",
			         c->id, mm_m_q(q, e->name),
			         r == MM_MERGE_CONFLICT_WON ? "theirs taken" : "ours kept");
		if (r == MM_MERGE_NEWER || r == MM_MERGE_CONFLICT_WON)
			changed[nchanged++] = e->name;
	}
	if (nchanged) {
		mm_m_table_changed(m);
		push_changed(m, changed, nchanged);
	}
	free(changed);
	if (c->kind == CONN_MASTER)
		mm_m_cand_learned(m, c);
}
