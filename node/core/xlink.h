/* X-LINK2STATE between routing groups, sans I/O (DESIGN §5.2;
 * docs/protocol.md, "X-LINK2STATE", has the turn-taking, every reply and
 * transcripts).
 *
 * Two bridgeheads of a routing-group connector, on an SMTP session under
 * TLS after AUTH EXTERNAL with an organization server's certificate:
 *
 *   C: X-LINK2STATE DIGEST=<hex>               the client's table digest
 *   S: 250 2.0.0 X-LINK2STATE DIGEST=<hex> equal          (done), or
 *   S: 250-X-LINK2STATE FIRST CHUNK=<base64>   the server's summary
 *   S: 250-X-LINK2STATE LAST CHUNK=<base64>
 *   S: 250 2.0.0 X-LINK2STATE DIGEST=<hex> differs
 *   C: X-LINK2STATE FIRST CHUNK=<base64>       the client's summary, and its
 *   S: 250 2.0.0 X-LINK2STATE chunk 1 ...      entries newer than the server's
 *   C: X-LINK2STATE LAST CHUNK=<base64>
 *   S: 250-X-LINK2STATE FIRST LAST CHUNK=...   the server's entries newer
 *   S: 250 2.0.0 X-LINK2STATE 2 taken, 0 dropped  than the client's
 *
 * A transfer is the base64 of a LinkTransfer (proto/mailmesh.proto) cut in
 * chunks of at most MM_XLINK_CHUNK_RAW octets, each chunk base64 of its own,
 * so that every line, CRLF included, stays within MM_XLINK_LINE_MAX. Only
 * entries a master signed travel (never a baseline), never the receiver's
 * own group (settled inside its group), and only those newer than what the
 * other side's summary says it holds: a quiet round is two lines each way.
 *
 * The node's member machine judges every entry (mm_member_take): the
 * environment's take. Like the other core machines: no I/O, no clock, no
 * globals. */
#ifndef MM_XLINK_H
#define MM_XLINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "certid.h"
#include "table.h"

#define MM_XLINK_LINE_MAX      1024       /* a command or reply line, CRLF included */
#define MM_XLINK_CHUNK_RAW     735        /* octets a chunk carries: 980 base64 characters */
#define MM_XLINK_LIMIT_DEFAULT (8u << 20) /* a transfer, decoded */
#define MM_XLINK_TEXT_LINES    100        /* lines of a reply that are no chunks */
/* what protobuf-c may allocate to unpack one transfer (an honest one of
 * 8 MiB takes some 3 times its size) */
#define MM_XLINK_DECODE_MAX (64u << 20)

/* --- chunks ----------------------------------------------------------------- */

/* FIRST/NEXT/LAST chunks joined into one transfer. */
struct mm_xlink_asm {
	struct mm_buf data;
	bool open; /* FIRST seen, LAST not yet */
	uint32_t chunks;
	size_t limit;
};

enum mm_xlink_chunk {
	MM_XCHUNK_MORE,        /* taken; more to come */
	MM_XCHUNK_DONE,        /* LAST taken: the transfer is in data */
	MM_XCHUNK_SYNTAX,      /* not [FIRST] [NEXT|LAST] CHUNK=base64 */
	MM_XCHUNK_NO_FIRST,    /* NEXT or LAST without FIRST */
	MM_XCHUNK_FIRST_AGAIN, /* FIRST inside a transfer */
	MM_XCHUNK_BAD_BASE64,
	MM_XCHUNK_TOO_BIG, /* over limit, decoded */
};

/* arg: a chunk line after "X-LINK2STATE ": "FIRST CHUNK=...", "NEXT
 * CHUNK=...", "LAST CHUNK=...", "FIRST LAST CHUNK=..." (keywords in any
 * case). Every error drops what was gathered (the assembler is closed). */
enum mm_xlink_chunk mm_xlink_asm_feed(struct mm_xlink_asm *a, const char *arg);
void mm_xlink_asm_reset(struct mm_xlink_asm *a);
void mm_xlink_asm_free(struct mm_xlink_asm *a);

/* data[0..len) as chunk lines, each "<prefix>FIRST CHUNK=...\r\n" (prefix
 * "X-LINK2STATE " for commands, "250-X-LINK2STATE " for replies). */
void mm_xlink_chunks(struct mm_buf *out, const char *prefix, const uint8_t *data, size_t len);

/* A transfer: the summary of t (t may be NULL: none) and entries. */
uint8_t *mm_xlink_encode(const struct mm_table *t, const mm_entry *const *entries, size_t n,
                         size_t *len);

