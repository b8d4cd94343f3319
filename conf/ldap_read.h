#ifndef MM_LDAP_READ_H
#define MM_LDAP_READ_H

#include "diag.h"
#include "dirent.h"

/* Read every entry under the base DN of an LDAP URL,
 *   ldap://HOST:PORT/BASE-DN[????bindname=DN,x-pwfile=PATH]
 * binding simply as bindname with the password in PATH (first line) when
 * given, anonymously otherwise. Places are the entries' DNs. Returns 0, or
 * -1 with the reason in diag; sets *unavailable when the server could not
 * be reached (EX_UNAVAILABLE rather than bad data). */
int mm_ldap_read(const char *url, struct mm_dirents *out, struct mm_diag *diag, int *unavailable);

#endif
