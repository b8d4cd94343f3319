#include "damping.h"

/* 2^(-i/64) in Q30, i = 0..64, rounded to nearest (python3:
 * round(2**30 * 2**(-i/64))). */
static const uint32_t pow2_q30[65] = {
    1073741824u, 1062175491u, 1050733751u, 1039415261u, 1028218693u, 1017142735u, 1006186087u,
    995347464u,  984625594u,  974019220u,  963527098u,  953147997u,  942880699u,  932724001u,
    922676710u,  912737649u,  902905651u,  893179563u,  883558244u,  874040567u,  864625413u,
    855311680u,  846098274u,  836984114u,  827968132u,  819049271u,  810226483u,  801498734u,
    792865000u,  784324269u,  775875538u,  767517817u,  759250125u,  751071493u,  742980960u,
    734977579u,  727060411u,  719228525u,  711481005u,  703816941u,  696235434u,  688735596u,
    681316545u,  673977412u,  666717336u,  659535466u,  652430958u,  645402981u,  638450708u,
    631573326u,  624770026u,  618040012u,  611382493u,  604796689u,  598281827u,  591837143u,
    585461881u,  579155293u,  572916640u,  566745190u,  560640218u,  554601009u,  548626854u,
    542717053u,  536870912u,
};

#define Q30 (1ull << 30)
/* no figure goes above this (scaled): 2^40, a billion units */
#define FIGURE_MAX (1ull << 40)

/* floor(f * v / 2^30) for v <= 2^30, without overflow */
static uint64_t mul_q30(uint64_t f, uint64_t v)
{
	return (f >> 30) * v + (((f & (Q30 - 1)) * v) >> 30);
}

/* 2^(-r/h) in Q30 for 0 <= r < h */
static uint64_t frac_pow2(uint64_t r, uint64_t h)
{
	uint64_t pos = r * 64; /* r < h < 2^32: fits */
	uint64_t i = pos / h, rem = pos % h;
	uint64_t a = pow2_q30[i], b = pow2_q30[i + 1];
	return a - (a - b) * rem / h; /* (a - b) < 2^24, rem < 2^32 */
}

uint64_t mm_damp_decay(uint64_t f, int64_t dt_ms, uint32_t half_life_ms)
{
	if (dt_ms <= 0 || f == 0)
		return f;
	if (half_life_ms == 0)
		return 0;
	uint64_t h = half_life_ms, dt = (uint64_t)dt_ms;
	uint64_t k = dt / h;
	if (k >= 64)
		return 0;
	return mul_q30(f, frac_pow2(dt % h, h)) >> k;
}

uint64_t mm_damp_ceiling(const struct mm_damp_conf *c)
{
	uint64_t reuse = (uint64_t)c->reuse << MM_DAMP_SHIFT;
	if (c->half_life_ms == 0)
		return reuse;
	uint64_t h = c->half_life_ms, k = c->max_hold_ms / h;
	if (reuse == 0 || k >= 40)
		return FIGURE_MAX;
	/* reuse * 2^k / 2^(-r/h): the division by the Q30 fraction is exact
	 * enough (the fraction is at least 2^29) */
	uint64_t up = reuse << k;
	if (up >= FIGURE_MAX)
		return FIGURE_MAX;
	uint64_t v = frac_pow2(c->max_hold_ms % h, h);
	uint64_t hi = up / v * Q30 + (up % v) * Q30 / v; /* up < 2^40: no overflow */
	return hi > FIGURE_MAX ? FIGURE_MAX : hi;
}

static uint64_t now_figure(const struct mm_damp *d, const struct mm_damp_conf *c, int64_t now)
{
	return mm_damp_decay(d->figure, now - d->at, c->half_life_ms);
}

uint32_t mm_damp_figure(const struct mm_damp *d, const struct mm_damp_conf *c, int64_t now)
{
	uint64_t f = now_figure(d, c, now) >> MM_DAMP_SHIFT;
	return f > UINT32_MAX ? UINT32_MAX : (uint32_t)f;
}

bool mm_damp_penalize(struct mm_damp *d, const struct mm_damp_conf *c, int64_t now)
{
	uint64_t f = now_figure(d, c, now) + ((uint64_t)c->penalty << MM_DAMP_SHIFT);
	uint64_t ceiling = mm_damp_ceiling(c);
	d->figure = f > ceiling ? ceiling : f;
	d->at = now;
	d->last_penalty_at = now;
	if (d->suppressed || d->figure <= (uint64_t)c->suppress << MM_DAMP_SHIFT)
		return false;
	d->suppressed = true;
	return true;
}

int64_t mm_damp_release_at(const struct mm_damp *d, const struct mm_damp_conf *c)
{
	int64_t bound = d->last_penalty_at + c->max_hold_ms;
	uint64_t reuse = (uint64_t)c->reuse << MM_DAMP_SHIFT;
	if (d->figure < reuse)
		return d->at < bound ? d->at : bound;
	if (bound <= d->at)
		return bound;
	/* the smallest dt with decay(figure, dt) < reuse, by bisection over
	 * (0, bound - at]; decay is non-increasing in dt */
	int64_t lo = 0, hi = bound - d->at;
	if (mm_damp_decay(d->figure, hi, c->half_life_ms) >= reuse)
		return bound;
	while (hi - lo > 1) {
		int64_t mid = lo + (hi - lo) / 2;
		if (mm_damp_decay(d->figure, mid, c->half_life_ms) < reuse)
			hi = mid;
		else
			lo = mid;
	}
	return d->at + hi;
}

bool mm_damp_release(struct mm_damp *d, const struct mm_damp_conf *c, int64_t now)
{
	if (!d->suppressed || now < mm_damp_release_at(d, c))
		return false;
	d->figure = now_figure(d, c, now);
	d->at = now;
	d->suppressed = false;
	return true;
}
