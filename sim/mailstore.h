/* The Message-IDs in a server's Maildirs (SPOOL/mailstore/ADDRESS/{new,cur}):
 * kept apart from the rest of meshsim, whose include path holds the
 * directory code's own dirent.h. */
#ifndef MM_SIM_MAILSTORE_H
#define MM_SIM_MAILSTORE_H

/* each(ctx, message_id, mailbox) for every message with a Message-ID */
void sim_mailstore_scan(const char *mailstore,
                        void (*each)(void *ctx, const char *msgid, const char *box), void *ctx);
/* the Message-ID header of a message file, in id (empty: none) */
void sim_message_id(const char *path, char *id, unsigned long cap);

#endif
