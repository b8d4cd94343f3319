#include "dns.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <ares.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"

#define MAX_FDS 16
#define MAX_MX  16

struct mm_dns {
	struct event_base *base;
	ares_channel ch;
	struct event *timer;
	struct {
		int fd;
		struct event *ev;
	} fds[MAX_FDS];
	bool destroying;
};

struct lookup {
	struct mm_dns *d;
	mm_dns_cb cb;
	void *arg;
	uint32_t tag;
	char domain[256];
	int nmx, pending;
	struct {
		unsigned short prio;
		char host[256];
		int naddr;
		char addr[16][64]; /* IPv4 first, then IPv6 */
		int status, status6;
		char addr6[8][64];
		int naddr6;
	} mx[MAX_MX];
};

static void arm_timer(struct mm_dns *d)
{
	struct timeval tv, *t = ares_timeout(d->ch, NULL, &tv);
	if (t)
		evtimer_add(d->timer, t);
	else
		evtimer_del(d->timer);
}

static void on_fd(evutil_socket_t fd, short what, void *arg)
{
	struct mm_dns *d = arg;
	ares_process_fd(d->ch, what & EV_READ ? fd : ARES_SOCKET_BAD,
	                what & EV_WRITE ? fd : ARES_SOCKET_BAD);
	arm_timer(d);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct mm_dns *d = arg;
	ares_process_fd(d->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	arm_timer(d);
}

/* c-ares says which sockets it wants watched */
static void sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
	struct mm_dns *d = data;
	int slot = -1, free_slot = -1;
	for (int i = 0; i < MAX_FDS; i++) {
		if (d->fds[i].ev && d->fds[i].fd == fd)
			slot = i;
		else if (!d->fds[i].ev && free_slot < 0)
			free_slot = i;
	}
	if (slot >= 0) {
		event_free(d->fds[slot].ev);
		d->fds[slot].ev = NULL;
	}
	if (!readable && !writable)
		return;
	if (slot < 0)
		slot = free_slot;
	if (slot < 0)
		return; /* more than MAX_FDS servers: c-ares times those out */
	short what = (short)(EV_PERSIST | (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0));
	d->fds[slot].fd = fd;
	d->fds[slot].ev = event_new(d->base, fd, what, on_fd, d);
	event_add(d->fds[slot].ev, NULL);
}

struct mm_dns *mm_dns_new(struct event_base *base, const char *server, const char **err)
{
	static int lib_ready;
	if (!lib_ready) {
		if (ares_library_init(ARES_LIB_INIT_ALL) != ARES_SUCCESS) {
			*err = "c-ares cannot start";
			return NULL;
		}
		lib_ready = 1;
	}
	struct mm_dns *d = mm_xcalloc(1, sizeof(*d));
	d->base = base;
	struct ares_options o = {0};
	o.sock_state_cb = sock_state;
	o.sock_state_cb_data = d;
	o.flags = ARES_FLAG_NOSEARCH; /* a recipient domain is never relative */
	o.timeout = 2000;
	o.tries = 2;
	o.lookups = (char *)"b";
	int mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES |
	           ARES_OPT_LOOKUPS;
	int rc = ares_init_options(&d->ch, &o, mask);
	if (rc != ARES_SUCCESS) {
		*err = ares_strerror(rc);
		free(d);
		return NULL;
	}
	if (server && (rc = ares_set_servers_ports_csv(d->ch, server)) != ARES_SUCCESS) {
		*err = ares_strerror(rc);
		ares_destroy(d->ch);
		free(d);
		return NULL;
	}
	d->timer = evtimer_new(base, on_timer, d);
	return d;
}

void mm_dns_free(struct mm_dns *d)
{
	if (d == NULL)
		return;
	d->destroying = true;
	ares_destroy(d->ch); /* calls back with ARES_EDESTRUCTION */
	for (int i = 0; i < MAX_FDS; i++)
		if (d->fds[i].ev)
			event_free(d->fds[i].ev);
	event_free(d->timer);
	free(d);
}

static void finish(struct lookup *l)
{
	if (l->d->destroying) {
		free(l);
		return;
	}
	const char *addrs[MAX_MX * 24];
	size_t n = 0;
	bool temp = false;
	/* best preference first; equal preferences keep the server's order */
	for (unsigned prio = 0; prio <= 65535 && n < MAX_MX * 8; prio++) {
		bool any = false;
		for (int i = 0; i < l->nmx; i++) {
			if (l->mx[i].prio != prio)
				continue;
			any = true;
			bool t4 = l->mx[i].status != ARES_SUCCESS &&
			          l->mx[i].status != ARES_ENOTFOUND &&
			          l->mx[i].status != ARES_ENODATA;
			bool t6 = l->mx[i].status6 != ARES_SUCCESS &&
			          l->mx[i].status6 != ARES_ENOTFOUND &&
			          l->mx[i].status6 != ARES_ENODATA;
			if (t4 && t6)
				temp = true;
			for (int k = 0; k < l->mx[i].naddr; k++)
				addrs[n++] = l->mx[i].addr[k];
			for (int k = 0; k < l->mx[i].naddr6; k++)
				addrs[n++] = l->mx[i].addr6[k];
		}
		if (!any && prio > 0) {
			/* skip quickly to the next preference in use */
			unsigned next = 65536;
			for (int i = 0; i < l->nmx; i++)
				if (l->mx[i].prio > prio && l->mx[i].prio < next)
					next = l->mx[i].prio;
			if (next == 65536)
				break;
			prio = next - 1;
		}
	}
	char why[400];
	if (n > 0)
		l->cb(l->arg, l->tag, MM_MX_OK, addrs, n, NULL);
	else if (temp) {
		snprintf(why, sizeof(why), "4.4.3 no address for the mail exchangers of %s yet",
		         l->domain);
		l->cb(l->arg, l->tag, MM_MX_TEMP, NULL, 0, why);
	} else {
		snprintf(why, sizeof(why), "5.4.4 the mail exchangers of %s have no address",
		         l->domain);
		l->cb(l->arg, l->tag, MM_MX_NOHOST, NULL, 0, why);
	}
	free(l);
}

