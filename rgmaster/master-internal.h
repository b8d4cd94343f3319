/* What the files of the master machine share (master.h maps them). */
#ifndef MM_MASTER_INTERNAL_H
#define MM_MASTER_INTERNAL_H

#include "buf.h"
#include "master.h"

enum conn_kind {
	CONN_NEW,    /* no Hello yet */
	CONN_NODE,   /* a member: a server of our group */
	CONN_MASTER, /* another candidate */
	CONN_ADMIN,  /* meshctl --connect */
};

struct mm_master_conn {
	uint32_t id;
	enum conn_kind kind;
	bool outgoing;
	bool open;       /* outgoing: conn_open came (until then: dialling) */
	bool hello_sent; /* ours */
	bool has_id;
	enum mm_peer_kind id_kind;
	char *id_name; /* the certificate's name */
	char *name;    /* the Hello's */
	size_t cand;   /* CONN_MASTER and outgoing: index in m->cand */
	size_t server; /* CONN_NODE: index in m->servers */
	bool reported; /* CONN_NODE: a report came on this session */
	/* CONN_NODE: its next report makes a version no sooner than this (ms);
	 * a change held until then is pending */
	int64_t issue_after;
	bool issue_pending;
	int64_t last_rx, last_tx;
	uint64_t seq;
};

#define NO_INDEX ((size_t)-1)

/* master.c */
int64_t mm_m_now(struct mm_master *m);
int64_t mm_m_dead_ms(const struct mm_master *m);
void mm_m_log(struct mm_master *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Quote a peer's string for a log line into a buffer of 160 bytes. */
#define QUOTE_LEN 160
const char *mm_m_q(char out[QUOTE_LEN], const char *s);
void mm_m_send(struct mm_master *m, struct mm_master_conn *c, Mailmesh__Frame *f);
/* Close (why: logged and handed to the driver) and forget. */
void mm_m_close(struct mm_master *m, struct mm_master_conn *c, const char *why);
void mm_m_send_hello(struct mm_master *m, struct mm_master_conn *c);
/* The table changed: refresh the digest, tell the driver. */
void mm_m_table_changed(struct mm_master *m);
mm_entry *mm_m_table_own(const struct mm_master *m);
const char *mm_m_active_name(const struct mm_master *m);
/* Every connection, in id order (deterministic); *n set; free() the array. */
struct mm_master_conn **mm_m_conns(const struct mm_master *m, size_t *n);

/* master_members.c */
void mm_m_member_hello(struct mm_master *m, struct mm_master_conn *c, const Mailmesh__Hello *h);
void mm_m_report(struct mm_master *m, struct mm_master_conn *c, const Mailmesh__StateReport *r);
void mm_m_member_gone(struct mm_master *m, struct mm_master_conn *c);
void mm_m_push_entries(struct mm_master *m, struct mm_master_conn *only, bool full,
                       const mm_entry *const *entries, size_t n);
void mm_m_push_full(struct mm_master *m, struct mm_master_conn *c);
void mm_m_probe(struct mm_master *m);
void mm_m_digest_probe(struct mm_master *m, struct mm_master_conn *c,
                       const Mailmesh__DigestProbe *p);
void mm_m_table_push(struct mm_master *m, struct mm_master_conn *c, const Mailmesh__TablePush *p);
/* Our entry changed (own): publish it when published, else keep it. */
void mm_m_own_changed(struct mm_master *m);
/* A candidate up or down in own (the master field stays us), published. */
void mm_m_own_set_master(struct mm_master *m, const char *name, bool down);
/* Active: the entry we start from, and its publication. */
void mm_m_own_begin(struct mm_master *m);
void mm_m_publish(struct mm_master *m, bool grace_over);
void mm_m_maybe_publish(struct mm_master *m);
/* The configuration of dir_entry with the live states of live. */
mm_entry *mm_m_rebuild(struct mm_master *m, const mm_entry *live);
void mm_m_set_master_field(mm_entry *e, const char *name);
bool mm_m_server_live(const struct mm_master *m, const char *name);
size_t mm_m_server_index(const struct mm_master *m, const char *name);

/* master_election.c */
void mm_m_cands_build(struct mm_master *m, const mm_entry *dir_entry);
void mm_m_dial(struct mm_master *m, size_t i);
size_t mm_m_cand_index(const struct mm_master *m, const char *name);
bool mm_m_cand_live(const struct mm_master *m, const char *name);
void mm_m_cand_hello(struct mm_master *m, struct mm_master_conn *c, const Mailmesh__Hello *h,
                     bool first);
void mm_m_cand_gone(struct mm_master *m, struct mm_master_conn *c);
void mm_m_cand_learned(struct mm_master *m, struct mm_master_conn *c);
void mm_m_evaluate(struct mm_master *m);
/* master_members.c: a member's EntryOffer (its own group's entry as
 * evidence, other groups' entries learned over X-LINK2STATE). */
void mm_m_entry_offer(struct mm_master *m, struct mm_master_conn *c, const Mailmesh__EntryOffer *o);
/* A member's claim of a version of our group above ours (its Hello, its
 * summary): with signed entries, only the entry a candidate signed is
 * evidence, so the master asks for it (an EntryRequest); without, the
 * claim is. */
void mm_m_member_claim(struct mm_master *m, struct mm_master_conn *c, const Mailmesh__Version *v,
                       uint64_t incarnation_seen);
/* master_members.c: the issue timer (MM_MASTER_TIMER_ISSUE). */
void mm_m_issue_timer(struct mm_master *m);
/* A version of our group seen elsewhere: count it, and go above it when we
 * are active and it is above ours (a version above own, or an incarnation
 * seen above ours). member: a member's claim, which makes at most one new
 * incarnation per dead interval. */
void mm_m_evidence(struct mm_master *m, const Mailmesh__Version *v, uint64_t incarnation_seen,
                   const char *who, bool member);
void mm_m_announce(struct mm_master *m);
void mm_m_elect_timer(struct mm_master *m);

#endif
