/* Directory entries as read from either source (an LDIF file or an LDAP
 * server), before they mean anything: a DN, where the entry came from, and
 * its attribute values each with its own place. The builder turns them into
 * the organization; both sources go through it, so they cannot disagree. */
#ifndef MM_DIRENT_H
#define MM_DIRENT_H

#include <stddef.h>

struct mm_attr {
	char *name;  /* as written */
	char *value; /* NUL-terminated; binary values are refused on reading */
	char *where; /* "file:line" or the DN */
};

struct mm_dirent {
	char *dn;
	char *where;
	size_t nattrs, cap;
	struct mm_attr *attrs;
};

struct mm_dirents {
	size_t n, cap;
	struct mm_dirent *e;
};

struct mm_dirent *mm_dirents_add(struct mm_dirents *l, const char *dn, const char *where);
void mm_dirent_add_attr(struct mm_dirent *e, const char *name, const char *value,
                        const char *where);
void mm_dirents_free(struct mm_dirents *l);

/* Limits on what a directory source may hand us (DESIGN: every parser of
 * outside bytes has a size limit). */
#define MM_DIR_MAX_BYTES (64u << 20) /* an LDIF file */
#define MM_DIR_MAX_VALUE 4096        /* one attribute value */

#endif
