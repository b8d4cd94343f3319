#include "ldap_read.h"

#include <ldap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"

#define LDAP_TIMEOUT_S 10

static char *read_password(const char *path, struct mm_diag *diag)
{
	FILE *f = fopen(path, "r");
	char line[1024];
	if (f == NULL || fgets(line, sizeof(line), f) == NULL) {
		mm_diag_add(diag, path, "cannot read the LDAP password file");
		if (f)
			fclose(f);
		return NULL;
	}
	fclose(f);
	line[strcspn(line, "\r\n")] = '\0';
	return mm_xstrdup(line);
}

static void add_entry(LDAP *ld, LDAPMessage *msg, struct mm_dirents *out)
{
	char *dn = ldap_get_dn(ld, msg);
	if (dn == NULL)
		return;
	struct mm_dirent *e = mm_dirents_add(out, dn, dn);
	BerElement *ber = NULL;
	for (char *a = ldap_first_attribute(ld, msg, &ber); a;
	     a = ldap_next_attribute(ld, msg, ber)) {
		struct berval **vals = ldap_get_values_len(ld, msg, a);
		for (size_t i = 0; vals && vals[i]; i++) {
			if (vals[i]->bv_len > MM_DIR_MAX_VALUE ||
			    memchr(vals[i]->bv_val, '\0', vals[i]->bv_len))
				continue; /* binary (e.g. a photo): never one of ours */
			char *v = mm_xstrndup(vals[i]->bv_val, vals[i]->bv_len);
			mm_dirent_add_attr(e, a, v, dn);
			free(v);
		}
		ldap_value_free_len(vals);
		ldap_memfree(a);
	}
	ber_free(ber, 0);
	ldap_memfree(dn);
}

int mm_ldap_read(const char *url, struct mm_dirents *out, struct mm_diag *diag, int *unavailable)
{
	LDAPURLDesc *lud = NULL;
	LDAP *ld = NULL;
	LDAPMessage *res = NULL;
	char *binddn = NULL, *password = NULL, *uri = NULL;
	int rc = -1;
	*unavailable = 0;

	if (ldap_url_parse(url, &lud) != LDAP_URL_SUCCESS || lud->lud_dn == NULL || !*lud->lud_dn) {
		mm_diag_add(diag, url, "not an LDAP URL with a base DN (ldap://HOST:PORT/BASE-DN)");
		goto out;
	}
	for (int i = 0; lud->lud_exts && lud->lud_exts[i]; i++) {
		const char *x = lud->lud_exts[i];
		if (*x == '!')
			x++;
		if (strncasecmp(x, "bindname=", 9) == 0)
			binddn = mm_xstrdup(x + 9);
		else if (strncasecmp(x, "x-pwfile=", 9) == 0 && password == NULL &&
		         (password = read_password(x + 9, diag)) == NULL)
			goto out;
	}
	size_t ul = strlen(lud->lud_scheme) + strlen(lud->lud_host ? lud->lud_host : "") + 32;
	uri = mm_xmalloc(ul);
	snprintf(uri, ul, "%s://%s:%d/", lud->lud_scheme, lud->lud_host ? lud->lud_host : "",
	         lud->lud_port);
	if (ldap_initialize(&ld, uri) != LDAP_SUCCESS) {
		mm_diag_add(diag, url, "cannot initialize an LDAP session");
		goto out;
	}
	int version = LDAP_VERSION3;
	struct timeval tv = {LDAP_TIMEOUT_S, 0};
	ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &version);
	ldap_set_option(ld, LDAP_OPT_NETWORK_TIMEOUT, &tv);
	ldap_set_option(ld, LDAP_OPT_TIMEOUT, &tv);
	struct berval cred = {password ? strlen(password) : 0, password};
	int err = ldap_sasl_bind_s(ld, binddn, LDAP_SASL_SIMPLE, &cred, NULL, NULL, NULL);
	if (err != LDAP_SUCCESS) {
		*unavailable =
		    err == LDAP_SERVER_DOWN || err == LDAP_TIMEOUT || err == LDAP_CONNECT_ERROR;
		mm_diag_add(diag, url, "LDAP bind: %s", ldap_err2string(err));
		goto out;
	}
	err = ldap_search_ext_s(ld, lud->lud_dn, LDAP_SCOPE_SUBTREE, "(objectClass=*)", NULL, 0,
	                        NULL, NULL, &tv, LDAP_NO_LIMIT, &res);
	if (err != LDAP_SUCCESS) {
		*unavailable = err == LDAP_SERVER_DOWN || err == LDAP_TIMEOUT;
		mm_diag_add(diag, url, "LDAP search: %s", ldap_err2string(err));
		goto out;
	}
	for (LDAPMessage *m = ldap_first_entry(ld, res); m; m = ldap_next_entry(ld, m))
		add_entry(ld, m, out);
	rc = 0;
out:
	if (res)
		ldap_msgfree(res);
	if (ld)
		ldap_unbind_ext_s(ld, NULL, NULL);
	if (lud)
		ldap_free_urldesc(lud);
	free(binddn);
	free(password);
	free(uri);
	return rc;
}
