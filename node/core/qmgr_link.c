/* Link queues: how many sessions a next hop gets, which job each session
 * carries, what its results mean, when the hop is tried again (hopstate.c:
 * glitch retry, then backoff), and the rotation through a domain's mail
 * exchangers (RFC 5321 §5.1). The sessions themselves are the driver's:
 * it runs smtp_client.c over a socket and reports back. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "logfmt.h"
#include "qmgr-internal.h"

static struct mm_hop_conf hop_conf(const struct mm_qm *qm)
{
	return (struct mm_hop_conf){qm->conf.retry_min_ms, qm->conf.retry_max_ms,
	                            qm->conf.retry_jitter_pct, qm->conf.glitch_count,
	                            qm->conf.glitch_interval_ms};
}

static void set_error(struct mm_queue *q, const char *why)
{
	free(q->last_error);
	q->last_error = mm_xstrdup(why);
}

/* The next hop itself failed (connect, session, DNS): the hop machine says
 * when to try again and whether the path is now down; every job waiting
 * for the hop is deferred with the reason -- but a frozen queue keeps its
 * jobs as the operator left them. */
static void hop_failed(struct mm_qm *qm, struct mm_queue *q, const char *why)
{
	struct mm_hop_conf hc = hop_conf(qm);
	struct mm_hop_actions a;
	mm_hop_failed(&q->st, &hc, qm_now(qm), qm->env.random(qm->env.ctx), &a);
	set_error(q, why);
	if (a.timer_at)
		qm_arm(qm, q);
	if (a.report_down) {
		char name[300], reason[600];
		qm_log(qm, "next hop %s (%s, %s) is down after %u failures: %s",
		       mm_logfmt_quote(name, sizeof(name), q->name), q->id, q->target,
		       q->st.failures, mm_logfmt_quote(reason, sizeof(reason), why));
	}
	struct mm_job *j;
	while (!q->frozen && (j = mm_queue_pop(q)) != NULL)
		qm_defer(qm, q, j, why);
}

static void hop_ok(struct mm_qm *qm, struct mm_queue *q)
{
	struct mm_hop_actions a;
	mm_hop_ok(&q->st, &a);
	if (a.report_up) {
		char name[300];
		qm_log(qm, "next hop %s (%s, %s) is up again",
		       mm_logfmt_quote(name, sizeof(name), q->name), q->id, q->target);
	}
}

/* Up means up: the hop was found up (a probe, a delivery elsewhere, the
 * table), so what waits for its retry timer goes now. The timer may be an
 * hour away after a long outage; every other server, told the path is
 * up, is already sending more. */
void qm_hop_up(struct mm_qm *qm, struct mm_queue *q, const char *why)
{
	if (!q->st.down && q->st.retry_at == 0 && q->held == NULL)
		return;
	char name[300];
	qm_log(qm, "next hop %s (%s, %s): %s: ready now",
	       mm_logfmt_quote(name, sizeof(name), q->name), q->id, q->target, why);
	struct mm_hop_actions a;
	mm_hop_ok(&q->st, &a);
	q->held_at = 0;
	qm->env.timer_cancel(qm->env.ctx, q->num);
	mm_queue_release_held(q);
	if (q->hop == MM_LINK_MX)
		q->mx.failed = 0;
}

void mm_qm_target_up(struct mm_qm *qm, const char *address)
{
	for (size_t i = 0; i < qm->queues.n; i++) {
		struct mm_queue *q = qm->queues.q[i];
		if (q->kind == MM_Q_LINK && q->target && strcmp(q->target, address) == 0) {
			qm_hop_up(qm, q, "its target answered");
			qm_kick(qm, q);
		}
	}
}

/* The exchanger a new session goes to: the first from mx.next on that has
 * not failed this round. MM_MX_MAX when every one has. */
static uint32_t mx_pick(const struct mm_queue *q)
{
	for (uint32_t k = 0; k < q->mx.naddrs; k++) {
		uint32_t i = (q->mx.next + k) % q->mx.naddrs;
		if (!(q->mx.failed & (1u << i)))
			return i;
	}
	return MM_MX_MAX;
}

