/* The connector-state detector (connstate.h): per connector of this
 * server, per target, glitch retry and probes; per connector, damping
 * between the state found and the state reported. */
#include "connstate.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "logfmt.h"
#include "route.h"
#include "smtp_client.h"

enum tstate {
	T_UP,     /* no failure, or the last one was answered by a success */
	T_GLITCH, /* failures in a row, not yet glitch_count retries */
	T_DOWN,   /* probed every probe_interval_ms */
};

struct mm_cs_target {
	char *address;
	uint32_t id; /* its timer key */
	enum tstate st;
	uint32_t failures; /* rounds that failed in a row */
	int64_t retry_at;  /* T_GLITCH: the next round; a failure before it is this round's */
	int64_t next_at;   /* T_DOWN, or T_UP of a held connector: the next probe */
	uint32_t probe;    /* the probe out, 0: none */
};

struct mm_cs_conn {
	char *name;
	uint32_t id; /* its release timer: KEY_RELEASE | id */
	bool tracked;
	int tls;
	bool org;
	size_t nvs;
	char **vs; /* this server's virtual servers that are local bridgeheads */
	size_t nt;
	struct mm_cs_target *t;
	bool actual_down;   /* every target down */
	bool reported_down; /* what the changes said last */
	struct mm_damp damp;
};

#define KEY_RELEASE (1ull << 32)

