#include "relay.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

bool mm_cidr_parse(const char *s, struct mm_cidr *out)
{
	char addr[64];
	const char *slash = strchr(s, '/');
	size_t n = slash ? (size_t)(slash - s) : strlen(s);
	if (n >= sizeof(addr))
		return false;
	memcpy(addr, s, n);
	addr[n] = '\0';
	*out = (struct mm_cidr){0};
	if (inet_pton(AF_INET, addr, out->addr) == 1) {
		out->family = AF_INET;
		out->bits = 32;
	} else if (inet_pton(AF_INET6, addr, out->addr) == 1) {
		out->family = AF_INET6;
		out->bits = 128;
	} else {
		return false;
	}
	if (slash) {
		char *end;
		unsigned long b = strtoul(slash + 1, &end, 10);
		if (*end != '\0' || slash[1] == '\0' || b > out->bits)
			return false;
		out->bits = (unsigned)b;
	}
	return true;
}

bool mm_cidr_match(const struct mm_cidr *c, int family, const unsigned char *a)
{
	/* an IPv4 client on a dual-stack listener comes as ::ffff:a.b.c.d */
	static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	if (family == AF_INET6 && c->family == AF_INET && memcmp(a, mapped, 12) == 0) {
		family = AF_INET;
		a += 12;
	}
	if (family != c->family)
		return false;
	unsigned full = c->bits / 8, rest = c->bits % 8;
	if (memcmp(a, c->addr, full) != 0)
		return false;
	if (rest == 0)
		return true;
	unsigned char mask = (unsigned char)(0xff << (8 - rest));
	return (a[full] & mask) == (c->addr[full] & mask);
}

static bool listed(const struct mm_cidr *l, size_t n, const struct mm_relay_client *c)
{
	for (size_t i = 0; i < n; i++)
		if (mm_cidr_match(&l[i], c->family, c->addr))
			return true;
	return false;
}

enum mm_relay_verdict mm_relay_decide(const struct mm_relay_policy *p,
                                      const struct mm_relay_client *c)
{
	if (c->authenticated || c->org_cert)
		return MM_RELAY_OK;
	/* an organization server's address is known to need its certificate
	 * with --tls, whatever the allow-list says */
	if (listed(p->org, p->norg, c))
		return p->org_tls ? MM_RELAY_NEED_CERT : MM_RELAY_OK;
	return listed(p->allow, p->nallow, c) ? MM_RELAY_OK : MM_RELAY_DENIED;
}
