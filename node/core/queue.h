/* The queues in memory (DESIGN §6), as the reference texts name them.
 *
 * A message is accepted whole into the spool; from then on each of its
 * recipients is in exactly one queue until it is finished (delivered, or
 * failed and reported in a DSN). Recipients of one message bound for one
 * next hop travel together as a job: one SMTP transaction, or one run of
 * local deliveries. Queues hold jobs in arrival order.
 *
 * Nothing here does I/O or reads a clock; times are passed in. */
#ifndef MM_QUEUE_H
#define MM_QUEUE_H

#include <stdbool.h>
#include <stdint.h>

#include "hopstate.h"
#include "spool.h"
#include "strmap.h"

enum mm_queue_kind {
	MM_Q_PRESUBMIT,   /* "Pre-submission": being received */
	MM_Q_DIRECTORY,   /* "Messages awaiting directory lookup" */
	MM_Q_ROUTING,     /* "Messages waiting to be routed" */
	MM_Q_LOCAL,       /* "Local delivery" */
	MM_Q_LINK,        /* one per next hop: a server, a connector, a domain */
	MM_Q_UNREACHABLE, /* "Final destination currently unreachable" */
	MM_Q_REROUTE,     /* "Messages pending reroute" */
};

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
	uint8_t ret, flags;
	struct mm_spool_loc body;
	uint32_t nrcpt, pending;
	struct mm_qrcpt *rcpt;
	bool freeing; /* shutdown bookkeeping */
	bool marked;  /* compaction bookkeeping */
};

struct mm_job {
	struct mm_qmsg *msg;
	uint32_t n;
	uint32_t *idx; /* recipient indices */
	struct mm_job *next;
};

struct mm_queue {
	char *name;
	enum mm_queue_kind kind;
	char *target;                    /* MM_Q_LINK: "ip:port", or a domain for MX delivery */
	int hop;                         /* enum mm_hop_type of the route that made it */
	int tls;                         /* MM_SMTPC_TLS_*: the connector's policy */
	struct mm_job *head, *tail;      /* ready to go */
	struct mm_job *held, *held_tail; /* waiting for the retry time */
	uint32_t njobs, nheld, nrcpt;
	bool frozen;
	uint32_t active;       /* connections open */
	uint32_t inflight;     /* jobs taken by a connection */
	struct mm_hopstate st; /* failures, retry time, reported down */
	char *last_error;
	void *driver; /* the driver's per-queue state (timer) */
};

struct mm_queues {
	size_t n, cap;
	struct mm_queue **q;
	struct mm_strmap by_name;
};

void mm_queues_init(struct mm_queues *qs);
void mm_queues_free(struct mm_queues *qs);
/* The queue with that name, made on first use. */
struct mm_queue *mm_queue_get(struct mm_queues *qs, enum mm_queue_kind kind, const char *name,
                              const char *target, int hop);
struct mm_queue *mm_queue_find(struct mm_queues *qs, const char *name);

struct mm_job *mm_job_new(struct mm_qmsg *m);
void mm_job_add(struct mm_job *j, uint32_t idx);
void mm_job_free(struct mm_job *j);

void mm_queue_push(struct mm_queue *q, struct mm_job *j);
void mm_queue_push_front(struct mm_queue *q, struct mm_job *j);
struct mm_job *mm_queue_pop(struct mm_queue *q);
void mm_queue_hold(struct mm_queue *q, struct mm_job *j);
/* The retry time came: held jobs go first again. */
void mm_queue_release_held(struct mm_queue *q);
enum mm_queue_state mm_queue_state(const struct mm_queue *q, int64_t now_ms);

/* The message in memory, from its spool description (recipients with a
 * done flag set come finished). */
struct mm_qmsg *mm_qmsg_from_spool(const struct mm_spool_msg *sm);
void mm_qmsg_free(struct mm_qmsg *m);

#endif
