#include "trace.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"

/* The top of the message text, joined (the driver's own Received: header
 * comes as an iovec of its own before the body). */
static size_t top(const struct iovec *iov, int n, char *out, size_t max)
{
	size_t len = 0;
	for (int i = 0; i < n && len < max; i++) {
		size_t k = iov[i].iov_len < max - len ? iov[i].iov_len : max - len;
		memcpy(out + len, iov[i].iov_base, k);
		len += k;
	}
	return len;
}

/* "\tby NAME (mailmesh)" at p (the second line of a Received: field):
 * NAME into out. */
static bool by_clause(const char *p, const char *end, char *out, size_t max)
{
	if (end - p < 4 || memcmp(p, "\tby ", 4) != 0)
		return false;
	p += 4;
	size_t n = 0;
	while (p + n < end && p[n] != ' ' && p[n] != '\r')
		n++;
	static const char tag[] = " (mailmesh)";
	if (n == 0 || n >= max || (size_t)(end - (p + n)) < sizeof(tag) - 1 ||
	    memcmp(p + n, tag, sizeof(tag) - 1) != 0)
		return false;
	for (size_t i = 0; i < n; i++)
		out[i] = (char)tolower((unsigned char)p[i]);
	out[n] = '\0';
	return true;
}

size_t mm_trace_read(const struct iovec *iov, int n, char ***names)
{
	char *text = mm_xmalloc(MM_TRACE_SCAN_MAX);
	size_t len = top(iov, n, text, MM_TRACE_SCAN_MAX);
	const char *end = text + len;
	size_t count = 0;
	*names = NULL;
	for (const char *line = text; line < end && count < MM_TRACE_MAX;) {
		const char *nl = memchr(line, '\n', (size_t)(end - line));
		if (nl == NULL || nl == line || (nl == line + 1 && line[0] == '\r'))
			break; /* the end of what was read, or of the header section */
		if ((size_t)(end - line) > 9 && strncasecmp(line, "Received:", 9) == 0) {
			char name[256];
			/* the first Received: header of another MTA ends this
			 * pass through the organization: what came before it
			 * (mail that left and came back, by a mailing list) is
			 * another journey */
			if (!by_clause(nl + 1, end, name, sizeof(name)))
				break;
			*names = mm_xrealloc(*names, count + 1, sizeof(**names));
			(*names)[count++] = mm_xstrdup(name);
		}
		line = nl + 1;
	}
	free(text);
	return count;
}

char *mm_trace_message_id(const struct iovec *iov, int n)
{
	char *text = mm_xmalloc(MM_TRACE_SCAN_MAX);
	size_t len = top(iov, n, text, MM_TRACE_SCAN_MAX);
	const char *end = text + len;
	char *id = NULL;
	for (const char *line = text; line < end && id == NULL;) {
		const char *nl = memchr(line, '\n', (size_t)(end - line));
		if (nl == NULL || nl == line || (nl == line + 1 && line[0] == '\r'))
			break; /* the end of what was read, or of the header section */
		if ((size_t)(nl - line) > 11 && strncasecmp(line, "Message-ID:", 11) == 0) {
			const char *v = line + 11, *e = nl;
			/* a value folded onto the next line (RFC 5322 §2.2.3) */
			while (v < e && (*v == ' ' || *v == '\t' || *v == '\r'))
				v++;
			if (v == e && nl + 1 < end && (nl[1] == ' ' || nl[1] == '\t')) {
				v = nl + 1;
				e = memchr(v, '\n', (size_t)(end - v));
				if (e == NULL)
					e = end;
				while (v < e && (*v == ' ' || *v == '\t'))
					v++;
			}
			while (e > v && (e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t'))
				e--;
			if (e > v)
				id = mm_xstrndup(v, (size_t)(e - v) > MM_MESSAGE_ID_MAX
				                        ? MM_MESSAGE_ID_MAX
				                        : (size_t)(e - v));
		}
		line = nl + 1;
	}
	free(text);
	return id;
}
