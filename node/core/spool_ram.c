#include "spool_ram.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "u64map.h"

struct mm_spool_ram_rec {
	uint64_t lsn; /* the log position after this record */
	uint64_t id;
	int64_t done_idx; /* -1: a message record */
	/* a message record: an owned copy */
	struct mm_spool_msg m;
	struct mm_spool_rcpt *rcpt;
	uint8_t *done;
};

#define REC_COST 64 /* log bytes a record stands for, besides its body */

void mm_spool_ram_init(struct mm_spool_ram *sp)
{
	*sp = (struct mm_spool_ram){.seg = 1};
}

static void rec_free(struct mm_spool_ram_rec *r)
{
	if (r->done_idx < 0) {
		free((char *)r->m.sender);
		free((char *)r->m.envid);
		free((char *)r->m.helo);
		free((char *)r->m.client);
		for (uint32_t i = 0; i < r->m.nrcpt; i++) {
			free((char *)r->rcpt[i].addr);
			free((char *)r->rcpt[i].orcpt);
		}
		free(r->rcpt);
		free(r->done);
	}
	free(r);
}

void mm_spool_ram_free(struct mm_spool_ram *sp)
{
	for (size_t i = 0; i < sp->nrecs; i++)
		rec_free(sp->recs[i]);
	free(sp->recs);
	free(sp->live);
	mm_buf_free(&sp->bodies);
	*sp = (struct mm_spool_ram){0};
}

static char *dup(const char *s)
{
	return mm_xstrdup(s ? s : "");
}

static void add_rec(struct mm_spool_ram *sp, struct mm_spool_ram_rec *r, size_t bytes)
{
	sp->lsn += REC_COST + bytes;
	r->lsn = sp->lsn;
	mm_grow(&sp->recs, &sp->caprecs, sp->nrecs + 1, sizeof(*sp->recs));
	sp->recs[sp->nrecs++] = r;
}

/* live[seg] exists, zero when new */
static void live_grow(struct mm_spool_ram *sp, uint32_t seg)
{
	size_t old = sp->caplive;
	mm_grow(&sp->live, &sp->caplive, (size_t)seg + 1, sizeof(*sp->live));
	memset(sp->live + old, 0, (sp->caplive - old) * sizeof(*sp->live));
}

static int ram_put(void *ctx, const struct mm_spool_msg *m, const struct iovec *body, int nbody,
                   struct mm_spool_loc *loc, uint64_t *lsn)
{
	struct mm_spool_ram *sp = ctx;
	if (sp->fail_put) {
		int e = sp->fail_put;
		sp->fail_put = 0;
		return e;
	}
	struct mm_spool_ram_rec *r = mm_xcalloc(1, sizeof(*r));
	r->id = m->id;
	r->done_idx = -1;
	r->m = *m;
	r->m.sender = dup(m->sender);
	r->m.envid = dup(m->envid);
	r->m.helo = dup(m->helo);
	r->m.client = dup(m->client);
	r->rcpt = mm_xcalloc(m->nrcpt, sizeof(*r->rcpt));
	r->done = mm_xcalloc(m->nrcpt, 1);
	for (uint32_t i = 0; i < m->nrcpt; i++) {
		r->rcpt[i] = (struct mm_spool_rcpt){dup(m->rcpt[i].addr), dup(m->rcpt[i].orcpt),
		                                    m->rcpt[i].notify};
		r->done[i] = m->done ? m->done[i] : 0;
	}
	r->m.rcpt = r->rcpt;
	r->m.done = r->done;
	size_t len = 0;
	uint64_t off = sp->bodies.len;
	for (int i = 0; i < nbody; i++) {
		mm_buf_add(&sp->bodies, body[i].iov_base, body[i].iov_len);
		len += body[i].iov_len;
	}
	r->m.body = (struct mm_spool_loc){sp->seg, off, (uint32_t)len};
	*loc = r->m.body;
	add_rec(sp, r, len);
	*lsn = sp->lsn;
	live_grow(sp, sp->seg);
	sp->live[sp->seg]++;
	sp->puts++;
	return 0;
}

