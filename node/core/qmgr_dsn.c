/* Failures: a job deferred until its queue's retry time or expired
 * (4.4.7 becomes 5.4.7 after expire_s), and recipients that failed for good
 * with the DSN they are owed (RFC 3464 in dsn.c; never for a null sender,
 * RFC 3461 §6.2, never against NOTIFY). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "date.h"
#include "qmgr-internal.h"
#include "smtp_parse.h"

bool qm_expired(struct mm_qm *qm, const struct mm_qmsg *m)
{
	return qm_wall_s(qm) - m->arrival >= (int64_t)qm->conf.expire_s;
}

/* Queue a message the node writes itself (a DSN): spool, sync, route. */
static int inject(struct mm_qm *qm, const char *sender, const char *rcpt, const char *body,
                  size_t len)
{
	struct mm_spool_rcpt sr = {rcpt, "", 0};
	struct mm_spool_msg sm = {
	    .id = qm->env.spool.new_id(qm->env.spool_ctx, qm->env.wall_ms(qm->env.ctx)),
	    .arrival = qm_wall_s(qm),
	    .sender = sender,
	    .envid = "",
	    .helo = qm->fqdn,
	    .client = "",
	    .nrcpt = 1,
	    .rcpt = &sr};
	struct iovec iov = {(void *)body, len};
	return mm_qm_submit(qm, &sm, &iov, 1, NULL);
}

bool qm_bounce(struct mm_qm *qm, struct mm_qmsg *m, const struct mm_dsn_rcpt *r, uint32_t n)
{
	struct mm_dsn_rcpt *want = mm_xcalloc(n, sizeof(*want));
	uint32_t nw = 0;
	for (uint32_t i = 0; i < n; i++) {
		const struct mm_qrcpt *q = &m->rcpt[r[i].idx];
		if (q->notify == 0 || (q->notify & MM_NOTIFY_FAILURE))
			want[nw++] = r[i];
	}
	int e = 0;
	if (nw > 0 && m->sender[0] != '\0') {
		char *orig = mm_xmalloc((size_t)m->body.len + 1);
		int re = qm->env.spool.read(qm->env.spool_ctx, &m->body, orig);
		struct mm_buf dsn = {0};
		char date[40], msgid[64];
		mm_date_rfc5322(qm_wall_s(qm), date);
		snprintf(msgid, sizeof(msgid), "%s.dsn", m->idhex);
		mm_dsn_build(&dsn, qm->fqdn, date, msgid, m, want, nw, re ? "" : orig,
		             re ? 0 : m->body.len);
		e = inject(qm, "", m->sender, dsn.p, dsn.len);
		mm_buf_free(&dsn);
		free(orig);
		if (e != 0) {
			qm_log(qm, "queue: cannot write a DSN for %s: %s; its recipients wait",
			       m->idhex, strerror(e));
			free(want);
			return false;
		}
	} else if (nw > 0) {
		qm_track(qm, "NDR-SUPPRESSED", m, "reason", "null sender", NULL);
	}
	free(want);
	for (uint32_t i = 0; i < n; i++) {
		char to[600];
		qm_track(qm, "NDR", m, "to", qm_addr(to, m->rcpt[r[i].idx].addr), "status",
		         r[i].status, "reason", r[i].diag ? r[i].diag : "", NULL);
		qm_rcpt_done(qm, m, r[i].idx);
	}
	return true;
}

void qm_defer(struct mm_qm *qm, struct mm_queue *q, struct mm_job *j, const char *why)
{
	qm_defer_each(qm, q, j, why, NULL);
}

void qm_defer_each(struct mm_qm *qm, struct mm_queue *q, struct mm_job *j, const char *why,
                   const char *const *each)
{
	struct mm_qmsg *m = j->msg;
	for (uint32_t i = 0; i < j->n; i++) {
		struct mm_qrcpt *r = &m->rcpt[j->idx[i]];
		const char *w = each && each[i] && each[i][0] ? each[i] : why;
		free(r->last_error);
		r->last_error = mm_xstrdup(w);
		char to[600];
		qm_track(qm, "DEFERRED", m, "to", qm_addr(to, r->addr), "queue", q->name, "reason",
		         w, NULL);
	}
	if (qm_expired(qm, m)) {
		struct mm_dsn_rcpt *r = mm_xcalloc(j->n, sizeof(*r));
		char(*diag)[600] = mm_xcalloc(j->n, sizeof(*diag));
		for (uint32_t i = 0; i < j->n; i++) {
			/* each recipient's own last error */
			snprintf(diag[i], sizeof(diag[i]),
			         "X-mailmesh; delivery time expired; last error: %s",
			         m->rcpt[j->idx[i]].last_error);
			r[i] = (struct mm_dsn_rcpt){j->idx[i], "5.4.7", diag[i], NULL};
		}
		m->holds++;
		bool ok = qm_bounce(qm, m, r, j->n);
		free(diag);
		free(r);
		m->holds--;
		if (ok) {
			mm_job_free(j);
			qm_msg_release(qm, m);
			return;
		}
	}
	if (!q->frozen && j->generation != qm->generation && q->kind != MM_Q_UNREACHABLE &&
	    qm_job_moves(qm, q, j)) {
		/* it left under an older table, and the new one sends it
		 * elsewhere: no waiting for this queue's retry */
		qm_reroute_job(qm, q, j);
		qm_reroute_drain(qm);
		return;
	}
	mm_queue_hold(q, j);
	/* held jobs come back with the hop's retry, or after retry_min_ms
	 * when only this job failed (a 4xx to a recipient) */
	int64_t now = qm_now(qm);
	int64_t at = mm_hop_may_try(&q->st, now) ? now + qm->conf.retry_min_ms : q->st.retry_at;
	if (q->held_at == 0 || at < q->held_at) {
		q->held_at = at;
		qm_arm(qm, q);
	}
}

void qm_bounce_queue(struct mm_qm *qm, struct mm_queue *q, const char *status, const char *diag)
{
	struct mm_job *all = mm_queue_take_all(q), *j;
	while ((j = all) != NULL) {
		all = j->next;
		j->next = NULL;
		struct mm_dsn_rcpt *r = mm_xcalloc(j->n, sizeof(*r));
		for (uint32_t i = 0; i < j->n; i++)
			r[i] = (struct mm_dsn_rcpt){j->idx[i], status, diag, NULL};
		struct mm_qmsg *m = j->msg;
		m->holds++;
		bool ok = qm_bounce(qm, m, r, j->n);
		m->holds--;
		free(r);
		if (ok) {
			mm_job_free(j);
			qm_msg_release(qm, m);
		} else {
			mm_queue_push(qm->unreachable, j);
		}
	}
}
