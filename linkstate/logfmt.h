/* Log lines a program can parse, whatever a peer sends (DESIGN §6).
 *
 * A tracking-log line is EVENT ID followed by key=value fields. A value is
 * written bare when it is a safe token: one or more printable ASCII
 * characters other than space, '"', '\\' and '='. Anything else -- empty,
 * spaces, quotes, control characters, bytes over 0x7e -- is written in
 * double quotes with C escapes (\" \\ \n \r \t and \xHH), so a reply text,
 * a quoted local part with "key=value" inside or an AUTH user name can
 * never make a second field or a second line. The node log uses the same
 * quoting for every string a peer controls. */
#ifndef MM_LOGFMT_H
#define MM_LOGFMT_H

#include <stddef.h>

#include "buf.h"

/* s, bare or quoted as above. */
void mm_logfmt_value(struct mm_buf *b, const char *s);
/* " key=value" */
void mm_logfmt_kv(struct mm_buf *b, const char *key, const char *value);
/* s always quoted and escaped into out (n > 8), cut short with "..." inside
 * the quotes when it does not fit. Returns out. */
const char *mm_logfmt_quote(char *out, size_t n, const char *s);

#endif
