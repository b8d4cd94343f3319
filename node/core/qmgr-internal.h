/* What the files of the queue manager share (see qmgr.h for the map). */
#ifndef MM_QMGR_INTERNAL_H
#define MM_QMGR_INTERNAL_H

#include "dsn.h"
#include "qmgr.h"

/* A relocated copy of a queued message (compaction). */
struct mm_reloc {
	uint64_t id;
	struct mm_spool_loc loc;
};

struct mm_commit {
	uint64_t lsn;
	void *owner;         /* the driver's session, or NULL */
	struct mm_qmsg *msg; /* received or made here; NULL for relocations */
	struct mm_reloc *reloc;
	size_t nreloc;
	struct mm_commit *next;
};

struct mm_qm_session {
	uint32_t sid;
	struct mm_queue *q; /* kept while it has sessions */
	bool ready;         /* greeted; may take a job */
	bool closing;       /* QUIT asked */
	bool idle;          /* waiting for a job, on q->idle_sessions */
	struct mm_qm_session *idle_next;
	bool from_mx; /* went to q->mx.addrs[mx_index] */
	int tls;      /* the policy it was opened under */
	bool org;
	uint32_t mx_index;
	char addr[80];
	struct mm_job *job; /* out in this session */
	struct mm_smtpc_job sj;
	char *body;
	const char **rcpts, **orcpts;
	uint8_t *notify;
	struct mm_smtpc_result *res;
};

/* qmgr.c */
void qm_log(struct mm_qm *qm, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* One tracking line: EVENT ID, then key/value string pairs to a NULL key. */
void qm_track(struct mm_qm *qm, const char *event, const struct mm_qmsg *m, ...);
/* "<addr>", as the tracking log writes addresses (out: 600 bytes). */
const char *qm_addr(char *out, const char *addr);
/* Registers a message the queue manager now owns. */
void qm_adopt(struct mm_qm *qm, struct mm_qmsg *m);
/* Recipient idx is finished (delivered or reported): a DONE record. */
void qm_rcpt_done(struct mm_qm *qm, struct mm_qmsg *m, uint32_t idx);
/* Frees m once nothing waits for it any more. */
void qm_msg_release(struct mm_qm *qm, struct mm_qmsg *m);
int64_t qm_now(struct mm_qm *qm);
int64_t qm_wall_s(struct mm_qm *qm);

/* qmgr_route.c */
/* Route recipients idx of m and queue them, one job per next hop. from:
 * the queue they leave (a reroute) or NULL (new mail); back_ok: they may
 * go straight back to the server they came from (their hold passed). */
void qm_place(struct mm_qm *qm, struct mm_qmsg *m, const uint32_t *idx, uint32_t n,
              struct mm_queue *from, bool held, bool back_ok);
/* Back-held jobs whose hold has passed are placed, back_ok. */
void qm_back_timer(struct mm_qm *qm);
/* Some recipient of j would now go elsewhere than q. */
bool qm_job_moves(struct mm_qm *qm, const struct mm_queue *q, const struct mm_job *j);
/* Jobs leave q for "Messages pending reroute", then are placed again. */
void qm_reroute_job(struct mm_qm *qm, struct mm_queue *q, struct mm_job *j);
void qm_reroute_drain(struct mm_qm *qm);
/* addr ("ip:port") is one of this server's virtual servers. */
bool qm_is_self_address(const struct mm_qm *qm, const char *addr);
/* A link queue's policy (TLS) follows the connector in the current table. */
void qm_refresh_link(struct mm_qm *qm, struct mm_queue *q);

/* qmgr_link.c */
void qm_kick(struct mm_qm *qm, struct mm_queue *q);
void qm_link_timer(struct mm_qm *qm, struct mm_queue *q);
/* An idle session's time is up: it says QUIT. */
void qm_session_timer(struct mm_qm *qm, uint32_t sid);
/* The queue's timer at the earlier of its hop's retry and its held jobs'. */
void qm_arm(struct mm_qm *qm, struct mm_queue *q);

/* qmgr_local.c */
void qm_local_run(struct mm_qm *qm);

/* qmgr_dsn.c */
/* A job that could not go now: held for the queue's retry, or expired. */
/* The hop of q is up: held jobs may go now; the caller kicks q
 * (qmgr_link.c). */
void qm_hop_up(struct mm_qm *qm, struct mm_queue *q, const char *why);
/* Frees split horizon's routers (qmgr_route.c). */
void qm_avoid_free(struct mm_qm *qm);
void qm_defer(struct mm_qm *qm, struct mm_queue *q, struct mm_job *j, const char *why);
/* The same, each[i] the reason of the job's recipient i (NULL: why). */
void qm_defer_each(struct mm_qm *qm, struct mm_queue *q, struct mm_job *j, const char *why,
                   const char *const *each);
/* Recipients failed for good: one DSN for them (RFC 3464) where one is
 * owed, then they are finished. False when the DSN could not be written:
 * then nothing is finished and the caller keeps the recipients. */
bool qm_bounce(struct mm_qm *qm, struct mm_qmsg *m, const struct mm_dsn_rcpt *r, uint32_t n);
/* Every waiting job of q fails for good with status and diag. */
void qm_bounce_queue(struct mm_qm *qm, struct mm_queue *q, const char *status, const char *diag);
bool qm_expired(struct mm_qm *qm, const struct mm_qmsg *m);

/* commit.c */
void qm_commits_free(struct mm_qm *qm);
/* A batch of relocated copies: durable, they replace the old copies. */
void qm_commit_relocations(struct mm_qm *qm, uint64_t lsn, struct mm_reloc *r, size_t n);

/* compact.c */
void qm_compact(struct mm_qm *qm);
void qm_relocated(struct mm_qm *qm, struct mm_reloc *r, size_t n, bool durable);

#endif
