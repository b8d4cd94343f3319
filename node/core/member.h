/* The member side of the routing engine protocol on TCP 691, sans I/O
 * (docs/protocol.md, "Transport", "Hello", "Member and active master").
 *
 * One machine per node. It holds the node's link-state table, dials the
 * master candidates of the node's group (priority, then name) until one is
 * the active master, reports this server's state to it, and merges what it
 * pushes. The world reaches it through the mm_member_* events and it acts
 * only through the environment: dial, send, close, timers, log, save the
 * table. Like the queue manager it keeps no globals, reads no clock and
 * never calls another machine; what the driver must do after an event is in
 * its return value (MM_MEMBER_TABLE_CHANGED: update the router and tell the
 * queue manager, then sync the detector).
 *
 * Two tables. `base` is what the masters said: entries as merged (newer
 * wins, conflicts by digest, the same everywhere); it is what the node
 * saves, what its Hello and digest probes speak of, and what a restart
 * starts from. `view` is what the node routes with: base, with this
 * server's own state laid over its group's entry (the overlay): the server
 * itself up, and each of its local bridgeheads as the detector last
 * reported it. The overlay takes effect at once, so mail leaves a failed
 * connector while no master is reachable; it is laid again over every entry
 * of the group that is merged, and costs nothing once the master's entry
 * says the same (the view's entry is then base's own object). The view's
 * entry keeps the master's version: it is never sent, saved or merged.
 *
 * Connections: one at a time, numbered by the machine (conn ids are never
 * reused; an event for another number than the current one is ignored).
 * After env.close the connection is gone for the machine; the driver sends
 * no event for it any more.
 *
 * How a driver runs it with the detector (connstate.h) and the queue
 * manager:
 *   start:  mm_member_init(table from SPOOL/table, else the directory's);
 *           mm_connstate_init; then table_changed() below (router_init the
 *           first time); mm_member_start.
 *   table_changed(), after any event whose result has
 *           MM_MEMBER_TABLE_CHANGED, before anything else touches the
 *           router: mm_router_update(router, mm_member_table(m));
 *           mm_qm_table_changed(qm, dir, router);
 *           mm_connstate_sync(cs, mm_member_table(m)); drain().
 *   drain(), after every detector event: mm_connstate_changes, then
 *           mm_member_report with them, mm_connstate_clear; and
 *           table_changed() if the report changed the view (a second sync
 *           of the same table changes nothing, so this ends).
 *   stop:   mm_member_stop, then let the connection's output drain. */
#ifndef MM_MEMBER_H
#define MM_MEMBER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "connstate.h"
#include "digest.h"
#include "entrysig.h"
#include "frame.h"
#include "table.h"

struct mm_member_conf {
	uint32_t ping_interval_ms; /* 1000 */
	uint32_t dead_after;       /* 3: intervals of silence that kill a connection */
	/* between rounds over every candidate: doubling, with jitter */
	uint32_t retry_min_ms, retry_max_ms, retry_jitter_pct; /* 1000, 30000, 20 */
	uint32_t frame_limit;                                  /* MM_FRAME_LIMIT_DEFAULT */
	/* --set insecure=1: the driver has no certificates; identities come
	 * from Hello alone */
	bool insecure;
};

#define MM_MEMBER_DEFAULTS                                                       \
	{                                                                        \
		.ping_interval_ms = 1000, .dead_after = 3, .retry_min_ms = 1000, \
		.retry_max_ms = 30000, .retry_jitter_pct = 20,                   \
		.frame_limit = MM_FRAME_LIMIT_DEFAULT, .insecure = false         \
	}

/* What the peer's certificate names (URI:mailmesh:<kind>:<name>). */
struct mm_member_peer {
	const char *kind; /* "server", "master", "admin" */
	const char *name;
};

