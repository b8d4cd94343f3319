/* The table digest (DESIGN §3), kept up to date cheaply.
 *
 * The digest is SHA-256 over the packed LinkStateTable, which is the
 * concatenation of every entry's field header and packed bytes. The cache
 * keeps each entry's packed bytes (known by the entry's address and
 * version) and the hash state at every CHECKPOINT-th entry, so that after a
 * change only the changed entries are packed again and hashing resumes at
 * the checkpoint before the first change. The result is bit for bit
 * mm_table_digest's. Entries must change only with their version (as
 * table.c changes them) or be replaced by new objects. */
#ifndef MM_DIGEST_H
#define MM_DIGEST_H

#include <stddef.h>
#include <stdint.h>

#include "table.h"

struct mm_digest_cache {
	size_t n, cap;
	struct mm_digest_entry {
		const mm_entry *e;
		uint32_t incarnation, major, minor, user;
		uint8_t *bytes; /* field header + packed entry */
		size_t len;
	} * ent;
	size_t nck, capck;
	void **ck; /* EVP_MD_CTX * after entries [0, i * CHECKPOINT) */
	uint8_t digest[MM_DIGEST_LEN];
	int valid;
};

void mm_digest_cache_init(struct mm_digest_cache *c);
void mm_digest_cache_free(struct mm_digest_cache *c);
void mm_table_digest_cached(const struct mm_table *t, struct mm_digest_cache *c,
                            uint8_t out[MM_DIGEST_LEN]);

#endif
