/* Address spaces of SMTP connectors (DESIGN §2): "type:pattern [cost]".
 *
 * Patterns are case-insensitive: "*" matches every domain, "*.mil" any
 * domain under mil (not "mil" itself), "example.com" exactly that domain.
 * More labels matched is more specific; an exact match beats a wildcard of
 * the same number of labels. Routing never falls back to a less specific
 * space (DESIGN §4.4), so specificity is an ordering, not a preference. */
#ifndef MM_ADDRSPACE_H
#define MM_ADDRSPACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MM_ADDRSPACE_MAX 300 /* longest "type:pattern cost" accepted */
#define MM_DOMAIN_MAX    255 /* RFC 1035 */

struct mm_addrspace {
	char type[32];                   /* lower case, e.g. "smtp" */
	char pattern[MM_DOMAIN_MAX + 1]; /* lower case */
	uint32_t cost;                   /* 0: none given, use the connector's */
};

/* Parse "type:pattern [cost]". On failure returns false and points *why at a
 * static phrase naming the problem. */
bool mm_addrspace_parse(const char *text, struct mm_addrspace *out, const char **why);

/* Is domain a well-formed domain name (labels of letters, digits, hyphens)? */
bool mm_domain_valid(const char *domain, size_t len);

/* Specificity of pattern against domain (both lower case): -1 when it does
 * not match, otherwise 2 * labels matched, plus 1 for an exact match. */
int mm_addrspace_match(const char *pattern, const char *domain);

#endif
