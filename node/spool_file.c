/* The file spool (spool.c) behind the node core's spool ops. */
#include "node.h"

static int put(void *sp, const struct mm_spool_msg *m, const struct iovec *body, int nbody,
               struct mm_spool_loc *loc, uint64_t *lsn)
{
	return mm_spool_put(sp, m, body, nbody, loc, lsn);
}

static int done(void *sp, uint64_t id, uint32_t idx)
{
	return mm_spool_done(sp, id, idx);
}

static void sync_to(void *sp, uint64_t lsn)
{
	mm_spool_sync(sp, lsn);
}

static int read_body(void *sp, const struct mm_spool_loc *loc, char *out)
{
	return mm_spool_read(sp, loc, out);
}

static void release(void *sp, uint32_t seg)
{
	mm_spool_release(sp, seg);
}

static uint64_t new_id(void *sp, int64_t wall_ms)
{
	return mm_spool_new_id(sp, (uint64_t)wall_ms);
}

static bool oldest(void *sp, int64_t older_than_ms, uint32_t *seg)
{
	const struct mm_seg *s = mm_spool_oldest(sp, older_than_ms);
	if (s)
		*seg = s->seq;
	return s != NULL;
}

struct mm_spool_ops node_spool_ops(void)
{
	return (struct mm_spool_ops){.put = put,
	                             .done = done,
	                             .sync = sync_to,
	                             .read = read_body,
	                             .release = release,
	                             .new_id = new_id,
	                             .oldest = oldest};
}
