/* The durable queue as the node core sees it (DESIGN §1, §6): a log of
 * message records and "recipient done" records behind a small ops struct,
 * so that one queue manager runs over the file backend in meshnode
 * (node/spool.c) and over the RAM backend (spool_ram.c) in the unit tests
 * and the simulator.
 *
 * The contract of every backend: put and done append; a record is durable
 * once the backend has reported, through the driver, a durable position at
 * or past the record's lsn (mm_qm_durable); nothing is promised before. A
 * failed put leaves nothing of its record behind. */
#ifndef MM_SPOOL_OPS_H
#define MM_SPOOL_OPS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

struct mm_spool_loc {
	uint32_t seg;
	uint64_t off; /* of the body in the segment */
	uint32_t len;
};

struct mm_spool_rcpt {
	const char *addr, *orcpt;
	uint8_t notify;
};

struct mm_spool_msg {
	uint64_t id;
	int64_t arrival; /* unix seconds */
	uint8_t ret;     /* enum mm_smtp_ret */
	uint8_t flags;   /* MM_SPOOL_8BIT */
	const char *sender, *envid, *helo, *client;
	uint32_t nrcpt;
	const struct mm_spool_rcpt *rcpt;
	/* per recipient: 1 when finished (written by a relocation, read by
	 * recovery); NULL: none finished */
	const uint8_t *done;
	struct mm_spool_loc body;
};

#define MM_SPOOL_8BIT 0x1

struct mm_spool_ops {
	/* Append a message record; the body comes in pieces. On success *loc
	 * says where the body is and *lsn how far the log must be durable
	 * before the message may be promised. Returns 0 or an errno value
	 * (ENOSPC, EFBIG, EIO, ...). */
	int (*put)(void *sp, const struct mm_spool_msg *m, const struct iovec *body, int nbody,
	           struct mm_spool_loc *loc, uint64_t *lsn);
	/* Recipient idx of message id is finished. Returns 0 or an errno. */
	int (*done)(void *sp, uint64_t id, uint32_t idx);
	/* Ask for everything up to lsn to become durable; the answer comes
	 * later as an event, never from inside this call. */
	void (*sync)(void *sp, uint64_t lsn);
	/* Read a body back into out (loc->len bytes). 0 or an errno. */
	int (*read)(void *sp, const struct mm_spool_loc *loc, char *out);
	/* A message of segment seg needs it no more. */
	void (*release)(void *sp, uint32_t seg);
	/* A fresh message id, unique across restarts, from the wall clock. */
	uint64_t (*new_id)(void *sp, int64_t wall_ms);
	/* Compaction: the oldest segment that is not being written, still
	 * holds messages and is at least older_than_ms old. */
	bool (*oldest)(void *sp, int64_t older_than_ms, uint32_t *seg);
};

#endif
