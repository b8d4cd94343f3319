/* Delivery status notifications: RFC 3464 inside an RFC 6522
 * multipart/report, with RFC 3463 status codes. Pure: the caller passes
 * the date and decides whether a DSN is due (never for a null sender,
 * never against NOTIFY=NEVER). */
#ifndef MM_DSN_H
#define MM_DSN_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "queue.h"

struct mm_dsn_rcpt {
	uint32_t idx;       /* recipient of the message */
	const char *status; /* "5.1.1" */
	const char *diag;   /* "smtp; 550 5.1.1 ..." or NULL */
	const char *remote; /* remote MTA, or NULL */
};

/* Writes a whole message (headers and body, CRLF) to out. */
void mm_dsn_build(struct mm_buf *out, const char *fqdn, const char *date, const char *msgid,
                  const struct mm_qmsg *m, const struct mm_dsn_rcpt *r, uint32_t n,
                  const char *orig, size_t orig_len);

/* The enhanced code in a reply line ("550 5.1.1 ..." → "5.1.1"); when it
 * has none, the class of the reply code ("5.0.0"). out: 16 bytes. */
void mm_dsn_status_of(const char *reply, char *out);

#endif
