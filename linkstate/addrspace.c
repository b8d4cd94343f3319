#include "addrspace.h"

#include <ctype.h>
#include <string.h>

static bool label_valid(const char *s, size_t n)
{
	if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '-')
			return false;
	return true;
}

bool mm_domain_valid(const char *d, size_t len)
{
	if (len == 0 || len > MM_DOMAIN_MAX)
		return false;
	size_t start = 0;
	for (size_t i = 0; i <= len; i++) {
		if (i == len || d[i] == '.') {
			if (!label_valid(d + start, i - start))
				return false;
			start = i + 1;
		}
	}
	return true;
}

static size_t count_labels(const char *s)
{
	size_t n = 1;
	for (; *s; s++)
		n += *s == '.';
	return n;
}

bool mm_addrspace_parse(const char *text, struct mm_addrspace *out, const char **why)
{
	*out = (struct mm_addrspace){0};
	size_t len = strlen(text);
	if (len > MM_ADDRSPACE_MAX) {
		*why = "address space too long";
		return false;
	}
	const char *colon = strchr(text, ':');
	if (colon == NULL || colon == text) {
		*why = "address space lacks \"type:\"";
		return false;
	}
	size_t tlen = (size_t)(colon - text);
	if (tlen >= sizeof(out->type)) {
		*why = "address space type too long";
		return false;
	}
	for (size_t i = 0; i < tlen; i++) {
		char c = text[i];
		if (!isalnum((unsigned char)c) && c != '-') {
			*why = "address space type has a bad character";
			return false;
		}
		out->type[i] = (char)tolower((unsigned char)c);
	}
	const char *p = colon + 1;
	const char *end = p;
	while (*end && *end != ' ' && *end != '\t')
		end++;
	size_t plen = (size_t)(end - p);
	if (plen == 0) {
		*why = "address space has an empty pattern";
		return false;
	}
	if (plen > MM_DOMAIN_MAX) {
		*why = "address space pattern too long";
		return false;
	}
	for (size_t i = 0; i < plen; i++)
		out->pattern[i] = (char)tolower((unsigned char)p[i]);
	out->pattern[plen] = '\0';
	if (strcmp(out->type, "smtp") == 0) {
		const char *dom = out->pattern;
		if (strcmp(dom, "*") != 0) {
			if (strncmp(dom, "*.", 2) == 0)
				dom += 2;
			if (!mm_domain_valid(dom, strlen(dom))) {
				*why = "address space pattern is not *, *.domain or a domain";
				return false;
			}
		}
	}
	while (*end == ' ' || *end == '\t')
		end++;
	if (*end) {
		unsigned long cost = 0;
		const char *q = end;
		for (; *q >= '0' && *q <= '9' && cost <= 1000; q++)
			cost = cost * 10 + (unsigned long)(*q - '0');
		while (*q == ' ' || *q == '\t')
			q++;
		if (q == end || *q != '\0') {
			*why = "address space cost is not a number";
			return false;
		}
		if (cost < 1 || cost > 100) {
			*why = "address space cost outside 1..100";
			return false;
		}
		out->cost = (uint32_t)cost;
	}
	return true;
}

int mm_addrspace_match(const char *pattern, const char *domain)
{
	if (pattern[0] == '*' && pattern[1] == '\0')
		return 0;
	if (pattern[0] == '*' && pattern[1] == '.') {
		const char *suffix = pattern + 1; /* ".mil" */
		size_t sl = strlen(suffix), dl = strlen(domain);
		if (dl <= sl || strcmp(domain + dl - sl, suffix) != 0)
			return -1;
		return (int)(2 * count_labels(pattern + 2));
	}
	if (strcmp(pattern, domain) != 0)
		return -1;
	return (int)(2 * count_labels(pattern) + 1);
}
