/* The master machine's election (master.h, docs/protocol.md "Master
 * candidates and the election"): the other candidates of the group in
 * order (priority, higher first, then name), our connection to each and its
 * redial, their liveness and claimed state, who is active, the incarnation,
 * taking over, stepping down, and evidence of versions above ours.
 *
 * When a candidate that is not active becomes active (mm_m_evaluate):
 * - never while a live better candidate holds it back: one that claims
 *   ACTIVE, names an active master, or has been STANDBY naming none for
 *   less than two dead intervals (after that it is stuck -- it cannot
 *   persist -- and the group must not stay without a master);
 * - while a worse live candidate claims ACTIVE (we are a returning better
 *   one): settle_ms after its first push (we learned the current entry);
 * - otherwise: one dead interval after the later of our start and the last
 *   frame of the last better or active candidate we lost;
 * - never before a failed persist's retry time.
 * Becoming active takes incarnation max(persisted + 1, highest seen + 1,
 * wall-clock seconds), persists it (on error: not active, retry_ms later),
 * then says ACTIVE to every candidate and waits for its members (the grace,
 * master_members.c).
 *
 * An active master steps down when a live better candidate claims ACTIVE:
 * it closes its members' sessions so that they follow and says STANDBY,
 * naming it. Evidence of a version of our group above ours (a member's or a
 * candidate's Hello, a DigestProbe, a pushed entry) makes an active master
 * take a new incarnation above it: after a partition heals, the one that
 * stays issues a version above both sides.
 *
 * Clocks: the wall-clock floor keeps a master that lost its --state above
 * what it issued before as long as its clock is roughly right (not set back
 * past its last incarnation, in seconds). If it is not, members protect the
 * versions: each Hello carries the version the member holds and the highest
 * incarnation it has seen, and a new master publishes nothing before its
 * members have said hello or one dead interval passed; any version above
 * ours makes it take an incarnation above that. */
#include "master-internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"

static int cmp_cand(const void *a, const void *b)
{
	const struct mm_master_cand *x = a, *y = b;
	if (x->priority != y->priority)
		return x->priority > y->priority ? -1 : 1;
	return strcmp(x->name, y->name);
}

size_t mm_m_cand_index(const struct mm_master *m, const char *name)
{
	for (size_t i = 0; i < m->ncand; i++)
		if (strcmp(m->cand[i].name, name) == 0)
			return i;
	return NO_INDEX;
}

bool mm_m_cand_live(const struct mm_master *m, const char *name)
{
	size_t i = mm_m_cand_index(m, name);
	return i != NO_INDEX && m->cand[i].nlive > 0;
}

/* The candidates of the directory's entry, in order; what we know of those
 * that stay is kept (their connections follow them), those that went are
 * closed. */
void mm_m_cands_build(struct mm_master *m, const mm_entry *e)
{
	size_t oldn = m->ncand;
	struct mm_master_cand *old = m->cand;
	m->cand = mm_xcalloc(e->n_masters + 1, sizeof(*m->cand));
	m->ncand = 0;
	for (size_t i = 0; i < e->n_masters; i++) {
		const Mailmesh__MasterCandidate *c = e->masters[i];
		if (strcmp(c->name, m->self) == 0)
			continue;
		struct mm_master_cand *n = &m->cand[m->ncand++];
		*n = (struct mm_master_cand){.name = mm_xstrdup(c->name),
		                             .address = mm_xstrdup(c->routing_address),
		                             .priority = c->priority,
		                             .active_name = mm_xstrdup(""),
		                             .standby_since = -1,
		                             .learned_at = -1};
	}
	qsort(m->cand, m->ncand, sizeof(*m->cand), cmp_cand);
	struct mm_master_cand me = {.name = m->self, .priority = m->priority};
	for (size_t i = 0; i < m->ncand; i++) {
		struct mm_master_cand *n = &m->cand[i];
		n->better = cmp_cand(n, &me) < 0;
		for (size_t j = 0; j < oldn; j++)
			if (strcmp(old[j].name, n->name) == 0) {
				n->out = old[j].out;
				n->nlive = old[j].nlive;
				n->last_rx = old[j].last_rx;
				n->state = old[j].state;
				free(n->active_name);
				n->active_name = old[j].active_name;
				old[j].active_name = NULL;
				n->standby_since = old[j].standby_since;
				n->learned_at = old[j].learned_at;
			}
	}
	/* connections follow their candidate by name */
	size_t nc;
	struct mm_master_conn **v = mm_m_conns(m, &nc);
	for (size_t i = 0; i < nc; i++) {
		struct mm_master_conn *c = v[i];
		if (c->cand == NO_INDEX)
			continue;
		size_t j = mm_m_cand_index(m, old[c->cand].name);
		if (j != NO_INDEX) {
			c->cand = j;
			continue;
		}
		c->cand = NO_INDEX;
		mm_m_close(m, c, "no longer a candidate of the group in the directory");
	}
	free(v);
	for (size_t i = 0; i < oldn; i++) {
		free(old[i].name);
		free(old[i].address);
		free(old[i].active_name);
	}
	free(old);
	/* redial timers were by index: the caller dials every candidate
	 * without a connection at once */
	for (size_t i = 0; i < oldn || i < m->ncand; i++)
		m->env.timer_cancel(m->env.ctx, MM_MASTER_TIMER_DIAL | i);
}

