/* The queue manager of one node, sans I/O (DESIGN §1, §6).
 *
 * It decides, and only decides: which queue each recipient goes to
 * (categorizer and next-hop choice), when a job is tried, how many sessions
 * a next hop gets, retry and backoff, expiry, which DSN is owed, MX
 * rotation, and what moves when the table or the directory changes. It
 * holds no socket, no file, no clock and no global: the world reaches it
 * through events (the mm_qm_* calls below) and it acts only through the
 * environment struct. The environment never calls back into the queue
 * manager from inside a call the queue manager made; results come back as
 * later events. meshnode drives it with libevent (node/meshnode.c and the
 * drivers beside it); the unit tests and the simulator drive it in virtual
 * time over the RAM spool. Arithmetic is integer, so a virtual-time run
 * replays byte for byte.
 *
 * The files of the queue manager:
 *   qmgr.c        lifetime, messages, the table, ticks, operator commands
 *   commit.c      the commit pipeline: append, durable, then 250
 *   qmgr_route.c  the categorizer and next hop of each recipient; reroute
 *   qmgr_link.c   link queues: sessions, concurrency, MX rotation, results
 *   qmgr_local.c  local delivery
 *   qmgr_dsn.c    failures for good, expiry and the DSNs they owe
 *   compact.c     moving queued messages out of old spool segments */
#ifndef MM_QMGR_H
#define MM_QMGR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "org.h"
#include "queue.h"
#include "route.h"
#include "smtp_client.h"
#include "spool_ops.h"
#include "u64map.h"

struct mm_qm_conf {
	uint32_t retry_min_ms, retry_max_ms, retry_jitter_pct; /* backoff of a hop */
	uint32_t glitch_count, glitch_interval_ms;             /* glitch retry */
	uint32_t dest_concurrency;                             /* sessions per next hop */
	uint64_t expire_s;    /* a message gives up (4.4.7 → 5.4.7) */
	uint32_t mx_cache_ms; /* an MX answer is used this long */
	/* a session with nothing to carry waits this long for the next job
	 * before its QUIT (0: QUIT at once), as Postfix's connection cache */
	uint32_t session_idle_ms;
	uint32_t local_batch; /* local deliveries per turn of the loop */
	int64_t compact_after_ms;
	/* between organization servers, TLS with the organization's
	 * certificates is required (meshnode runs with --tls) */
	bool org_tls;
	/* a message that would go straight back to the organization server it
	 * came from, under the table it arrived with, waits this long for the
	 * table to change (the sender knew something we have not heard yet)
	 * before it goes anyway */
	uint32_t back_hold_ms;
};

/* Where a session goes. */
struct mm_qm_target {
	const char *address; /* "ip:port" */
	int tls;             /* MM_SMTPC_TLS_* */
	bool org;            /* an organization server: present our certificate */
	const char *server;  /* which one (its certificate must name it), or NULL */
	const char *queue;   /* the queue's name, for logs */
};

/* What a DNS answer says (node/dns.c gives these). */
enum mm_mx_status {
	MM_MX_OK,
	MM_MX_NXDOMAIN, /* the domain does not exist: 5.4.4 */
	MM_MX_NULLMX,   /* RFC 7505 null MX: the domain takes no mail, 5.1.10 */
	MM_MX_NOHOST,   /* MX hosts without any address: 5.4.4 */
	MM_MX_TEMP,     /* SERVFAIL, timeout, refused: 4.4.3, try later */
};

