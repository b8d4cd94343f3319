/* The organization in memory (DESIGN §2), as the directory loaders build it:
 * the link-state table it implies (every object up, version (0, 1, 0, 0)),
 * the recipients and authoritative domains the categorizer needs, and the
 * virtual servers' own settings. Pure data and lookups: the loaders live in
 * conf/, and the node core categorizes with this alone. */
#ifndef MM_ORG_H
#define MM_ORG_H

#include <stdbool.h>
#include <stdint.h>

#include "strmap.h"
#include "table.h"

struct mm_recipient {
	char *mail;     /* lower case: the recipient's one canonical address */
	char *home;     /* server name */
	char *password; /* userPassword, or NULL */
	uint32_t entry; /* the directory entry: its addresses share the number */
};

struct mm_vserver_conf {
	char *server, *name, *bind, *fqdn;
	uint32_t max_hops;
	uint64_t max_size; /* 0: not set in the directory */
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

void mm_directory_free(struct mm_directory *dir);

enum mm_category {
	MM_CAT_HOME,     /* an organization recipient: *who says where it lives */
	MM_CAT_UNKNOWN,  /* authoritative domain, no such recipient: 550 5.1.1 */
	MM_CAT_EXTERNAL, /* not an authoritative domain: route by address space */
	MM_CAT_BAD,      /* not local@domain: 501 5.1.3 */
	/* postmaster@ an authoritative domain that no recipient holds: RFC
	 * 5321 §4.5.1 makes it accepted all the same; it is delivered on the
	 * server that receives it (the mailbox postmaster@DOMAIN) */
	MM_CAT_POSTMASTER,
};

/* DESIGN §4.1. Directory recipients match case-insensitively (their local
 * parts too: one mailbox, however the sender spells it). domain receives
 * the lower-cased domain (256 bytes). */
enum mm_category mm_directory_categorize(const struct mm_directory *dir, const char *rcpt,
                                         const struct mm_recipient **who, char domain[256]);

/* The domain of a bare "postmaster" (RCPT TO:<Postmaster>, RFC 5321
 * §4.5.1) at a virtual server named fqdn: the longest authoritative
 * domain that is fqdn or one of its parents, else the directory's first
 * authoritative domain; NULL when it has none. */
const char *mm_directory_postmaster_domain(const struct mm_directory *dir, const char *fqdn);

#endif
