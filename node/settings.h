/* meshnode's timers and limits, overridable by --set KEY=VALUE
 * (DESIGN §7a). meshnode --help prints them with their defaults. */
#ifndef MM_SETTINGS_H
#define MM_SETTINGS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct mm_settings {
	uint64_t expire_s;           /* a message gives up (4.4.7 → 5.4.7) */
	uint64_t retry_min_ms;       /* first retry delay */
	uint64_t retry_max_ms;       /* backoff cap */
	uint64_t retry_jitter_pct;   /* ± spread of retry times */
	uint64_t glitch_retry_count; /* tries before a connector is reported down */
	uint64_t glitch_retry_interval_ms;
	/* the routing engine (TCP 691): the member machine (core/member.h) */
	uint64_t ping_interval_ms;    /* liveness ping on 691 */
	uint64_t dead_after;          /* intervals of silence that kill a connection */
	uint64_t master_retry_min_ms; /* between rounds over the master candidates */
	uint64_t master_retry_max_ms;
	/* the connector-state detector (core/connstate.h) and flap damping */
	uint64_t down_probe_interval_ms; /* a down connector hop is probed this often */
	uint64_t damp_penalty;           /* added to a connector's figure at each down */
	uint64_t damp_suppress;          /* above it: held down */
	uint64_t damp_reuse;             /* below it: released */
	uint64_t damp_half_life_ms;
	uint64_t damp_max_hold_ms;
	uint64_t idle_timeout_s;      /* SMTP server, per read */
	uint64_t command_deadline_s;  /* SMTP server: one whole command line */
	uint64_t data_deadline_s;     /* SMTP server: DATA/BDAT, besides the rate */
	uint64_t data_min_rate;       /* SMTP server: bytes/s a transfer must keep */
	uint64_t max_reply_backlog;   /* SMTP server: unsent replies before reading stops */
	uint64_t max_message_size;    /* where the directory sets none */
	uint64_t connect_timeout_ms;  /* SMTP client */
	uint64_t connection_cache_ms; /* SMTP client: idle before QUIT */
	uint64_t reroute_hold_ms;     /* mail going straight back waits for a table */
	uint64_t reply_timeout_s;     /* SMTP client, per reply */
	uint64_t max_rcpts;           /* per transaction */
	uint64_t max_sessions_per_ip;
	uint64_t max_sessions;
	uint64_t max_errors;            /* per session before 421 */
	uint64_t dest_concurrency;      /* connections per next hop */
	uint64_t insecure;              /* routing traffic without TLS (tests) */
	uint64_t test_hooks;            /* the control socket's test-report (benches) */
	uint64_t compact_after_s;       /* queued messages of older spool segments move forward */
	uint64_t sender_login_mismatch; /* AUTH PLAIN/LOGIN users send as themselves only */
	/* X-LINK2STATE between routing groups (xlink_run.c) */
	uint64_t xlink_digest_interval_ms; /* anti-entropy: DIGEST with one remote bridgehead */
	uint64_t xlink_max_transfer;       /* a transfer, decoded */
	uint64_t xlink_penalty_ms;         /* a peer that sent a refused entry is not heard */
};

void mm_settings_default(struct mm_settings *s);
/* "KEY=VALUE"; false with a message in err on a bad key or value. */
bool mm_settings_set(struct mm_settings *s, const char *kv, char *err, size_t errlen);
void mm_settings_help(FILE *f);

#endif
