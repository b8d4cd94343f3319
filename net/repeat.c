#include "repeat.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static struct mm_repeat_item *find(struct mm_repeat *r, const char *key)
{
	for (size_t i = 0; i < MM_REPEAT_SLOTS; i++)
		if (r->it[i].key[0] && strcmp(r->it[i].key, key) == 0)
			return &r->it[i];
	return NULL;
}

/* A free slot, or the one used least recently (its streak is forgotten:
 * at worst its next failure is said again). */
static struct mm_repeat_item *take(struct mm_repeat *r)
{
	struct mm_repeat_item *best = &r->it[0];
	for (size_t i = 0; i < MM_REPEAT_SLOTS; i++) {
		if (r->it[i].key[0] == '\0')
			return &r->it[i];
		if (r->it[i].used < best->used)
			best = &r->it[i];
	}
	return best;
}

static const char *when(int64_t wall_ms, char *out, size_t n)
{
	time_t s = (time_t)(wall_ms / 1000);
	struct tm tm;
	gmtime_r(&s, &tm);
	strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return out;
}

static void start(struct mm_repeat_item *it, const char *key, const char *why, int64_t now_ms,
                  int64_t wall_ms)
{
	snprintf(it->key, sizeof(it->key), "%s", key);
	snprintf(it->why, sizeof(it->why), "%s", why);
	it->count = it->told = 1;
	it->first_ms = wall_ms;
	it->told_at = now_ms;
}

enum mm_repeat_say mm_repeat_failed(struct mm_repeat *r, const char *key, const char *why,
                                    int64_t now_ms, int64_t wall_ms, char *line, size_t n)
{
	char t[32];
	line[0] = '\0';
	struct mm_repeat_item *it = find(r, key);
	if (it && strncmp(it->why, why, sizeof(it->why) - 1) != 0) {
		/* another reason: the old streak ends, and the new one is news */
		if (it->count > it->told)
			snprintf(line, n, "%s: %s %u times since %s", it->key, it->why, it->count,
			         when(it->first_ms, t, sizeof(t)));
		start(it, key, why, now_ms, wall_ms);
		it->used = ++r->clock;
		return MM_REPEAT_NEW;
	}
	if (it == NULL) {
		it = take(r);
		start(it, key, why, now_ms, wall_ms);
		it->used = ++r->clock;
		return MM_REPEAT_NEW;
	}
	it->used = ++r->clock;
	it->count++;
	if (now_ms - it->told_at < MM_REPEAT_EVERY_MS)
		return MM_REPEAT_QUIET;
	it->told = it->count;
	it->told_at = now_ms;
	snprintf(line, n, "%s: %s again (%u times since %s)", it->key, it->why, it->count,
	         when(it->first_ms, t, sizeof(t)));
	return MM_REPEAT_SUMMARY;
}

bool mm_repeat_ok(struct mm_repeat *r, const char *key, char *line, size_t n)
{
	char t[32];
	line[0] = '\0';
	struct mm_repeat_item *it = find(r, key);
	if (it == NULL)
		return false;
	bool say = it->count > 1;
	if (say)
		snprintf(line, n, "%s: works again after %u failures since %s (%s)", it->key,
		         it->count, when(it->first_ms, t, sizeof(t)), it->why);
	*it = (struct mm_repeat_item){0};
	return say;
}