void mm_m_dial(struct mm_master *m, size_t i)
{
	struct mm_master_cand *k = &m->cand[i];
	uint32_t id;
	do
		id = MM_MASTER_CONN_OUT | (++m->next_out & 0x7fffffffu);
	while (mm_u64map_get(&m->conns, id) != NULL);
	struct mm_master_conn *c = mm_xcalloc(1, sizeof(*c));
	c->id = id;
	c->kind = CONN_NEW;
	c->outgoing = true;
	c->cand = i;
	c->server = NO_INDEX;
	mm_u64map_put(&m->conns, id, c);
	k->out = id;
	m->env.dial(m->env.ctx, id, k->name, k->address);
}

/* Standing by, the active master we know changed since we last said. */
static void announce_if_changed(struct mm_master *m)
{
	if (m->role != MM_MASTER_ACTIVE &&
	    strcmp(mm_m_active_name(m), m->said_active ? m->said_active : "") != 0)
		mm_m_announce(m);
}

void mm_m_announce(struct mm_master *m)
{
	size_t n;
	struct mm_master_conn **v = mm_m_conns(m, &n);
	for (size_t i = 0; i < n; i++)
		if (v[i]->hello_sent && (v[i]->kind == CONN_MASTER || v[i]->outgoing))
			mm_m_send_hello(m, v[i]);
	free(v);
}

static uint64_t next_incarnation(struct mm_master *m)
{
	uint64_t inc = m->persisted + 1;
	if (m->highest_seen + 1 > inc)
		inc = m->highest_seen + 1;
	if (m->incarnation + 1 > inc)
		inc = m->incarnation + 1;
	int64_t wall = m->env.wall_ms(m->env.ctx) / 1000;
	if (wall > 0 && (uint64_t)wall > inc)
		inc = (uint64_t)wall;
	/* DESIGN §5.1: rounded up to the next number congruent to our rank
	 * (0-based, by priority then name) modulo 64, so that two candidates
	 * made active in the same second, each unaware of the other (a cut),
	 * never take the same incarnation and issue one version with two
	 * contents */
	uint64_t rank = 0;
	for (size_t i = 0; i < m->ncand; i++)
		rank += m->cand[i].better;
	rank %= MM_MASTER_RANKS;
	return inc + (rank + MM_MASTER_RANKS - inc % MM_MASTER_RANKS) % MM_MASTER_RANKS;
}

