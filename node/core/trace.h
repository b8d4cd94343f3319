/* The trace of a message through the organization (RFC 5321 §4.4): the
 * servers that received it, read from the Received: headers mailmesh
 * wrote. Each is "Received: from ... ([ip])" CRLF TAB "by NAME (mailmesh)
 * ...": the by-clause always opens the field's second line, where nothing
 * a peer sends (a HELO name, an address) can put it, since neither may
 * hold a control character. Split horizon (qmgr_route.c) reads it. */
#ifndef MM_TRACE_H
#define MM_TRACE_H

#include <stddef.h>
#include <sys/uio.h>

/* Only the top of the header section is read: Received: headers are
 * prepended, so a hop count's worth fits many times over. */
#define MM_TRACE_SCAN_MAX 32768
#define MM_TRACE_MAX      64 /* names kept; the hop count ends a loop at 15 */

/* The by-names (lower case, newest first) of the Received: headers
 * mailmesh wrote at the top of the message text iov[0..n) (CRLF lines),
 * up to the first Received: header another MTA wrote: this pass through
 * the organization. *names is allocated (free each and the array);
 * returns their count. */
size_t mm_trace_read(const struct iovec *iov, int n, char ***names);

/* The first Message-ID header's value in the top of the header section
 * (MM_TRACE_SCAN_MAX octets) of iov[0..n), blanks trimmed, at most
 * MM_MESSAGE_ID_MAX octets (longer: cut): allocated, or NULL when there is
 * none. For the tracking log, where it is escaped like every value a peer
 * controls. */
#define MM_MESSAGE_ID_MAX 998
char *mm_trace_message_id(const struct iovec *iov, int n);

#endif