static int ram_done(void *ctx, uint64_t id, uint32_t idx)
{
	struct mm_spool_ram *sp = ctx;
	struct mm_spool_ram_rec *r = mm_xcalloc(1, sizeof(*r));
	r->id = id;
	r->done_idx = idx;
	add_rec(sp, r, 0);
	sp->dones++;
	return 0;
}

static void ram_sync(void *ctx, uint64_t lsn)
{
	struct mm_spool_ram *sp = ctx;
	if (lsn > sp->want)
		sp->want = lsn;
	sp->syncs++;
}

static int ram_read(void *ctx, const struct mm_spool_loc *loc, char *out)
{
	struct mm_spool_ram *sp = ctx;
	if (loc->off + loc->len > sp->bodies.len)
		return EIO;
	memcpy(out, sp->bodies.p + loc->off, loc->len);
	return 0;
}

static void ram_release(void *ctx, uint32_t seg)
{
	struct mm_spool_ram *sp = ctx;
	if (seg < sp->caplive && sp->live[seg] > 0)
		sp->live[seg]--;
	else
		sp->bad_releases++; /* the file spool would drop a live segment */
}

static uint64_t ram_new_id(void *ctx, int64_t wall_ms)
{
	struct mm_spool_ram *sp = ctx;
	uint64_t id = (uint64_t)wall_ms << 16;
	if (id <= sp->last_id)
		id = sp->last_id + 1;
	sp->last_id = id;
	return id;
}

static bool ram_oldest(void *ctx, int64_t older_than_ms, uint32_t *seg)
{
	struct mm_spool_ram *sp = ctx;
	(void)older_than_ms; /* a test moves sp->seg on to age a segment */
	for (uint32_t s = 1; s < sp->seg && s < sp->caplive; s++)
		if (sp->live[s] > 0) {
			*seg = s;
			return true;
		}
	return false;
}

struct mm_spool_ops mm_spool_ram_ops(void)
{
	return (struct mm_spool_ops){.put = ram_put,
	                             .done = ram_done,
	                             .sync = ram_sync,
	                             .read = ram_read,
	                             .release = ram_release,
	                             .new_id = ram_new_id,
	                             .oldest = ram_oldest};
}

uint64_t mm_spool_ram_flush(struct mm_spool_ram *sp)
{
	/* as an fdatasync: everything written so far, asked for or not */
	sp->durable = sp->lsn;
	return sp->durable;
}

void mm_spool_ram_crash(struct mm_spool_ram *sp)
{
	size_t keep = 0;
	for (size_t i = 0; i < sp->nrecs; i++) {
		if (sp->recs[i]->lsn <= sp->durable)
			sp->recs[keep++] = sp->recs[i];
		else
			rec_free(sp->recs[i]);
	}
	sp->nrecs = keep;
	sp->lsn = sp->want = sp->durable;
	memset(sp->live, 0, sp->caplive * sizeof(*sp->live));
}

void mm_spool_ram_replay(struct mm_spool_ram *sp,
                         void (*cb)(void *ctx, const struct mm_spool_msg *m), void *ctx)
{
	/* the latest copy of each message, with every done record after it */
	struct mm_u64map latest = {0};
	for (size_t i = 0; i < sp->nrecs; i++) {
		struct mm_spool_ram_rec *r = sp->recs[i];
		if (r->done_idx < 0) {
			mm_u64map_put(&latest, r->id, r);
			continue;
		}
		struct mm_spool_ram_rec *m = mm_u64map_get(&latest, r->id);
		if (m && r->done_idx < (int64_t)m->m.nrcpt)
			m->done[r->done_idx] = 1;
	}
	for (size_t i = 0; i < sp->nrecs; i++) {
		struct mm_spool_ram_rec *r = sp->recs[i];
		if (r->done_idx >= 0 || mm_u64map_get(&latest, r->id) != r)
			continue;
		bool pending = false;
		for (uint32_t k = 0; k < r->m.nrcpt; k++)
			pending |= !r->done[k];
		if (!pending)
			continue;
		live_grow(sp, r->m.body.seg);
		sp->live[r->m.body.seg]++;
		if (r->id > sp->last_id)
			sp->last_id = r->id;
		cb(ctx, &r->m);
	}
	mm_u64map_free(&latest);
}