/* The transfer in b, or NULL when it does not decode (a field numbered 0, a
 * group without a name, bytes left over: pbvalid.h; or more than
 * MM_XLINK_DECODE_MAX of memory to unpack). Free with
 * mailmesh__link_transfer__free_unpacked(x, NULL): the memory is malloc's. */
Mailmesh__LinkTransfer *mm_xlink_decode(const struct mm_buf *b);

/* --- the node's side ------------------------------------------------------ */

struct mm_xlink_env {
	void *ctx;
	/* What this node holds: the masters' entries (the member's base). */
	const struct mm_table *(*table)(void *ctx);
	/* The routing group of a server, NULL when unknown. */
	const char *(*group_of)(void *ctx, const char *server);
	/* Entries peer handed over (taken over by the callee): judged and
	 * merged (mm_member_take). False when one was refused (a check of
	 * entrysig.h failed), its reason in why. */
	bool (*take)(void *ctx, const char *peer, mm_entry **e, size_t n, uint32_t *taken,
	             uint32_t *dropped, char *why, size_t whylen);
	void (*log)(void *ctx, const char *line);
	size_t limit; /* of a transfer: MM_XLINK_LIMIT_DEFAULT */
};

/* What the other side's summary says it lacks or holds older, of what
 * travels, but its own group (peer_group, may be NULL): *out allocated. */
size_t mm_xlink_newer(const struct mm_xlink_env *env, const Mailmesh__EntrySummary *const *sum,
                      size_t nsum, const char *peer_group, const mm_entry ***out);

/* --- the server side: one per SMTP session ---------------------------------- */

struct mm_xlink_srv {
	const struct mm_xlink_env *env;
	char peer[MM_CERT_NAME_MAX + 1]; /* the server AUTH EXTERNAL named */
	bool differs;                    /* DIGEST said, and differs: a transfer may come */
	struct mm_xlink_asm in;
	uint32_t taken, dropped; /* of the last transfer */
	size_t bytes_in, bytes_out;
};

enum mm_xlink_result {
	MM_XLINK_OK,
	MM_XLINK_ERROR, /* a 5xx: counts as a protocol error of the session */
	MM_XLINK_CLOSE, /* a refused entry: 421, the session ends, the peer is
	                 * not heard for a while (the driver's) */
};

void mm_xlink_srv_init(struct mm_xlink_srv *s, const struct mm_xlink_env *env, const char *peer);
void mm_xlink_srv_free(struct mm_xlink_srv *s);
/* One X-LINK2STATE command that passed the checks of length, of
 * authentication and of state (the SMTP server machine's): arg is what
 * follows the verb and its space. Its reply (lines, CRLF) goes to out. */
enum mm_xlink_result mm_xlink_srv_command(struct mm_xlink_srv *s, const char *arg,
                                          struct mm_buf *out);

/* --- the client side: one per exchange --------------------------------------- */

enum mm_xcli_state {
	MM_XCLI_DIGEST, /* DIGEST sent */
	MM_XCLI_CHUNKS, /* our transfer sent, its replies coming */
	MM_XCLI_DONE,
	MM_XCLI_FAILED,
};

struct mm_xlink_cli {
	const struct mm_xlink_env *env;
	char peer[MM_CERT_NAME_MAX + 1]; /* the server dialled */
	enum mm_xcli_state state;
	uint32_t acks;       /* chunk replies to come before the last one */
	uint32_t text_lines; /* of the reply being read, no chunks */
	uint32_t lines_ok;   /* 2xx lines read: the peer answered at all */
	struct mm_xlink_asm in;
	uint32_t taken, dropped, sent;
	size_t bytes_in, bytes_out; /* X-LINK2STATE lines */
	uint64_t wire_in, wire_out; /* the whole session on the wire (TLS and all),
	                             * when the driver knows: its to fill */
	bool equal;                 /* the digests were equal */
	bool refused;               /* the peer sent an entry that failed a check */
	char why[600];
};

enum mm_xcli_event {
	MM_XCLI_MORE, /* wait for more lines (commands may be in out) */
	MM_XCLI_END,  /* done or failed: see state, why */
};

void mm_xlink_cli_init(struct mm_xlink_cli *c, const struct mm_xlink_env *env, const char *peer);
void mm_xlink_cli_free(struct mm_xlink_cli *c);
/* The first command (DIGEST) into out. */
void mm_xlink_cli_start(struct mm_xlink_cli *c, struct mm_buf *out);
/* One reply line, without its CRLF: its code, the text after "NNN-" or
 * "NNN " (text, n), and whether more lines of the reply follow. Commands
 * it answers with go to out. */
enum mm_xcli_event mm_xlink_cli_line(struct mm_xlink_cli *c, int code, const char *text, size_t n,
                                     bool more, struct mm_buf *out);

#endif
