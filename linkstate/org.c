#include "org.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "addrspace.h"

enum mm_category mm_directory_categorize(const struct mm_directory *dir, const char *rcpt,
                                         const struct mm_recipient **who, char domain[256])
{
	char mail[512];
	size_t n = strlen(rcpt);
	if (n >= sizeof(mail))
		return MM_CAT_BAD;
	for (size_t i = 0; i <= n; i++)
		mail[i] = (char)tolower((unsigned char)rcpt[i]);
	const char *at = strrchr(mail, '@');
	if (at == NULL || at == mail || !mm_domain_valid(at + 1, strlen(at + 1)))
		return MM_CAT_BAD;
	memcpy(domain, at + 1, strlen(at + 1) + 1);
	for (size_t i = 0; i < dir->ndomains; i++) {
		if (strcmp(dir->domains[i], domain) != 0)
			continue;
		uint32_t r;
		if (!mm_strmap_get(&dir->by_mail, mail, &r)) {
			if (at - mail == 10 && memcmp(mail, "postmaster", 10) == 0)
				return MM_CAT_POSTMASTER;
			return MM_CAT_UNKNOWN;
		}
		*who = &dir->recipients[r];
		return MM_CAT_HOME;
	}
	return MM_CAT_EXTERNAL;
}

const char *mm_directory_postmaster_domain(const struct mm_directory *dir, const char *fqdn)
{
	const char *best = NULL;
	size_t fl = fqdn ? strlen(fqdn) : 0;
	for (size_t i = 0; i < dir->ndomains; i++) {
		const char *d = dir->domains[i];
		size_t dl = strlen(d);
		bool under = fl == dl ? strcasecmp(fqdn, d) == 0
		                      : fl > dl && fqdn[fl - dl - 1] == '.' &&
		                            strcasecmp(fqdn + fl - dl, d) == 0;
		if (under && (best == NULL || dl > strlen(best)))
			best = d;
	}
	if (best == NULL && dir->ndomains > 0)
		best = dir->domains[0];
	return best;
}

void mm_directory_free(struct mm_directory *dir)
{
	free(dir->org);
	mm_table_free(&dir->table);
	for (size_t i = 0; i < dir->ndomains; i++)
		free(dir->domains[i]);
	free(dir->domains);
	for (size_t i = 0; i < dir->nrecipients; i++) {
		free(dir->recipients[i].mail);
		free(dir->recipients[i].home);
		free(dir->recipients[i].password);
	}
	free(dir->recipients);
	mm_strmap_free(&dir->by_mail);
	for (size_t i = 0; i < dir->nvservers; i++) {
		struct mm_vserver_conf *v = &dir->vservers[i];
		free(v->server);
		free(v->name);
		free(v->bind);
		free(v->fqdn);
		for (size_t j = 0; j < v->nrelay; j++)
			free(v->relay[j]);
		free(v->relay);
	}
	free(dir->vservers);
	*dir = (struct mm_directory){0};
}
