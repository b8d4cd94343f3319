/* The organization as the directory describes it (DESIGN §2): the link-state
 * table it implies (every object up, version (0, 1, 0, 0)), the recipients
 * and authoritative domains the categorizer needs, and the virtual servers'
 * own settings. Loaded whole from "ldif:PATH" or an ldap:// URL, validated,
 * and refused whole on any error. */
#ifndef MM_DIRECTORY_H
#define MM_DIRECTORY_H

#include <stdbool.h>
#include <stdint.h>

#include "diag.h"
#include "dirent.h"
#include "strmap.h"
#include "table.h"

struct mm_recipient {
	char *mail;     /* lower case */
	char *home;     /* server name */
	char *password; /* userPassword, or NULL */
};

struct mm_vserver_conf {
	char *server, *name, *bind, *fqdn;
	uint32_t max_hops;
	uint64_t max_size; /* 0: no limit */
	bool require_tls;
	size_t nrelay;
	char **relay; /* CIDR blocks */
};

struct mm_directory {
	char *org;
	struct mm_table table;
	size_t ndomains;
	char **domains; /* lower case */
	size_t nrecipients;
	struct mm_recipient *recipients;
	struct mm_strmap by_mail;
	size_t nvservers;
	struct mm_vserver_conf *vservers;
};

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
void mm_directory_free(struct mm_directory *dir);

enum mm_category {
	MM_CAT_HOME,     /* an organization recipient: *home is its server */
	MM_CAT_UNKNOWN,  /* authoritative domain, no such recipient: 550 5.1.1 */
	MM_CAT_EXTERNAL, /* not an authoritative domain: route by address space */
	MM_CAT_BAD,      /* not local@domain: 501 5.1.3 */
};

/* DESIGN §4.1. domain receives the lower-cased domain (256 bytes). */
enum mm_category mm_directory_categorize(const struct mm_directory *dir, const char *rcpt,
                                         const char **home, char domain[256]);

#endif
