/* MX resolution for delivery to a domain (DESIGN §6): c-ares driven by the
 * node's libevent loop. The answer is the list of addresses to try, best
 * MX first (RFC 5321 §5.1: no MX records means the domain itself, the
 * "implicit MX"). A and AAAA (IPv4 tried first). --dns IP:PORT points the resolver at
 * any server, so tests use a local dnsmasq. */
#ifndef MM_DNS_H
#define MM_DNS_H

#include <event2/event.h>
#include <stddef.h>
#include <stdint.h>

#include "qmgr.h" /* enum mm_mx_status */

struct mm_dns;

/* server: "IP:PORT", or NULL for the system's resolv.conf. NULL on error. */
struct mm_dns *mm_dns_new(struct event_base *base, const char *server, const char **err);
/* Pending callbacks are dropped without being called. */
void mm_dns_free(struct mm_dns *d);

/* addrs: "ip:25" strings, valid during the call only. */
typedef void (*mm_dns_cb)(void *arg, uint32_t tag, enum mm_mx_status st, const char *const *addrs,
                          size_t n, const char *why);
void mm_dns_mx(struct mm_dns *d, const char *domain, mm_dns_cb cb, void *arg, uint32_t tag);

#endif
