/* The connector-state detector of one node, sans I/O (docs/protocol.md,
 * "Connector state (the node side)").
 *
 * It tracks every connector of the node's group on which this server is a
 * local bridgehead, and decides when this server's bridgeheads on it are
 * down or up; the member machine (member.h) sends what it decides to the
 * master and applies it to the node's own routing at once.
 *
 * What counts. A connector is reached through its targets: the smart host
 * of an SMTP connector, or the remote bridgeheads of a routing-group
 * connector that the table holds up. Each target has its own glitch retry:
 * a failure (connection refused, timeout, 4xx at the greeting: a delivery
 * the queue manager could not start, or a probe) begins it; the target is
 * probed again every glitch_interval_ms, and glitch_count failed retries in
 * a row make it down. Failures within one interval are one failure (several
 * sessions of one round). A down target is probed every probe_interval_ms
 * (connect, greeting, EHLO, QUIT: no queued mail needed); a probe or a
 * delivery that works makes it up. This server's bridgeheads on the
 * connector are down when every target is down. An SMTP connector without a
 * smart host (delivery by MX) has no target: the failure of one domain's MX
 * is not the connector's, so it is never reported down.
 *
 * Deliveries and probes leave from the server, not from one virtual server,
 * so every local bridgehead of this server on a connector (one per virtual
 * server listed) has the connector's state; reports name each of them.
 *
 * Flap damping (damping.h) sits between the state found and the state
 * reported, per connector: every down is reported at once and adds the
 * penalty; while suppressed, ups are held (the bridgeheads stay reported
 * down), the targets are probed every probe_interval_ms to see further
 * flaps (each down of a held connector adds the penalty too), and the
 * release reports the up once the figure is below reuse.
 *
 * Output: a list of changes (bridgehead up or down), in the order decided,
 * that the driver hands to mm_member_report and then clears. A change
 * queued behind the opposite change of the same bridgehead that has not
 * been taken yet cancels it: neither is reported.
 *
 * Like the queue manager: events in, actions through the environment only
 * (probes, timers, logs); no clock, no globals, integer arithmetic. */
#ifndef MM_CONNSTATE_H
#define MM_CONNSTATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "damping.h"
#include "table.h"

struct mm_cs_conf {
	uint32_t glitch_count;       /* glitch_retry_count: 3 */
	uint32_t glitch_interval_ms; /* glitch_retry_interval_ms: 60000 */
	uint32_t probe_interval_ms;  /* down_probe_interval_ms: 60000 */
	bool org_tls;                /* probes of organization servers require TLS */
	struct mm_damp_conf damp;    /* MM_DAMP_DEFAULTS */
};

#define MM_CS_DEFAULTS                                                                      \
	{                                                                                   \
		.glitch_count = 3, .glitch_interval_ms = 60000, .probe_interval_ms = 60000, \
		.org_tls = false, .damp = MM_DAMP_DEFAULTS                                  \
	}

/* What a probe dials. */
struct mm_cs_probe {
	const char *connector;
	const char *address; /* "ip:port" */
	int tls;             /* MM_SMTPC_TLS_*: the connector's policy */
	bool org;            /* an organization server: present our certificate */
};

struct mm_cs_env {
	void *ctx;
	int64_t (*now_ms)(void *ctx);
	/* One timer per key; arming again moves it. The driver answers with
	 * mm_connstate_timer(key) at or after at_ms. */
	void (*timer_arm)(void *ctx, uint64_t key, int64_t at_ms);
	void (*timer_cancel)(void *ctx, uint64_t key);
	/* Connect, greeting, EHLO (STARTTLS per tls), QUIT; the driver answers
	 * every probe once with mm_connstate_probe_result(id, ...). */
	void (*probe)(void *ctx, uint32_t id, const struct mm_cs_probe *p);
	void (*log)(void *ctx, const char *line);
};

/* A connector's flap damping as one run leaves it to the next (the
 * driver keeps it in SPOOL/damping): a node restarted while a connector
 * was held would otherwise start it unheld, and a flapping smart host
 * would get traffic again at once. */
