#include "hopstate.h"

uint32_t mm_backoff_ms(uint32_t min_ms, uint32_t max_ms, uint32_t jitter_pct, uint32_t failures,
                       uint32_t rnd)
{
	uint64_t d = min_ms;
	for (uint32_t i = 1; i < failures && d < max_ms; i++)
		d *= 2;
	if (d > max_ms)
		d = max_ms;
	uint64_t span = d * jitter_pct / 100;
	if (span > 0)
		d = d - span + (uint64_t)rnd % (2 * span + 1);
	return d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
}

void mm_hop_failed(struct mm_hopstate *h, const struct mm_hop_conf *c, int64_t now, uint32_t rnd,
                   struct mm_hop_actions *out)
{
	*out = (struct mm_hop_actions){0};
	/* several connections failing while the hop already waits are one
	 * failure of the hop: retry rounds count, not sockets */
	if (h->retry_at > now)
		return;
	h->failures++;
	uint32_t delay;
	if (h->failures <= c->glitch_count) {
		/* a glitch, perhaps: the path is not down yet */
		delay = c->glitch_interval_ms;
	} else {
		if (!h->down) {
			h->down = true;
			out->report_down = true;
		}
		delay = mm_backoff_ms(c->retry_min_ms, c->retry_max_ms, c->jitter_pct,
		                      h->failures - c->glitch_count, rnd);
	}
	h->retry_at = now + delay;
	out->timer_at = h->retry_at;
}

void mm_hop_ok(struct mm_hopstate *h, struct mm_hop_actions *out)
{
	*out = (struct mm_hop_actions){0};
	if (h->down)
		out->report_up = true;
	h->down = false;
	h->failures = 0;
	h->retry_at = 0;
}

void mm_hop_timer(struct mm_hopstate *h)
{
	h->retry_at = 0;
}

bool mm_hop_may_try(const struct mm_hopstate *h, int64_t now)
{
	return h->retry_at == 0 || h->retry_at <= now;
}
