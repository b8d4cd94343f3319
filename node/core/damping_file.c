#include "damping_file.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "buf.h"

char *mm_damping_format(const struct mm_damp_saved *s, size_t n, int64_t saved_at_ms, size_t *len)
{
	struct mm_buf b = {0};
	mm_buf_printf(&b, "mailmesh-damping 1 %" PRId64 "\n", saved_at_ms);
	for (size_t i = 0; i < n; i++) {
		if (strpbrk(s[i].connector, "\r\n") != NULL || s[i].connector[0] == '\0')
			continue;
		mm_buf_printf(&b, "%" PRIu64 " %d %" PRId64 " %s\n", s[i].figure,
		              s[i].suppressed ? 1 : 0, s[i].last_down_age, s[i].connector);
	}
	*len = b.len;
	return b.p; /* NUL-terminated by mm_buf_printf */
}

/* One whole decimal number at *p, then one space. */
static bool number(const char **p, const char *end, int64_t min, int64_t *out)
{
	const char *q = *p;
	bool neg = q < end && *q == '-';
	q += neg;
	uint64_t v = 0;
	const char *digits = q;
	while (q < end && *q >= '0' && *q <= '9' && q - digits < 19)
		v = v * 10 + (uint64_t)(*q++ - '0');
	if (q == digits || q >= end || *q != ' ' || v > INT64_MAX)
		return false;
	*out = neg ? -(int64_t)v : (int64_t)v;
	if (*out < min)
		return false;
	*p = q + 1;
	return true;
}

bool mm_damping_parse(const char *text, size_t len, struct mm_damp_saved **out, size_t *n,
                      int64_t *saved_at_ms, char *err, size_t errlen)
{
	*out = NULL;
	*n = 0;
	const char *p = text, *end = text + len;
	static const char magic[] = "mailmesh-damping 1 ";
	const char *nl = memchr(p, '\n', len);
	if (nl == NULL || (size_t)(nl - p) < sizeof(magic) - 1 ||
	    memcmp(p, magic, sizeof(magic) - 1) != 0) {
		snprintf(err, errlen, "line 1: not a damping file");
		return false;
	}
	const char *q = p + sizeof(magic) - 1;
	int64_t at;
	/* the number ends at the line's end: parse it with a space after */
	char head[32];
	size_t hl = (size_t)(nl - q);
	if (hl == 0 || hl + 1 >= sizeof(head)) {
		snprintf(err, errlen, "line 1: no time");
		return false;
	}
	memcpy(head, q, hl);
	head[hl] = ' ';
	const char *h = head;
	if (!number(&h, head + hl + 1, 0, &at) || h != head + hl + 1) {
		snprintf(err, errlen, "line 1: no time");
		return false;
	}
	*saved_at_ms = at;
	size_t line = 1;
	for (p = nl + 1; p < end; p = nl + 1) {
		line++;
		nl = memchr(p, '\n', (size_t)(end - p));
		if (nl == NULL) {
			snprintf(err, errlen, "line %zu: no line end (cut short)", line);
			goto bad;
		}
		int64_t figure, held, age;
		const char *r = p;
		if (!number(&r, nl, 0, &figure) || !number(&r, nl, 0, &held) || held > 1 ||
		    !number(&r, nl, -1, &age) || r >= nl || memchr(r, '\r', (size_t)(nl - r))) {
			snprintf(err, errlen, "line %zu: not FIGURE HELD AGE NAME", line);
			goto bad;
		}
		*out = mm_xrealloc(*out, *n + 1, sizeof(**out));
		char *name = mm_xmalloc((size_t)(nl - r) + 1);
		memcpy(name, r, (size_t)(nl - r));
		name[nl - r] = '\0';
		(*out)[(*n)++] = (struct mm_damp_saved){.connector = name,
		                                        .figure = (uint64_t)figure,
		                                        .suppressed = held == 1,
		                                        .last_down_age = age};
	}
	return true;
bad:
	mm_damp_saved_free(*out, *n);
	*out = NULL;
	*n = 0;
	return false;
}
