/* The spool in memory: the queue manager's storage in the unit tests and
 * the simulator (spool_ops.h). It keeps what was put and marked done, and
 * how far the log is durable -- which moves only when its owner says so
 * (mm_spool_ram_flush), as a disk would move it with an fdatasync -- so a
 * test can cut the power (mm_spool_ram_crash) and recover exactly what a
 * durable spool would hold. Faults can be asked for: the next put fails
 * with an errno. */
#ifndef MM_SPOOL_RAM_H
#define MM_SPOOL_RAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "spool_ops.h"

struct mm_spool_ram_rec; /* one put or done */

struct mm_spool_ram {
	struct mm_buf bodies; /* every body, one after another: loc.off */
	struct mm_spool_ram_rec **recs;
	size_t nrecs, caprecs;
	uint64_t lsn, want, durable;
	uint64_t last_id;
	uint32_t seg;   /* the segment puts go to (a test may move it on) */
	uint32_t *live; /* per segment */
	size_t caplive;
	int fail_put; /* errno for the next put; 0: none */
	uint32_t puts, dones, syncs;
	uint32_t bad_releases; /* a release of a segment holding nothing: a bug */
};

void mm_spool_ram_init(struct mm_spool_ram *sp);
void mm_spool_ram_free(struct mm_spool_ram *sp);
struct mm_spool_ops mm_spool_ram_ops(void);
/* Everything written is durable now (an fdatasync); returns how far. */
uint64_t mm_spool_ram_flush(struct mm_spool_ram *sp);
/* The power goes: what was not durable is gone. */
void mm_spool_ram_crash(struct mm_spool_ram *sp);
/* Recovery: every message with a recipient not done, as the file spool's
 * replay gives them. */
void mm_spool_ram_replay(struct mm_spool_ram *sp,
                         void (*cb)(void *ctx, const struct mm_spool_msg *m), void *ctx);

#endif
