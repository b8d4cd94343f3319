/* The queue manager's lifetime, its messages, table changes, the tick and
 * the operator's commands (qmgr.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "logfmt.h"
#include "qmgr-internal.h"

int64_t qm_now(struct mm_qm *qm)
{
	return qm->env.now_ms(qm->env.ctx);
}

int64_t qm_wall_s(struct mm_qm *qm)
{
	return qm->env.wall_ms(qm->env.ctx) / 1000;
}

void qm_log(struct mm_qm *qm, const char *fmt, ...)
{
	char line[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	qm->env.log(qm->env.ctx, line);
}

void qm_track(struct mm_qm *qm, const char *event, const struct mm_qmsg *m, ...)
{
	struct mm_buf b = {0};
	mm_buf_adds(&b, event);
	mm_buf_add(&b, " ", 1);
	mm_buf_adds(&b, m->idhex);
	va_list ap;
	va_start(ap, m);
	const char *key;
	while ((key = va_arg(ap, const char *)) != NULL) {
		const char *value = va_arg(ap, const char *);
		mm_logfmt_kv(&b, key, value);
	}
	va_end(ap);
	mm_buf_add(&b, "", 1);
	qm->env.track(qm->env.ctx, b.p);
	mm_buf_free(&b);
}

const char *qm_addr(char *out, const char *addr)
{
	snprintf(out, 600, "<%s>", addr ? addr : "");
	return out;
}

static struct mm_queue *fixed(struct mm_qm *qm, enum mm_queue_kind kind, const char *name)
{
	return mm_queue_add(&qm->queues, kind, name, mm_queue_kind_name(kind));
}

void mm_qm_init(struct mm_qm *qm, const struct mm_qm_conf *conf, const struct mm_qm_env *env,
                const char *self, const char *fqdn)
{
	*qm = (struct mm_qm){.conf = *conf, .env = *env};
	qm->self = mm_xstrdup(self);
	qm->fqdn = mm_xstrdup(fqdn);
	mm_queues_init(&qm->queues);
	/* in the order meshctl queues lists them first; their ids are q1..q6 */
	qm->presubmit = fixed(qm, MM_Q_PRESUBMIT, "Pre-submission");
	qm->directory = fixed(qm, MM_Q_DIRECTORY, "Messages awaiting directory lookup");
	qm->routing = fixed(qm, MM_Q_ROUTING, "Messages waiting to be routed");
	qm->local = fixed(qm, MM_Q_LOCAL, "Local delivery");
	qm->unreachable = fixed(qm, MM_Q_UNREACHABLE, "Final destination currently unreachable");
	qm->reroute = fixed(qm, MM_Q_REROUTE, "Messages pending reroute");
}

void mm_qm_free(struct mm_qm *qm)
{
	qm_commits_free(qm);
	/* sessions: the driver has closed its side; their jobs are in their
	 * queues' busy lists, freed with the queues */
	for (size_t i = 0; i < qm->sessions.cap; i++) {
		struct mm_qm_session *s = qm->sessions.slots[i].value;
		if (s == NULL)
			continue;
		free(s->body);
		free(s->rcpts);
		free(s->orcpts);
		free(s->notify);
		free(s->res);
		free(s);
	}
	mm_u64map_free(&qm->sessions);
	qm_avoid_free(qm);
	mm_queues_free(&qm->queues);
	for (size_t i = 0; i < qm->msgs.cap; i++)
		mm_qmsg_free(qm->msgs.slots[i].value);
	mm_u64map_free(&qm->msgs);
	free(qm->resolved);
	free(qm->self);
	free(qm->fqdn);
	*qm = (struct mm_qm){0};
}

void qm_adopt(struct mm_qm *qm, struct mm_qmsg *m)
{
	m->arrived_gen = qm->generation;
	mm_u64map_put(&qm->msgs, m->id, m);
}

void qm_rcpt_done(struct mm_qm *qm, struct mm_qmsg *m, uint32_t idx)
{
	if (m->rcpt[idx].done)
		return;
	m->rcpt[idx].done = true;
	m->pending--;
	int e = qm->env.spool.done(qm->env.spool_ctx, m->id, idx);
	if (e != 0) /* the delivery may repeat after a restart: a duplicate, not a loss */
		qm_log(qm, "queue: cannot record the end of %s for recipient %u: %s", m->idhex, idx,
		       strerror(e));
}

void qm_msg_release(struct mm_qm *qm, struct mm_qmsg *m)
{
	if (m->pending > 0 || m->holds > 0)
		return;
	mm_u64map_del(&qm->msgs, m->id);
	qm->env.spool.release(qm->env.spool_ctx, m->body.seg);
	mm_qmsg_free(m);
}

