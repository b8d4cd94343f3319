/* The link-state table (DESIGN §3): one entry per routing group, each owned
 * by that group's master and versioned (incarnation, major, minor, user).
 *
 * Entries are the generated protobuf-c structs, kept in canonical form (every
 * list sorted by name) so that the packed table is the canonical encoding and
 * its SHA-256 is the digest. The table owns its entries. Pure: no I/O. */
#ifndef MM_TABLE_H
#define MM_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mailmesh.pb-c.h"

#define MM_DIGEST_LEN 32

typedef Mailmesh__GroupEntry mm_entry;

struct mm_table {
	size_t n, cap;
	mm_entry **entries; /* sorted by name */
};

enum mm_merge {
	MM_MERGE_OLDER,         /* ours is newer: ignored */
	MM_MERGE_SAME,          /* identical: ignored */
	MM_MERGE_NEWER,         /* taken (inserted or replaced) */
	MM_MERGE_CONFLICT_WON,  /* equal versions, other content: theirs taken */
	MM_MERGE_CONFLICT_LOST, /* equal versions, other content: ours kept */
};

/* <0, 0, >0 as a is older, equal, newer than b, by (incarnation, major,
 * minor, user). A missing version is older than any. */
int mm_version_cmp(const Mailmesh__Version *a, const Mailmesh__Version *b);

void mm_table_init(struct mm_table *t);
void mm_table_free(struct mm_table *t);
mm_entry *mm_table_find(const struct mm_table *t, const char *group);

/* Sort every list of e by name: the canonical form. */
void mm_entry_canonicalize(mm_entry *e);
void mm_entry_free(mm_entry *e);
mm_entry *mm_entry_clone(const mm_entry *e);
/* An entry's content: the entry without who issued it (signature and
 * signer), as a shallow copy, and its canonical encoding (allocated) --
 * what a master signs and what every digest covers (DESIGN §5.2). */
Mailmesh__GroupEntry mm_entry_content_of(const mm_entry *e);
uint8_t *mm_entry_content(const mm_entry *e, size_t *len);
/* SHA-256 of the content's canonical encoding. */
void mm_entry_digest(const mm_entry *e, uint8_t out[MM_DIGEST_LEN]);

/* Merge one entry: the table takes ownership of e in every case (it is freed
 * when not taken). Equal versions with different content are a conflict,
 * resolved the same way everywhere: the entry whose digest is greater wins,
 * so every node keeps the same one; the caller logs it. */
enum mm_merge mm_table_merge(struct mm_table *t, mm_entry *e);

/* Entries of t that travel (a master issued them: incarnation above 0) and
 * that a peer holding the given summaries lacks, holds at an older
 * version, or holds at the same version with another content digest (when
 * its summary gives one), in table order; pointers into t, valid until t
 * changes. Returns the count; *out is allocated (free()). */
size_t mm_table_delta(const struct mm_table *t, const Mailmesh__EntrySummary *const *peer,
                      size_t npeer, const mm_entry ***out);

/* What a peer holds: group, version and content digest of every entry,
 * for the answer to a DigestProbe (DESIGN §5.1). Points into t. */
struct mm_summary {
	size_t n;
	Mailmesh__EntrySummary *s, **p;
	uint8_t (*d)[MM_DIGEST_LEN];
};
void mm_table_summary(const struct mm_table *t, struct mm_summary *out);
void mm_summary_free(struct mm_summary *s);

/* SHA-256 over the canonical encoding of the whole table. */
void mm_table_digest(const struct mm_table *t, uint8_t out[MM_DIGEST_LEN]);
void mm_digest_hex(const uint8_t d[MM_DIGEST_LEN], char out[2 * MM_DIGEST_LEN + 1]);

/* Canonical encoding and its inverse. Decode takes a byte limit checked
 * before anything is allocated, refuses entries out of order or duplicated,
 * and returns false for anything that does not decode. */
uint8_t *mm_table_encode(const struct mm_table *t, size_t *len);
bool mm_table_decode(const uint8_t *buf, size_t len, size_t limit, struct mm_table *out);

/* State changes, as a master applies them to its own group's entry: each
 * bumps the version the change belongs to (DESIGN §3) and returns true when
 * something changed, false when it was already so or the name is unknown. */
bool mm_entry_set_server(mm_entry *e, const char *server, bool down);  /* user */
bool mm_entry_set_master(mm_entry *e, const char *master, bool down);  /* user */
bool mm_entry_set_connector(mm_entry *e, const char *conn, bool down); /* minor */
bool mm_entry_set_bridgehead(mm_entry *e, const char *conn, const char *server, const char *vserver,
                             bool down); /* minor */

/* The active master: the live candidate of highest priority, ties by name.
 * NULL when every candidate is down. */
const Mailmesh__MasterCandidate *mm_entry_elect_master(const mm_entry *e);

/* Mark an object down (or up) by name, as an operator names it: a connector,
 * a server, a master candidate, or a bridgehead "SERVER/VIRTUAL-SERVER" (on
 * every connector it serves). Each owning entry's version is bumped as its
 * master would. Returns false when nothing has that name. */
bool mm_table_mark(struct mm_table *t, const char *name, bool down);
#endif
