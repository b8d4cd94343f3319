/* meshsim live mode: the organization running on loopback (DESIGN §8,
 * docs/meshsim.md). One struct for the whole run; each file does one job:
 *   live.c     the daemons: PKI, directory copy, start, stop, kill
 *   netcut.c   cut and heal: nftables rules between loopback addresses
 *   sink.c     the SMTP sinks at the smart hosts' addresses
 *   submit.c   send: one SMTP session to a server
 *   observe.c  the daemons' tables and routes over 691 (meshctl --connect)
 *   account.c  what was delivered, queued, bounced, lost, duplicated
 *   run.c      the scenario's lines in order, expectations, the report */
#ifndef MM_SIM_WORLD_H
#define MM_SIM_WORLD_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "directory.h"
#include "scenario.h"

#define SIM_MAX_ADDRS 16

enum sim_daemon_kind { SIM_SERVER, SIM_MASTER };

struct sim_daemon {
	char *name, *group;
	enum sim_daemon_kind kind;
	char routing[80];  /* ip:port, for queries */
	char first_vs[80]; /* a server's first virtual server: ip:port */
	size_t naddrs;
	char addrs[SIM_MAX_ADDRS][48]; /* every IP the directory gives it */
	char dir[512];                 /* spool or state */
	char tls[512], log[512];
	pid_t pid;     /* 0: not running */
	bool expected; /* its end was asked for (stop, kill, restart, chaos) */
	bool chaos;    /* stopped by chaos: chaos off starts it again */
	bool failed;   /* died on its own: the run fails */
	bool isolated; /* isolate: out of wait converged */
};

struct sim_delivery {
	char *msgid, *rcpt;
};

struct sim_sink {
	char host[48];
	int port;
	int lfd;
	bool refusing;
	bool chaos; /* refusing by chaos's doing */
	pthread_t thread;
	bool running;
};

struct sim_sinks {
	pthread_mutex_t lock;
	size_t n;
	struct sim_sink *s;
	size_t ndone, capdone;
	struct sim_delivery *done; /* every (Message-ID, recipient) a sink took */
	uint64_t messages;
	unsigned active;        /* sessions running: stop waits for them */
	struct ssl_ctx_st *tls; /* STARTTLS with the run's meshsim certificate */
	int stop_pipe[2];
};

struct sim_sent {
	char *msgid, *rcpt, *server;
	bool accepted; /* answered 250 */
};

struct sim_change {
	int64_t at_ms, converged_ms; /* converged_ms -1: never seen */
	char *what;
};

struct sim_world {
	const struct mm_scenario *sc;
	char *scenario_dir; /* the scenario file's directory */
	char *org_path;     /* the org file, resolved */
	struct mm_directory dir;
	char *work; /* the run's directory */
	char *ldif; /* the directory copy the daemons read */
	char *bin_meshnode, *bin_rgmaster, *bin_meshctl;
	char *admin_tls;
	uint64_t seed;
	int64_t t0; /* the scenario's start, monotonic ms */
	size_t nd;
	struct sim_daemon *d;
	size_t nsettings;
	char **settings; /* set lines, in order */
	char **node_keys, **master_keys;
	size_t nnode_keys, nmaster_keys;
	struct sim_sinks sinks;
	/* cuts: pairs of daemon indices */
	size_t ncuts;
	size_t (*cuts)[2];
	bool nft_ready;
	/* sending */
	uint64_t seq;
	size_t nsent;
	struct sim_sent *sent;
	uint64_t refused;
	/* expectations */
	unsigned failed;

	size_t nchanges;
	struct sim_change *changes;
	/* chaos */
	bool chaos;
	uint64_t chaos_rate;
	int64_t chaos_next;
	size_t nchaos;
	size_t chaos_cuts[2][2];
	uint64_t rng;
	int lock_fd;
	bool locked; /* holds LOCK_PATH: the table and the sinks are ours */
	/* a change chaos made, for the report (run.c) */
	void (*on_change)(void *ctx, const char *what);
	void *change_ctx;
};

