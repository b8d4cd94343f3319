/* A string-keyed open-addressing hash map to uint32_t values. Keys are not
 * copied: they must outlive the map (they point into the table or topology
 * that owns the map). Used for name lookups and the per-destination route
 * cache, where it is the whole cost of a cached lookup. */
#ifndef MM_STRMAP_H
#define MM_STRMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mm_strmap {
	size_t cap;  /* power of two, 0 when empty */
	size_t used; /* occupied slots */
	struct mm_strmap_slot {
		const char *key; /* NULL: free */
		uint64_t hash;
		uint32_t value;
	} * slots;
};

uint64_t mm_strhash(const char *s);

void mm_strmap_init(struct mm_strmap *m);
void mm_strmap_free(struct mm_strmap *m);
void mm_strmap_clear(struct mm_strmap *m);
/* Insert or overwrite. */
/* Make room for n keys in all, so that inserting them never rehashes. */
void mm_strmap_reserve(struct mm_strmap *m, size_t n);
void mm_strmap_put(struct mm_strmap *m, const char *key, uint32_t value);
bool mm_strmap_get(const struct mm_strmap *m, const char *key, uint32_t *value);

#endif
