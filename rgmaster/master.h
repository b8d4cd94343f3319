/* The routing group master machine, sans I/O (docs/protocol.md).
 *
 * One master candidate of one routing group: it keeps connections to the
 * other candidates of its group, elects the active master with them, and,
 * while it is the active one, collects its members' state reports, owns its
 * group's entry of the link-state table (its versions), pushes every change
 * as a delta to every member and candidate at once, probes digests
 * (anti-entropy) and watches the liveness of every connection. It holds no
 * socket, no file, no clock and no global: the world reaches it through the
 * mm_master_* events below and it acts only through the environment struct.
 * The environment never calls back into the machine from inside a call the
 * machine made; what follows an action comes back as a later event.
 * Arithmetic is integer, so a virtual-time run replays byte for byte.
 *
 * The files of the machine:
 *   master.c           lifetime, the directory, connections, Hello, frame
 *                      dispatch, timers, queries, the views
 *   master_members.c   member sessions: reports, the group's entry and its
 *                      versions, pushes, digest probes, grace and
 *                      publication, server liveness
 *   master_election.c  candidates: dialling, liveness, who is active, the
 *                      incarnation, taking over, stepping down, evidence
 *
 * Decisions where docs/protocol.md is silent (rgmaster/README.md says why):
 * - Connections: the driver numbers the connections it accepts with the top
 *   bit clear; the machine numbers those it dials (env.dial) with the top
 *   bit set (MM_MASTER_CONN_OUT). The dialling side speaks first: an
 *   outgoing connection gets our Hello at conn_open, an incoming one when
 *   its Hello has arrived. env.close means: send what was queued, then
 *   close; no event comes back for it (a late mm_master_conn_closed for a
 *   connection the machine closed is ignored).
 * - Between candidates, Hello is sent again whenever the sender's master
 *   state changes (it became active, or stepped down) or, standing by, the
 *   active master it knows changes: that is how "a live better candidate
 *   claiming ACTIVE" is seen, and how a stuck one is told from one that
 *   follows an active master. A second Hello from a node or
 *   an admin closes the connection. Each candidate dials each other one, so
 *   two candidates may share two connections; a candidate is live while one
 *   of them is established, and pushes go on each.
 * - Reports: one StateReport is one change -- at most one minor and one user
 *   bump, one push. A report naming another server than the reporter's (its
 *   reporter field, a SERVER change, a bridgehead's server) is refused whole
 *   and logged. A CONNECTOR change is not a member's to report (the whole
 *   connector's mark is the directory's or an operator's; a connector whose
 *   local bridgeheads are all down is down anyway) and is skipped, logged,
 *   as is a change naming an object the entry does not have. "Mine" in a
 *   snapshot is the reporter's server and its local bridgeheads. The first
 *   report of a session brings the reporter's server up unless it says
 *   down.
 * - A new active master answers members' Hello at once (ACTIVE) but sends
 *   the full TablePush only when it publishes (every member reported, or
 *   one dead interval after it became active): until then nothing of its
 *   incarnation leaves it. At publication, servers without a report are
 *   marked down, and so are candidates that are not live.
 * - The incarnation is max(persisted + 1, highest seen + 1, wall-clock
 *   seconds). Evidence of a version of the group above ours (a member's or
 *   candidate's Hello, a DigestProbe answer, a pushed entry) makes an active
 *   master that knows no live better candidate take a new incarnation above
 *   it (persisted once more) rather than step down: after a heal the best
 *   candidate stays and issues a version above both sides. A better
 *   candidate that stays STANDBY naming no active master for two dead
 *   intervals (it cannot persist its incarnation) no longer holds the
 *   others back; when it does become active they step down.
 * - Members may push entries of other groups (learned over X-LINK2STATE);
 *   newer ones are merged and pushed on. An entry of our own group is never
 *   taken from a member, and from a candidate only while we are not active.
 * - SIGHUP (mm_master_directory): the configuration of our entry is rebuilt
 *   from the directory with the live states kept; a server or candidate new
 *   in the directory is down until it is live; nothing changed, nothing
 *   bumped; otherwise major + 1.
 * - A push larger than the frame limit is split into several TablePush
 *   frames (same full flag and digest); a single entry over the limit is
 *   not sent (logged).
 * - Queries (docs/protocol.md "Queries"): args[0] is the format, "json" or
 *   "text"; "table" with no other argument answers Reply status 0 with
 *   env.table_render's document; without that callback, or when it fails,
 *   69 (EX_UNAVAILABLE); another command, other arguments or another
 *   format, 64 (EX_USAGE). Errors are {"server", "role", "error"} in JSON,
 *   or one line "rgmaster NAME: ..." in text (JSON when the format is not
 *   known). */
#ifndef MM_MASTER_H
#define MM_MASTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "digest.h"
#include "mailmesh.pb-c.h"
#include "org.h"
#include "entrysig.h"
#include "table.h"
#include "u64map.h"

#define MM_MASTER_PROTO_MAJOR 1
#define MM_MASTER_PROTO_MINOR 0

