/* The rgmaster daemon: the thin libevent driver of the master machine
 * (master.h; what a driver must do: rgmaster/README.md). What its files
 * share:
 *   rgmaster.c   the command line, settings, the directory, signals, main
 *   rgm_env.c    the machine's environment: clocks, timers, the 691
 *                transport (net/net691.h) and its frames, the log
 *   rgm_state.c  --state DIR: the incarnation file, read and made durable */
#ifndef MM_RGM_H
#define MM_RGM_H

#include <event2/event.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "master.h"
#include "net691.h"
#include "tls.h"
#include "u64map.h"

/* The first frame of a connection (a Hello) is read up to this size. */
#define RGM_HELLO_LIMIT (64u << 10)

/* --set KEY=VALUE: the machine's settings by name, insecure, and the
 * listener's connection bounds (net691.h). */
struct rgm_settings {
	uint64_t ping_interval_ms, dead_after, probe_interval_ms, settle_ms, retry_ms;
	uint64_t insecure;
	uint64_t conn_max, conn_per_address;
};

void rgm_settings_default(struct rgm_settings *s);
/* "KEY=VALUE"; false with a message in err (an unknown key, not a number,
 * out of its range). */
bool rgm_settings_set(struct rgm_settings *s, const char *kv, char *err, size_t errlen);
void rgm_settings_help(FILE *f);

struct rgm {
	struct event_base *base;
	struct mm_master m;
	bool m_ready; /* mm_master_init done */
	struct mm_net net;
	bool net_ready;
	const char *name, *dirspec, *state_dir;
	char *org;               /* the directory's organization, for the table view */
	char *address;           /* our mmRoutingAddress, where we listen */
	uint64_t rnd;            /* xorshift state: Ping nonces */
	struct mm_u64map timers; /* machine timer key -> struct rgm_timer */
	struct mm_u64map conns;  /* connection number -> struct rgm_conn */
	struct rgm_conn *grave;  /* closed while a callback may still hold them */
	struct event *later;     /* frees the grave on the next turn */
	/* --tls: the entries we issue are signed with signer; those we take
	 * are checked against trust (ca.pem and crl.pem, again at SIGHUP) */
	const char *tls;
	struct mm_signer signer;
	struct mm_trust *trust;
};

/* rgmaster.c: --tls DIR's trust (and the CRL on the 691 contexts), at
 * start and at SIGHUP; false (logged) when it does not load. */
bool rgm_trust_load(struct rgm *r);

/* rgmaster.c */
void rgm_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int64_t rgm_now_ms(void);
int64_t rgm_wall_ms(void);

/* rgm_env.c */
void rgm_env(struct rgm *r, struct mm_master_env *env);
void rgm_net_ops(struct rgm *r, struct mm_net_ops *ops);
/* Everything of the environment: timers, connections, the grave. */
void rgm_env_free(struct rgm *r);

/* rgm_state.c. Read DIR/incarnation: 0 (EX_OK) with *inc set (0 when the
 * directory or the file is missing: a fresh start; DIR is created then),
 * EX_DATAERR for a corrupt file, EX_IOERR when it cannot be read,
 * EX_CANTCREAT when DIR cannot be made; a message in err. */
int rgm_state_read(const char *dir, uint64_t *inc, char *err, size_t errlen);
/* Write it durably: DIR/incarnation.tmp written and fsync'ed, renamed over
 * DIR/incarnation, DIR fsync'ed (DIR made again if it went). 0 or errno. */
int rgm_state_write(const char *dir, uint64_t inc);

#endif
