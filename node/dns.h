/* MX resolution for delivery to a domain (DESIGN §6): c-ares driven by the
 * node's libevent loop. The answer is the list of addresses to try, best
 * MX first (RFC 5321 §5.1: no MX records means the domain itself, the
 * "implicit MX"). A and AAAA (IPv4 tried first). --dns IP:PORT points the resolver at
 * any server, so tests use a local dnsmasq. */
#ifndef MM_DNS_H
#define MM_DNS_H

#include <event2/event.h>
#include <stddef.h>

enum mm_dns_status {
	MM_DNS_OK,
	MM_DNS_NXDOMAIN, /* the domain does not exist: 5.4.4 */
	MM_DNS_NULLMX,   /* RFC 7505 null MX: the domain takes no mail, 5.1.10 */
	MM_DNS_NOHOST,   /* MX hosts without any address: 5.4.4 */
	MM_DNS_TEMP,     /* SERVFAIL, timeout, refused: 4.4.3, try later */
};

struct mm_dns;

/* server: "IP:PORT", or NULL for the system's resolv.conf. NULL on error. */
struct mm_dns *mm_dns_new(struct event_base *base, const char *server, const char **err);
/* Pending callbacks are dropped without being called. */
void mm_dns_free(struct mm_dns *d);

/* addrs: "ip:25" strings, valid during the call only. */
typedef void (*mm_dns_cb)(void *arg, enum mm_dns_status st, const char *const *addrs, size_t n,
                          const char *why);
void mm_dns_mx(struct mm_dns *d, const char *domain, mm_dns_cb cb, void *arg);

#endif
