/* A meshsim scenario (DESIGN §8; docs/meshsim.md): the pure parser.
 *
 * mm_scenario_parse reads the text into steps, checking each line's words,
 * numbers and durations; mm_scenario_resolve then checks every name against
 * the organization (through a callback, so this file stays pure: no I/O,
 * no clock, no globals). Both stop at the first error, which they write as
 * "FILE:LINE: ..." (the caller exits 65). */
#ifndef MM_SCENARIO_H
#define MM_SCENARIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A scenario file larger than this is refused (a scenario is a page). */
#define MM_SCENARIO_MAX_BYTES (1u << 20)
#define MM_SCENARIO_MAX_LINE  4096
/* the longest duration: a day */
#define MM_SCENARIO_MAX_MS (24ull * 3600 * 1000)

enum mm_sim_verb {
	MM_SIM_SET,
	MM_SIM_START, /* names; none: all */
	MM_SIM_STOP,
	MM_SIM_KILL,
	MM_SIM_RESTART,
	MM_SIM_CUT,
	MM_SIM_HEAL,
	MM_SIM_ISOLATE,
	MM_SIM_REJOIN,
	MM_SIM_REFUSE,
	MM_SIM_ACCEPT,
	MM_SIM_SEND,
	MM_SIM_WAIT,
	MM_SIM_WAIT_CONVERGED,
	MM_SIM_CHAOS_ON,
	MM_SIM_CHAOS_OFF,
	MM_SIM_EXPECT_DELIVERED,
	MM_SIM_EXPECT_ALL_DELIVERED,
	MM_SIM_EXPECT_ROUTE,
	MM_SIM_EXPECT_STATE,
	MM_SIM_EXPECT_DIGESTS,
	MM_SIM_EXPECT_LOST,
	MM_SIM_EXPECT_DUPLICATES,
};

/* What a name on a line must be, and what it turned out to be. */
enum mm_sim_kind {
	MM_SIM_ANY = 0,
	MM_SIM_SERVER = 1,
	MM_SIM_MASTER = 2,
	MM_SIM_CONNECTOR = 4,
	MM_SIM_BRIDGEHEAD = 8,
};

struct mm_sim_name {
	char *text;            /* as written, without any KIND: prefix */
	unsigned want;         /* mm_sim_kind bits the line allows */
	enum mm_sim_kind kind; /* the KIND: prefix (ANY: none); after resolving, the kind */
};

struct mm_sim_step {
	unsigned line;
	enum mm_sim_verb verb;
	bool has_at;
	uint64_t at_ms; /* at T ACTION: T after the scenario's start */
	bool has_within;
	uint64_t within_ms;
	uint64_t n;       /* send N, delivered N, lost N, duplicates N, chaos N/m */
	uint64_t wait_ms; /* wait T */
	bool up;          /* expect state NAME up|down */
	char *address;    /* send ... to ADDRESS; delivered to ADDRESS; route ADDRESS */
	char *setting;    /* set KEY=VALUE */
	size_t nnames;
	struct mm_sim_name *names; /* start/stop/...: the operands; send: the server;
	                            * route: SERVER, via NAME; state: NAME [, at SERVER] */
};

struct mm_scenario {
	char *file;
	char *org;         /* as written after `org` (relative to the scenario file) */
	unsigned org_line; /* 0: no org line */
	size_t nsteps;
	struct mm_sim_step *steps;
};

/* text (len bytes, not NUL-terminated) of file `file` into sc; false with
 * "FILE:LINE: why" in err. sc is freed by mm_scenario_free either way. */
bool mm_scenario_parse(struct mm_scenario *sc, const char *file, const char *text, size_t len,
                       char *err, size_t errlen);
void mm_scenario_free(struct mm_scenario *sc);

/* The organization, as the resolver asks it: the kinds (mm_sim_kind bits)
 * of objects named `name` (for a bridgehead "CONNECTOR/SERVER/VS"), and
 * whether a connector has a smart host; and the daemons' settings. */
struct mm_scenario_org {
	void *ctx;
	unsigned (*kinds)(void *ctx, const char *name);
	bool (*smart_host)(void *ctx, const char *connector);
	/* "KEY=VALUE": false with why (a key no daemon has, a bad value) */
	bool (*setting_ok)(void *ctx, const char *kv, char *why, size_t whylen);
};

/* Every name on every line against org: each must name one object of a
 * kind its line allows (a KIND: prefix chooses among several); sets kind.
 * false with "FILE:LINE: why" in err. */
bool mm_scenario_resolve(struct mm_scenario *sc, const struct mm_scenario_org *org, char *err,
                         size_t errlen);

/* "250ms", "20s", "2m", "1h" into *ms; false when s is none of these. */
bool mm_scenario_duration(const char *s, uint64_t *ms);
const char *mm_scenario_kind_name(enum mm_sim_kind k);

#endif
