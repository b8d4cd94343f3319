#include "strmap.h"

#include <stdlib.h>
#include <string.h>

#include "alloc.h"

uint64_t mm_strhash(const char *s)
{
	/* FNV-1a with a final avalanche: cheap for short names, well spread. */
	uint64_t h = 1469598103934665603ULL;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	return h;
}

void mm_strmap_init(struct mm_strmap *m)
{
	*m = (struct mm_strmap){0};
}

void mm_strmap_free(struct mm_strmap *m)
{
	free(m->slots);
	*m = (struct mm_strmap){0};
}

void mm_strmap_clear(struct mm_strmap *m)
{
	if (m->slots)
		memset(m->slots, 0, m->cap * sizeof(*m->slots));
	m->used = 0;
}

static void insert(struct mm_strmap *m, const char *key, uint64_t h, uint32_t value)
{
	size_t mask = m->cap - 1;
	for (size_t i = h & mask;; i = (i + 1) & mask) {
		struct mm_strmap_slot *s = &m->slots[i];
		if (s->key == NULL) {
			*s = (struct mm_strmap_slot){key, h, value};
			m->used++;
			return;
		}
		if (s->hash == h && strcmp(s->key, key) == 0) {
			s->value = value;
			return;
		}
	}
}

static void rehash(struct mm_strmap *m, size_t cap)
{
	struct mm_strmap old = *m;
	m->cap = cap;
	m->slots = mm_xcalloc(m->cap, sizeof(*m->slots));
	m->used = 0;
	for (size_t i = 0; i < old.cap; i++)
		if (old.slots[i].key)
			insert(m, old.slots[i].key, old.slots[i].hash, old.slots[i].value);
	free(old.slots);
}

void mm_strmap_reserve(struct mm_strmap *m, size_t n)
{
	size_t cap = m->cap ? m->cap : 16;
	while (n * 2 > cap)
		cap *= 2;
	if (cap != m->cap)
		rehash(m, cap);
}

void mm_strmap_put(struct mm_strmap *m, const char *key, uint32_t value)
{
	/* keep the load at most 1/2: probes stay short */
	if ((m->used + 1) * 2 > m->cap)
		rehash(m, m->cap ? m->cap * 2 : 16);
	insert(m, key, mm_strhash(key), value);
}

bool mm_strmap_get(const struct mm_strmap *m, const char *key, uint32_t *value)
{
	if (m->cap == 0)
		return false;
	uint64_t h = mm_strhash(key);
	size_t mask = m->cap - 1;
	for (size_t i = h & mask;; i = (i + 1) & mask) {
		const struct mm_strmap_slot *s = &m->slots[i];
		if (s->key == NULL)
			return false;
		if (s->hash == h && strcmp(s->key, key) == 0) {
			*value = s->value;
			return true;
		}
	}
}