/* The largest incarnation believed (2^53 - 1: wall-clock seconds for ages,
 * and exact in JSON). A peer's version above it is no evidence, an entry of
 * our group above it is not taken, a persisted one above it is refused:
 * otherwise "above everything seen" could wrap. */
#define MM_MASTER_INCARNATION_MAX ((1ull << 53) - 1)

/* Settings, with their defaults (mm_master_conf_default). */
struct mm_master_conf {
	uint32_t ping_interval_ms;  /* 1000: Ping after this long without sending */
	uint32_t dead_after;        /* 3: intervals of silence before a connection is dead */
	uint32_t probe_interval_ms; /* 5000: DigestProbe to every member and candidate */
	uint32_t settle_ms;         /* 2000: a returning better candidate waits this long */
	uint32_t retry_ms;          /* 1000: redial a candidate; retry a failed persist */
	size_t frame_limit;         /* MM_FRAME_LIMIT_DEFAULT (16 MiB): largest frame sent */
};

void mm_master_conf_default(struct mm_master_conf *c);

/* The identity a peer's certificate carries (kinds as node/tls.h's
 * mm_cert_kind), given to conn_open; NULL when the driver runs insecure and
 * Hello alone names the peer. */
enum mm_peer_kind {
	MM_PEER_SERVER,
	MM_PEER_MASTER,
	MM_PEER_ADMIN,
};

struct mm_peer_id {
	const char *name;
	enum mm_peer_kind kind;
};

struct mm_master_env {
	void *ctx;
	int64_t (*now_ms)(void *ctx);  /* monotonic: timers, liveness */
	int64_t (*wall_ms)(void *ctx); /* since the epoch: the incarnation floor */
	uint32_t (*random)(void *ctx); /* Ping nonces */
	/* One timer per key; arming again moves it. The driver answers with
	 * mm_master_timer(key) at or after at_ms. */
	void (*timer_arm)(void *ctx, uint64_t key, int64_t at_ms);
	void (*timer_cancel)(void *ctx, uint64_t key);
	/* Queue one frame on a connection (the driver encodes it with
	 * mm_frame_encode; f lives for the call only). */
	void (*send)(void *ctx, uint32_t conn, const Mailmesh__Frame *f);
	/* Send what is queued, then close; no event comes back. why is for the
	 * driver's log (escaped already). */
	void (*close)(void *ctx, uint32_t conn, const char *why);
	/* Connect to a candidate (TLS: the peer's certificate must name master
	 * `candidate`); mm_master_conn_open(conn, ..., true, candidate) or
	 * mm_master_conn_closed(conn) follows. */
	void (*dial)(void *ctx, uint32_t conn, const char *candidate, const char *address);
	/* Write the incarnation durably (write, fsync, rename, fsync of the
	 * directory); 0 or an errno value. Synchronous: once per activation. */
	int (*persist_incarnation)(void *ctx, uint64_t incarnation);
	/* One line each, without the time stamp; every value a peer controls
	 * is quoted already (logfmt.h). */
	void (*log)(void *ctx, const char *line);
	/* Optional: `meshctl table` for t, JSON (`--json`) or text, with
	 * "server" and "role" as given; malloc'd (the machine frees it), NULL
	 * on failure. It needs cli/'s renderer (mm_table_render), hence the
	 * callback. */
	char *(*table_render)(void *ctx, const struct mm_table *t, const char *server,
	                      const char *role, bool json);
	/* Optional: the table changed (metrics, meshctl). */
	void (*table_changed)(void *ctx);
	/* Optional: sign e, our group's entry as we issue it (entrysig.h,
	 * mm_entry_sign with our key and certificate). Without it (insecure)
	 * entries go unsigned. */
	void (*sign)(void *ctx, mm_entry *e);
};

enum mm_master_role {
	MM_MASTER_STARTING, /* not started, or within its first dead interval */
	MM_MASTER_STANDBY,
	MM_MASTER_ACTIVE,
};

/* Incarnations are congruent to a candidate's rank modulo this. */
#define MM_MASTER_RANKS 64
/* A member causes at most one version in this long (DESIGN §5.1). */
#define MM_MASTER_ISSUE_MS 100

/* Connections the machine dials carry this bit; the driver's never do. */
#define MM_MASTER_CONN_OUT 0x80000000u

/* Timer keys: a connection's liveness timer is its number; these others. */
#define MM_MASTER_TIMER_ELECT (1ull << 32) /* become active, settle, retry a persist */
#define MM_MASTER_TIMER_GRACE (2ull << 32) /* publication of a new active master */
#define MM_MASTER_TIMER_PROBE (3ull << 32) /* the periodic DigestProbe */
#define MM_MASTER_TIMER_DIAL  (4ull << 32) /* | candidate index: redial it */
#define MM_MASTER_TIMER_ISSUE (5ull << 32) /* a version held by the rate per member */

struct mm_master_conn;

