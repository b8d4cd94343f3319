/* The commit pipeline (DESIGN §6: 250 only once on disk): a message is
 * appended to the spool, the spool is asked to make it durable, and only
 * when the driver reports the durable position past the message's record
 * does the message resolve -- its owner (a session) may answer 250, and the
 * message is routed. Commits resolve in log order, so one fdatasync that
 * covers many appended messages resolves them all (group commit).
 *
 * The same pipeline carries what the node writes itself: DSNs, resolved
 * into routing with no owner, and compaction's relocated copies, which
 * replace the old copies only once durable. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "qmgr-internal.h"
#include "trace.h"

static void push(struct mm_qm *qm, struct mm_commit *c)
{
	if (qm->commits_tail)
		qm->commits_tail->next = c;
	else
		qm->commits = c;
	qm->commits_tail = c;
	qm->ncommits++;
	qm->env.spool.sync(qm->env.spool_ctx, c->lsn);
}

static void resolve_owner(struct mm_qm *qm, void *owner, const char *idhex, int err)
{
	if (owner == NULL)
		return;
	mm_grow(&qm->resolved, &qm->capresolved, qm->nresolved + 1, sizeof(*qm->resolved));
	struct mm_qm_resolved *r = &qm->resolved[qm->nresolved++];
	*r = (struct mm_qm_resolved){.owner = owner, .err = err};
	memcpy(r->idhex, idhex, sizeof(r->idhex));
}

int mm_qm_submit(struct mm_qm *qm, const struct mm_spool_msg *sm, const struct iovec *body,
                 int nbody, void *owner)
{
	struct mm_spool_loc loc;
	uint64_t lsn;
	int e = qm->env.spool.put(qm->env.spool_ctx, sm, body, nbody, &loc, &lsn);
	if (e != 0)
		return e;
	struct mm_qmsg *m = mm_qmsg_from_spool(sm);
	m->body = loc;
	char **via;
	m->nvia = (uint32_t)mm_trace_read(body, nbody, &via);
	m->via = via;
	m->message_id = mm_trace_message_id(body, nbody);
	struct mm_commit *c = mm_xcalloc(1, sizeof(*c));
	*c = (struct mm_commit){.lsn = lsn, .owner = owner, .msg = m};
	push(qm, c);
	return 0;
}

void qm_commit_relocations(struct mm_qm *qm, uint64_t lsn, struct mm_reloc *r, size_t n)
{
	struct mm_commit *c = mm_xcalloc(1, sizeof(*c));
	*c = (struct mm_commit){.lsn = lsn, .reloc = r, .nreloc = n};
	push(qm, c);
}

static struct mm_commit *pop(struct mm_qm *qm)
{
	struct mm_commit *c = qm->commits;
	qm->commits = c->next;
	if (qm->commits == NULL)
		qm->commits_tail = NULL;
	qm->ncommits--;
	return c;
}

void mm_qm_durable(struct mm_qm *qm, uint64_t lsn)
{
	while (qm->commits && qm->commits->lsn <= lsn) {
		struct mm_commit *c = pop(qm);
		if (c->reloc) {
			qm_relocated(qm, c->reloc, c->nreloc, true);
			free(c);
			continue;
		}
		struct mm_qmsg *m = c->msg;
		char rcpts[16], size[24];
		snprintf(rcpts, sizeof(rcpts), "%u", m->nrcpt);
		snprintf(size, sizeof(size), "%u", m->body.len);
		char from[600];
		if (m->message_id)
			qm_track(qm, "RECEIVED", m, "from", qm_addr(from, m->sender), "client",
			         m->client, "rcpts", rcpts, "size", size, "message_id",
			         m->message_id, NULL);
		else
			qm_track(qm, "RECEIVED", m, "from", qm_addr(from, m->sender), "client",
			         m->client, "rcpts", rcpts, "size", size, NULL);
		resolve_owner(qm, c->owner, m->idhex, 0);
		free(c);
		qm_adopt(qm, m);
		uint32_t *all = mm_xcalloc(m->nrcpt, sizeof(*all));
		for (uint32_t i = 0; i < m->nrcpt; i++)
			all[i] = i;
		qm_place(qm, m, all, m->nrcpt, NULL, false, false);
		free(all);
	}
}

void mm_qm_sync_failed(struct mm_qm *qm, int err)
{
	/* after a failed fdatasync the state of the file is unknown (the
	 * page cache may have dropped the data): promise nothing. What is on
	 * disk after all is found again at the next start. */
	while (qm->commits) {
		struct mm_commit *c = pop(qm);
		if (c->reloc) {
			qm_relocated(qm, c->reloc, c->nreloc, false);
		} else {
			resolve_owner(qm, c->owner, c->msg->idhex, err);
			qm->env.spool.release(qm->env.spool_ctx, c->msg->body.seg);
			mm_qmsg_free(c->msg);
		}
		free(c);
	}
}

bool mm_qm_next_resolved(struct mm_qm *qm, struct mm_qm_resolved *out)
{
	while (qm->resolved_at < qm->nresolved) {
		*out = qm->resolved[qm->resolved_at++];
		if (out->owner != NULL) /* NULL: disowned */
			return true;
	}
	qm->resolved_at = qm->nresolved = 0;
	return false;
}

void mm_qm_disown(struct mm_qm *qm, void *owner)
{
	for (struct mm_commit *c = qm->commits; c; c = c->next)
		if (c->owner == owner)
			c->owner = NULL;
	for (size_t i = qm->resolved_at; i < qm->nresolved; i++)
		if (qm->resolved[i].owner == owner)
			qm->resolved[i].owner = NULL;
}

void qm_commits_free(struct mm_qm *qm)
{
	while (qm->commits) {
		struct mm_commit *c = pop(qm);
		if (c->reloc)
			free(c->reloc);
		else
			mm_qmsg_free(c->msg);
		free(c);
	}
}
