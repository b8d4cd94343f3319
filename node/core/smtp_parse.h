/* SMTP command syntax (RFC 5321 §4.1, RFC 3461 DSN, RFC 1870 SIZE,
 * RFC 6152 8BITMIME, RFC 3030 BDAT). Pure and bounded: every parser here
 * sees bytes from the network and has a libFuzzer target
 * (tests/fuzz/smtp_fuzz.c). Errors come back as a complete reply line with
 * its RFC 3463 enhanced code, ready to send. */
#ifndef MM_SMTP_PARSE_H
#define MM_SMTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* RFC 5321 §4.5.3.1 */
#define MM_SMTP_CMD_MAX    512  /* command line, CRLF included */
#define MM_SMTP_TEXT_MAX   1000 /* text line, CRLF included */
#define MM_SMTP_PATH_MAX   256  /* reverse-path or forward-path, brackets included */
#define MM_SMTP_LOCAL_MAX  64
#define MM_SMTP_DOMAIN_MAX 255
#define MM_SMTP_ENVID_MAX  100 /* RFC 3461 §4.4 */
#define MM_SMTP_ORCPT_MAX  500 /* RFC 3461 §4.2 */

enum mm_smtp_verb {
	MM_SMTP_UNKNOWN,
	MM_SMTP_HELO,
	MM_SMTP_EHLO,
	MM_SMTP_MAIL,
	MM_SMTP_RCPT,
	MM_SMTP_DATA,
	MM_SMTP_BDAT,
	MM_SMTP_RSET,
	MM_SMTP_NOOP,
	MM_SMTP_QUIT,
	MM_SMTP_VRFY,
	MM_SMTP_EXPN,
	MM_SMTP_HELP,
	MM_SMTP_STARTTLS,
	MM_SMTP_AUTH,
	MM_SMTP_XLINK2STATE,
};

/* line: one command without its CRLF, NUL-terminated. *arg points after the
 * verb and its separating space ("" when none). */
enum mm_smtp_verb mm_smtp_verb(const char *line, const char **arg);

enum mm_smtp_ret { MM_RET_DEFAULT, MM_RET_FULL, MM_RET_HDRS };

/* NOTIFY= of RFC 3461 §4.1 */
#define MM_NOTIFY_NEVER   0x1
#define MM_NOTIFY_SUCCESS 0x2
#define MM_NOTIFY_FAILURE 0x4
#define MM_NOTIFY_DELAY   0x8

struct mm_mail_args {
	char addr[MM_SMTP_PATH_MAX + 1]; /* "" for the null reverse-path */
	bool has_size;
	uint64_t size;
	bool body_8bit;
	enum mm_smtp_ret ret;
	char envid[MM_SMTP_ENVID_MAX + 1]; /* xtext as received */
};

struct mm_rcpt_args {
	char addr[MM_SMTP_PATH_MAX + 1];
	unsigned notify;                   /* 0: not given */
	char orcpt[MM_SMTP_ORCPT_MAX + 1]; /* "atom;xtext" as received, or "" */
};

/* arg is what follows "MAIL " / "RCPT ". Returns NULL, or the reply line
 * (without CRLF) to send. */
const char *mm_smtp_parse_mail(const char *arg, struct mm_mail_args *out);
const char *mm_smtp_parse_rcpt(const char *arg, struct mm_rcpt_args *out);

/* RFC 5321 Mailbox: Local-part "@" (Domain / address-literal), with the
 * length limits above. */
bool mm_smtp_mailbox_valid(const char *s, size_t n);

/* BDAT <size> [LAST]. Returns false on bad syntax. */
bool mm_smtp_parse_bdat(const char *arg, uint64_t *size, bool *last);

/* RFC 4648 base64 (no line breaks). Returns the decoded length, or -1 when
 * s is not base64 or out is too small. out is NUL-terminated. */
long mm_base64_decode(const char *s, size_t n, unsigned char *out, size_t outlen);

/* RFC 3461 §4: xtext = *( xchar / "+" 2HEXCHAR ), HEXCHAR upper case.
 * An encoded control character (+00 to +1F, +7F) is refused as well. */
bool mm_smtp_xtext_valid(const char *s, size_t n);

#endif