/* Another candidate of the group, in election order. */
struct mm_master_cand {
	char *name, *address;
	uint32_t priority;
	bool better;           /* comes before us in the order */
	uint32_t out;          /* our connection to it, 0 when none */
	uint32_t nlive;        /* its established connections */
	int64_t last_rx;       /* last frame from it on any connection */
	int state;             /* MAILMESH__MASTER_STATE__* of its latest Hello */
	char *active_name;     /* the active master its latest Hello names */
	int64_t standby_since; /* STANDBY naming no active master since */
	int64_t learned_at;    /* first push received while it claims ACTIVE; -1 */
};

/* A server of the group. */
struct mm_master_server {
	char *name;
	struct mm_master_conn *session; /* its member connection, NULL when none */
	bool reported;                  /* since this master became active */
};

struct mm_master {
	struct mm_master_conf conf;
	struct mm_master_env env;
	char *self, *group;
	uint32_t priority;
	enum mm_master_role role;
	bool started;
	/* what we hold of the organization; our group's entry in it is the last
	 * one published (by us or the master we learned it from) */
	struct mm_table table;
	struct mm_digest_cache dcache;
	uint8_t digest[MM_DIGEST_LEN];
	/* our group's entry as the directory builds it: the configuration */
	mm_entry *dir_entry;
	/* active: our group's entry as we make it (published: the table holds
	 * a copy of it); NULL otherwise */
	mm_entry *own;
	bool published;
	size_t ncand;
	struct mm_master_cand *cand;
	size_t nservers;
	struct mm_master_server *servers; /* by name, as in the entry */
	struct mm_u64map conns;
	uint32_t next_out;
	char *said_active; /* the active master our last Hello to candidates named */
	uint64_t persisted, incarnation, highest_seen;
	int64_t started_at, heard_at, retry_at;
	bool reincarnate; /* evidence of a higher version waits for a persist */
	/* a member's evidence moves us up again only after this (ms) */
	int64_t member_reinc_after;
	bool member_reinc_quiet; /* the refusal logged once per interval */
	/* the grace passed without a member heard: publish at the first report */
	bool grace_over;
	/* changes applied to own whose version waits for the issue timer */
	bool pending_minor, pending_user;
	/* signed entries (mm_master_trust): the directory's table, for which
	 * masters are candidates of which group; trust NULL: none checked */
	struct mm_table dir;
	struct mm_trust *trust;
};

void mm_master_init(struct mm_master *m, const struct mm_master_conf *conf,
                    const struct mm_master_env *env, const char *self);
/* Frees everything; connections still open are the driver's to close. */
void mm_master_free(struct mm_master *m);

/* Signed entries (DESIGN §5.2): entries of other groups from candidates
 * and members, and our own group's entry as evidence, are checked against
 * trust (the caller's, until the next call); NULL checks nothing. */
void mm_master_trust(struct mm_master *m, struct mm_trust *trust);

/* --- events ------------------------------------------------------------- */

/* Start with the directory (the caller's; it may go after the call) and the
 * incarnation read from --state (0: none). Dials every other candidate.
 * Returns false (and logs) when self is no candidate of any group, or the
 * persisted incarnation is over MM_MASTER_INCARNATION_MAX (corrupt). */
bool mm_master_start(struct mm_master *m, const struct mm_directory *dir,
                     uint64_t persisted_incarnation);
/* SIGHUP: the directory again. Returns false (and keeps the one in use)
 * when self is no longer a candidate of the same group. */
bool mm_master_directory(struct mm_master *m, const struct mm_directory *dir);
/* A connection is up (TCP, and TLS when tls_identity is given). outgoing:
 * one the machine dialled, to candidate `dialled`. */
void mm_master_conn_open(struct mm_master *m, uint32_t conn, const struct mm_peer_id *tls_identity,
                         bool outgoing, const char *dialled);
/* A frame the driver's reader took out of conn (a frame too big or that did
 * not decode: the driver closes and calls mm_master_conn_closed). */
void mm_master_frame(struct mm_master *m, uint32_t conn, const Mailmesh__Frame *f);
/* The peer closed, the connection broke, or a dial failed. */
void mm_master_conn_closed(struct mm_master *m, uint32_t conn);
void mm_master_timer(struct mm_master *m, uint64_t key);

/* --- views -------------------------------------------------------------- */

enum mm_master_role mm_master_role(const struct mm_master *m);
const char *mm_master_role_name(const struct mm_master *m); /* "master-active", "master-standby" */
/* What we hold: the table members get (our group's entry as published). */
const struct mm_table *mm_master_table(const struct mm_master *m);
/* Our group's entry in it, NULL before start. */
const mm_entry *mm_master_entry(const struct mm_master *m);
/* The active master we know: self, a live candidate claiming ACTIVE, or
 * NULL. */
const char *mm_master_active(const struct mm_master *m);
uint64_t mm_master_incarnation(const struct mm_master *m); /* 0 before the first activation */
bool mm_master_published(const struct mm_master *m);
/* Members connected (sessions after Hello). */
size_t mm_master_members(const struct mm_master *m);

#endif
