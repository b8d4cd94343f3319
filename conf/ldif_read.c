/* LDIF through libldap's reader (ldif.h): ldif_read_record() splits the text
 * into records, ldif_getline() joins folded lines (in place, so every logical
 * line keeps its offset in the record) and ldif_parse_line2() decodes
 * "type: value", "type:: base64". Line numbers come from finding each record
 * in the text and counting newlines up to each of its lines. */
#include "ldif_read.h"

#include <errno.h>
#include <stdbool.h>
#include <lber.h>
#include <ldif.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"

static unsigned long count_nl(const char *s, size_t n)
{
	unsigned long c = 0;
	for (size_t i = 0; i < n; i++)
		c += s[i] == '\n';
	return c;
}

static void parse_record(const char *name, char *rec, unsigned long first_line,
                         struct mm_dirents *out, struct mm_diag *diag)
{
	char *orig = mm_xstrdup(rec);
	char *next = rec, *line;
	struct mm_dirent *e = NULL;
	char where[4096];

	while ((line = ldif_getline(&next)) != NULL) {
		unsigned long ln = first_line + count_nl(orig, (size_t)(line - rec));
		snprintf(where, sizeof(where), "%s:%lu", name, ln);
		struct berval type = {0}, value = {0};
		int freeval = 0;
		if (ldif_parse_line2(line, &type, &value, &freeval) < 0) {
			mm_diag_add(diag, where, "not an LDIF line");
			continue;
		}
		char tname[256];
		snprintf(tname, sizeof(tname), "%.*s", (int)type.bv_len, type.bv_val);
		if (value.bv_len > MM_DIR_MAX_VALUE || memchr(value.bv_val, '\0', value.bv_len)) {
			mm_diag_add(diag, where, "%s: value is binary or longer than %u bytes",
			            tname, MM_DIR_MAX_VALUE);
		} else if (e == NULL && strcasecmp(tname, "version") == 0) {
			/* "version: 1" may head the first record */
		} else if (e == NULL && strcasecmp(tname, "dn") != 0) {
			mm_diag_add(diag, where, "record does not start with dn:");
		} else if (e == NULL) {
			char *dn = mm_xstrndup(value.bv_val, value.bv_len);
			e = mm_dirents_add(out, dn, where);
			free(dn);
		} else if (strcasecmp(tname, "changetype") == 0) {
			if (value.bv_len != 3 || strncasecmp(value.bv_val, "add", 3) != 0)
				mm_diag_add(diag, where, "only content records or changetype: add");
		} else {
			char *v = mm_xstrndup(value.bv_val, value.bv_len);
			mm_dirent_add_attr(e, tname, v, where);
			free(v);
		}
		if (freeval)
			ber_memfree(value.bv_val);
	}
	free(orig);
}

int mm_ldif_parse(const char *name, const char *text, size_t len, struct mm_dirents *out,
                  struct mm_diag *diag)
{
	size_t before = diag->n;
	if (len > MM_DIR_MAX_BYTES) {
		mm_diag_add(diag, name, "larger than %u bytes", MM_DIR_MAX_BYTES);
		return -1;
	}
	if (memchr(text, '\0', len)) {
		mm_diag_add(diag, name, "contains a NUL byte: not LDIF text");
		return -1;
	}
	/* ldif_open_mem wants a writable buffer it does not keep */
	char *copy = mm_xstrndup(text, len);
	LDIFFP *fp = ldif_open_mem(copy, len, "r");
	if (fp == NULL) {
		free(copy);
		mm_diag_add(diag, name, "cannot read: %s", strerror(errno));
		return -1;
	}
	unsigned long lineno = 0;
	char *buf = NULL;
	int buflen = 0;
	size_t cursor = 0;
	while (ldif_read_record(fp, &lineno, &buf, &buflen) > 0) {
		if (buf == NULL) /* libldap returns a count but no text for some junk */
			break;
		size_t rl = strlen(buf);
		const char *at = rl ? memmem(text + cursor, len - cursor, buf, rl) : NULL;
		if (at == NULL) { /* cannot happen for a verbatim record; keep going */
			mm_diag_add(diag, name, "record near line %lu cannot be placed", lineno);
			continue;
		}
		unsigned long first = 1 + count_nl(text, (size_t)(at - text));
		cursor = (size_t)(at - text) + rl;
		parse_record(name, buf, first, out, diag);
	}
	ber_memfree(buf);
	ldif_close(fp);
	free(copy);
	return diag->n == before ? 0 : -1;
}

int mm_ldif_read_file(const char *path, struct mm_dirents *out, struct mm_diag *diag)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL) {
		mm_diag_add(diag, path, "cannot open: %s", strerror(errno));
		return -1;
	}
	size_t cap = 1 << 16, len = 0;
	char *buf = mm_xmalloc(cap);
	size_t got;
	while ((got = fread(buf + len, 1, cap - len, f)) > 0) {
		len += got;
		if (len > MM_DIR_MAX_BYTES)
			break;
		if (len == cap)
			buf = mm_xrealloc(buf, cap *= 2, 1);
	}
	bool err = ferror(f);
	fclose(f);
	int rc = -1;
	if (err)
		mm_diag_add(diag, path, "read error");
	else
		rc = mm_ldif_parse(path, buf, len, out, diag);
	free(buf);
	return rc;
}
