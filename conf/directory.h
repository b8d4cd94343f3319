/* Loading the organization (linkstate/org.h) from the directory: whole
 * from "ldif:PATH" or an ldap:// URL, validated, and refused whole on any
 * error. */
#ifndef MM_DIRECTORY_H
#define MM_DIRECTORY_H

#include <stdbool.h>
#include <stdint.h>

#include "diag.h"
#include "dirent.h"
#include "strmap.h"
#include "org.h"
#include "table.h"

enum mm_load_status {
	MM_LOAD_OK,
	MM_LOAD_BAD_DATA,    /* diag says what and where: exit 65 */
	MM_LOAD_UNAVAILABLE, /* the source could not be reached: exit 69 */
	MM_LOAD_USAGE,       /* the spec is neither ldif: nor ldap:// : exit 64 */
	MM_LOAD_NOINPUT,     /* the LDIF file cannot be opened: exit 66 */
};

enum mm_load_status mm_directory_load(const char *spec, struct mm_directory *dir,
                                      struct mm_diag *diag);
/* Build from entries already read (both loaders end here). */
bool mm_directory_build(const struct mm_dirents *entries, struct mm_directory *dir,
                        struct mm_diag *diag);

#endif
