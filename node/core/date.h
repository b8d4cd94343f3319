/* Dates from a count of seconds, with integer arithmetic only (no libc
 * time zone or locale), so the core formats them the same in a daemon and
 * in a virtual-time run. */
#ifndef MM_DATE_H
#define MM_DATE_H

#include <stdint.h>

/* RFC 5322 §3.3: "Tue, 01 Dec 2026 06:49:22 +0000" (out: 40 bytes). */
void mm_date_rfc5322(int64_t unix_s, char out[40]);
/* "2026-12-01T06:49:22.123Z" (out: 32 bytes), for logs. */
void mm_date_iso8601_ms(int64_t unix_ms, char out[32]);

#endif
