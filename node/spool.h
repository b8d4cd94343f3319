/* The durable queue on disk (DESIGN §6): append-only segment files under
 * SPOOL/queue/, one record per accepted message and one per finished
 * recipient, each framed with its length and a CRC-32C.
 *
 * Group commit: the event loop appends records with write(2); a syncer
 * thread runs fdatasync(2) and reports, through an eventfd, how far the log
 * is durable. Every message whose record ends at or before that point may
 * be answered 250. One fdatasync covers every message appended while the
 * previous one ran, so under load the cost of durability is shared; with one
 * client it is exactly one fdatasync per message, as before.
 *
 * Recovery reads every segment in order. A record that is cut short or
 * fails its CRC at the end of the last segment is a torn tail (it was never
 * acknowledged) and is cut off. A bad record anywhere else (a segment that
 * is not the last one is always whole: it was made durable before the next
 * one was created) is damage: the segment is moved to SPOOL/queue/quarantine/
 * as it is, the records before the bad one are recovered, and the log says
 * where. A segment that cannot be read fails the start; nothing is dropped.
 * Recipients with a "done" record are not delivered again; everything else
 * is.
 * Delivery is at least once: a crash between a delivery and its done record
 * repeats that delivery.
 *
 * A segment is removed when it and every older segment hold no pending
 * message (done records in a segment may refer to older ones). So that a
 * message waiting for days does not keep every later segment on disk, its
 * owner moves the messages of an old segment into the current one
 * (mm_spool_oldest, a new MSG record with the done flags, mm_spool_sync_now,
 * then mm_spool_release of the old): recovery keeps the latest copy. */
#ifndef MM_SPOOL_H
#define MM_SPOOL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "spool_ops.h"

#define MM_SPOOL_SEGMENT_MAX (64u << 20)

struct mm_seg {
	uint32_t seq;
	int fd;
	uint64_t size;
	uint32_t live;      /* messages with pending recipients */
	int64_t created_ms; /* monotonic: when made, or found at recovery */
};

struct mm_spool {
	/* tests only, set after mm_spool_open: segments roll at this size
	 * instead of MM_SPOOL_SEGMENT_MAX (0), and the syncer pauses this long
	 * between taking its descriptor and fdatasync (0) */
	uint64_t seg_max;
	unsigned syncer_pause_us;
	char *dir; /* SPOOL/queue */
	int dirfd; /* of SPOOL/queue, for fsync after create/unlink */
	size_t nsegs, capsegs;
	struct mm_seg *segs; /* oldest first; the last is being written */
	uint64_t lsn;        /* bytes appended since open, all segments */
	uint64_t next_id;
	uint8_t id_salt; /* set by the owner: keeps ids of different servers apart */
	/* syncer thread */
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_mutex_t sync_mu; /* held around every fdatasync of a segment */
	pthread_cond_t cv;
	int sync_fd;      /* the segment being written (the syncer syncs a dup of it) */
	uint64_t want;    /* lsn asked to be durable */
	uint64_t durable; /* lsn known durable */
	int sync_err;     /* errno of a failed fdatasync; sticky */
	bool stop, running;
	int event_fd;    /* readable when durable advanced */
	char what[4600]; /* why mm_spool_open failed, when it names a file */
};

typedef void (*mm_spool_recover_fn)(void *ctx, const struct mm_spool_msg *m);

/* Open (creating) the spool, replay it through cb, start the syncer.
 * Returns 0 or an errno value; *what names the step that failed (and the
 * file, when one could not be read; valid until mm_spool_close). */
int mm_spool_open(struct mm_spool *sp, const char *spool_dir, mm_spool_recover_fn cb, void *ctx,
                  const char **what);
void mm_spool_close(struct mm_spool *sp);

/* A fresh message id: unique across restarts (milliseconds << 16 | salt << 8
 * | n), and apart from other servers' ids made in the same millisecond. */
uint64_t mm_spool_new_id(struct mm_spool *sp, uint64_t now_ms);

/* Append a message record; body is given as pieces. On success *lsn is
 * the position to wait for and m->body-like location is stored in *body.
 * On failure nothing of the record stays in the file. */
int mm_spool_put(struct mm_spool *sp, const struct mm_spool_msg *m, const struct iovec *body,
                 int nbody, struct mm_spool_loc *loc, uint64_t *lsn);
/* Recipient idx of message id is finished (delivered, or a DSN was made). */
int mm_spool_done(struct mm_spool *sp, uint64_t id, uint32_t idx);
/* Ask the syncer to make everything up to lsn durable. */
void mm_spool_sync(struct mm_spool *sp, uint64_t lsn);
/* After event_fd fired: how far the log is durable, or 0 and *err set. */
uint64_t mm_spool_durable(struct mm_spool *sp, int *err);

/* fdatasync of the segment being written, now, in the caller's thread. */
int mm_spool_sync_now(struct mm_spool *sp);
/* The oldest segment, not the current one, that still holds messages and
 * was made at least older_than_ms ago; NULL when none. */
const struct mm_seg *mm_spool_oldest(const struct mm_spool *sp, int64_t older_than_ms);

/* Read a body back. Returns 0 or an errno value. */
int mm_spool_read(const struct mm_spool *sp, const struct mm_spool_loc *loc, char *out);
/* A message of segment seg needs it no more (it was counted once by
 * mm_spool_put or by recovery). Drops dead segments. */
void mm_spool_release(struct mm_spool *sp, uint32_t seg);

#endif
