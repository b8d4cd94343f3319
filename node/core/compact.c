/* Spool compaction: the messages still queued from the oldest segment
 * (older than compact_after_ms) are written again into the current one,
 * and only once those copies are durable do they replace the old ones and
 * let go of the old segment, so a message that waits for days does not keep
 * every later segment on disk. The copies go through the commit pipeline,
 * so the loop never waits for their fdatasync.
 *
 * The counts of the segments stay right on every path: a copy counts in
 * its new segment from the moment it is written; when its commit resolves
 * it takes over from the old copy (which lets go of the old segment), or,
 * if the message finished meanwhile (the old copy was released then) or
 * the sync failed, the copy lets go of its own segment. */
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "qmgr-internal.h"

/* Writes a copy of m, with its done flags; 0 or an errno. */
static int relocate(struct mm_qm *qm, const struct mm_qmsg *m, struct mm_spool_loc *loc,
                    uint64_t *lsn)
{
	char *body = mm_xmalloc((size_t)m->body.len + 1);
	struct mm_spool_rcpt *sr = mm_xcalloc(m->nrcpt, sizeof(*sr));
	uint8_t *done = mm_xcalloc(m->nrcpt, 1);
	for (uint32_t i = 0; i < m->nrcpt; i++) {
		sr[i] =
		    (struct mm_spool_rcpt){m->rcpt[i].addr, m->rcpt[i].orcpt, m->rcpt[i].notify};
		done[i] = m->rcpt[i].done;
	}
	struct mm_spool_msg sm = {.id = m->id,
	                          .arrival = m->arrival,
	                          .ret = m->ret,
	                          .flags = m->flags,
	                          .sender = m->sender,
	                          .envid = m->envid,
	                          .helo = "",
	                          .client = m->client,
	                          .nrcpt = m->nrcpt,
	                          .rcpt = sr,
	                          .done = done};
	int e = qm->env.spool.read(qm->env.spool_ctx, &m->body, body);
	if (e == 0) {
		struct iovec iov = {body, m->body.len};
		e = qm->env.spool.put(qm->env.spool_ctx, &sm, &iov, 1, loc, lsn);
	}
	free(done);
	free(sr);
	free(body);
	return e;
}

void qm_compact(struct mm_qm *qm)
{
	uint32_t seg;
	if (qm->compacting ||
	    !qm->env.spool.oldest(qm->env.spool_ctx, qm->conf.compact_after_ms, &seg))
		return;
	size_t n = 0, cap = 0, want = 0;
	struct mm_reloc *r = NULL;
	uint64_t lsn = 0;
	int err = 0;
	for (size_t i = 0; i < qm->msgs.cap && err == 0; i++) {
		const struct mm_qmsg *m = qm->msgs.slots[i].value;
		if (m == NULL || m->body.seg != seg)
			continue;
		want++;
		mm_grow(&r, &cap, n + 1, sizeof(*r));
		r[n].id = m->id;
		err = relocate(qm, m, &r[n].loc, &lsn);
		if (err == 0)
			n++;
	}
	if (err)
		qm_log(qm,
		       "spool compaction of segment %08x stopped after %zu of %zu message(s): %s",
		       seg, n, want, strerror(err));
	if (n == 0) {
		free(r);
		return;
	}
	qm->compacting = true;
	qm->compact_seg = seg;
	qm_commit_relocations(qm, lsn, r, n);
}

void qm_relocated(struct mm_qm *qm, struct mm_reloc *r, size_t n, bool durable)
{
	size_t moved = 0;
	for (size_t i = 0; i < n; i++) {
		struct mm_qmsg *m = durable ? mm_u64map_get(&qm->msgs, r[i].id) : NULL;
		if (m == NULL) {
			qm->env.spool.release(qm->env.spool_ctx, r[i].loc.seg);
			continue;
		}
		uint32_t old = m->body.seg;
		m->body = r[i].loc;
		qm->env.spool.release(qm->env.spool_ctx, old);
		moved++;
	}
	if (durable)
		qm_log(qm,
		       "spool: %zu queued message(s) moved out of segment %08x (%zu finished "
		       "meanwhile)",
		       moved, qm->compact_seg, n - moved);
	qm->compacting = false;
	free(r);
}
