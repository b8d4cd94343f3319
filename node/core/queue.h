/* The queues in memory (DESIGN §6), as the reference texts name them.
 *
 * A message is accepted whole into the spool; from then on each of its
 * recipients is in exactly one queue until it is finished (delivered, or
 * failed and reported in a DSN). Recipients of one message bound for one
 * next hop travel together as a job: one SMTP transaction, or one run of
 * local deliveries. A queue holds jobs ready to go (in arrival order), jobs
 * held until the queue's retry time, and jobs out in a session.
 *
 * Link queues are keyed by the identity of their next hop (how it is
 * reached, the server and virtual server or the connector, the address),
 * never by a display name: a server and a connector may share a cn, and a
 * smart host that changes is another next hop. Each queue has an id, "q" and
 * a number, unique while the node runs, that the operator's commands take.
 *
 * Nothing here does I/O or reads a clock; times are passed in. */
#ifndef MM_QUEUE_H
#define MM_QUEUE_H

#include <stdbool.h>
#include <stdint.h>

#include "hopstate.h"
#include "spool_ops.h"
#include "strmap.h"

enum mm_queue_kind {
	MM_Q_PRESUBMIT,   /* "Pre-submission": being received */
	MM_Q_DIRECTORY,   /* "Messages awaiting directory lookup" */
	MM_Q_ROUTING,     /* "Messages waiting to be routed" */
	MM_Q_LOCAL,       /* "Local delivery" */
	MM_Q_LINK,        /* one per next hop: a server, a smart host, a domain */
	MM_Q_UNREACHABLE, /* "Final destination currently unreachable" */
	MM_Q_REROUTE,     /* "Messages pending reroute" */
};

const char *mm_queue_kind_name(enum mm_queue_kind k);

enum mm_queue_state { MM_QS_READY, MM_QS_ACTIVE, MM_QS_RETRY, MM_QS_FROZEN };
const char *mm_queue_state_name(enum mm_queue_state s);

struct mm_qrcpt {
	char *addr, *orcpt;
	uint8_t notify;
	bool done;
	char *last_error; /* of the last temporary failure */
};

struct mm_qmsg {
	uint64_t id;
	char idhex[17];
	int64_t arrival; /* unix seconds */
	char *sender, *envid, *client;
	char *message_id; /* its Message-ID header, for the tracking log; NULL: none */
	uint8_t ret, flags;
	struct mm_spool_loc body;
	uint32_t nrcpt, pending;
	struct mm_qrcpt *rcpt;
	uint32_t holds;       /* jobs and pending work that still point here */
	uint64_t counted;     /* bookkeeping of queue views (a mark per pass) */
	uint64_t arrived_gen; /* the routing generation it arrived under */
	/* the servers it passed through, by the by-names of mailmesh's
	 * Received: lines (core/trace.h), newest first; none when recovered */
	char **via;
	uint32_t nvia;
};

struct mm_job {
	struct mm_qmsg *msg;
	uint32_t n;
	size_t cap;
	uint32_t *idx;       /* recipient indices */
	uint64_t generation; /* of the routing it was placed with */
	uint32_t from;       /* number of the queue it left for reroute; 0: none */
	bool held;           /* it waits (or waited) for its queue's retry time */
	/* held in "Messages pending reroute" because it would go straight
	 * back to the server it came from: until then (ms), or a change */
	int64_t back_until;
	bool back_ok; /* its hold passed: it goes, even back */
	struct mm_job *next;
};

/* MX queues: the domain's mail exchangers, best first. */
struct mm_mx {
	char **addrs;
	uint32_t naddrs;
	int64_t resolved_at; /* ms; kept for mx_cache_ms */
	bool resolving;
	uint32_t next;   /* the exchanger new sessions go to */
	uint32_t failed; /* bit i: exchanger i could not be reached this round */
};

#define MM_MX_MAX 32 /* exchangers kept of an answer (the bits of failed) */