static void cs_log(struct mm_connstate *cs, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void cs_log(struct mm_connstate *cs, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	cs->env.log(cs->env.ctx, line);
}

static int64_t cs_now(struct mm_connstate *cs)
{
	return cs->env.now_ms(cs->env.ctx);
}

void mm_connstate_init(struct mm_connstate *cs, const struct mm_cs_conf *conf,
                       const struct mm_cs_env *env, const char *self)
{
	*cs = (struct mm_connstate){0};
	cs->conf = *conf;
	cs->env = *env;
	cs->self = mm_xstrdup(self);
}

static void conn_free(struct mm_connstate *cs, struct mm_cs_conn *c)
{
	for (size_t i = 0; i < c->nt; i++) {
		cs->env.timer_cancel(cs->env.ctx, c->t[i].id);
		free(c->t[i].address);
	}
	cs->env.timer_cancel(cs->env.ctx, KEY_RELEASE | c->id);
	for (size_t i = 0; i < c->nvs; i++)
		free(c->vs[i]);
	free(c->vs);
	free(c->t);
	free(c->name);
	free(c);
}

void mm_connstate_clear(struct mm_connstate *cs)
{
	for (size_t i = 0; i < cs->nchanges; i++) {
		free(cs->changes[i].connector);
		free(cs->changes[i].vserver);
	}
	cs->nchanges = 0;
	for (size_t i = 0; i < cs->nups; i++)
		free(cs->ups[i]);
	cs->nups = 0;
}

void mm_connstate_free(struct mm_connstate *cs)
{
	for (size_t i = 0; i < cs->n; i++)
		conn_free(cs, cs->conns[i]);
	free(cs->conns);
	mm_connstate_clear(cs);
	free(cs->changes);
	free(cs->ups);
	mm_damp_saved_free(cs->restore, cs->nrestore);
	free(cs->self);
	*cs = (struct mm_connstate){0};
}

size_t mm_connstate_changes(const struct mm_connstate *cs, const struct mm_bh_report **out)
{
	*out = cs->changes;
	return cs->nchanges;
}

size_t mm_connstate_ups(const struct mm_connstate *cs, const char *const **out)
{
	*out = (const char *const *)cs->ups;
	return cs->nups;
}

/* --- changes ------------------------------------------------------------- */

/* One bridgehead's change; the opposite change not yet taken cancels. */
static void add_change(struct mm_connstate *cs, const char *conn, const char *vs, bool down)
{
	for (size_t i = 0; i < cs->nchanges; i++) {
		struct mm_bh_report *r = &cs->changes[i];
		if (strcmp(r->connector, conn) != 0 || strcmp(r->vserver, vs) != 0)
			continue;
		if (r->down == down)
			return;
		free(r->connector);
		free(r->vserver);
		memmove(r, r + 1, (cs->nchanges - i - 1) * sizeof(*r));
		cs->nchanges--;
		return;
	}
	mm_grow(&cs->changes, &cs->capchanges, cs->nchanges + 1, sizeof(*cs->changes));
	cs->changes[cs->nchanges++] = (struct mm_bh_report){mm_xstrdup(conn), mm_xstrdup(vs), down};
}

static void report(struct mm_connstate *cs, struct mm_cs_conn *c, bool down)
{
	c->reported_down = down;
	for (size_t i = 0; i < c->nvs; i++)
		add_change(cs, c->name, c->vs[i], down);
}

/* --- timers and probes --------------------------------------------------- */

/* The target's timer, from its state: a probe out schedules nothing (its
 * result will). */
static void schedule(struct mm_connstate *cs, const struct mm_cs_conn *c,
                     const struct mm_cs_target *t)
{
	int64_t at = -1;
	if (t->probe == 0) {
		if (t->st == T_GLITCH)
			at = t->retry_at;
		else if (t->st == T_DOWN || c->damp.suppressed)
			at = t->next_at;
	}
	if (at >= 0)
		cs->env.timer_arm(cs->env.ctx, t->id, at);
	else
		cs->env.timer_cancel(cs->env.ctx, t->id);
}

static void arm_release(struct mm_connstate *cs, struct mm_cs_conn *c)
{
	cs->env.timer_arm(cs->env.ctx, KEY_RELEASE | c->id,
	                  mm_damp_release_at(&c->damp, &cs->conf.damp));
}

/* --- state --------------------------------------------------------------- */

static void eval(struct mm_connstate *cs, struct mm_cs_conn *c, int64_t now)
{
	bool down = c->tracked && c->nt > 0;
	for (size_t i = 0; i < c->nt && down; i++)
		down = c->t[i].st == T_DOWN;
	if (down == c->actual_down)
		return;
	c->actual_down = down;
	const struct mm_damp_conf *dc = &cs->conf.damp;
	if (down) {
		bool began = mm_damp_penalize(&c->damp, dc, now);
		cs->damp_changed = true;
		cs_log(cs, "connector %s: down from %s (every target down), figure %u", c->name,
		       cs->self, mm_damp_figure(&c->damp, dc, now));
		if (!c->reported_down)
			report(cs, c, true);
		if (began) {
			cs_log(cs, "connector %s: flapping, held down (figure %u above %u)",
			       c->name, mm_damp_figure(&c->damp, dc, now), dc->suppress);
		}
		if (c->damp.suppressed)
			arm_release(cs, c);
		return;
	}
	if (c->damp.suppressed && !mm_damp_release(&c->damp, dc, now)) {
		cs_log(cs, "connector %s: up from %s, held down until the figure %u falls below %u",
		       c->name, cs->self, mm_damp_figure(&c->damp, dc, now), dc->reuse);
		arm_release(cs, c);
		return;
	}
	cs->env.timer_cancel(cs->env.ctx, KEY_RELEASE | c->id);
	if (!c->damp.suppressed)
		cs->damp_changed = true; /* a release, or an up: the figure as of now */
	cs_log(cs, "connector %s: up from %s", c->name, cs->self);
	if (c->reported_down)
		report(cs, c, false);
}

static void target_up(struct mm_connstate *cs, struct mm_cs_conn *c, struct mm_cs_target *t,
                      int64_t now)
{
	if (t->st != T_UP) {
		bool listed = false;
		for (size_t i = 0; i < cs->nups && !listed; i++)
			listed = strcmp(cs->ups[i], t->address) == 0;
		if (!listed) {
			mm_grow(&cs->ups, &cs->capups, cs->nups + 1, sizeof(*cs->ups));
			cs->ups[cs->nups++] = mm_xstrdup(t->address);
		}
	}
	t->st = T_UP;
	t->failures = 0;
	t->retry_at = 0;
	t->probe = 0; /* a probe still out is answered by this */
	/* probed again only while the connector is held (flaps count) */
	t->next_at = now + cs->conf.probe_interval_ms;
	eval(cs, c, now);
	schedule(cs, c, t);
}

/* A failure of t: a delivery that could not start, or a probe (probe). */
static void target_failed(struct mm_connstate *cs, struct mm_cs_conn *c, struct mm_cs_target *t,
                          int64_t now, const char *why, bool probe)
{
	char q[300];
	switch (t->st) {
	case T_DOWN:
		/* known: a probe's failure sets the next one, a delivery's
		 * changes nothing */
		if (probe)
			t->next_at = now + cs->conf.probe_interval_ms;
		schedule(cs, c, t);
		return;
	case T_GLITCH:
		if (now < t->retry_at) {
			/* another session of the same round */
			schedule(cs, c, t);
			return;
		}
		t->failures++;
		break;
	case T_UP: t->failures = 1; break;
	}
	if (t->failures <= cs->conf.glitch_count) {
		t->st = T_GLITCH;
		t->retry_at = now + cs->conf.glitch_interval_ms;
		cs_log(cs, "connector %s: target %s failed (%u of %u glitch retries): %s", c->name,
		       t->address, t->failures, cs->conf.glitch_count,
		       mm_logfmt_quote(q, sizeof(q), why));
		schedule(cs, c, t);
		return;
	}
	t->st = T_DOWN;
	t->next_at = now + cs->conf.probe_interval_ms;
	cs_log(cs, "connector %s: target %s down after %u failures: %s", c->name, t->address,
	       t->failures, mm_logfmt_quote(q, sizeof(q), why));
	eval(cs, c, now);
	schedule(cs, c, t);
}

/* --- lookups ------------------------------------------------------------- */

static struct mm_cs_conn *find_conn(const struct mm_connstate *cs, const char *name)
{
	size_t lo = 0, hi = cs->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(cs->conns[mid]->name, name);
		if (c == 0)
			return cs->conns[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static struct mm_cs_target *find_target(const struct mm_cs_conn *c, const char *address)
{
	/* set_targets leaves NULL where a target moved to the new list */
	for (size_t i = 0; i < c->nt; i++)
		if (c->t[i].address && strcmp(c->t[i].address, address) == 0)
			return &c->t[i];
	return NULL;
}

/* --- events -------------------------------------------------------------- */

void mm_connstate_delivery(struct mm_connstate *cs, const char *connector, const char *target,
                           bool ok, const char *why)
{
	struct mm_cs_conn *c = connector ? find_conn(cs, connector) : NULL;
	struct mm_cs_target *t = c && c->tracked && target ? find_target(c, target) : NULL;
	if (t == NULL)
		return;
	int64_t now = cs_now(cs);
	if (ok)
		target_up(cs, c, t, now);
	else
		target_failed(cs, c, t, now, why, false);
}

void mm_connstate_probe_result(struct mm_connstate *cs, uint32_t id, bool ok, const char *why)
{
	if (id == 0)
		return;
	for (size_t i = 0; i < cs->n; i++) {
		struct mm_cs_conn *c = cs->conns[i];
		for (size_t k = 0; k < c->nt; k++) {
			struct mm_cs_target *t = &c->t[k];
			if (t->probe != id)
				continue;
			t->probe = 0;
			int64_t now = cs_now(cs);
			if (ok) {
				if (t->st != T_UP)
					cs_log(cs, "connector %s: probe of %s worked", c->name,
					       t->address);
				target_up(cs, c, t, now);
			} else {
				target_failed(cs, c, t, now, why ? why : "probe failed", true);
			}
			return;
		}
	}
}

static void target_timer(struct mm_connstate *cs, struct mm_cs_conn *c, struct mm_cs_target *t)
{
	if (t->probe != 0)
		return;
	int64_t now = cs_now(cs);
	bool due = (t->st == T_GLITCH && now >= t->retry_at) ||
	           ((t->st == T_DOWN || c->damp.suppressed) && now >= t->next_at);
	if (!due) {
		schedule(cs, c, t);
		return;
	}
	if (++cs->next_probe == 0)
		cs->next_probe = 1;
	t->probe = cs->next_probe;
	struct mm_cs_probe p = {c->name, t->address, c->tls, c->org};
	cs->env.probe(cs->env.ctx, t->probe, &p);
}

void mm_connstate_timer(struct mm_connstate *cs, uint64_t key)
{
	for (size_t i = 0; i < cs->n; i++) {
		struct mm_cs_conn *c = cs->conns[i];
		if (key == (KEY_RELEASE | c->id)) {
			int64_t now = cs_now(cs);
			if (!c->damp.suppressed)
				return;
			if (!mm_damp_release(&c->damp, &cs->conf.damp, now)) {
				arm_release(cs, c);
				return;
			}
			cs_log(cs, "connector %s: released (figure %u)", c->name,
			       mm_damp_figure(&c->damp, &cs->conf.damp, now));
			cs->damp_changed = true;
			if (!c->actual_down && c->reported_down)
				report(cs, c, false);
			for (size_t k = 0; k < c->nt; k++)
				schedule(cs, c, &c->t[k]);
			return;
		}
		for (size_t k = 0; k < c->nt; k++)
			if (key == c->t[k].id) {
				target_timer(cs, c, &c->t[k]);
				return;
			}
	}
}

/* --- the table ----------------------------------------------------------- */

static int tls_of_connector(const Mailmesh__Connector *c)
{
	switch (c->tls_policy) {
	case MAILMESH__TLS_POLICY__TLS_REQUIRED: return MM_SMTPC_TLS_REQUIRED;
	case MAILMESH__TLS_POLICY__TLS_NONE: return MM_SMTPC_TLS_NONE;
	default: return MM_SMTPC_TLS_OPPORTUNISTIC;
	}
}

static const mm_entry *own_entry(const struct mm_table *t, const char *self)
{
	for (size_t i = 0; i < t->n; i++)
		for (size_t s = 0; s < t->entries[i]->n_servers; s++)
			if (strcmp(t->entries[i]->servers[s]->name, self) == 0)
				return t->entries[i];
	return NULL;
}

/* A remote bridgehead the table holds up: not marked down, and its server,
 * in the target group's own entry, up (linkstate.md, "Effective states"). */
static bool remote_up(const struct mm_table *t, const Mailmesh__Connector *c,
                      const Mailmesh__Bridgehead *b)
{
	if (b->down)
		return false;
	const mm_entry *g = mm_table_find(t, c->target_group);
	for (size_t s = 0; g && s < g->n_servers; s++)
		if (strcmp(g->servers[s]->name, b->server) == 0)
			return !g->servers[s]->down;
	return false;
}

/* The targets a connector is reached through, in table order. */
static size_t targets_of(const struct mm_table *t, const Mailmesh__Connector *c, char ***out)
{
	*out = NULL;
	size_t n = 0;
	if (c->type == MAILMESH__CONNECTOR_TYPE__CONNECTOR_SMTP) {
		if (c->smart_host[0] == '\0')
			return 0;
		char addr[300];
		mm_smart_host_address(c->smart_host, addr, sizeof(addr));
		*out = mm_xcalloc(1, sizeof(**out));
		(*out)[n++] = mm_xstrdup(addr);
		return n;
	}
	*out = mm_xcalloc(c->n_remote_bridgeheads ? c->n_remote_bridgeheads : 1, sizeof(**out));
	for (size_t i = 0; i < c->n_remote_bridgeheads; i++)
		if (remote_up(t, c, c->remote_bridgeheads[i]))
			(*out)[n++] = mm_xstrdup(c->remote_bridgeheads[i]->address);
	return n;
}

/* The targets given, keeping the state of those already known. A target
 * new to a connector starts up, or down (probed at once) when start_down. */
static void set_targets(struct mm_connstate *cs, struct mm_cs_conn *c, char **addr, size_t n,
                        bool start_down, int64_t now)
{
	struct mm_cs_target *nt = mm_xcalloc(n ? n : 1, sizeof(*nt));
	for (size_t i = 0; i < n; i++) {
		struct mm_cs_target *old = find_target(c, addr[i]);
		if (old) {
			nt[i] = *old;
			old->address = NULL; /* moved */
			free(addr[i]);
			continue;
		}
		nt[i] = (struct mm_cs_target){.address = addr[i], .id = ++cs->next_id};
		if (start_down) {
			nt[i].st = T_DOWN;
			nt[i].next_at = now;
		}
	}
	for (size_t i = 0; i < c->nt; i++)
		if (c->t[i].address) {
			cs->env.timer_cancel(cs->env.ctx, c->t[i].id);
			free(c->t[i].address);
		}
	free(c->t);
	free(addr);
	c->t = nt;
	c->nt = n;
}

/* A connector first seen takes what the last run saved of its damping;
 * one that was held stays held, reported down, its targets probed. */
static void restore_damping(struct mm_connstate *cs, struct mm_cs_conn *c, int64_t now)
{
	for (size_t i = 0; i < cs->nrestore; i++) {
		const struct mm_damp_saved *s = &cs->restore[i];
		if (strcmp(s->connector, c->name) != 0)
			continue;
		/* the figure as of `at`, which was elapsed ms ago: decay does
		 * the rest */
		int64_t saved_at = now - cs->restore_elapsed;
		c->damp = (struct mm_damp){
		    .figure = s->figure,
		    .at = saved_at,
		    .last_penalty_at = s->last_down_age < 0 ? 0 : saved_at - s->last_down_age,
		    .suppressed = s->suppressed};
		/* a hold that ended while the node was down ends now */
		if (c->damp.suppressed && now >= mm_damp_release_at(&c->damp, &cs->conf.damp))
			mm_damp_release(&c->damp, &cs->conf.damp, now);
		cs_log(cs, "connector %s: flap damping from the last run: figure %u%s", c->name,
		       mm_damp_figure(&c->damp, &cs->conf.damp, now),
		       c->damp.suppressed ? ", held down" : "");
		if (c->damp.suppressed) {
			c->reported_down = true;
			arm_release(cs, c);
		}
		return;
	}
}

void mm_connstate_sync(struct mm_connstate *cs, const struct mm_table *t)
{
	int64_t now = cs_now(cs);
	const mm_entry *e = own_entry(t, cs->self);
	struct mm_cs_conn **next =
	    mm_xcalloc(e && e->n_connectors ? e->n_connectors : 1, sizeof(*next));
	size_t nnext = 0;
	bool *fresh = mm_xcalloc(e && e->n_connectors ? e->n_connectors : 1, sizeof(*fresh));
	for (size_t ci = 0; e && ci < e->n_connectors; ci++) {
		const Mailmesh__Connector *cn = e->connectors[ci];
		size_t nvs = 0, nmarked = 0;
		for (size_t b = 0; b < cn->n_local_bridgeheads; b++)
			if (strcmp(cn->local_bridgeheads[b]->server, cs->self) == 0) {
				nvs++;
				nmarked += cn->local_bridgeheads[b]->down;
			}
		if (nvs == 0)
			continue;
		struct mm_cs_conn *c = find_conn(cs, cn->name);
		if (c) {
			/* taken over: out of the old list */
			for (size_t i = 0; i < cs->n; i++)
				if (cs->conns[i] == c) {
					memmove(&cs->conns[i], &cs->conns[i + 1],
					        (cs->n - i - 1) * sizeof(*cs->conns));
					cs->n--;
					break;
				}
		} else {
			c = mm_xcalloc(1, sizeof(*c));
			c->name = mm_xstrdup(cn->name);
			c->id = ++cs->next_id;
			fresh[nnext] = true;
		}
		bool smtp = cn->type == MAILMESH__CONNECTOR_TYPE__CONNECTOR_SMTP;
		c->tls =
		    smtp ? tls_of_connector(cn)
		         : (cs->conf.org_tls ? MM_SMTPC_TLS_REQUIRED : MM_SMTPC_TLS_OPPORTUNISTIC);
		c->org = !smtp;
		c->tracked = !smtp || cn->smart_host[0] != '\0';
		char **addr;
		size_t n = targets_of(t, cn, &addr);
		bool start_down = fresh[nnext] && c->tracked && n > 0 && nmarked == nvs;
		set_targets(cs, c, addr, n, start_down, now);
		if (start_down)
			c->actual_down = c->reported_down = true;
		if (fresh[nnext] && c->tracked)
			restore_damping(cs, c, now);
		if (!c->tracked && c->damp.suppressed) {
			/* delivered by MX now: not the detector's to hold */
			c->damp.suppressed = false;
			cs->env.timer_cancel(cs->env.ctx, KEY_RELEASE | c->id);
		}
		/* this server's virtual servers on it; a new one takes the
		 * connector's state, and every one of a new connector is told */
		char **vs = mm_xcalloc(nvs, sizeof(*vs));
		size_t k = 0;
		for (size_t b = 0; b < cn->n_local_bridgeheads; b++) {
			const Mailmesh__Bridgehead *bh = cn->local_bridgeheads[b];
			if (strcmp(bh->server, cs->self) != 0)
				continue;
			bool known = false;
			for (size_t i = 0; i < c->nvs && !known; i++)
				known = strcmp(c->vs[i], bh->virtual_server) == 0;
			if (!known)
				add_change(cs, c->name, bh->virtual_server, c->reported_down);
			vs[k++] = mm_xstrdup(bh->virtual_server);
		}
		for (size_t i = 0; i < c->nvs; i++)
			free(c->vs[i]);
		free(c->vs);
		c->vs = vs;
		c->nvs = nvs;
		next[nnext++] = c;
	}
	for (size_t i = 0; i < cs->n; i++)
		conn_free(cs, cs->conns[i]);
	free(cs->conns);
	cs->conns = next;
	cs->n = nnext;
	for (size_t i = 0; i < cs->n; i++) {
		struct mm_cs_conn *c = cs->conns[i];
		if (fresh[i] && c->actual_down)
			cs_log(cs, "connector %s: starts down from %s, as the table has it",
			       c->name, cs->self);
		eval(cs, c, now);
		for (size_t k = 0; k < c->nt; k++)
			schedule(cs, c, &c->t[k]);
	}
	free(fresh);
	/* what the last run saved is for the connectors of the first table */
	mm_damp_saved_free(cs->restore, cs->nrestore);
	cs->restore = NULL;
	cs->nrestore = 0;
}

size_t mm_connstate_damp_save(const struct mm_connstate *cs, struct mm_damp_saved **out)
{
	int64_t now = cs->env.now_ms(cs->env.ctx);
	*out = mm_xcalloc(cs->n ? cs->n : 1, sizeof(**out));
	size_t n = 0;
	for (size_t i = 0; i < cs->n; i++) {
		const struct mm_cs_conn *c = cs->conns[i];
		uint64_t f =
		    mm_damp_decay(c->damp.figure, now - c->damp.at, cs->conf.damp.half_life_ms);
		if (!c->tracked || (f == 0 && !c->damp.suppressed))
			continue;
		(*out)[n++] = (struct mm_damp_saved){
		    .connector = mm_xstrdup(c->name),
		    .figure = f,
		    .suppressed = c->damp.suppressed,
		    .last_down_age = c->damp.last_penalty_at ? now - c->damp.last_penalty_at : -1};
	}
	return n;
}

void mm_damp_saved_free(struct mm_damp_saved *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(s[i].connector);
	free(s);
}

void mm_connstate_damp_restore(struct mm_connstate *cs, const struct mm_damp_saved *s, size_t n,
                               int64_t elapsed_ms)
{
	mm_damp_saved_free(cs->restore, cs->nrestore);
	cs->restore = mm_xcalloc(n ? n : 1, sizeof(*cs->restore));
	for (size_t i = 0; i < n; i++) {
		cs->restore[i] = s[i];
		cs->restore[i].connector = mm_xstrdup(s[i].connector);
	}
	cs->nrestore = n;
	cs->restore_elapsed = elapsed_ms > 0 ? elapsed_ms : 0;
}

/* --- queries ------------------------------------------------------------- */

bool mm_connstate_down(const struct mm_connstate *cs, const char *connector)
{
	const struct mm_cs_conn *c = find_conn(cs, connector);
	return c && c->reported_down;
}

bool mm_connstate_held(const struct mm_connstate *cs, const char *connector)
{
	const struct mm_cs_conn *c = find_conn(cs, connector);
	return c && c->damp.suppressed;
}

uint32_t mm_connstate_figure(const struct mm_connstate *cs, const char *connector)
{
	const struct mm_cs_conn *c = find_conn(cs, connector);
	return c ? mm_damp_figure(&c->damp, &cs->conf.damp, cs->env.now_ms(cs->env.ctx)) : 0;
}