/* live.c */
int sim_live_setup(struct sim_world *w, char *err, size_t errlen);
bool sim_daemon_start(struct sim_world *w, struct sim_daemon *d, char *err, size_t errlen);
/* sig to d; with wait, its wait status (0: exited 0) once it ended */
int sim_daemon_signal(struct sim_world *w, struct sim_daemon *d, int sig, bool wait);
/* reap children that ended; a daemon that was not asked to end is failed */
void sim_reap(struct sim_world *w);
void sim_live_teardown(struct sim_world *w);
/* SIGTERM to every daemon, and wait: how many did not exit 0 (DESIGN §7a:
 * they stop cleanly) */
unsigned sim_stop_all(struct sim_world *w);
void sim_world_free(struct sim_world *w);
/* the daemons' settings, from their --help */
void sim_world_keys(struct sim_world *w);
bool sim_setting_known(struct sim_world *w, const char *kv);
struct sim_daemon *sim_daemon_find(struct sim_world *w, const char *name, enum mm_sim_kind kind);
int64_t sim_now_ms(void);
void sim_sleep_ms(int64_t ms);
/* run argv, its stdout into *out (malloc'd), within timeout_ms; exit status or -1 */
int sim_run_capture(char *const argv[], char **out, int64_t timeout_ms);
/* n of them at once: outs[i] (malloc'd) and rcs[i] (-1: no exit status) */
int sim_run_many(char **const argvs[], size_t n, char **outs, int64_t timeout_ms, int *rcs);

/* netcut.c */
bool sim_nft_init(struct sim_world *w, char *err, size_t errlen);
bool sim_nft_apply(struct sim_world *w, char *err, size_t errlen);
void sim_nft_fini(struct sim_world *w);
void sim_cut(struct sim_world *w, size_t a, size_t b, bool cut);
bool sim_is_cut(const struct sim_world *w, size_t a, size_t b);
void sim_chaos_disown(struct sim_world *w, size_t a, size_t b);

/* sink.c */
bool sim_sinks_start(struct sim_world *w, char *err, size_t errlen);
void sim_sinks_stop(struct sim_world *w);
void sim_sink_refuse(struct sim_world *w, const char *hostport, bool refuse);
/* the scenario refused or accepted it: chaos no longer owns its state */
void sim_sink_disown(struct sim_world *w, const char *hostport);

/* submit.c: n messages to rcpt through server d; returns how many got 250 */
uint64_t sim_send(struct sim_world *w, struct sim_daemon *d, uint64_t n, const char *rcpt,
                  char *err, size_t errlen);

/* observe.c: one query (meshctl --connect ... --json VERB ARGS); the JSON
 * text (malloc'd) or NULL */
char *sim_query(struct sim_world *w, struct sim_daemon *d, const char *verb, const char *arg);
/* the same, as meshctl prints it for a person */
char *sim_query_text(struct sim_world *w, struct sim_daemon *d, const char *verb);
/* one digest at every running, not isolated daemon, and every group with
 * a running candidate published by its master; the digest (65 octets) */
bool sim_converged(struct sim_world *w, char *seen, size_t seenlen, char digest[65]);
bool sim_state_is(struct sim_world *w, struct sim_daemon *at, const struct mm_sim_name *name,
                  bool up, char *seen, size_t seenlen);
bool sim_route_via(struct sim_world *w, struct sim_daemon *at, const char *rcpt,
                   const struct mm_sim_name *via, char *seen, size_t seenlen);

/* account.c */
struct sim_count {
	uint64_t sent, refused, delivered, queued, bounced, lost, duplicated;
};
/* rcpt NULL: every recipient; full: also ask the queues (else queued 0) */
void sim_account(struct sim_world *w, const char *rcpt, bool full, struct sim_count *c);
bool sim_daemon_running(const struct sim_daemon *d);

/* chaos.c: one fault drawn from the seed; chaos off undoes chaos's own */
void sim_chaos_fault(struct sim_world *w);
void sim_chaos_off(struct sim_world *w);

/* picture.c: topology.dot/.svg from a table's JSON, convergence.svg */
struct json_t;
void sim_pictures(struct sim_world *w, const char *dir, struct json_t *table,
                  struct json_t *changes);

/* run.c */
int sim_run_live(struct sim_world *w, const char *report_dir);

#endif