struct mm_qm_env {
	void *ctx;
	int64_t (*now_ms)(void *ctx);  /* monotonic: timers */
	int64_t (*wall_ms)(void *ctx); /* since the epoch: expiry, ids, dates */
	uint32_t (*random)(void *ctx); /* uniform in [0, 2^32) */
	/* One timer per key; arming again moves it. The driver answers with
	 * mm_qm_timer(key) at or after at_ms. */
	void (*timer_arm)(void *ctx, uint64_t key, int64_t at_ms);
	void (*timer_cancel)(void *ctx, uint64_t key);
	/* SMTP relay sessions, numbered by the queue manager. open: connect,
	 * greet, EHLO, STARTTLS per policy, then mm_qm_session_ready (or
	 * mm_qm_session_end). send: one transaction; the machine fills
	 * job->res, then mm_qm_session_result. close: QUIT and
	 * mm_qm_session_end. */
	void (*session_open)(void *ctx, uint32_t sid, const struct mm_qm_target *t);
	void (*session_send)(void *ctx, uint32_t sid, struct mm_smtpc_job *job);
	void (*session_close)(void *ctx, uint32_t sid);
	/* The answer comes as mm_qm_mx_answer(qnum, ...). */
	void (*resolve_mx)(void *ctx, uint32_t qnum, const char *domain);
	/* Local delivery into the mailbox of a directory recipient: the file
	 * is durable when this returns 0; otherwise an errno value. */
	int (*deliver_local)(void *ctx, const char *mailbox, const char *prefix, size_t plen,
	                     const char *body, size_t len);
	/* Optional: a session over a connector's hop (a smart host, or a
	 * remote bridgehead from this bridgehead) could not start (refused,
	 * timed out, 4xx/5xx greeting: ok false) or got through its greeting
	 * and EHLO (ok true) -- what the connector-state detector
	 * (connstate.h) takes. A recipient's 4xx never counts. Called from
	 * inside queue-manager calls: the driver queues it for after. */
	void (*link_result)(void *ctx, const char *connector, const char *target, bool ok,
	                    const char *why);
	/* One line each, without the time stamp; every value a peer controls
	 * is escaped already (logfmt.h). */
	void (*log)(void *ctx, const char *line);
	void (*track)(void *ctx, const char *line);
	/* The spool. */
	struct mm_spool_ops spool;
	void *spool_ctx;
};

/* A commit resolved: owner's message is durable (err 0: answer 250 with
 * idhex) or failed (err: the errno; answer 4xx). */
struct mm_qm_resolved {
	void *owner;
	char idhex[17];
	int err;
};

struct mm_commit;
struct mm_qm_session;

#define MM_QM_AVOID_MAX 8    /* split horizon routers kept */
#define MM_QM_AVOID_KEY 1024 /* the longest set of servers avoided, named */

struct mm_qm {
	struct mm_qm_conf conf;
	struct mm_qm_env env;
	char *self, *fqdn;
	const struct mm_directory *dir;
	struct mm_router *router;
	uint64_t generation; /* bumped by every table or directory change */
	struct mm_queues queues;
	struct mm_queue *routing, *local, *unreachable, *reroute, *presubmit, *directory;
	struct mm_u64map msgs; /* every message with a recipient not finished, by id */
	/* commit pipeline */
	struct mm_commit *commits, *commits_tail;
	uint32_t ncommits;
	struct mm_qm_resolved *resolved;
	size_t nresolved, capresolved, resolved_at;
	/* sessions */
	struct mm_u64map sessions;
	uint32_t next_sid;
	/* compaction */
	bool compacting;
	uint64_t compact_lsn;
	uint32_t compact_seg;
	/* the mark of one counting pass over queues (mm_qm_queue_messages) */
	uint64_t count_pass;
	/* split horizon's routers (qmgr_route.c), for this generation only */
	struct mm_qm_avoid {
		char *key; /* the servers avoided, "A/B/" */
		bool ok;
		struct mm_avoid_router ar;
	} avoid[MM_QM_AVOID_MAX];
	size_t navoid, avoid_next;
	uint64_t avoid_gen;
	bool started, stopping;
};

/* Timer keys: a queue's retry timer is its number; these are the others. */
#define MM_QM_TIMER_LOCAL   (1ull << 32)
#define MM_QM_TIMER_SESSION (2ull << 32) /* | session number: an idle session */
#define MM_QM_TIMER_BACK    (3ull << 32) /* the first back-held job's hold ends */

void mm_qm_init(struct mm_qm *qm, const struct mm_qm_conf *conf, const struct mm_qm_env *env,
                const char *self, const char *fqdn);
