#include "queue.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"

const char *mm_queue_kind_name(enum mm_queue_kind k)
{
	switch (k) {
	case MM_Q_PRESUBMIT: return "presubmit";
	case MM_Q_DIRECTORY: return "directory";
	case MM_Q_ROUTING: return "routing";
	case MM_Q_LOCAL: return "local";
	case MM_Q_LINK: return "link";
	case MM_Q_UNREACHABLE: return "unreachable";
	case MM_Q_REROUTE: return "reroute";
	}
	return "?";
}

const char *mm_queue_state_name(enum mm_queue_state s)
{
	switch (s) {
	case MM_QS_READY: return "Ready";
	case MM_QS_ACTIVE: return "Active";
	case MM_QS_RETRY: return "Retry";
	case MM_QS_FROZEN: return "Frozen";
	}
	return "?";
}

void mm_queues_init(struct mm_queues *qs)
{
	*qs = (struct mm_queues){.next_num = 1};
	mm_strmap_init(&qs->by_key);
}

static void free_list(struct mm_job *j)
{
	while (j != NULL) {
		struct mm_job *next = j->next;
		mm_job_free(j);
		j = next;
	}
}

static void queue_free(struct mm_queue *q)
{
	free_list(q->head);
	free_list(q->held);
	free_list(q->busy);
	for (uint32_t i = 0; i < q->mx.naddrs; i++)
		free(q->mx.addrs[i]);
	free(q->mx.addrs);
	free(q->name);
	free(q->key);
	free(q->server);
	free(q->vserver);
	free(q->connector);
	free(q->target);
	free(q->last_error);
	free(q);
}

void mm_queues_free(struct mm_queues *qs)
{
	for (size_t i = 0; i < qs->n; i++)
		queue_free(qs->q[i]);
	free(qs->q);
	mm_strmap_free(&qs->by_key);
	*qs = (struct mm_queues){0};
}

struct mm_queue *mm_queue_by_key(const struct mm_queues *qs, const char *key)
{
	uint32_t i;
	return mm_strmap_get(&qs->by_key, key, &i) ? qs->q[i] : NULL;
}

struct mm_queue *mm_queue_by_num(const struct mm_queues *qs, uint32_t num)
{
	/* queues are kept in creation order: numbers ascend */
	size_t lo = 0, hi = qs->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (qs->q[mid]->num < num)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < qs->n && qs->q[lo]->num == num ? qs->q[lo] : NULL;
}

struct mm_queue *mm_queue_add(struct mm_queues *qs, enum mm_queue_kind kind, const char *name,
                              const char *key)
{
	struct mm_queue *q = mm_xcalloc(1, sizeof(*q));
	q->num = qs->next_num++;
	snprintf(q->id, sizeof(q->id), "q%u", q->num);
	q->kind = kind;
	q->name = mm_xstrdup(name);
	q->key = mm_xstrdup(key);
	mm_grow(&qs->q, &qs->cap, qs->n + 1, sizeof(*qs->q));
	qs->q[qs->n] = q;
	mm_strmap_put(&qs->by_key, q->key, (uint32_t)qs->n++);
	return q;
}

void mm_queue_remove(struct mm_queues *qs, size_t i)
{
	queue_free(qs->q[i]);
	memmove(qs->q + i, qs->q + i + 1, (qs->n - i - 1) * sizeof(*qs->q));
	qs->n--;
	/* the map holds indices: make it again (removal is rare: idle
	 * queues, once a minute at most) */
	mm_strmap_clear(&qs->by_key);
	for (size_t k = 0; k < qs->n; k++)
		mm_strmap_put(&qs->by_key, qs->q[k]->key, (uint32_t)k);
}

struct mm_job *mm_job_new(struct mm_qmsg *m, uint64_t generation)
{
	struct mm_job *j = mm_xcalloc(1, sizeof(*j));
	j->msg = m;
	j->generation = generation;
	return j;
}

void mm_job_add(struct mm_job *j, uint32_t idx)
{
	mm_grow(&j->idx, &j->cap, (size_t)j->n + 1, sizeof(*j->idx));
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
	j->held = false;
	if (q->tail)
		q->tail->next = j;
	else
		q->head = j;
	q->tail = j;
	q->nready++;
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
	q->nready--;
	q->nrcpt -= j->n;
	return j;
}

void mm_queue_hold(struct mm_queue *q, struct mm_job *j)
{
	j->next = NULL;
	j->held = true;
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
	for (struct mm_job *j = q->held; j; j = j->next)
		j->held = false;
	q->held_tail->next = q->head;
	q->head = q->held;
	if (q->tail == NULL)
		q->tail = q->held_tail;
	q->nready += q->nheld;
	q->held = q->held_tail = NULL;
	q->nheld = 0;
}

void mm_queue_take_busy(struct mm_queue *q, struct mm_job *j)
{
	j->next = q->busy;
	q->busy = j;
	q->nbusy++;
	q->nrcpt += j->n;
}

void mm_queue_drop_busy(struct mm_queue *q, struct mm_job *j)
{
	for (struct mm_job **p = &q->busy; *p; p = &(*p)->next)
		if (*p == j) {
			*p = j->next;
			j->next = NULL;
			q->nbusy--;
			q->nrcpt -= j->n;
			return;
		}
}

struct mm_job *mm_queue_take_all(struct mm_queue *q)
{
	mm_queue_release_held(q);
	struct mm_job *all = q->head;
	q->head = q->tail = NULL;
	for (struct mm_job *j = all; j; j = j->next)
		q->nrcpt -= j->n;
	q->nready = 0;
	return all;
}

/* Unlinks the matching jobs of one list onto *out; returns the new tail. */
static struct mm_job *
extract_list(struct mm_queue *q, struct mm_job **head, struct mm_job **tail, uint32_t *count,
             struct mm_job ***out,
             bool (*moves)(void *, const struct mm_queue *, const struct mm_job *), void *ctx)
{
	struct mm_job *last = NULL;
	for (struct mm_job **p = head; *p;) {
		struct mm_job *j = *p;
		if (!moves(ctx, q, j)) {
			last = j;
			p = &j->next;
			continue;
		}
		*p = j->next;
		j->next = NULL;
		(*count)--;
		q->nrcpt -= j->n;
		**out = j;
		*out = &j->next;
	}
	*tail = last;
	return last;
}

struct mm_job *mm_queue_extract(struct mm_queue *q,
                                bool (*moves)(void *ctx, const struct mm_queue *q,
                                              const struct mm_job *j),
                                void *ctx)
{
	struct mm_job *taken = NULL, **out = &taken;
	extract_list(q, &q->head, &q->tail, &q->nready, &out, moves, ctx);
	extract_list(q, &q->held, &q->held_tail, &q->nheld, &out, moves, ctx);
	return taken;
}

bool mm_queue_empty(const struct mm_queue *q)
{
	return q->nready == 0 && q->nheld == 0 && q->nbusy == 0;
}

enum mm_queue_state mm_queue_state(const struct mm_queue *q, int64_t now_ms)
{
	if (q->frozen)
		return MM_QS_FROZEN;
	if (q->sessions > 0 || q->nbusy > 0)
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
	for (uint32_t i = 0; i < m->nvia; i++)
		free(m->via[i]);
	free(m->via);
	free(m->rcpt);
	free(m->sender);
	free(m->envid);
	free(m->client);
	free(m->message_id);
	free(m);
}