/* "ip:port" or "[ip6]:port": the only next hops a session can dial. */
static bool dialable(const char *addr)
{
	char host[64];
	const char *colon = strrchr(addr, ':');
	if (colon == NULL || colon[1] == '\0' ||
	    strspn(colon + 1, "0123456789") != strlen(colon + 1))
		return false;
	size_t n = (size_t)(colon - addr);
	if (n >= 2 && addr[0] == '[' && addr[n - 1] == ']')
		addr++, n -= 2;
	if (n == 0 || n >= sizeof(host))
		return false;
	memcpy(host, addr, n);
	host[n] = '\0';
	unsigned char buf[16];
	return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

static void session_free(struct mm_qm_session *s)
{
	free(s->body);
	free(s->rcpts);
	free(s->orcpts);
	free(s->notify);
	free(s->res);
	free(s);
}

/* A connector hop's session started, or could not (connstate.h). */
static void link_result(struct mm_qm *qm, const struct mm_queue *q, const char *target, bool ok,
                        const char *why)
{
	if (qm->env.link_result && q->connector && q->hop != MM_LINK_MX)
		qm->env.link_result(qm->env.ctx, q->connector, target, ok, why);
}

/* One more session to the next hop; false when none could be started. */
static bool open_session(struct mm_qm *qm, struct mm_queue *q)
{
	const char *addr = q->target;
	uint32_t mx_index = 0;
	if (q->hop == MM_LINK_MX) {
		if ((mx_index = mx_pick(q)) == MM_MX_MAX)
			return false;
		addr = q->mx.addrs[mx_index];
	}
	if (!dialable(addr)) {
		/* a smart host given by name: names go through MX resolution
		 * only; say so and wait */
		link_result(qm, q, addr, false, "4.4.3 the next hop is not an IP address");
		hop_failed(qm, q, "4.4.3 the next hop is not an IP address");
		return false;
	}
	struct mm_qm_session *s = mm_xcalloc(1, sizeof(*s));
	s->sid = ++qm->next_sid;
	s->q = q;
	s->from_mx = q->hop == MM_LINK_MX;
	s->mx_index = mx_index;
	s->tls = q->tls;
	s->org = q->org;
	snprintf(s->addr, sizeof(s->addr), "%s", addr);
	mm_u64map_put(&qm->sessions, s->sid, s);
	q->sessions++;
	struct mm_qm_target t = {s->addr, q->tls, q->org, q->name, q->server};
	qm->env.session_open(qm->env.ctx, s->sid, &t);
	return true;
}

static bool mx_fresh(const struct mm_qm *qm, const struct mm_queue *q, int64_t now)
{
	return q->mx.naddrs > 0 && now - q->mx.resolved_at <= (int64_t)qm->conf.mx_cache_ms;
}

static void next_job(struct mm_qm *qm, struct mm_qm_session *s);

/* s leaves the queue's idle sessions (and its timer goes). */
static void unidle(struct mm_qm *qm, struct mm_qm_session *s)
{
	if (!s->idle)
		return;
	for (struct mm_qm_session **p = &s->q->idle_sessions; *p; p = &(*p)->idle_next)
		if (*p == s) {
			*p = s->idle_next;
			break;
		}
	s->idle = false;
	s->idle_next = NULL;
	s->q->idle--;
	qm->env.timer_cancel(qm->env.ctx, MM_QM_TIMER_SESSION | s->sid);
}

void qm_kick(struct mm_qm *qm, struct mm_queue *q)
{
	if (qm->stopping || !qm->started || q->frozen)
		return;
	if (q == qm->local) {
		if (q->nready > 0)
			qm->env.timer_arm(qm->env.ctx, MM_QM_TIMER_LOCAL, qm_now(qm));
		return;
	}
	int64_t now = qm_now(qm);
	if (q->kind != MM_Q_LINK || q->nready == 0 || !mm_hop_may_try(&q->st, now))
		return;
	if (q->hop == MM_LINK_MX && !mx_fresh(qm, q, now)) {
		if (!q->mx.resolving) {
			q->mx.resolving = true;
			qm->env.resolve_mx(qm->env.ctx, q->num, q->target);
		}
		return;
	}
	/* sessions waiting for a job take the ready ones first */
	while (q->nready > 0 && q->idle_sessions) {
		struct mm_qm_session *s = q->idle_sessions;
		unidle(qm, s);
		next_job(qm, s);
	}
	/* one more session while the ready jobs outnumber the sessions open
	 * (a session saying QUIT takes none): a busy session takes the next
	 * job when it is done, so under load a few sessions carry many jobs
	 * each instead of many sessions carrying one and saying QUIT */
	while (q->sessions < qm->conf.dest_concurrency && q->sessions - q->closing < q->nready)
		if (!open_session(qm, q))
			break;
}

void qm_arm(struct mm_qm *qm, struct mm_queue *q)
{
	/* the hop's retry first (held jobs wait for it too), then the time
	 * the held jobs may go */
	int64_t at = q->st.retry_at ? q->st.retry_at : q->held_at;
	if (at)
		qm->env.timer_arm(qm->env.ctx, q->num, at);
	else
		qm->env.timer_cancel(qm->env.ctx, q->num);
}

void qm_link_timer(struct mm_qm *qm, struct mm_queue *q)
{
	int64_t now = qm_now(qm);
	if (q->st.retry_at && q->st.retry_at <= now)
		mm_hop_timer(&q->st);
	if (mm_hop_may_try(&q->st, now) && q->held_at && q->held_at <= now) {
		q->held_at = 0;
		mm_queue_release_held(q);
	}
	qm_arm(qm, q);
	qm_kick(qm, q);
}

static struct mm_qm_session *session(struct mm_qm *qm, uint32_t sid)
{
	return mm_u64map_get(&qm->sessions, sid);
}

static void close_session(struct mm_qm *qm, struct mm_qm_session *s)
{
	if (!s->closing) {
		s->closing = true;
		s->q->closing++;
		qm->env.session_close(qm->env.ctx, s->sid);
	}
}

/* Give the idle session its next job, or let it go. */
static void next_job(struct mm_qm *qm, struct mm_qm_session *s)
{
	struct mm_queue *q = s->q;
	struct mm_job *j;
	/* a session opened under a weaker policy than the queue's now (a
	 * connector changed to TLS required) carries nothing more */
	if (s->tls < q->tls || s->org != q->org) {
		close_session(qm, s);
		return;
	}
	while (!qm->stopping && !q->frozen && (j = mm_queue_pop(q)) != NULL) {
		struct mm_qmsg *m = j->msg;
		s->body = mm_xrealloc(s->body, (size_t)m->body.len + 1, 1);
		int e = qm->env.spool.read(qm->env.spool_ctx, &m->body, s->body);
		if (e != 0) {
			char why[128];
			snprintf(why, sizeof(why), "4.3.0 cannot read the queued message: %s",
			         strerror(e));
			qm_defer(qm, q, j, why);
			continue;
		}
		s->rcpts = mm_xrealloc(s->rcpts, j->n, sizeof(*s->rcpts));
		s->orcpts = mm_xrealloc(s->orcpts, j->n, sizeof(*s->orcpts));
		s->notify = mm_xrealloc(s->notify, j->n, sizeof(*s->notify));
		s->res = mm_xrealloc(s->res, j->n, sizeof(*s->res));
		for (uint32_t i = 0; i < j->n; i++) {
			const struct mm_qrcpt *r = &m->rcpt[j->idx[i]];
			s->rcpts[i] = r->addr;
			s->orcpts[i] = r->orcpt;
			s->notify[i] = r->notify;
			s->res[i] = (struct mm_smtpc_result){0};
		}
		s->sj = (struct mm_smtpc_job){.sender = m->sender,
		                              .nrcpt = j->n,
		                              .rcpt = s->rcpts,
		                              .body = s->body,
		                              .len = m->body.len,
		                              .body_8bit = m->flags & MM_SPOOL_8BIT,
		                              .envid = m->envid,
		                              .ret = m->ret,
		                              .notify = s->notify,
		                              .orcpt = s->orcpts,
		                              .res = s->res};
		s->job = j;
		m->holds++;
		mm_queue_take_busy(q, j);
		qm->env.session_send(qm->env.ctx, s->sid, &s->sj);
		return;
	}
	if (!qm->stopping && !q->frozen && qm->conf.session_idle_ms > 0) {
		/* keep it a moment for the next job: a connection saved is a
		 * handshake, a greeting and an EHLO saved */
		s->idle = true;
		s->idle_next = q->idle_sessions;
		q->idle_sessions = s;
		q->idle++;
		qm->env.timer_arm(qm->env.ctx, MM_QM_TIMER_SESSION | s->sid,
		                  qm_now(qm) + qm->conf.session_idle_ms);
		return;
	}
	close_session(qm, s);
}

void qm_session_timer(struct mm_qm *qm, uint32_t sid)
{
	struct mm_qm_session *s = session(qm, sid);
	if (s == NULL || !s->idle)
		return;
	unidle(qm, s);
	close_session(qm, s);
}

void mm_qm_session_ready(struct mm_qm *qm, uint32_t sid)
{
	struct mm_qm_session *s = session(qm, sid);
	if (s == NULL || s->ready)
		return;
	s->ready = true;
	link_result(qm, s->q, s->addr, true, NULL);
	/* it reached its exchanger: new sessions go there too */
	if (s->from_mx && s->mx_index < s->q->mx.naddrs)
		s->q->mx.next = s->mx_index;
	next_job(qm, s);
}

/* The results of the job out in s: done, failed for good, or deferred. */
static void job_results(struct mm_qm *qm, struct mm_qm_session *s)
{
	struct mm_queue *q = s->q;
	struct mm_job *j = s->job, *again = NULL;
	struct mm_qmsg *m = j->msg;
	const char *why = NULL;
	struct mm_dsn_rcpt *fail = mm_xcalloc(j->n, sizeof(*fail));
	char(*status)[16] = mm_xcalloc(j->n, sizeof(*status));
	char **diag = mm_xcalloc(j->n, sizeof(*diag));
	/* each deferred recipient keeps its own reply (a 452 to one and a 451
	 * to another are two stories, in the log and in a 5.4.7 DSN) */
	const char **each = mm_xcalloc(j->n, sizeof(*each));
	uint32_t nf = 0;
	bool any_ok = false;
	s->job = NULL;
	mm_queue_drop_busy(q, j);
	for (uint32_t i = 0; i < j->n; i++) {
		const struct mm_smtpc_result *r = &s->res[i];
		uint32_t idx = j->idx[i];
		if (r->code / 100 == 2) {
			char to[600];
			qm_track(qm, "DELIVERED", m, "to", qm_addr(to, m->rcpt[idx].addr), "queue",
			         q->name, "next_hop", s->addr, "reply", r->text, NULL);
			qm_rcpt_done(qm, m, idx);
			any_ok = true;
		} else if (r->code / 100 == 5) {
			mm_dsn_status_of(r->text, status[nf]);
			size_t dl = strlen(r->text) + 8;
			diag[nf] = mm_xmalloc(dl);
			snprintf(diag[nf], dl, "smtp; %s", r->text);
			fail[nf] = (struct mm_dsn_rcpt){idx, status[nf], diag[nf], s->addr};
			nf++;
		} else {
			if (again == NULL)
				again = mm_job_new(m, j->generation);
			each[again->n] = r->text;
			mm_job_add(again, idx);
			why = r->text;
		}
	}
	if (nf > 0 && !qm_bounce(qm, m, fail, nf)) {
		/* no DSN could be written: try them again later */
		if (again == NULL)
			again = mm_job_new(m, j->generation);
		for (uint32_t k = 0; k < nf; k++)
			mm_job_add(again, fail[k].idx);
		why = "4.3.0 the DSN could not be written";
	}
	for (uint32_t i = 0; i < nf; i++)
		free(diag[i]);
	free(diag);
	free(status);
	free(fail);
	if (any_ok)
		hop_ok(qm, q);
	if (again)
		qm_defer_each(qm, q, again, why && why[0] ? why : "4.4.2 no reply", each);
	free(each);
	mm_job_free(j);
	m->holds--;
	qm_msg_release(qm, m);
}

void mm_qm_session_result(struct mm_qm *qm, uint32_t sid)
{
	struct mm_qm_session *s = session(qm, sid);
	if (s == NULL || s->job == NULL)
		return;
	job_results(qm, s);
	if (!s->closing)
		next_job(qm, s);
}

void mm_qm_session_end(struct mm_qm *qm, uint32_t sid, bool failed, bool connected, const char *why)
{
	struct mm_qm_session *s = mm_u64map_del(&qm->sessions, sid);
	if (s == NULL)
		return;
	struct mm_queue *q = s->q;
	if (why == NULL || why[0] == '\0')
		why = "4.4.2 connection closed by the next hop";
	if (s->idle) {
		/* a connection kept for the next job that the next hop closed
		 * (its idle timeout, a 421) is no failure of the hop */
		unidle(qm, s);
		failed = false;
	}
	if (failed && s->from_mx && !connected && s->mx_index < q->mx.naddrs) {
		/* as RFC 5321 §5.1 has it: a mail exchanger that cannot be
		 * reached hands over to the next one at once; only when every
		 * one of them failed this round does the hop wait for its
		 * retry (and the next round starts at the best one again) */
		q->mx.failed |= 1u << s->mx_index;
		if (mx_pick(q) != MM_MX_MAX) {
			q->mx.next = (s->mx_index + 1) % q->mx.naddrs;
			set_error(q, why);
			failed = false;
		} else {
			q->mx.next = q->mx.failed = 0;
		}
	}
	/* the hop's retry time first, so that a job that dies with the
	 * session waits for it (not for retry_min_ms) */
	if (failed && !s->ready)
		link_result(qm, q, s->addr, false, why);
	if (failed)
		hop_failed(qm, q, why);
	if (s->job != NULL) {
		/* whatever has no answer yet is deferred with the reason */
		for (uint32_t i = 0; i < s->job->n; i++)
			if (s->res[i].code == 0) {
				s->res[i].code = 421;
				snprintf(s->res[i].text, sizeof(s->res[i].text), "%s", why);
			}
		job_results(qm, s);
	}
	if (s->closing)
		q->closing--;
	q->sessions--;
	session_free(s);
	qm_kick(qm, q);
}

static void mx_clear(struct mm_queue *q)
{
	for (uint32_t i = 0; i < q->mx.naddrs; i++)
		free(q->mx.addrs[i]);
	free(q->mx.addrs);
	q->mx.addrs = NULL;
	q->mx.naddrs = 0;
}

void mm_qm_mx_answer(struct mm_qm *qm, uint32_t qnum, enum mm_mx_status st,
                     const char *const *addrs, size_t n, const char *why)
{
	struct mm_queue *q = mm_queue_by_num(&qm->queues, qnum);
	if (q == NULL || q->hop != MM_LINK_MX)
		return;
	q->mx.resolving = false;
	char status[16], diag[400];
	if (q->frozen && st != MM_MX_OK) {
		/* a frozen queue keeps its jobs: asked again after the thaw */
		mx_clear(q);
		return;
	}
	if (st == MM_MX_OK && n == 0) {
		st = MM_MX_NOHOST;
		why = "5.4.4 no address for the domain's mail exchangers";
	}
	switch (st) {
	case MM_MX_OK:
		mx_clear(q);
		for (size_t i = 0; i < n; i++)
			if (qm_is_self_address(qm, addrs[i])) {
				snprintf(diag, sizeof(diag),
				         "X-mailmesh; mail for %s loops back to myself (MX %s)",
				         q->name, addrs[i]);
				qm_bounce_queue(qm, q, "5.3.5", diag);
				return;
			}
		if (n > MM_MX_MAX)
			n = MM_MX_MAX;
		q->mx.addrs = mm_xcalloc(n, sizeof(*q->mx.addrs));
		for (size_t i = 0; i < n; i++)
			q->mx.addrs[q->mx.naddrs++] = mm_xstrdup(addrs[i]);
		q->mx.resolved_at = qm_now(qm);
		q->mx.next = q->mx.failed = 0;
		qm_kick(qm, q);
		return;
	case MM_MX_TEMP: hop_failed(qm, q, why ? why : "4.4.3 DNS lookup failed"); return;
	default:
		if (why == NULL)
			why = st == MM_MX_NULLMX ? "5.1.10 the domain accepts no mail (null MX)"
			                         : "5.4.4 the domain does not exist";
		snprintf(status, sizeof(status), "%.*s", (int)strcspn(why, " "), why);
		snprintf(diag, sizeof(diag), "X-mailmesh; %s", why);
		qm_bounce_queue(qm, q, status, diag);
		return;
	}
}
