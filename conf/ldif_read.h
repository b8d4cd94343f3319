#ifndef MM_LDIF_READ_H
#define MM_LDIF_READ_H

#include <stddef.h>

#include "diag.h"
#include "dirent.h"

/* Read LDIF text (content records; "changetype: add" is accepted) with
 * libldap's LDIF reader. name is used in "name:line" places. Problems go to
 * diag; returns 0 when there were none. */
int mm_ldif_parse(const char *name, const char *text, size_t len, struct mm_dirents *out,
                  struct mm_diag *diag);
/* Read a file of at most MM_DIR_MAX_BYTES and parse it. */
int mm_ldif_read_file(const char *path, struct mm_dirents *out, struct mm_diag *diag);

#endif