struct mm_member_env {
	void *ctx;
	int64_t (*now_ms)(void *ctx);  /* monotonic */
	uint32_t (*random)(void *ctx); /* uniform in [0, 2^32): backoff jitter */
	/* One timer per key (MM_MEMBER_TIMER_*); arming again moves it. The
	 * driver answers with mm_member_timer(key) at or after at_ms. */
	void (*timer_arm)(void *ctx, uint64_t key, int64_t at_ms);
	void (*timer_cancel)(void *ctx, uint64_t key);
	/* Connect to address (TLS with the organization's certificates unless
	 * insecure), then mm_member_conn_open(conn, peer); or
	 * mm_member_conn_closed(conn, why) when it cannot. candidate: the name
	 * the peer's certificate must carry. */
	void (*dial)(void *ctx, uint32_t conn, const char *address, const char *candidate);
	/* Bytes of whole frames (length prefix included), to write in order. */
	void (*send)(void *ctx, uint32_t conn, const uint8_t *bytes, size_t len);
	/* Close now (after what was sent is written); no event follows. */
	void (*close)(void *ctx, uint32_t conn);
	/* The encoded base table (mm_table_decode reads it): write it to
	 * SPOOL/table atomically (write, fsync, rename). */
	void (*save_table)(void *ctx, const uint8_t *bytes, size_t len);
	void (*log)(void *ctx, const char *line);
};

/* Results of an event, or'ed. */
#define MM_MEMBER_TABLE_CHANGED 1u /* the view changed: router, queue manager, detector */
#define MM_MEMBER_MASTER_CHANGED \
	2u /* an active master was reached or lost (mm_member_master): for logs and views */

/* Timer keys. */
#define MM_MEMBER_TIMER_DIAL 1 /* the next round of candidates */
#define MM_MEMBER_TIMER_PING 2 /* send a Ping when nothing else went out */
#define MM_MEMBER_TIMER_DEAD 3 /* nothing received for dead_after intervals */

enum mm_member_state {
	MM_MEMBER_IDLE,        /* not started */
	MM_MEMBER_WAIT,        /* between rounds */
	MM_MEMBER_DIALING,     /* dial asked */
	MM_MEMBER_HELLO,       /* connected, our Hello sent, waiting for the peer's */
	MM_MEMBER_ESTABLISHED, /* the peer is the active master */
	MM_MEMBER_STOPPED,
};

struct mm_member_cand {
	char *name, *address;
};

struct mm_member_item; /* one overlay item */

struct mm_member {
	struct mm_member_conf conf;
	struct mm_member_env env;
	char *self, *group;
	struct mm_table base;
	struct mm_digest_cache dcache; /* of base */
	struct mm_table view;          /* entries shared with base but the group's own */
	mm_entry *view_own;            /* the overlaid copy, or NULL */
	uint64_t incarnation_seen;
	/* this server's own state: its local bridgeheads as reported */
	struct mm_member_item *items;
	size_t nitems, capitems;
	/* the connection */
	enum mm_member_state state;
	uint32_t conn, next_conn;
	char *peer; /* the candidate dialled */
	struct mm_frame_reader reader;
	uint64_t seq;
	int64_t last_rx, last_tx;
	/* the round */
	struct mm_member_cand *cands;
	size_t ncands, next_cand;
	/* the directory's candidates of the group: dialled with the table's,
	 * and their addresses win (a master that moved is found) */
	struct mm_member_dcand {
		char *name, *address;
		uint32_t priority;
	} * dcands;
	size_t ndcands;
	uint32_t redirects, round;
	/* signed entries (mm_member_trust): NULL trust takes them unsigned */
	struct mm_trust *trust;
	const struct mm_table *dir;
};

/* What becomes of one entry a peer hands over. */
enum mm_take {
	MM_TAKE_TAKEN,    /* newer, and it passed every check: merged */
	MM_TAKE_DROPPED,  /* older or the same, a baseline, a group the directory
	                   * lacks, or the node's own group: nothing to do */
	MM_TAKE_REFUSED,  /* newer, but it failed a check (entrysig.h): forged,
	                   * altered, not a master's -- no honest peer sends it */
	MM_TAKE_DISOWNED, /* newer and signed by a master, but one this node does
	                   * not take for that group (revoked in its CRL, or no
	                   * candidate of the group in its directory): dropped
	                   * and logged, as a peer with another CRL or directory
	                   * may pass it on in good faith */
};