/* Persist a new incarnation; false (logged, retry armed) when it failed. */
static bool take_incarnation(struct mm_master *m, const char *what)
{
	uint64_t inc = next_incarnation(m);
	if (inc > MM_MASTER_INCARNATION_MAX) {
		/* never written: the next start would refuse it as corrupt */
		mm_m_log(m, "%s: no incarnation left above %" PRIu64 "; staying as we are", what,
		         inc - 1);
		return false;
	}
	int err = m->env.persist_incarnation(m->env.ctx, inc);
	if (err) {
		m->retry_at = mm_m_now(m) + m->conf.retry_ms;
		mm_m_log(m,
		         "%s: cannot persist incarnation %" PRIu64
		         ": %s (errno %d); retry in %" PRIu32 " ms",
		         what, inc, strerror(err), err, m->conf.retry_ms);
		m->env.timer_arm(m->env.ctx, MM_MASTER_TIMER_ELECT, m->retry_at);
		return false;
	}
	m->persisted = m->incarnation = inc;
	if (inc > m->highest_seen)
		m->highest_seen = inc;
	m->retry_at = 0;
	return true;
}

static void become_active(struct mm_master *m)
{
	if (!take_incarnation(m, "becoming active"))
		return;
	m->role = MM_MASTER_ACTIVE;
	m->reincarnate = false;
	mm_m_log(m,
	         "active: incarnation %" PRIu64 "; publishing once every server reported or"
	         " in %" PRId64 " ms",
	         m->incarnation, mm_m_dead_ms(m));
	mm_m_own_begin(m);
	m->env.timer_arm(m->env.ctx, MM_MASTER_TIMER_GRACE, mm_m_now(m) + mm_m_dead_ms(m));
	m->env.timer_cancel(m->env.ctx, MM_MASTER_TIMER_ELECT);
	mm_m_announce(m);
	mm_m_maybe_publish(m);
}

static void reincarnate(struct mm_master *m)
{
	if (!take_incarnation(m, "a version above ours")) {
		m->reincarnate = true;
		return;
	}
	m->reincarnate = false;
	m->own->version->incarnation = m->incarnation;
	mm_m_log(m, "incarnation %" PRIu64 ": above every version seen", m->incarnation);
	mm_m_own_changed(m);
}

static void step_down(struct mm_master *m, const struct mm_master_cand *better)
{
	char *name = mm_xstrdup(better->name);
	mm_m_log(m, "stepping down: %s is active", name);
	m->role = MM_MASTER_STANDBY;
	m->published = false;
	m->reincarnate = false;
	mm_entry_free(m->own);
	m->own = NULL;
	m->env.timer_cancel(m->env.ctx, MM_MASTER_TIMER_GRACE);
	m->env.timer_cancel(m->env.ctx, MM_MASTER_TIMER_PROBE);
	char why[256];
	snprintf(why, sizeof(why), "stepped down: the active master is %s", name);
	size_t n;
	struct mm_master_conn **v = mm_m_conns(m, &n);
	for (size_t i = 0; i < n; i++)
		if (v[i]->kind == CONN_NODE) {
			if (v[i]->server != NO_INDEX)
				m->servers[v[i]->server].session = NULL;
			v[i]->server = NO_INDEX;
			mm_m_close(m, v[i], why);
		}
	free(v);
	mm_m_announce(m);
	free(name);
}