/* --- the table ----------------------------------------------------------- */

static bool job_moves(void *ctx, const struct mm_queue *q, const struct mm_job *j)
{
	return qm_job_moves(ctx, q, j);
}

/* The waiting jobs of q whose next hop changed go to "Messages pending
 * reroute" (placed again by qm_reroute_drain). */
static void reroute_queue(struct mm_qm *qm, struct mm_queue *q)
{
	if (q->kind != MM_Q_LINK && q->kind != MM_Q_LOCAL && q->kind != MM_Q_UNREACHABLE)
		return;
	struct mm_job *moving = mm_queue_extract(q, job_moves, qm), *j;
	while ((j = moving) != NULL) {
		moving = j->next;
		qm_reroute_job(qm, q, j);
	}
}

void mm_qm_table_changed(struct mm_qm *qm, const struct mm_directory *dir, struct mm_router *router)
{
	qm->dir = dir;
	qm->router = router;
	qm->generation++;
	if (!qm->started)
		return; /* what was recovered is routed at start */
	/* A snapshot of the queues: placing may add new ones. Jobs whose next
	 * hop changed leave for "Messages pending reroute"; a frozen queue
	 * keeps what it holds (the operator holds it), and a job out in a
	 * session finishes where it is (qm_defer reroutes it if it comes
	 * back). */
	size_t n = qm->queues.n;
	struct mm_queue **qs = mm_xcalloc(n, sizeof(*qs));
	memcpy(qs, qm->queues.q, n * sizeof(*qs));
	for (size_t i = 0; i < n; i++) {
		struct mm_queue *q = qs[i];
		if (q->kind == MM_Q_LINK)
			qm_refresh_link(qm, q);
		if (!q->frozen)
			reroute_queue(qm, q);
	}
	/* what waited for this change goes now, wherever the new table says */
	qm->env.timer_cancel(qm->env.ctx, MM_QM_TIMER_BACK);
	mm_queue_release_held(qm->reroute);
	qm_reroute_drain(qm);
	for (size_t i = 0; i < qm->queues.n; i++)
		qm_kick(qm, qm->queues.q[i]);
	free(qs);
}

void mm_qm_recovered(struct mm_qm *qm, const struct mm_spool_msg *sm)
{
	struct mm_qmsg *m = mm_qmsg_from_spool(sm);
	qm_adopt(qm, m);
	char pending[16];
	snprintf(pending, sizeof(pending), "%u", m->pending);
	char from[600];
	qm_track(qm, "RECOVERED", m, "from", qm_addr(from, m->sender), "pending", pending, NULL);
	struct mm_job *j = mm_job_new(m, qm->generation);
	for (uint32_t i = 0; i < m->nrcpt; i++)
		if (!m->rcpt[i].done)
			mm_job_add(j, i);
	mm_queue_push(qm->routing, j);
}

void mm_qm_start(struct mm_qm *qm)
{
	qm->started = true;
	struct mm_job *all = mm_queue_take_all(qm->routing), *j;
	while ((j = all) != NULL) {
		all = j->next;
		qm_place(qm, j->msg, j->idx, j->n, NULL, false, false);
		mm_job_free(j);
	}
}

void mm_qm_stop(struct mm_qm *qm)
{
	qm->stopping = true;
}

void mm_qm_timer(struct mm_qm *qm, uint64_t key)
{
	if (key == MM_QM_TIMER_LOCAL) {
		qm_local_run(qm);
		return;
	}
	if ((key >> 32) == (MM_QM_TIMER_SESSION >> 32)) {
		qm_session_timer(qm, (uint32_t)key);
		return;
	}
	if (key == MM_QM_TIMER_BACK) {
		qm_back_timer(qm);
		return;
	}
	struct mm_queue *q = key <= UINT32_MAX ? mm_queue_by_num(&qm->queues, (uint32_t)key) : NULL;
	if (q != NULL)
		qm_link_timer(qm, q);
}

