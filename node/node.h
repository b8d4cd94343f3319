/* meshnode, the driver of the node core (DESIGN §1): one libevent loop
 * that gives the queue manager (core/qmgr.h) its world and runs the SMTP
 * machines over real sockets.
 *
 *   meshnode.c      start, stop, signals, the once-a-second tick
 *   env.c           the queue manager's environment: clocks, timers, logs,
 *                   local delivery (Maildir), MX lookups (c-ares)
 *   spool_file.c    the file spool (spool.c) behind the core's spool ops
 *   server.c        SMTP virtual servers: listeners, sessions, deadlines,
 *                   the relay policy, handing messages to the commit pipeline
 *   relay_client.c  outgoing SMTP sessions the queue manager asks for
 *   config.c        the directory applied at start and on SIGHUP
 *   control.c       the queue view on SPOOL/control.sock
 *   tracking.c      the message tracking log
 *   routing.c       the routing engine: the member machine and the
 *                   connector-state detector (core/member.h, connstate.h),
 *                   TCP 691 (net/net691.h), SPOOL/table
 *   probe.c         the detector's probes: SMTP sessions without mail
 *   query.c         queries on 691 (meshctl --connect)
 * Only the spool's syncer is a thread of its own. */
#ifndef MM_NODE_H
#define MM_NODE_H

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "directory.h"
#include "dns.h"
#include "qmgr.h"
#include "relay.h"
#include "route.h"
#include "settings.h"
#include "smtp_server.h"
#include "spool.h"
#include "tls.h"
#include "u64map.h"

struct node;
struct session;
struct conn;
struct mx_answer;
struct routing;
struct probes;
struct mm_cs_probe;

struct vserver {
	struct node *node;
	char *name, *bind, *fqdn; /* copies: the directory may be reloaded */
	struct mm_smtpd_conf conf;
	struct evconnlistener *listener;
	size_t nrelay;
	struct mm_cidr *relay;
};

struct ipcount {
	char ip[48];
	uint32_t n;
};

struct node {
	struct event_base *base;
	struct mm_settings set;
	const char *dirspec, *self, *spool_dir;
	char *fqdn;
	struct mm_directory dir;
	struct mm_router router;
	bool configured; /* router and dir are set */
	struct mm_dns *dns;
	struct mm_tls tls;      /* contexts NULL without --tls */
	const char *tls_dir;    /* --tls, or NULL */
	struct mm_trust *trust; /* signed entries: ca.pem and crl.pem; NULL without --tls */
	struct mm_spool spool;
	struct mm_qm qm;
	bool qm_ready;
	struct vserver *vs;
	size_t nvs;
	struct sockaddr_storage src; /* source address of outgoing SMTP */
	int src_len;
	struct mm_cidr *org; /* addresses of the organization's servers */
	size_t norg;
	struct event *spool_ev, *tick_ev, *later_ev, *sig_term, *sig_int, *sig_hup;
	uint32_t nsessions;
	struct session *sessions;
	struct ipcount *ips;
	size_t nips, capips;
	char *mailstore;
	FILE *track;
	struct mm_buf track_early;
	uint64_t rnd;
	bool stopping;
	int exit_status; /* EX_OK, or why the loop ended */
	struct control *control;
	struct mm_u64map timers; /* queue manager timer key → struct event */
	struct mm_u64map conns;  /* session number → struct conn */
	/* work put off to the next turn of the loop, so that no answer to the
	 * queue manager comes from inside one of its own calls */
	struct conn *failed_conns;
	struct mx_answer *answers;
	struct routing *rt; /* the routing engine; NULL when off */
	struct xlinks *xl;  /* X-LINK2STATE's exchanges; NULL without --tls */
};

/* server.c */
int node_listen(struct node *n);
void node_stop_listening(struct node *n);
void node_close_sessions(struct node *n);
/* After a new CRL: sessions of a certificate that no longer verifies lose
 * what it earned, and end with 421 (unless a commit holds them). */
void node_recheck_sessions(struct node *n);
/* Stopping: 421 to every session not waiting for its commit. */
void node_say_goodbye(struct node *n);
/* The commit pipeline resolved: answer the sessions it names. */
void node_answer_commits(struct node *n);
/* Sessions currently receiving a message (DATA or BDAT). */
uint32_t node_receiving(const struct node *n);

/* config.c: the directory applied at start and on SIGHUP; takes dir over */
bool node_configure(struct node *n, struct mm_directory *dir);
void node_reload(struct node *n);
void node_config_free(struct node *n);

/* env.c */
void node_env(struct node *n, struct mm_qm_env *env);
void node_env_free(struct node *n);
/* What was put off to the next turn of the loop. */
void node_later(evutil_socket_t fd, short what, void *arg);

/* relay_client.c: the sessions of env.session_* */
void relay_open(void *ctx, uint32_t sid, const struct mm_qm_target *t);
void relay_send(void *ctx, uint32_t sid, struct mm_smtpc_job *job);
void relay_close(void *ctx, uint32_t sid);
/* Connections that failed before they started, told to the queue manager. */
void relay_report_failed(struct node *n);
void relay_free_all(struct node *n);

/* spool_file.c */
struct mm_spool_ops node_spool_ops(void);

/* tracking.c: DESIGN §7a, one line per event */
void track_line(void *ctx, const char *line);
/* Open the log (appending), with what was written before. -1: errno. */
int track_open(struct node *n, const char *path);