void mm_m_evaluate(struct mm_master *m)
{
	if (!m->started)
		return;
	int64_t now = mm_m_now(m), dead = mm_m_dead_ms(m);
	if (m->role == MM_MASTER_ACTIVE) {
		for (size_t i = 0; i < m->ncand; i++) {
			const struct mm_master_cand *c = &m->cand[i];
			if (c->better && c->nlive &&
			    c->state == MAILMESH__MASTER_STATE__MASTER_ACTIVE) {
				step_down(m, c);
				break;
			}
		}
		if (m->role == MM_MASTER_ACTIVE)
			return;
	}
	const int64_t never = INT64_MAX;
	int64_t unblock = never;
	bool blocked = false, forever = false;
	const struct mm_master_cand *worse_active = NULL;
	for (size_t i = 0; i < m->ncand; i++) {
		const struct mm_master_cand *c = &m->cand[i];
		if (!c->nlive)
			continue;
		if (!c->better) {
			if (c->state == MAILMESH__MASTER_STATE__MASTER_ACTIVE &&
			    worse_active == NULL)
				worse_active = c;
			continue;
		}
		if (c->state == MAILMESH__MASTER_STATE__MASTER_ACTIVE || c->active_name[0] ||
		    c->standby_since < 0) {
			blocked = forever = true;
			continue;
		}
		/* STANDBY naming no active master: it holds us back for two dead
		 * intervals, then it is stuck */
		int64_t until = c->standby_since + 2 * dead;
		if (now < until) {
			blocked = true;
			if (until < unblock)
				unblock = until;
		}
	}
	if (forever)
		unblock = never;
	if (blocked) {
		if (unblock == never)
			m->env.timer_cancel(m->env.ctx, MM_MASTER_TIMER_ELECT);
		else
			m->env.timer_arm(m->env.ctx, MM_MASTER_TIMER_ELECT, unblock);
		return;
	}
	int64_t at;
	if (worse_active)
		at = worse_active->learned_at >= 0 ? worse_active->learned_at + m->conf.settle_ms
		                                   : never;
	else
		at = (m->heard_at > m->started_at ? m->heard_at : m->started_at) + dead;
	if (at != never && m->retry_at > at)
		at = m->retry_at;
	if (at == never) {
		m->env.timer_cancel(m->env.ctx, MM_MASTER_TIMER_ELECT);
		return;
	}
	if (now >= at)
		become_active(m);
	else
		m->env.timer_arm(m->env.ctx, MM_MASTER_TIMER_ELECT, at);
}

void mm_m_elect_timer(struct mm_master *m)
{
	if (m->role == MM_MASTER_ACTIVE) {
		if (m->reincarnate && m->own)
			reincarnate(m);
		return;
	}
	mm_m_evaluate(m);
}

void mm_m_evidence(struct mm_master *m, const Mailmesh__Version *v, uint64_t incarnation_seen,
                   const char *who, bool member)
{
	uint64_t seen = incarnation_seen;
	if (v && v->incarnation > seen)
		seen = v->incarnation;
	char q[QUOTE_LEN];
	/* one at the maximum we could never go above would wedge the group.
	 * No bound by the clock: a candidate whose clock is a year ahead
	 * issues genuine entries that far up, and a master ignoring them
	 * would publish below what its members hold, for ever; with signed
	 * entries only a candidate's signature counts as evidence anyway */
	if (seen >= MM_MASTER_INCARNATION_MAX) {
		mm_m_log(m, "%s claims incarnation %" PRIu64 " of group %s: out of range, ignored",
		         mm_m_q(q, who), seen, m->group);
		return;
	}
	if (seen > m->highest_seen)
		m->highest_seen = seen;
	if (m->role != MM_MASTER_ACTIVE || m->own == NULL || m->reincarnate)
		return;
	const Mailmesh__Version *own = m->own->version;
	if (incarnation_seen <= own->incarnation && mm_version_cmp(v, own) <= 0)
		return;
	/* a member's claim costs a persist and a push to every member: one
	 * member that keeps claiming incarnation + 1 may cause that once per
	 * dead interval, not once per frame */
	int64_t now = mm_m_now(m);
	if (member && now < m->member_reinc_after) {
		if (!m->member_reinc_quiet)
			mm_m_log(m,
			         "%s claims a version of group %s above ours: already went above a "
			         "member's claim in the last %" PRId64 " ms, not again before then",
			         mm_m_q(q, who), m->group, mm_m_dead_ms(m));
		m->member_reinc_quiet = true;
		return;
	}
	mm_m_log(m,
	         "%s holds a version of group %s above ours (%" PRIu64 ", %" PRIu64 ", %" PRIu64
	         ", %" PRIu64 "), incarnation seen %" PRIu64,
	         mm_m_q(q, who), m->group, own->incarnation, own->major, own->minor, own->user,
	         seen);
	if (member) {
		m->member_reinc_after = now + mm_m_dead_ms(m);
		m->member_reinc_quiet = false;
	}
	reincarnate(m);
}

