#include "logfmt.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static bool safe_char(unsigned char c)
{
	return c > 0x20 && c < 0x7f && c != '"' && c != '\\' && c != '=';
}

/* The escaped form of c into e (at most 5 bytes); returns its length. */
static size_t escape(unsigned char c, char e[5])
{
	switch (c) {
	case '"': memcpy(e, "\\\"", 2); return 2;
	case '\\': memcpy(e, "\\\\", 2); return 2;
	case '\n': memcpy(e, "\\n", 2); return 2;
	case '\r': memcpy(e, "\\r", 2); return 2;
	case '\t': memcpy(e, "\\t", 2); return 2;
	}
	if (c < 0x20 || c > 0x7e) {
		static const char hex[] = "0123456789abcdef";
		e[0] = '\\', e[1] = 'x', e[2] = hex[c >> 4], e[3] = hex[c & 15];
		return 4;
	}
	e[0] = (char)c;
	return 1;
}

void mm_logfmt_value(struct mm_buf *b, const char *s)
{
	if (s == NULL)
		s = "";
	bool bare = s[0] != '\0';
	for (const char *p = s; *p && bare; p++)
		bare = safe_char((unsigned char)*p);
	if (bare) {
		mm_buf_adds(b, s);
		return;
	}
	mm_buf_add(b, "\"", 1);
	for (const char *p = s; *p; p++) {
		char e[5];
		mm_buf_add(b, e, escape((unsigned char)*p, e));
	}
	mm_buf_add(b, "\"", 1);
}

void mm_logfmt_kv(struct mm_buf *b, const char *key, const char *value)
{
	mm_buf_add(b, " ", 1);
	mm_buf_adds(b, key);
	mm_buf_add(b, "=", 1);
	mm_logfmt_value(b, value);
}

const char *mm_logfmt_quote(char *out, size_t n, const char *s)
{
	size_t at = 0;
	out[at++] = '"';
	for (const char *p = s ? s : ""; *p; p++) {
		char e[5];
		size_t el = escape((unsigned char)*p, e);
		if (at + el + 2 > n) {
			/* room for ...", always: n > 8 */
			at = at > n - 5 ? n - 5 : at;
			memcpy(out + at, "...", 3);
			at += 3;
			break;
		}
		memcpy(out + at, e, el);
		at += el;
	}
	out[at++] = '"';
	out[at] = '\0';
	return out;
}