/* Frees every message and queue; sessions are the driver's to close. */
void mm_qm_free(struct mm_qm *qm);

/* --- events ------------------------------------------------------------ */

/* The table or the directory changed (also the first time): both stay the
 * caller's and must live until the next call. Every queued job whose next
 * hop changed moves, through "Messages pending reroute". */
void mm_qm_table_changed(struct mm_qm *qm, const struct mm_directory *dir,
                         struct mm_router *router);
/* A target ("ip:port") answered after failing (a probe of the
 * connector-state detector, a delivery): every link queue that goes
 * there is ready at once, whatever its retry timer said. */
void mm_qm_target_up(struct mm_qm *qm, const char *address);
/* A message read back from the spool at start: waits in "Messages waiting
 * to be routed" until mm_qm_start. */
void mm_qm_recovered(struct mm_qm *qm, const struct mm_spool_msg *sm);
/* Listeners are up: route what was recovered. */
void mm_qm_start(struct mm_qm *qm);
/* Stopping: nothing new is started. */
void mm_qm_stop(struct mm_qm *qm);
void mm_qm_timer(struct mm_qm *qm, uint64_t key);
/* Once a second: expiry of mail without a path, idle queues, compaction. */
void mm_qm_tick(struct mm_qm *qm);

/* commit.c: a message received (owner: the driver's session) or made by
 * the node. Appended to the spool now; it resolves (mm_qm_resolved) once
 * the spool says it is durable. Returns 0 or an errno value, and then
 * nothing is kept. */
int mm_qm_submit(struct mm_qm *qm, const struct mm_spool_msg *sm, const struct iovec *body,
                 int nbody, void *owner);
/* The spool is durable up to lsn; or it failed to sync (err): every commit
 * still waiting fails, and nothing more is promised. */
void mm_qm_durable(struct mm_qm *qm, uint64_t lsn);
void mm_qm_sync_failed(struct mm_qm *qm, int err);
/* The next resolved commit of an owner; false when none. */
bool mm_qm_next_resolved(struct mm_qm *qm, struct mm_qm_resolved *out);
/* The owner is gone (its connection closed): its commits resolve without it. */
void mm_qm_disown(struct mm_qm *qm, void *owner);

/* qmgr_link.c: session events. */
void mm_qm_session_ready(struct mm_qm *qm, uint32_t sid);
/* The job given by session_send is over: job->res holds a result per
 * recipient. */
void mm_qm_session_result(struct mm_qm *qm, uint32_t sid);
/* The session is gone. failed: it could not go on (refused, broken, timed
 * out: why says so); connected: the TCP connection had been made. */
void mm_qm_session_end(struct mm_qm *qm, uint32_t sid, bool failed, bool connected,
                       const char *why);
void mm_qm_mx_answer(struct mm_qm *qm, uint32_t qnum, enum mm_mx_status st,
                     const char *const *addrs, size_t n, const char *why);

/* --- the operator ------------------------------------------------------- */

/* Queues whose id or name is q: up to max of them in out; returns how many
 * matched in all (more than one: the caller lists them and refuses). */
size_t mm_qm_find(struct mm_qm *qm, const char *q, struct mm_queue **out, size_t max);
/* retry: now, not at the retry time (and thaws). */
void mm_qm_retry(struct mm_qm *qm, struct mm_queue *q);
void mm_qm_freeze(struct mm_qm *qm, struct mm_queue *q);
void mm_qm_thaw(struct mm_qm *qm, struct mm_queue *q);

/* Distinct messages in q (ready, held and out in sessions). */
uint32_t mm_qm_queue_messages(struct mm_qm *qm, const struct mm_queue *q);
/* The oldest arrival (unix seconds) in q; 0 when empty. */
int64_t mm_qm_queue_oldest(const struct mm_queue *q);
/* Messages a client sent, written but not yet durable (and their
 * recipients into *rcpts when not NULL). */
uint32_t mm_qm_committing(const struct mm_qm *qm, uint32_t *rcpts);

#endif