void mm_m_cand_hello(struct mm_master *m, struct mm_master_conn *c, const Mailmesh__Hello *h,
                     bool first)
{
	struct mm_master_cand *k = &m->cand[c->cand];
	int64_t now = mm_m_now(m);
	char q1[QUOTE_LEN], q2[QUOTE_LEN];
	if (first) {
		c->kind = CONN_MASTER;
		k->nlive++;
		k->last_rx = now;
		if (!c->outgoing)
			mm_m_send_hello(m, c);
	}
	int prev = k->state;
	bool prev_none = prev == MAILMESH__MASTER_STATE__MASTER_STANDBY && !k->active_name[0];
	k->state = h->master_state == MAILMESH__MASTER_STATE__MASTER_ACTIVE
	               ? MAILMESH__MASTER_STATE__MASTER_ACTIVE
	               : MAILMESH__MASTER_STATE__MASTER_STANDBY;
	free(k->active_name);
	k->active_name =
	    mm_xstrdup(k->state == MAILMESH__MASTER_STATE__MASTER_ACTIVE ? "" : h->active_master);
	bool none = k->state == MAILMESH__MASTER_STATE__MASTER_STANDBY && !k->active_name[0];
	if (!none)
		k->standby_since = -1;
	else if (!prev_none || k->standby_since < 0)
		k->standby_since = now;
	if (k->state != MAILMESH__MASTER_STATE__MASTER_ACTIVE ||
	    prev != MAILMESH__MASTER_STATE__MASTER_ACTIVE)
		k->learned_at = -1;
	if (first || prev != k->state)
		mm_m_log(m, "conn %" PRIu32 ": candidate %s %s%s%s", c->id, mm_m_q(q1, k->name),
		         k->state == MAILMESH__MASTER_STATE__MASTER_ACTIVE ? "active" : "standby",
		         k->active_name[0] ? ", names active " : "",
		         k->active_name[0] ? mm_m_q(q2, k->active_name) : "");
	mm_m_evaluate(m);
	/* a worse candidate that was active on another side: go above it */
	mm_m_evidence(m, h->version,
	              k->state == MAILMESH__MASTER_STATE__MASTER_ACTIVE ? h->incarnation_seen : 0,
	              k->name, false);
	if (m->role == MM_MASTER_ACTIVE && first && k->nlive == 1)
		mm_m_own_set_master(m, k->name, false);
	if (m->role == MM_MASTER_ACTIVE && m->published && first)
		mm_m_push_full(m, c);
	announce_if_changed(m);
}

void mm_m_cand_gone(struct mm_master *m, struct mm_master_conn *c)
{
	if (c->cand == NO_INDEX || c->cand >= m->ncand)
		return;
	struct mm_master_cand *k = &m->cand[c->cand];
	if (c->outgoing && k->out == c->id) {
		k->out = 0;
		m->env.timer_arm(m->env.ctx, MM_MASTER_TIMER_DIAL | c->cand,
		                 mm_m_now(m) + m->conf.retry_ms);
	}
	if (c->kind != CONN_MASTER || --k->nlive > 0)
		return;
	char q[QUOTE_LEN];
	mm_m_log(m, "candidate %s is gone", mm_m_q(q, k->name));
	if (k->better || k->state == MAILMESH__MASTER_STATE__MASTER_ACTIVE)
		if (k->last_rx > m->heard_at)
			m->heard_at = k->last_rx;
	k->state = MAILMESH__MASTER_STATE__MASTER_NONE;
	k->standby_since = k->learned_at = -1;
	free(k->active_name);
	k->active_name = mm_xstrdup("");
	if (m->role == MM_MASTER_ACTIVE)
		mm_m_own_set_master(m, k->name, true);
	mm_m_evaluate(m);
	announce_if_changed(m);
}

void mm_m_cand_learned(struct mm_master *m, struct mm_master_conn *c)
{
	if (c->cand == NO_INDEX)
		return;
	struct mm_master_cand *k = &m->cand[c->cand];
	if (k->state != MAILMESH__MASTER_STATE__MASTER_ACTIVE || k->learned_at >= 0)
		return;
	k->learned_at = mm_m_now(m);
	mm_m_evaluate(m);
}
