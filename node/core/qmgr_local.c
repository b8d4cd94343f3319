/* "Local delivery": recipients whose home server is this one go into their
 * Maildir through the environment, a batch per turn of the loop so that a
 * burst of local mail never starves the sessions. The mailbox is the
 * directory's own spelling of the address, so ALICE@ and alice@ are one
 * mailbox. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "qmgr-internal.h"

static void deliver_job(struct mm_qm *qm, struct mm_job *j)
{
	struct mm_queue *q = qm->local;
	struct mm_qmsg *m = j->msg;
	char *body = mm_xmalloc((size_t)m->body.len + 1);
	int read_err = qm->env.spool.read(qm->env.spool_ctx, &m->body, body);
	struct mm_job *again = NULL;
	char why[300] = "";
	m->holds++;
	for (uint32_t i = 0; i < j->n; i++) {
		struct mm_qrcpt *r = &m->rcpt[j->idx[i]];
		const struct mm_recipient *who = NULL;
		char domain[256];
		const char *box = r->addr;
		char postmaster[300];
		switch (mm_directory_categorize(qm->dir, r->addr, &who, domain)) {
		case MM_CAT_HOME: box = who->mail; break;
		case MM_CAT_POSTMASTER:
			snprintf(postmaster, sizeof(postmaster), "postmaster@%s", domain);
			box = postmaster;
			break;
		default: break;
		}
		int e = read_err;
		if (e == 0) {
			struct mm_buf pre = {0};
			mm_buf_printf(&pre, "Return-Path: <%s>\r\nDelivered-To: %s\r\n", m->sender,
			              box);
			e = qm->env.deliver_local(qm->env.ctx, box, pre.p, pre.len, body,
			                          m->body.len);
			mm_buf_free(&pre);
			if (e == 0) {
				char to[600];
				qm_track(qm, "DELIVERED", m, "to", qm_addr(to, r->addr), "queue",
				         q->name, "mailbox", box, NULL);
				qm_rcpt_done(qm, m, j->idx[i]);
				continue;
			}
		}
		snprintf(why, sizeof(why), "4.3.0 local delivery failed: %s", strerror(e));
		if (again == NULL)
			again = mm_job_new(m, j->generation);
		mm_job_add(again, j->idx[i]);
	}
	free(body);
	mm_job_free(j);
	if (again)
		qm_defer(qm, q, again, why);
	m->holds--;
	qm_msg_release(qm, m);
}

void qm_local_run(struct mm_qm *qm)
{
	struct mm_queue *q = qm->local;
	for (uint32_t n = 0; n < qm->conf.local_batch && q->head && !q->frozen && !qm->stopping;
	     n++)
		deliver_job(qm, mm_queue_pop(q));
	if (q->head && !q->frozen && !qm->stopping)
		qm->env.timer_arm(qm->env.ctx, MM_QM_TIMER_LOCAL, qm_now(qm));
}
