/* A map from 64-bit keys to pointers: open addressing, linear probing,
 * deletion by backward shift (no tombstones). The queue manager keeps its
 * messages by id and its sessions by number in it. */
#ifndef MM_U64MAP_H
#define MM_U64MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mm_u64map {
	size_t cap, used; /* cap a power of two, 0 when empty */
	struct mm_u64slot {
		uint64_t key;
		void *value; /* NULL: free */
	} * slots;
};

void mm_u64map_free(struct mm_u64map *m);
/* Insert or overwrite; value must not be NULL. */
void mm_u64map_put(struct mm_u64map *m, uint64_t key, void *value);
void *mm_u64map_get(const struct mm_u64map *m, uint64_t key);
/* Remove and return the value, or NULL. */
void *mm_u64map_del(struct mm_u64map *m, uint64_t key);

#endif