/* table: read from SPOOL/table, or the directory's when there is none; the
 * machine takes it over (it is left empty). Returns false, and takes
 * nothing, when self is not a server of the table. */
bool mm_member_init(struct mm_member *m, const struct mm_member_conf *conf,
                    const struct mm_member_env *env, const char *self, struct mm_table *table);
/* Cancels the timers; the connection, if any, is the driver's to close. */
void mm_member_free(struct mm_member *m);
/* The directory's master candidates of the group (at start, before
 * mm_member_start; mm_member_directory takes them too): each round dials
 * the union of these and the table's, at the directory's addresses. */
void mm_member_directory_cands(struct mm_member *m, const struct mm_table *dir);

/* The directory's table laid under what the masters issued (at start over
 * SPOOL/table, and on SIGHUP over base): an entry of incarnation 0 was
 * built from a directory and never issued by a master, so it gives way to
 * the directory's entry of its group (a copy), and goes when the directory
 * has that group no more; an entry a master issued (incarnation > 0) stays,
 * as that master rebuilds it from its own directory. Groups only the
 * directory has are added. Every new entry is made before an entry it
 * replaces is freed (routers and digest caches know entries by address).
 * Returns true when t changed. */
bool mm_member_merge_directory(struct mm_table *t, const struct mm_table *dir);
/* The same on base (SIGHUP): saved when it changed. Refused, and logged,
 * when the result has no entry of the node's group holding this server. */
unsigned mm_member_directory(struct mm_member *m, const struct mm_table *dir);

/* Signed entries (DESIGN §5.2): every entry the master pushes, and every
 * entry mm_member_take is given, is checked against trust and dir (the
 * directory's table: which masters are candidates of which group) before
 * it may replace anything. trust NULL (insecure, tests of the plain path):
 * no check. Both the caller's, until the next call. */
void mm_member_trust(struct mm_member *m, struct mm_trust *trust, const struct mm_table *dir);

/* Entries of other groups a bridgehead was given over X-LINK2STATE by
 * peer (a server's name, for logs); the machine takes e[0..n) over. Each
 * is judged (res[i]): the node's own group is settled inside the group and
 * never taken this way. Those taken are merged, saved, and offered to the
 * master (an EntryOffer) when one is connected; the first refusal's reason
 * goes to why. */
unsigned mm_member_take(struct mm_member *m, mm_entry **e, size_t n, const char *peer,
                        enum mm_take *res, char *why, size_t whylen);

/* Dial the first candidate. */
unsigned mm_member_start(struct mm_member *m);
/* An orderly stop: this server reported down to the master (when one is
 * connected), the connection closed, nothing dialled again. */
unsigned mm_member_stop(struct mm_member *m);

/* The dial worked (TLS done). peer: what the certificate names, NULL when
 * the driver runs insecure. */
unsigned mm_member_conn_open(struct mm_member *m, uint32_t conn, const struct mm_member_peer *peer);
/* Bytes read from the connection. */
unsigned mm_member_conn_data(struct mm_member *m, uint32_t conn, const uint8_t *data, size_t n);
/* The dial failed, or the peer closed or broke the connection. */
unsigned mm_member_conn_closed(struct mm_member *m, uint32_t conn, const char *why);
unsigned mm_member_timer(struct mm_member *m, uint64_t key);

/* The detector's changes (mm_connstate_changes): applied to the view at
 * once, and sent to the master now or in the snapshot of the next
 * connection. A change to what is already known is nothing. */
unsigned mm_member_report(struct mm_member *m, const struct mm_bh_report *r, size_t n);

/* What the node routes with (valid until the next event that returns
 * MM_MEMBER_TABLE_CHANGED), and what the masters said. */
const struct mm_table *mm_member_table(const struct mm_member *m);
const struct mm_table *mm_member_base(const struct mm_member *m);
/* The active master connected, or NULL. */
const char *mm_member_master(const struct mm_member *m);
/* Overlay items the master's entry does not say yet. */
size_t mm_member_unconfirmed(const struct mm_member *m);

#endif
