/* Local delivery: Maildir under SPOOL/mailstore/<address>/ (DESIGN §7a).
 * The file is written in tmp/, fsync'ed, renamed into new/, and new/ is
 * fsync'ed, so a delivery reported done survives a crash. The first
 * delivery to a mailbox in a process makes each directory on its path
 * durable in its parent, also those that exist already (docs/durability.md). */
#ifndef MM_MAILDIR_H
#define MM_MAILDIR_H

#include <stddef.h>

/* Returns 0 or an errno value. prefix (Return-Path, Delivered-To) is
 * written before the message. */
int mm_maildir_deliver(const char *store, const char *addr, const char *host, const char *prefix,
                       size_t plen, const char *msg, size_t len);

#endif
