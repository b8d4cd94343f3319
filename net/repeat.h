/* A failure said once (docs/decisions.md, "A failure said once"): a peer
 * that keeps failing the same way is logged the first time, then at most
 * once a minute with a count, and once more when it works again or fails
 * another way. A member whose master is down dials it every few seconds
 * for as long as it is down; a line each time would be about 100,000 a day
 * of the same words, burying the line that matters.
 *
 * Pure: the caller gives the clocks (monotonic for the minute, wall for
 * the "since" it prints) and logs the lines it is handed. */
#ifndef MM_REPEAT_H
#define MM_REPEAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MM_REPEAT_SLOTS    64
#define MM_REPEAT_EVERY_MS 60000
#define MM_REPEAT_KEY      160
#define MM_REPEAT_WHY      200

struct mm_repeat {
	struct mm_repeat_item {
		char key[MM_REPEAT_KEY]; /* who failed: "" for a free slot */
		char why[MM_REPEAT_WHY];
		uint32_t count;   /* failures in a row for why, the first one included */
		uint32_t told;    /* count when it was last logged */
		int64_t first_ms; /* wall clock of the first */
		int64_t told_at;  /* monotonic: when it was last logged */
		uint64_t used;    /* the least recently used slot goes first */
	} it[MM_REPEAT_SLOTS];
	uint64_t clock;
};

enum mm_repeat_say {
	MM_REPEAT_NEW,     /* the first failure, or another reason: log it as usual */
	MM_REPEAT_QUIET,   /* said already: nothing */
	MM_REPEAT_SUMMARY, /* said already; line holds the count, once a minute */
};

/* key failed for why. On NEW, line holds the end of the streak before it
 * (a reason that changed: "KEY: WHY N times since T"), or is empty. */
enum mm_repeat_say mm_repeat_failed(struct mm_repeat *r, const char *key, const char *why,
                                    int64_t now_ms, int64_t wall_ms, char *line, size_t n);
/* key worked: true with line "KEY: works again after N failures since T
 * (WHY)" when it had failed more than once; it is forgotten either way. */
bool mm_repeat_ok(struct mm_repeat *r, const char *key, char *line, size_t n);

#endif
