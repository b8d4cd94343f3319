/* meshnode's state, shared by its drivers: server.c (SMTP virtual servers
 * and the commit of accepted mail), deliver.c (queues to next hops),
 * control.c (the queue view), tracking.c, meshnode.c (start and stop).
 * Everything runs on one libevent loop; only the spool's syncer is a
 * thread of its own. */
#ifndef MM_NODE_H
#define MM_NODE_H

#include <event2/event.h>
#include <event2/listener.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "directory.h"
#include "dns.h"
#include "queue.h"
#include "route.h"
#include "settings.h"
#include "smtp_server.h"
#include "spool.h"
#include "tls.h"

struct node;
struct session;

struct cidr {
	int family; /* AF_INET or AF_INET6 */
	unsigned char addr[16];
	unsigned bits;
};

struct vserver {
	struct node *node;
	char *name, *bind, *fqdn; /* copies: the directory may be reloaded */
	struct mm_smtpd_conf conf;
	struct evconnlistener *listener;
	size_t nrelay;
	struct cidr *relay;
};

/* A message written to the spool, waiting for fdatasync before its 250. */
struct commit {
	struct session *session; /* NULL: made by the node itself (a DSN) */
	struct mm_qmsg *msg;
	uint64_t lsn;
	struct commit *next;
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
	struct mm_tls tls; /* contexts NULL without --tls */
	struct mm_spool spool;
	struct mm_queues queues;
	struct mm_queue *local, *unreachable;
	struct vserver *vs;
	size_t nvs;
	struct sockaddr_storage src; /* source address of outgoing SMTP */
	int src_len;
	struct cidr *org; /* addresses of the organization's servers */
	size_t norg;
	struct commit *commits, *commits_tail;
	struct event *spool_ev, *tick_ev, *local_ev, *sig_term, *sig_int, *sig_hup;
	uint32_t nsessions;
	struct session *sessions;
	struct ipcount *ips;
	size_t nips, capips;
	char *mailstore;
	FILE *track;
	uint64_t rnd;
	bool stopping;
	/* counters for the queue view */
	uint32_t presubmit;
	struct control *control;
	/* messages read back from the spool at start, routed once running */
	struct mm_qmsg **recovered;
	size_t nrecovered, caprecovered;
};

/* server.c */
int node_listen(struct node *n);
void node_stop_listening(struct node *n);
void node_close_sessions(struct node *n);
/* Stopping: 421 to every session not waiting for its commit. */
void node_say_goodbye(struct node *n);
/* Append a message to the spool and queue its commit; s (or NULL for a
 * message the node makes) hears the outcome in node_commits_durable.
 * Returns 0 or an errno value (nothing kept). */
int node_enqueue(struct node *n, struct session *s, const struct mm_spool_msg *sm,
                 const struct iovec *body, int nbody);
void node_commits_durable(struct node *n, uint64_t durable, int err);
bool cidr_parse(const char *s, struct cidr *out);
bool cidr_match(const struct cidr *c, const struct sockaddr *sa);

/* config.c: the directory applied at start and on SIGHUP; takes dir over */
bool node_configure(struct node *n, struct mm_directory *dir);
void node_reload(struct node *n);
void node_config_free(struct node *n);

/* deliver.c */
void node_route_message(struct node *n, struct mm_qmsg *m);
/* The table changed: what waits for a path is routed again. */
void node_reroute(struct node *n);
void node_recovered(void *ctx, const struct mm_spool_msg *sm);
void node_tick(struct node *n);
/* Move queued messages out of an old spool segment (see spool.h). */
void node_compact(struct node *n);
void node_local_cb(evutil_socket_t fd, short what, void *arg);
void node_kick(struct node *n, struct mm_queue *q);
struct mm_queue *node_queue(struct node *n, enum mm_queue_kind kind, const char *name,
                            const char *target, int hop);
/* Queue a message the node writes itself (a DSN): spool, sync, route. */
void node_inject(struct node *n, const char *sender, const char *rcpt, const char *body,
                 size_t len);
void node_deliver_free(struct node *n);

/* tracking.c: DESIGN §7a, one line per event */
void track(struct node *n, const char *event, const struct mm_qmsg *m, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* control.c: the queue view on SPOOL/control.sock */
int control_open(struct node *n);
void control_close(struct node *n);

/* meshnode.c */
int64_t node_now_ms(void);   /* monotonic */
uint64_t node_wall_ms(void); /* since the epoch: message ids */
uint32_t node_random(struct node *n);
/* 2026-11-22T19:50:00.123Z, for logs */
void node_timestamp(char out[32]);
void node_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
