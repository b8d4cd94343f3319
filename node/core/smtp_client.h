/* The client side of an SMTP session, sans I/O: the relay to the next hop.
 *
 * One machine per connection. The driver feeds what it reads and sends
 * `out`; after each feed it looks at the returned event. Commands are
 * pipelined when the server offers PIPELINING (RFC 2920); the body goes as
 * one BDAT LAST chunk when it offers CHUNKING (RFC 3030), else as DATA with
 * dot-stuffing. Replies are parsed strictly and bounded: a next hop is
 * untrusted input like any client (fuzzed by tests/fuzz/smtp_fuzz.c). */
#ifndef MM_SMTP_CLIENT_H
#define MM_SMTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "xlink.h"

#define MM_SMTPC_REPLY_MAX 512  /* kept of a reply's text */
#define MM_SMTPC_LINE_MAX  2048 /* a longer reply line is a protocol error */
#define MM_SMTPC_LINES_MAX 100  /* lines in one multi-line reply */

struct mm_smtpc_result {
	int code;                      /* 250, 450, 550 ... ; 0: no answer */
	char text[MM_SMTPC_REPLY_MAX]; /* the last line, as received */
};

struct mm_smtpc_job {
	const char *sender; /* "" for the null reverse-path */
	uint32_t nrcpt;
	const char *const *rcpt;
	const char *body; /* CRLF lines, not dot-stuffed */
	size_t len;
	bool body_8bit;
	/* RFC 3461, passed on when the next hop offers DSN (may be NULL) */
	const char *envid;           /* xtext, or "" */
	int ret;                     /* enum mm_smtp_ret */
	const uint8_t *notify;       /* per recipient, MM_NOTIFY_* bits */
	const char *const *orcpt;    /* per recipient, "rfc822;xtext" or "" */
	struct mm_smtpc_result *res; /* nrcpt results, filled by the machine */
};

enum mm_smtpc_event {
	MM_SMTPC_NONE,       /* nothing to do but wait for more bytes */
	MM_SMTPC_READY,      /* idle, give it a job (or quit) */
	MM_SMTPC_JOB_DONE,   /* every result of the job is in; READY follows */
	MM_SMTPC_FAILED,     /* the session is over: reply says why */
	MM_SMTPC_TLS,        /* 220 to STARTTLS: handshake, then mm_smtpc_tls_started */
	MM_SMTPC_XLINK_DONE, /* the X-LINK2STATE exchange ended (xlink->state says how) */
};

enum mm_smtpc_state {
	MM_SMTPC_GREETING,
	MM_SMTPC_EHLO,
	MM_SMTPC_HELO,
	MM_SMTPC_STARTTLS,
	MM_SMTPC_AUTH,  /* AUTH EXTERNAL sent, for X-LINK2STATE */
	MM_SMTPC_XLINK, /* the exchange (xlink.h) */
	MM_SMTPC_IDLE,
	MM_SMTPC_TXN,
	MM_SMTPC_QUIT,
	MM_SMTPC_DEAD,
};

struct mm_smtpc {
	enum mm_smtpc_state state;
	const char *helo;
	int tls_want; /* MM_SMTPC_TLS_* */
	bool tls_active;
	struct mm_buf in, out;
	/* server capabilities */
	bool pipelining, chunking, eightbit, dsn, starttls, size, auth_external, xlink2state;
	/* set by the driver before the greeting: this session runs an
	 * X-LINK2STATE exchange after EHLO under TLS (AUTH EXTERNAL first),
	 * then says MM_SMTPC_XLINK_DONE */
	struct mm_xlink_cli *xlink;
	uint64_t max_size;
	/* reply being read */
	int cur_code;
	uint32_t cur_lines;
	struct mm_smtpc_result last;
	/* transaction */
	struct mm_smtpc_job *job;
	uint32_t sent, got; /* commands sent, replies read; MAIL is 0 */
	uint32_t accepted;  /* recipients with a 2xx */
	bool rset_pending;  /* an RSET reply to swallow before the job's */
	bool body_sent;
	struct mm_smtpc_result mail_res, data_res;
	struct mm_smtpc_result error; /* why FAILED */
};

/* STARTTLS per connector policy: none, opportunistic (when offered),
 * required (fail closed: no mail in the clear). */
#define MM_SMTPC_TLS_NONE          0
#define MM_SMTPC_TLS_OPPORTUNISTIC 1
#define MM_SMTPC_TLS_REQUIRED      2

void mm_smtpc_init(struct mm_smtpc *c, const char *helo);
/* The handshake after MM_SMTPC_TLS worked: EHLO again, over TLS. */
void mm_smtpc_tls_started(struct mm_smtpc *c);
void mm_smtpc_free(struct mm_smtpc *c);
enum mm_smtpc_event mm_smtpc_feed(struct mm_smtpc *c, const char *data, size_t n);
/* Only when the last event was READY (or JOB_DONE). */
void mm_smtpc_send(struct mm_smtpc *c, struct mm_smtpc_job *job);
/* Another X-LINK2STATE exchange x on a session whose first one ended
 * (MM_SMTPC_XLINK_DONE left it idle, authenticated): false when it is not
 * such a session, or not idle. */
bool mm_smtpc_xlink_again(struct mm_smtpc *c, struct mm_xlink_cli *x);
void mm_smtpc_quit(struct mm_smtpc *c);
/* The connection broke or timed out: fail whatever is in flight. */
void mm_smtpc_broken(struct mm_smtpc *c, const char *why);

#endif
