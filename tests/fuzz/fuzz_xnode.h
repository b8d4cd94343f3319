/* The node of the X-LINK2STATE fuzz targets (xlink_fuzz.c, and smtp_fuzz.c's
 * X-LINK2STATE hook): what node/xlink_run.c and routing_take give the
 * machines of node/core/xlink.h, without I/O. Its take is the real one: the
 * member machine (mm_member_take: judge, then mm_entry_check against the
 * trust and the directory, then merge), with a trust and a directory built
 * in process from a fixed seed (fuzz_pki.h).
 *
 * The organization (fx_org(), built once per process):
 *   group  server  candidates  certificates
 *   GA     SA1     MA          master:MA          this node's group (SA1)
 *   GB     SB1     MB          master:MB          the peer's (SB1)
 *   GC     SC1     MC          master:MC
 *   GD     SD1     MD, RD      master:MD, master:RD (revoked, on the CRL)
 * and, to sign what must be refused, server:MB (a server's certificate that
 * bears a master's name: names are unique per kind only) and master:MB
 * issued by a stranger CA. The node's table (fx_table): the directory, with
 * GA, GB and GC issued at version (1, 1, 0, 0) by their masters; GD is the
 * directory's baseline (incarnation 0).
 *
 * Every take is checked against an oracle of its own that shares no code
 * with linkstate/entrysig.c: an entry may be merged only when its signer is,
 * byte for byte up to re-encoding (X509_cmp), a master certificate of the
 * org CA, not revoked (when the trust has the CRL), a candidate of the
 * entry's group in the directory, and its Ed25519 signature with that
 * certificate's known key holds over the entry's content. The first entry
 * of a group in a transfer is predicted exactly (taken, dropped or refused:
 * member.c's judge, DESIGN §5.2's order); every entry taken must also pass
 * mm_entry_check itself. A violation aborts (a fuzz finding). */
#ifndef MM_FUZZ_XNODE_H
#define MM_FUZZ_XNODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fuzz_pki.h"
#include "member.h"
#include "xlink.h"

struct fx_org {
	struct fpki pki, stranger;
	const struct fpki_cert *ma, *mb, *mc, *md, *rd; /* masters; rd revoked */
	const struct fpki_cert *server_mb;              /* server:MB */
	const struct fpki_cert *stranger_mb;            /* master:MB of another CA */
	struct mm_table dir;                            /* the directory: baselines */
};

/* Built at the first call; kept for the process (a harness, not the core:
 * no-statics is the core libraries' rule). */
const struct fx_org *fx_org(void);

/* A copy of the directory's entry of group (NULL: none) at version (inc,
 * major, 0, 0), signed by c (NULL: unsigned). */
mm_entry *fx_entry(const char *group, uint64_t inc, uint64_t major, const struct fpki_cert *c);
/* The node's table, into t (initialized here). */
void fx_table(struct mm_table *t);
/* The group of an org server, NULL for any other name. */
const char *fx_group_of(const char *server);

struct fx_node {
	const struct fx_org *org;
	struct mm_trust *trust; /* the caller's */
	bool crl;               /* trust has the CRL */
	struct mm_member m;
	struct mm_xlink_env env;
	uint32_t took; /* entries take reported taken, since init */
	unsigned takes;
	bool saved; /* the member saved its table: digest of it */
	uint8_t saved_digest[MM_DIGEST_LEN];
	bool verbose; /* XLINK_FUZZ_LOG set: logs to stderr */
};

/* n must not move once initialized (the machines keep its address).
 * table: taken over (NULL: fx_table's); self: a server of it. limit: of a
 * transfer. */
void fx_node_init(struct fx_node *n, struct mm_trust *trust, bool crl, size_t limit,
                  const char *self, struct mm_table *table);
void fx_node_free(struct fx_node *n);
const struct mm_table *fx_base(const struct fx_node *n);
void fx_digest(const struct fx_node *n, uint8_t d[MM_DIGEST_LEN]);

/* A reply or a run of commands one side wrote, read back. */
struct fx_lines {
	int code;         /* of a reply: every line's; 0 for commands */
	size_t nlines;    /* lines */
	size_t nchunks;   /* of them chunk lines */
	const char *last; /* the last line's text after "NNN " (in the buffer) */
	size_t last_len;
	Mailmesh__LinkTransfer *x; /* the chunks joined and decoded, or NULL */
};

/* Check p[0..n): CRLF lines of at most MM_XLINK_LINE_MAX octets, no control
 * character but their CRLF; a reply ("NNN-" lines, then one "NNN "): one
 * code; commands: each "X-LINK2STATE ". Chunk lines (a reply's only on
 * "-" lines) in order, joining into a transfer that decodes, of which
 * every entry is signed, never of peer_group (may be NULL), and the very
 * entry base holds. Aborts otherwise. fx_lines_free frees l->x. */
void fx_check_lines(const char *p, size_t n, bool reply, const struct mm_table *base,
                    const char *peer_group, struct fx_lines *l);
void fx_lines_free(struct fx_lines *l);

/* mm_xlink_srv_command with every check of the server side: the reply
 * (fx_check_lines); its code as the result says (OK 250, ERROR 5xx, CLOSE
 * 421); after anything but 250 the assembler closed and empty and DIGEST
 * needed again; a DIGEST answered "equal" exactly when it is ours; the
 * transfer within its limit; the table's digest changed only when take
 * reported an entry taken. */
enum mm_xlink_result fx_serve(struct fx_node *n, struct mm_xlink_srv *s, const char *arg,
                              struct mm_buf *out);

/* Abort with what. */
void fx_die(const char *what) __attribute__((noreturn));

#endif