/* Messages waiting for a path expire in time; idle link queues go. */
void mm_qm_tick(struct mm_qm *qm)
{
	struct mm_queue *q = qm->unreachable;
	struct mm_job *all = mm_queue_take_all(q), *j;
	while ((j = all) != NULL) {
		all = j->next;
		j->next = NULL;
		if (qm_expired(qm, j->msg))
			qm_defer(qm, q, j, "4.4.7 no path to the destination is up");
		else
			mm_queue_push(q, j);
	}
	int64_t now = qm_now(qm);
	for (size_t i = 0; i < qm->queues.n;) {
		struct mm_queue *l = qm->queues.q[i];
		bool idle = l->kind == MM_Q_LINK && mm_queue_empty(l) && l->sessions == 0 &&
		            !l->frozen && !l->mx.resolving;
		if (!idle) {
			l->idle_since = 0;
		} else if (l->idle_since == 0) {
			l->idle_since = now;
		} else if (now - l->idle_since >= 60000) {
			/* a minute empty and idle: gone from the view; it comes
			 * back with the next message for that next hop (a hop
			 * that was down starts afresh then: its mail has gone,
			 * delivered, rerouted or returned) */
			if (l->st.down) {
				char name[300];
				qm_log(
				    qm, "next hop %s (%s, %s) forgotten while down: no mail for it",
				    mm_logfmt_quote(name, sizeof(name), l->name), l->id, l->target);
			}
			qm->env.timer_cancel(qm->env.ctx, l->num);
			mm_queue_remove(&qm->queues, i);
			continue;
		}
		i++;
	}
	qm_compact(qm);
}

/* --- the operator -------------------------------------------------------- */

size_t mm_qm_find(struct mm_qm *qm, const char *name, struct mm_queue **out, size_t max)
{
	size_t n = 0;
	for (size_t i = 0; i < qm->queues.n; i++) {
		struct mm_queue *q = qm->queues.q[i];
		if (strcmp(q->id, name) != 0 && strcmp(q->name, name) != 0)
			continue;
		if (n < max)
			out[n] = q;
		n++;
	}
	return n;
}

void mm_qm_retry(struct mm_qm *qm, struct mm_queue *q)
{
	mm_hop_timer(&q->st);
	q->held_at = 0;
	qm->env.timer_cancel(qm->env.ctx, q->num);
	if (q == qm->reroute) {
		/* the operator's word: what waited for a table goes now */
		for (struct mm_job *j = q->held; j; j = j->next)
			j->back_ok = true;
		qm->env.timer_cancel(qm->env.ctx, MM_QM_TIMER_BACK);
		mm_queue_release_held(q);
		qm_reroute_drain(qm);
		return;
	}
	mm_queue_release_held(q);
	q->frozen = false;
	if (q == qm->unreachable) {
		/* try a route again now */
		struct mm_job *all = mm_queue_take_all(q), *j;
		while ((j = all) != NULL) {
			all = j->next;
			qm_reroute_job(qm, q, j);
		}
		qm_reroute_drain(qm);
		return;
	}
	qm_kick(qm, q);
}

void mm_qm_freeze(struct mm_qm *qm, struct mm_queue *q)
{
	(void)qm;
	q->frozen = true;
}

void mm_qm_thaw(struct mm_qm *qm, struct mm_queue *q)
{
	q->frozen = false;
	/* what the table moved elsewhere while the queue was held goes now */
	reroute_queue(qm, q);
	qm_reroute_drain(qm);
	qm_kick(qm, q);
}

static void count(uint32_t *n, struct mm_qmsg *m, uint64_t pass)
{
	if (m->counted != pass) {
		m->counted = pass;
		(*n)++;
	}
}

uint32_t mm_qm_queue_messages(struct mm_qm *qm, const struct mm_queue *q)
{
	uint64_t pass = ++qm->count_pass;
	uint32_t n = 0;
	for (const struct mm_job *j = q->head; j; j = j->next)
		count(&n, j->msg, pass);
	for (const struct mm_job *j = q->held; j; j = j->next)
		count(&n, j->msg, pass);
	for (const struct mm_job *j = q->busy; j; j = j->next)
		count(&n, j->msg, pass);
	return n;
}

int64_t mm_qm_queue_oldest(const struct mm_queue *q)
{
	int64_t oldest = 0;
	const struct mm_job *lists[3] = {q->head, q->held, q->busy};
	for (int l = 0; l < 3; l++)
		for (const struct mm_job *j = lists[l]; j; j = j->next)
			if (oldest == 0 || j->msg->arrival < oldest)
				oldest = j->msg->arrival;
	return oldest;
}

uint32_t mm_qm_committing(const struct mm_qm *qm, uint32_t *rcpts)
{
	/* messages a client sent: not the node's own DSNs or compaction */
	uint32_t n = 0, r = 0;
	for (const struct mm_commit *c = qm->commits; c; c = c->next)
		if (c->owner != NULL) {
			n++;
			r += c->msg->nrcpt;
		}
	if (rcpts)
		*rcpts = r;
	return n;
}
