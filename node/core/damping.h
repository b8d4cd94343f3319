/* Flap damping of one connector, after BGP's (RFC 2439, RFC 7196), in
 * integer arithmetic (docs/protocol.md, "Connector state").
 *
 * A figure of merit grows by `penalty` at every down and decays by half
 * every `half_life_ms`. A figure above `suppress` holds the connector down:
 * its ups are not reported until the figure falls below `reuse`, and never
 * later than `max_hold_ms` after the last down. The figure never exceeds
 * the RFC 2439 ceiling, reuse * 2^(max_hold / half_life), from which it
 * decays to `reuse` in max_hold_ms.
 *
 * The defaults (MM_DAMP_DEFAULTS) and why:
 *   penalty 1000, suppress 1500: one outage (1000) is never damped; a second
 *     down within one half-life of the first (1000 + 1000 * 2^(-t/H) > 1500
 *     exactly when t < H) is a flap and holds the connector down. BGP's
 *     vendors suppress at 2000 (or 6000, RFC 7196) because one BGP event
 *     arrives as several updates (path hunting); a mailmesh down is one
 *     report after glitch retry already absorbed the blips, so two are
 *     evidence enough. A connector is reported down at most twice and up at
 *     most once before it is held (at most three version changes).
 *   reuse 750: released between 1 and 1.42 half-lives after the second down
 *     (log2(1500/750) .. log2(2000/750)), longer if it kept flapping.
 *   half_life_ms 600000 (10 min): the shortest cycle the detector can see is
 *     glitch retry plus one probe, 3 x 60 s + 60 s = 4 minutes; links that
 *     flap on a scale of seconds to minutes show as downs a few minutes
 *     apart, and a half-life of a few cycles (10 min, against the vendors'
 *     15 min tuned for Internet routes) remembers them without keeping a
 *     repaired connector out of use for long. Mail waits in queues anyway;
 *     what a flap costs is a version change flooded to the group and a
 *     reroute of the queued mail each way.
 *   max_hold_ms 1800000 (30 min, the vendors' 60 min halved with the
 *     half-life): the ceiling is reuse * 2^3 = 6000, so a connector that
 *     flapped for hours is back 30 minutes after it stopped. */
#ifndef MM_DAMPING_H
#define MM_DAMPING_H

#include <stdbool.h>
#include <stdint.h>

/* Figures are kept scaled by 2^MM_DAMP_SHIFT (fractions of a unit count). */
#define MM_DAMP_SHIFT 10

struct mm_damp_conf {
	uint32_t penalty;  /* added at each down */
	uint32_t suppress; /* above it: held down */
	uint32_t reuse;    /* below it: released */
	uint32_t half_life_ms;
	uint32_t max_hold_ms;
};

#define MM_DAMP_DEFAULTS                                                                 \
	{                                                                                \
		.penalty = 1000, .suppress = 1500, .reuse = 750, .half_life_ms = 600000, \
		.max_hold_ms = 1800000                                                   \
	}

struct mm_damp {
	uint64_t figure;         /* scaled, as of `at` */
	int64_t at;              /* ms */
	int64_t last_penalty_at; /* ms; 0: never */
	bool suppressed;
};

/* f (scaled) decayed over dt_ms: f * 2^(-dt / half_life), integer only.
 * Whole half-lives shift; the rest of the exponent comes from a table of
 * 2^(-i/64) in Q30 with linear interpolation between entries. The chord of
 * the convex 2^-x lies above it by at most h^2/8 * ln(2)^2 = 1.47e-5 of the
 * value (h = 1/64); the table's rounding to Q30 and the truncations of the
 * interpolation move it by at most 2e-9 of the value either way, and the
 * final truncation takes off less than one scaled unit (2^-10 of a figure
 * unit):
 *   exact * (1 - 2e-9) - 2^-10  <=  decay  <=  exact * (1 + 1.5e-5)
 * in figure units. A figure decayed in n steps (one per event) compounds
 * this: within n * 1.5e-5 of the value above, n * 2e-9 of the value and
 * n * 2^-10 units below. Non-increasing in dt, so a release time can be
 * found by bisection. dt_ms <= 0 returns f. */
uint64_t mm_damp_decay(uint64_t f, int64_t dt_ms, uint32_t half_life_ms);

/* The ceiling (scaled): reuse * 2^(max_hold / half_life), bounded. */
uint64_t mm_damp_ceiling(const struct mm_damp_conf *c);

/* The figure now, in whole units (for logs and tests). */
uint32_t mm_damp_figure(const struct mm_damp *d, const struct mm_damp_conf *c, int64_t now);

/* A down at now: decay, add the penalty (up to the ceiling), and suppress
 * above the threshold. Returns true when this down began a suppression. */
bool mm_damp_penalize(struct mm_damp *d, const struct mm_damp_conf *c, int64_t now);

/* When a suppression ends: the first ms at which the figure is below
 * reuse, or the last down + max_hold_ms if that comes first. Meaningful
 * only while suppressed. */
int64_t mm_damp_release_at(const struct mm_damp *d, const struct mm_damp_conf *c);

/* At or after mm_damp_release_at: clears the suppression and returns true;
 * earlier, false (and nothing changes). */
bool mm_damp_release(struct mm_damp *d, const struct mm_damp_conf *c, int64_t now);

#endif
