/* Who may relay through a virtual server (DESIGN §6): mail for a domain
 * outside the organization is accepted only from a client that
 * authenticated (AUTH PLAIN/LOGIN under TLS), one that presented an
 * organization certificate, one whose address is on the virtual server's
 * mmRelayAllow list, or another server of the organization.
 *
 * Another server is known by its certificate when the node runs with
 * --tls: then traffic between organization servers is TLS with the
 * organization's certificates, and a client that only has an organization
 * address is told to start TLS (530 5.7.0) rather than refused as a
 * stranger -- its mail is not bounced, it is sent again properly. Without
 * --tls (a lab, the tests) an organization server is known by address. */
#ifndef MM_RELAY_H
#define MM_RELAY_H

#include <stdbool.h>
#include <stddef.h>

struct mm_cidr {
	int family; /* AF_INET or AF_INET6 */
	unsigned char addr[16];
	unsigned bits;
};

/* "192.0.2.0/24", "2001:db8::/32", or one address. */
bool mm_cidr_parse(const char *s, struct mm_cidr *out);
/* addr: 4 bytes for AF_INET, 16 for AF_INET6. */
bool mm_cidr_match(const struct mm_cidr *c, int family, const unsigned char *addr);

struct mm_relay_policy {
	const struct mm_cidr *allow; /* the virtual server's mmRelayAllow */
	size_t nallow;
	const struct mm_cidr *org; /* the organization's servers */
	size_t norg;
	bool org_tls; /* --tls: organization servers show their certificate */
};

struct mm_relay_client {
	int family;
	unsigned char addr[16];
	bool authenticated; /* AUTH PLAIN or LOGIN */
	bool org_cert;      /* a TLS client certificate from the organization's CA */
};

enum mm_relay_verdict {
	MM_RELAY_OK,
	MM_RELAY_DENIED,    /* 550 5.7.1 */
	MM_RELAY_NEED_CERT, /* 530 5.7.0: an organization address without its certificate */
};

enum mm_relay_verdict mm_relay_decide(const struct mm_relay_policy *p,
                                      const struct mm_relay_client *c);

#endif