/* control.c: the queue view on SPOOL/control.sock */
int control_open(struct node *n);
void control_close(struct node *n);

/* routing.c: the routing engine. routing_start after the spool is open
 * and before the listeners (with --tls DIR, or NULL): EX_OK, or the exit
 * status of a failure. Without --tls and insecure=1 the engine stays off
 * and every call below does nothing. */
int routing_start(struct node *n, const char *tls_dir);
bool routing_on(const struct node *n);
/* --tls DIR's ca.pem and crl.pem, at start (after routing_start) and at
 * SIGHUP: the checks of signed entries, and the CRL on every TLS context
 * (SMTP and 691). False, logged, when they do not load (at SIGHUP the
 * ones in use stay). */
bool routing_trust_load(struct node *n);
/* SIGHUP, after the new directory is in n->dir: the table follows it
 * (entries of incarnation 0), and the queue manager is told. */
void routing_reload(struct node *n);
/* SIGTERM: "server down" to the master, connections closed after what
 * they were sent. */
void routing_stop(struct node *n);
/* The convergence bench's hook: this server's bridgehead vserver on
 * connector reported, as the detector would; false when the engine is off. */
bool routing_test_report(struct node *n, const char *connector, const char *vserver, bool down);
void routing_free(struct node *n);
/* env.link_result of the queue manager (ctx: the node) */
void routing_link_result(void *ctx, const char *connector, const char *target, bool ok,
                         const char *why);
/* What the node routes with (the directory's table when off), and the
 * active master connected (or NULL). */
const struct mm_table *routing_view(const struct node *n);
const char *routing_master(const struct node *n);
/* What the masters said (the member's base): what X-LINK2STATE sends. */
const struct mm_table *routing_base(const struct node *n);
/* Entries of other groups from peer over X-LINK2STATE (taken over): judged,
 * merged, offered to the master; the router follows at once. False when
 * one failed a check (the first reason in why). */
bool routing_take(struct node *n, const char *peer, mm_entry **e, size_t k, uint32_t *taken,
                  uint32_t *dropped, char *why, size_t whylen);

/* xlink_run.c: X-LINK2STATE's exchanges between routing groups (DESIGN
 * §5.2). xlinks_new once the routing engine runs under TLS. */
struct xlinks *xlinks_new(struct node *n);
void xlinks_free(struct xlinks *x);
/* After every table change: a new base floods to the remote bridgeheads. */
void xlinks_table_changed(struct xlinks *x);
/* After a new CRL: kept sessions close (the next exchange checks the
 * peer's certificate afresh). */
void xlinks_drop_sessions(struct xlinks *x);
/* A session's X-LINK2STATE command (the SMTP server machine's checks
 * passed; peer: the server its certificate names). *slot: the session's
 * exchange, made at its first command, freed by xlinks_session_free. */
enum mm_xlink_result xlinks_serve(struct xlinks *x, struct mm_xlink_srv **slot, const char *peer,
                                  const char *arg, struct mm_buf *out);
void xlinks_session_free(struct mm_xlink_srv *s);

/* probe.c: done(ctx, id, ok, why) answers every probe once, from a later
 * callback; probes_free forgets those out. */
struct probes *probes_new(struct node *n,
                          void (*done)(void *ctx, uint32_t id, bool ok, const char *why),
                          void *ctx);
void probe_start(struct probes *ps, uint32_t id, const struct mm_cs_probe *p);
/* An X-LINK2STATE session (xlink.h) with server at address: TLS required,
 * its certificate must name server, AUTH EXTERNAL, the exchange x runs,
 * QUIT -- or, keep, the session stays open, idle, for probe_xlink_again.
 * Answered like a probe: ok when the exchange ended well (x->why says why
 * not). x lives until the answer. */
void probe_start_xlink(struct probes *ps, uint32_t id, const char *address, const char *server,
                       struct mm_xlink_cli *x, bool keep);
/* The next exchange x on the kept session id, answered under id; false
 * when that session is gone (the peer closed it) or busy. */
bool probe_xlink_again(struct probes *ps, uint32_t id, struct mm_xlink_cli *x);
/* Close a probe or a kept session without an answer. */
void probe_drop(struct probes *ps, uint32_t id);

/* dial.c: an SMTP connection to address ("ip:port") from this server's
 * own address, its callbacks set, connect_timeout_ms on it; NULL with why
 * (an enhanced status and the reason) when it cannot even start. *fd is
 * the socket whenever one was made (the bufferevent does not close it). */
struct bufferevent *node_dial(struct node *n, const char *address, bufferevent_data_cb read_cb,
                              bufferevent_event_cb event_cb, void *ctx, evutil_socket_t *fd,
                              char *why, size_t whylen);
void probes_free(struct probes *ps);

/* query.c: one Query on 691 into out (args[0] "json" or "text"); returns
 * the sysexits status of the Reply. may_change: retry, freeze and thaw. */
int query_answer(struct node *n, const char *command, size_t nargs, const char *const *args,
                 bool may_change, FILE *out);

/* control.c: the answer of SPOOL/control.sock to VERB ARG into out (the
 * JSON ends with a newline); returns the exit status for meshctl */
int control_render(struct node *n, bool text, const char *verb, const char *arg, FILE *out);

/* meshnode.c */
int64_t node_now_ms(void);  /* monotonic */
int64_t node_wall_ms(void); /* since the epoch */
uint32_t node_random(struct node *n);
void node_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
