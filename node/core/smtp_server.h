/* The server side of one SMTP session, sans I/O (DESIGN §1).
 *
 * The driver feeds the bytes it read and sends whatever lands in `out`.
 * The machine never blocks and never touches a socket, a clock or a file:
 * acceptance of a recipient is asked of ops->rcpt, and a complete message
 * is handed to ops->submit. The reply to the end of the message is not sent
 * until the driver calls mm_smtpd_done(): that is where the durable queue
 * says "on disk and fsync'ed" (or not), so 250 means what it should.
 * Until then, pipelined input stays buffered and unprocessed. */
#ifndef MM_SMTP_SERVER_H
#define MM_SMTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "smtp_parse.h"
#include "xlink.h"

struct mm_smtpd_conf {
	const char *fqdn;
	uint64_t max_size;  /* 0: no limit */
	uint32_t max_rcpts; /* per transaction */
	uint32_t max_hops;  /* Received: headers allowed (DESIGN §6, default 15) */
	uint32_t max_errors;
	bool starttls;    /* offer STARTTLS */
	bool require_tls; /* mmRequireTls: no mail transaction in the clear */
};

struct mm_envelope {
	char helo[MM_SMTP_CMD_MAX];
	struct mm_mail_args mail;
	size_t nrcpt, caprcpt;
	struct mm_rcpt_args *rcpt;
};

struct mm_smtpd_ops {
	/* NULL accepts the recipient; otherwise the reply line to send. The
	 * callback may rewrite rcpt->addr in place to the recipient's
	 * canonical form (a valid mailbox, NUL-terminated, in the same array):
	 * once it accepts, a recipient the envelope already holds is answered
	 * 250 and not added again. */
	const char *(*rcpt)(void *ctx, const struct mm_envelope *env, struct mm_rcpt_args *rcpt);
	/* A complete message: the body has CRLF line ends only (a bare CR or
	 * LF was stored as CRLF) and no dot-stuffing, no line over 1,000
	 * octets. Both stay valid until mm_smtpd_done(). */
	void (*submit)(void *ctx, const struct mm_envelope *env, const struct mm_buf *body);
	/* AUTH (RFC 4954), asked only under TLS. mech is "PLAIN", "LOGIN" or
	 * "EXTERNAL" (then pass is NULL and the TLS client certificate
	 * decides). True when the credentials hold. */
	bool (*auth)(void *ctx, const char *mech, const char *user, const char *pass);
	/* Optional: MAIL's sender, once its syntax and size passed. NULL
	 * accepts it; otherwise the reply line to send (e.g. 553 5.7.1 for a
	 * sender an authenticated user does not own). */
	const char *(*mail)(void *ctx, const struct mm_mail_args *mail);
	/* Optional: an X-LINK2STATE command (xlink.h) that passed the checks
	 * of DESIGN §5.2 in their order -- length (1,024 octets), then
	 * authentication (TLS and AUTH EXTERNAL: 530 5.7.0 whatever
	 * follows), then state (503 5.5.1 inside a mail transaction). arg
	 * follows the verb; the reply goes to out. Without it: 530. */
	enum mm_xlink_result (*xlink)(void *ctx, const char *arg, struct mm_buf *out);
};

enum mm_smtpd_state {
	MM_SMTPD_GREET, /* no HELO/EHLO yet */
	MM_SMTPD_IDLE,  /* between transactions */
	MM_SMTPD_MAIL,  /* MAIL given */
	MM_SMTPD_DATA,  /* reading DATA lines */
	MM_SMTPD_BDAT,  /* reading a BDAT chunk */
	MM_SMTPD_WAIT,  /* message submitted, waiting for mm_smtpd_done */
	MM_SMTPD_TLS,   /* STARTTLS accepted, waiting for mm_smtpd_tls_started */
	MM_SMTPD_AUTH,  /* reading an AUTH response line */
	MM_SMTPD_CLOSED,
};

struct mm_smtpd {
	const struct mm_smtpd_conf *conf;
	const struct mm_smtpd_ops *ops;
	void *ctx;
	enum mm_smtpd_state state;
	struct mm_buf in, out, body;
	struct mm_envelope env;
	bool esmtp, tls_active, authenticated;
	bool client_cert; /* the TLS client presented a certificate */
	/* AUTH exchange */
	char auth_mech[16];
	char auth_user[MM_SMTP_CMD_MAX];
	enum mm_smtpd_state auth_from;
	uint32_t errors;
	uint32_t rcpt_tried; /* RCPT commands in this transaction, accepted or not */
	/* DATA */
	bool line_start, prev_crlf, long_line, too_big, discarding;
	bool pending_cr; /* the last text byte was a CR: its LF may come next */
	bool nul;        /* the text holds a NUL octet: 554 5.6.0 at its end */
	size_t line_len; /* of the stored line so far, without its CRLF */
	/* BDAT */
	uint64_t chunk_left;
	bool chunk_last, bdat_failed, bdat_seen;
	const char *chunk_err; /* reply after the chunk, or NULL */
	enum mm_smtpd_state chunk_from;
};

void mm_smtpd_init(struct mm_smtpd *s, const struct mm_smtpd_conf *conf,
                   const struct mm_smtpd_ops *ops, void *ctx);
void mm_smtpd_free(struct mm_smtpd *s);
/* The 220 greeting. */
void mm_smtpd_start(struct mm_smtpd *s);
void mm_smtpd_feed(struct mm_smtpd *s, const char *data, size_t n);
/* The outcome of the last submit: reply is a full reply line without CRLF. */
void mm_smtpd_done(struct mm_smtpd *s, const char *reply);
/* The TLS handshake after STARTTLS succeeded: the session starts over.
 * client_cert: the client presented a certificate (AUTH EXTERNAL is
 * offered only then). */
void mm_smtpd_tls_started(struct mm_smtpd *s, bool client_cert);
/* Idle timeout or shutdown: a 421 and the session closes. */
void mm_smtpd_abort(struct mm_smtpd *s, const char *reply);

/* Received: headers in the header section of a CRLF body. */
uint32_t mm_count_received(const char *body, size_t n);

#endif