struct mm_damp_saved {
	char *connector;
	uint64_t figure;       /* scaled (damping.h), as of the save */
	bool suppressed;       /* held down */
	int64_t last_down_age; /* ms before the save; -1: never down */
};

/* A bridgehead of this server: reported state. */
struct mm_bh_report {
	char *connector, *vserver;
	bool down;
};

struct mm_cs_target;
struct mm_cs_conn;

struct mm_connstate {
	struct mm_cs_conf conf;
	struct mm_cs_env env;
	char *self;
	size_t n;
	struct mm_cs_conn **conns; /* by name */
	struct mm_bh_report *changes;
	size_t nchanges, capchanges;
	char **ups; /* targets ("ip:port") that answered after failing */
	size_t nups, capups;
	bool damp_changed;             /* a figure moved: the driver saves them */
	struct mm_damp_saved *restore; /* from the last run, for the first sync */
	size_t nrestore;
	int64_t restore_elapsed; /* ms since that run saved it */
	uint32_t next_id, next_probe;
};

void mm_connstate_init(struct mm_connstate *cs, const struct mm_cs_conf *conf,
                       const struct mm_cs_env *env, const char *self);
/* Cancels every timer; probes out are forgotten (late results ignored). */
void mm_connstate_free(struct mm_connstate *cs);

/* The table changed (and the first time): which connectors and targets
 * there are. A connector seen for the first time starts from the table's
 * marks -- down when every local bridgehead of this server on it is marked
 * down, and then probed at once -- and its state goes into the changes, so
 * that the member knows every bridgehead; kept connectors and targets keep
 * their state. */
void mm_connstate_sync(struct mm_connstate *cs, const struct mm_table *t);

/* A session of a link queue serving connector to target ("ip:port", the
 * queue's target) could not start (ok false: refused, timed out, 4xx at
 * the greeting) or delivered (ok true). Unknown connectors and targets,
 * and connectors delivered by MX, are ignored. */
void mm_connstate_delivery(struct mm_connstate *cs, const char *connector, const char *target,
                           bool ok, const char *why);
void mm_connstate_probe_result(struct mm_connstate *cs, uint32_t id, bool ok, const char *why);
void mm_connstate_timer(struct mm_connstate *cs, uint64_t key);

/* The changes decided since the last clear, oldest first. */
size_t mm_connstate_changes(const struct mm_connstate *cs, const struct mm_bh_report **out);
/* The targets that answered (a probe or a delivery) after failing, since
 * the last clear: up means up, so the driver makes the link queues that go
 * there ready at once (mm_qm_target_up) instead of leaving them to their
 * retry timers, which after a long outage are an hour away. */
size_t mm_connstate_ups(const struct mm_connstate *cs, const char *const **out);
void mm_connstate_clear(struct mm_connstate *cs);

/* Every tracked connector's damping now, for the driver to keep; *out is
 * allocated (mm_damp_saved_free). Figures that decayed to nothing and are
 * not held are left out. */
size_t mm_connstate_damp_save(const struct mm_connstate *cs, struct mm_damp_saved **out);
void mm_damp_saved_free(struct mm_damp_saved *s, size_t n);
/* Before the first mm_connstate_sync: what the last run saved, elapsed_ms
 * ago by the wall clock (negative: taken as 0). Each connector takes its
 * figure, decayed by the time passed, when the sync first sees it; one
 * still held starts reported down and held. The list is copied. */
void mm_connstate_damp_restore(struct mm_connstate *cs, const struct mm_damp_saved *s, size_t n,
                               int64_t elapsed_ms);

/* The reported state of this server's bridgeheads on connector (false when
 * not tracked), and whether it is held down by damping. */
bool mm_connstate_down(const struct mm_connstate *cs, const char *connector);
bool mm_connstate_held(const struct mm_connstate *cs, const char *connector);
/* The connector's figure of merit now, in whole units. */
uint32_t mm_connstate_figure(const struct mm_connstate *cs, const char *connector);

#endif