/* How a link queue's mail leaves (the hop types of linkstate/route.h). */
enum mm_link_hop {
	MM_LINK_SERVER,     /* another organization server's virtual server */
	MM_LINK_SMART_HOST, /* an SMTP connector's smart host */
	MM_LINK_MX,         /* an SMTP connector, by the domain's MX */
};

struct mm_qm_session;

struct mm_queue {
	uint32_t num;
	char id[16]; /* "q" num */
	char *name;  /* what an operator reads: server, connector or domain */
	char *key;   /* the identity */
	enum mm_queue_kind kind;
	/* MM_Q_LINK */
	enum mm_link_hop hop;
	char *server, *vserver; /* MM_LINK_SERVER */
	char *connector;        /* the connector served; NULL inside the group */
	char *target;           /* "ip:port"; the domain for MM_LINK_MX */
	int tls;                /* MM_SMTPC_TLS_*, from the connector's policy */
	bool org;               /* the next hop is an organization server */
	struct mm_mx mx;
	/* jobs */
	struct mm_job *head, *tail;      /* ready to go */
	struct mm_job *held, *held_tail; /* waiting for the retry time */
	struct mm_job *busy;             /* out in a session */
	uint32_t nready, nheld, nbusy, nrcpt;
	bool frozen;
	uint32_t sessions; /* open to the next hop */
	uint32_t closing;  /* of those, saying QUIT: no capacity */
	uint32_t idle;     /* of those, greeted and waiting for a job */
	struct mm_qm_session *idle_sessions;
	struct mm_hopstate st;
	bool table_down; /* its hop down in the table, at the last change */
	int64_t held_at; /* ms: when held jobs may go again; 0: none held */
	char *last_error;
	int64_t idle_since; /* ms: empty and without sessions since */
};

struct mm_queues {
	size_t n, cap;
	struct mm_queue **q;
	struct mm_strmap by_key;
	uint32_t next_num;
};

void mm_queues_init(struct mm_queues *qs);
void mm_queues_free(struct mm_queues *qs);
/* A new queue (its key must be new); the caller fills in the rest. */
struct mm_queue *mm_queue_add(struct mm_queues *qs, enum mm_queue_kind kind, const char *name,
                              const char *key);
struct mm_queue *mm_queue_by_key(const struct mm_queues *qs, const char *key);
struct mm_queue *mm_queue_by_num(const struct mm_queues *qs, uint32_t num);
/* Drop queue i (empty, no sessions). */
void mm_queue_remove(struct mm_queues *qs, size_t i);

struct mm_job *mm_job_new(struct mm_qmsg *m, uint64_t generation);
void mm_job_add(struct mm_job *j, uint32_t idx);
void mm_job_free(struct mm_job *j);

void mm_queue_push(struct mm_queue *q, struct mm_job *j);
struct mm_job *mm_queue_pop(struct mm_queue *q);
void mm_queue_hold(struct mm_queue *q, struct mm_job *j);
/* The retry time came: held jobs go first again. */
void mm_queue_release_held(struct mm_queue *q);
/* A job goes out in a session, and comes back (its recipients counted
 * out of the queue either way). */
void mm_queue_take_busy(struct mm_queue *q, struct mm_job *j);
void mm_queue_drop_busy(struct mm_queue *q, struct mm_job *j);
/* Every job waiting in q, ready and held, taken out (in that order). */
struct mm_job *mm_queue_take_all(struct mm_queue *q);
/* The jobs of q, ready or held, for which moves() says so, taken out in
 * order and returned as a list; the others stay where they were. */
struct mm_job *mm_queue_extract(struct mm_queue *q,
                                bool (*moves)(void *ctx, const struct mm_queue *q,
                                              const struct mm_job *j),
                                void *ctx);
bool mm_queue_empty(const struct mm_queue *q);
enum mm_queue_state mm_queue_state(const struct mm_queue *q, int64_t now_ms);

/* The message in memory, from its spool description (recipients with a
 * done flag set come finished). */
struct mm_qmsg *mm_qmsg_from_spool(const struct mm_spool_msg *sm);
void mm_qmsg_free(struct mm_qmsg *m);

#endif