struct a_req {
	struct lookup *l;
	int i;
	bool v6;
};

static void on_addr(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	(void)timeouts;
	struct a_req *r = arg;
	struct lookup *l = r->l;
	int i = r->i;
	bool v6 = r->v6;
	free(r);
	if (v6) {
		l->mx[i].status6 = status;
		struct ares_addr6ttl ttls[8];
		int n = 8;
		if (status == ARES_SUCCESS &&
		    ares_parse_aaaa_reply(abuf, alen, NULL, ttls, &n) == ARES_SUCCESS) {
			for (int k = 0; k < n && k < 8; k++) {
				char ip[INET6_ADDRSTRLEN];
				inet_ntop(AF_INET6, &ttls[k].ip6addr, ip, sizeof(ip));
				snprintf(l->mx[i].addr6[l->mx[i].naddr6++], 64, "[%s]:25", ip);
			}
		}
		if (--l->pending == 0)
			finish(l);
		return;
	}
	l->mx[i].status = status;
	if (status == ARES_SUCCESS) {
		struct ares_addrttl ttls[8];
		int n = 8;
		if (ares_parse_a_reply(abuf, alen, NULL, ttls, &n) == ARES_SUCCESS) {
			for (int k = 0; k < n && k < 8; k++) {
				char ip[INET_ADDRSTRLEN];
				inet_ntop(AF_INET, &ttls[k].ipaddr, ip, sizeof(ip));
				snprintf(l->mx[i].addr[l->mx[i].naddr++], 64, "%s:25", ip);
			}
		}
	}
	if (--l->pending == 0)
		finish(l);
}

static void resolve_hosts(struct lookup *l)
{
	/* A and AAAA of every exchanger; IPv4 addresses are tried first.
	 * c-ares may answer inside ares_query (a .onion name, a malformed
	 * one): the extra count keeps l alive until every query is asked, and
	 * the loop reads nothing of l that an answer could have freed. */
	int nmx = l->nmx;
	ares_channel ch = l->d->ch;
	l->pending = 2 * nmx + 1;
	for (int i = 0; i < nmx; i++) {
		struct a_req *r = mm_xmalloc(sizeof(*r));
		*r = (struct a_req){l, i, false};
		ares_query(ch, l->mx[i].host, ns_c_in, ns_t_a, on_addr, r);
		r = mm_xmalloc(sizeof(*r));
		*r = (struct a_req){l, i, true};
		ares_query(ch, l->mx[i].host, ns_c_in, ns_t_aaaa, on_addr, r);
	}
	if (--l->pending == 0)
		finish(l);
}

static void on_mx(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	(void)timeouts;
	struct lookup *l = arg;
	char why[400];
	if (status == ARES_EDESTRUCTION || l->d->destroying) {
		free(l);
		return;
	}
	if (status == ARES_ENODATA) {
		/* RFC 5321 §5.1: no MX, the domain is its own mail exchanger */
		l->nmx = 1;
		l->mx[0].prio = 0;
		snprintf(l->mx[0].host, sizeof(l->mx[0].host), "%s", l->domain);
		resolve_hosts(l);
		return;
	}
	if (status == ARES_ENOTFOUND) {
		snprintf(why, sizeof(why), "5.4.4 %s: no such domain", l->domain);
		l->cb(l->arg, l->tag, MM_MX_NXDOMAIN, NULL, 0, why);
		free(l);
		return;
	}
	struct ares_mx_reply *mx = NULL;
	if (status != ARES_SUCCESS || ares_parse_mx_reply(abuf, alen, &mx) != ARES_SUCCESS) {
		snprintf(why, sizeof(why), "4.4.3 MX lookup of %s failed: %s", l->domain,
		         ares_strerror(status));
		l->cb(l->arg, l->tag, MM_MX_TEMP, NULL, 0, why);
		if (mx)
			ares_free_data(mx);
		free(l);
		return;
	}
	for (struct ares_mx_reply *m = mx; m && l->nmx < MAX_MX; m = m->next) {
		if (m->host[0] == '\0') {
			/* RFC 7505: MX 0 "." says the domain accepts no mail */
			ares_free_data(mx);
			snprintf(why, sizeof(why), "5.1.10 %s accepts no mail (null MX)",
			         l->domain);
			l->cb(l->arg, l->tag, MM_MX_NULLMX, NULL, 0, why);
			free(l);
			return;
		}
		l->mx[l->nmx].prio = m->priority;
		snprintf(l->mx[l->nmx].host, sizeof(l->mx[l->nmx].host), "%s", m->host);
		l->nmx++;
	}
	ares_free_data(mx);
	resolve_hosts(l);
}

void mm_dns_mx(struct mm_dns *d, const char *domain, mm_dns_cb cb, void *arg, uint32_t tag)
{
	struct lookup *l = mm_xcalloc(1, sizeof(*l));
	l->d = d;
	l->cb = cb;
	l->arg = arg;
	l->tag = tag;
	snprintf(l->domain, sizeof(l->domain), "%s", domain);
	ares_query(d->ch, domain, ns_c_in, ns_t_mx, on_mx, l);
	arm_timer(d);
}
