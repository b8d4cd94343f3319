/* Local delivery: Maildir under SPOOL/mailstore/<address>/ (DESIGN §7a).
 * The file is written in tmp/, fsync'ed, renamed into new/, and new/ is
 * fsync'ed, so a delivery reported done survives a crash. */
#ifndef MM_MAILDIR_H
#define MM_MAILDIR_H

#include <stddef.h>

/* Returns 0 or an errno value. prefix (Return-Path, Delivered-To) is
 * written before the message. */
int mm_maildir_deliver(const char *store, const char *addr, const char *host, const char *prefix,
                       size_t plen, const char *msg, size_t len);

#endif
