#include "u64map.h"

#include <stdlib.h>

#include "alloc.h"

static size_t slot_of(uint64_t key, size_t cap)
{
	/* splitmix64 finalizer: ids are clock-based and close together */
	key ^= key >> 30;
	key *= 0xbf58476d1ce4e5b9ULL;
	key ^= key >> 27;
	key *= 0x94d049bb133111ebULL;
	key ^= key >> 31;
	return (size_t)key & (cap - 1);
}

void mm_u64map_free(struct mm_u64map *m)
{
	free(m->slots);
	*m = (struct mm_u64map){0};
}

static void grow(struct mm_u64map *m)
{
	size_t old = m->cap;
	struct mm_u64slot *slots = m->slots;
	m->cap = old ? old * 2 : 16;
	m->slots = mm_xcalloc(m->cap, sizeof(*m->slots));
	m->used = 0;
	for (size_t i = 0; i < old; i++)
		if (slots[i].value)
			mm_u64map_put(m, slots[i].key, slots[i].value);
	free(slots);
}

void mm_u64map_put(struct mm_u64map *m, uint64_t key, void *value)
{
	if ((m->used + 1) * 4 > m->cap * 3)
		grow(m);
	size_t i = slot_of(key, m->cap);
	while (m->slots[i].value && m->slots[i].key != key)
		i = (i + 1) & (m->cap - 1);
	if (m->slots[i].value == NULL)
		m->used++;
	m->slots[i] = (struct mm_u64slot){key, value};
}

void *mm_u64map_get(const struct mm_u64map *m, uint64_t key)
{
	if (m->cap == 0)
		return NULL;
	for (size_t i = slot_of(key, m->cap); m->slots[i].value; i = (i + 1) & (m->cap - 1))
		if (m->slots[i].key == key)
			return m->slots[i].value;
	return NULL;
}

void *mm_u64map_del(struct mm_u64map *m, uint64_t key)
{
	if (m->cap == 0)
		return NULL;
	size_t mask = m->cap - 1, i = slot_of(key, m->cap);
	while (m->slots[i].value && m->slots[i].key != key)
		i = (i + 1) & mask;
	void *v = m->slots[i].value;
	if (v == NULL)
		return NULL;
	/* backward shift: pull later members of the cluster into the hole
	 * when their home slot is at or before it */
	size_t hole = i;
	for (size_t j = (i + 1) & mask; m->slots[j].value; j = (j + 1) & mask) {
		size_t home = slot_of(m->slots[j].key, m->cap);
		if (((j - home) & mask) >= ((j - hole) & mask)) {
			m->slots[hole] = m->slots[j];
			hole = j;
		}
	}
	m->slots[hole] = (struct mm_u64slot){0};
	m->used--;
	return v;
}
