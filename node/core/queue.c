#include "queue.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"

const char *mm_queue_state_name(enum mm_queue_state s)
{
	static const char *names[] = {"Ready", "Active", "Retry", "Frozen"};
	return names[s];
}

void mm_queues_init(struct mm_queues *qs)
{
	*qs = (struct mm_queues){0};
	mm_strmap_init(&qs->by_name);
}

static void free_list(struct mm_job *j)
{
	while (j != NULL) {
		struct mm_job *next = j->next;
		mm_job_free(j);
		j = next;
	}
}

void mm_queues_free(struct mm_queues *qs)
{
	for (size_t i = 0; i < qs->n; i++) {
		struct mm_queue *q = qs->q[i];
		free_list(q->head);
		free_list(q->held);
		free(q->name);
		free(q->target);
		free(q->last_error);
		free(q);
	}
	free(qs->q);
	mm_strmap_free(&qs->by_name);
}

struct mm_queue *mm_queue_find(struct mm_queues *qs, const char *name)
{
	uint32_t i;
	return mm_strmap_get(&qs->by_name, name, &i) ? qs->q[i] : NULL;
}

struct mm_queue *mm_queue_get(struct mm_queues *qs, enum mm_queue_kind kind, const char *name,
                              const char *target, int hop)
{
	struct mm_queue *q = mm_queue_find(qs, name);
	if (q != NULL)
		return q;
	q = mm_xcalloc(1, sizeof(*q));
	q->name = mm_xstrdup(name);
	q->kind = kind;
	q->target = target ? mm_xstrdup(target) : NULL;
	q->hop = hop;
	mm_grow(&qs->q, &qs->cap, qs->n + 1, sizeof(*qs->q));
	qs->q[qs->n] = q;
	mm_strmap_put(&qs->by_name, q->name, (uint32_t)qs->n++);
	return q;
}

struct mm_job *mm_job_new(struct mm_qmsg *m)
{
	struct mm_job *j = mm_xcalloc(1, sizeof(*j));
	j->msg = m;
	return j;
}

void mm_job_add(struct mm_job *j, uint32_t idx)
{
	j->idx = mm_xrealloc(j->idx, j->n + 1, sizeof(*j->idx));
	j->idx[j->n++] = idx;
}

void mm_job_free(struct mm_job *j)
{
	if (j) {
		free(j->idx);
		free(j);
	}
}

void mm_queue_push(struct mm_queue *q, struct mm_job *j)
{
	j->next = NULL;
	if (q->tail)
		q->tail->next = j;
	else
		q->head = j;
	q->tail = j;
	q->njobs++;
	q->nrcpt += j->n;
}

void mm_queue_push_front(struct mm_queue *q, struct mm_job *j)
{
	j->next = q->head;
	q->head = j;
	if (q->tail == NULL)
		q->tail = j;
	q->njobs++;
	q->nrcpt += j->n;
}

struct mm_job *mm_queue_pop(struct mm_queue *q)
{
	struct mm_job *j = q->head;
	if (j == NULL)
		return NULL;
	q->head = j->next;
	if (q->head == NULL)
		q->tail = NULL;
	j->next = NULL;
	q->njobs--;
	q->nrcpt -= j->n;
	return j;
}

void mm_queue_hold(struct mm_queue *q, struct mm_job *j)
{
	j->next = NULL;
	if (q->held_tail)
		q->held_tail->next = j;
	else
		q->held = j;
	q->held_tail = j;
	q->nheld++;
	q->nrcpt += j->n;
}

void mm_queue_release_held(struct mm_queue *q)
{
	if (q->held == NULL)
		return;
	q->held_tail->next = q->head;
	q->head = q->held;
	if (q->tail == NULL)
		q->tail = q->held_tail;
	q->njobs += q->nheld;
	q->held = q->held_tail = NULL;
	q->nheld = 0;
}

enum mm_queue_state mm_queue_state(const struct mm_queue *q, int64_t now_ms)
{
	if (q->frozen)
		return MM_QS_FROZEN;
	if (q->active > 0)
		return MM_QS_ACTIVE;
	if (!mm_hop_may_try(&q->st, now_ms))
		return MM_QS_RETRY;
	return MM_QS_READY;
}

struct mm_qmsg *mm_qmsg_from_spool(const struct mm_spool_msg *sm)
{
	struct mm_qmsg *m = mm_xcalloc(1, sizeof(*m));
	m->id = sm->id;
	snprintf(m->idhex, sizeof(m->idhex), "%016llx", (unsigned long long)m->id);
	m->arrival = sm->arrival;
	m->sender = mm_xstrdup(sm->sender ? sm->sender : "");
	m->envid = mm_xstrdup(sm->envid ? sm->envid : "");
	m->client = mm_xstrdup(sm->client ? sm->client : "");
	m->ret = sm->ret;
	m->flags = sm->flags;
	m->body = sm->body;
	m->nrcpt = sm->nrcpt;
	m->rcpt = mm_xcalloc(sm->nrcpt, sizeof(*m->rcpt));
	for (uint32_t i = 0; i < sm->nrcpt; i++) {
		m->rcpt[i].addr = mm_xstrdup(sm->rcpt[i].addr);
		m->rcpt[i].orcpt = mm_xstrdup(sm->rcpt[i].orcpt ? sm->rcpt[i].orcpt : "");
		m->rcpt[i].notify = sm->rcpt[i].notify;
		m->rcpt[i].done = sm->done && sm->done[i];
		if (!m->rcpt[i].done)
			m->pending++;
	}
	return m;
}

void mm_qmsg_free(struct mm_qmsg *m)
{
	if (m == NULL)
		return;
	for (uint32_t i = 0; i < m->nrcpt; i++) {
		free(m->rcpt[i].addr);
		free(m->rcpt[i].orcpt);
		free(m->rcpt[i].last_error);
	}
	free(m->rcpt);
	free(m->sender);
	free(m->envid);
	free(m->client);
	free(m);
}
