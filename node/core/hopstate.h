/* The state of one next hop, sans I/O (DESIGN §1, §6): how long to wait
 * after a failure, and when to report the path down or up again.
 *
 * Glitch retry, as Exchange: the first glitch_count failures in a row are
 * retried every glitch_interval_ms before the hop counts as down; then the
 * hop is reported down once and probed with backoff (doubling, with
 * jitter) until a delivery works, which reports it up. The machine takes
 * the time and a random number with each event and answers with actions;
 * the daemon drives it with libevent, the simulator in virtual time. */
#ifndef MM_HOPSTATE_H
#define MM_HOPSTATE_H

#include <stdbool.h>
#include <stdint.h>

struct mm_hop_conf {
	uint32_t retry_min_ms, retry_max_ms, jitter_pct; /* backoff once down */
	uint32_t glitch_count, glitch_interval_ms;
};

struct mm_hopstate {
	uint32_t failures; /* in a row */
	int64_t retry_at;  /* ms; 0: may try now */
	bool down;         /* reported down, not yet up again */
};

struct mm_hop_actions {
	int64_t timer_at; /* arm the retry timer for then; 0: no timer */
	bool report_down, report_up;
};

/* A connection or session with the hop failed at now. */
void mm_hop_failed(struct mm_hopstate *h, const struct mm_hop_conf *c, int64_t now, uint32_t rnd,
                   struct mm_hop_actions *out);
/* A delivery over the hop worked. */
void mm_hop_ok(struct mm_hopstate *h, struct mm_hop_actions *out);
/* The retry timer fired (or an operator said "retry"): try again now. */
void mm_hop_timer(struct mm_hopstate *h);
bool mm_hop_may_try(const struct mm_hopstate *h, int64_t now);

/* The delay before attempt failures+1 of a hop that is down: doubling
 * from min to max, then ± jitter, so that after a long outage the backlog
 * of one destination does not all come due in the same second (the
 * weakness QSHAPE_README names in Postfix). rnd is uniform in [0, 2^32). */
uint32_t mm_backoff_ms(uint32_t min_ms, uint32_t max_ms, uint32_t jitter_pct, uint32_t failures,
                       uint32_t rnd);

#endif
