#include "net691.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "alloc.h"
#include "logfmt.h"

struct mm_net_conn {
	struct mm_net *n;
	uint32_t num;
	struct bufferevent *bev; /* owns the socket and the SSL */
	bool outgoing, open, closing;
	bool pending;           /* accepted, TLS not done: counts against MM_NET_PENDING_MAX */
	bool throttled;         /* not read while our output to it is over MM_NET_OUT_HIGH */
	bool overflow;          /* output over MM_NET_OUT_MAX: its end is on the way */
	enum mm_cert_kind kind; /* dialled: what the peer must be */
	char expect[MM_CERT_NAME_MAX + 1];
	char address[80];
	struct event *timer; /* the handshake, then the flush of a close */
	char why[256];
	struct mm_net_conn *next_failed;
};

static void logf_(struct mm_net *n, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void logf_(struct mm_net *n, const char *fmt, ...)
{
	if (n->ops.log == NULL)
		return;
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	n->ops.log(n->ops.ctx, line);
}

static void conn_free(struct mm_net_conn *c)
{
	if (c->pending)
		c->n->npending--;
	mm_u64map_del(&c->n->conns, c->num);
	if (c->bev)
		bufferevent_free(c->bev); /* BEV_OPT_CLOSE_ON_FREE: the socket and the SSL */
	if (c->timer)
		event_free(c->timer);
	free(c);
}

/* The end of a connection the machine knows: it hears why. */
static void conn_lost(struct mm_net_conn *c, const char *why)
{
	struct mm_net *n = c->n;
	uint32_t num = c->num;
	bool told = (c->open || c->outgoing) && !c->closing;
	char reason[256];
	snprintf(reason, sizeof(reason), "%s", why);
	conn_free(c);
	if (told)
		n->ops.closed(n->ops.ctx, num, reason);
}

static const char *ssl_reason(struct bufferevent *bev, char *buf, size_t n)
{
	unsigned long e = bufferevent_get_openssl_error(bev);
	if (e == 0)
		return NULL;
	ERR_error_string_n(e, buf, n);
	return buf;
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct mm_net_conn *c = arg;
	if (c->closing) {
		conn_free(c); /* the peer never read what was left */
		return;
	}
	if (c->outgoing)
		logf_(c->n, "691: connection to %s: the TLS handshake did not finish", c->address);
	conn_lost(c, "the TLS handshake did not finish in time");
}

static void arm(struct mm_net_conn *c, uint32_t ms)
{
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
	evtimer_add(c->timer, &tv);
}

static void read_cb(struct bufferevent *bev, void *arg)
{
	struct mm_net_conn *c = arg;
	struct mm_net *n = c->n;
	struct evbuffer *in = bufferevent_get_input(bev);
	uint32_t num = c->num;
	uint8_t chunk[16384];
	size_t len;
	while (!c->closing && !c->throttled && !c->overflow &&
	       (len = evbuffer_get_length(in)) > 0) {
		if (len > sizeof(chunk))
			len = sizeof(chunk);
		evbuffer_remove(in, chunk, len);
		n->ops.data(n->ops.ctx, num, chunk, len);
		/* the machine may have closed it (and so freed it) */
		if (mm_u64map_get(&n->conns, num) != c)
			return;
	}
}

static void write_cb(struct bufferevent *bev, void *arg)
{
	struct mm_net_conn *c = arg;
	size_t out = evbuffer_get_length(bufferevent_get_output(bev));
	if (c->closing && out == 0) {
		conn_free(c);
		return;
	}
	if (c->throttled && out <= MM_NET_OUT_LOW) {
		/* it reads again: what it sent meanwhile is ours to take */
		c->throttled = false;
		bufferevent_enable(bev, EV_READ);
		read_cb(bev, c);
	}
}

/* TLS is up (or the TCP connection, when insecure): who is it? */
static void established(struct mm_net_conn *c)
{
	struct mm_net *n = c->n;
	evtimer_del(c->timer);
	if (c->pending) {
		c->pending = false;
		n->npending--;
	}
	struct mm_net_peer peer, *pp = NULL;
	SSL *ssl = n->insecure ? NULL : bufferevent_openssl_get_ssl(c->bev);
	if (ssl) {
		char err[256];
		if (c->outgoing && !mm_tls_expect_peer(ssl, c->kind, c->expect, err, sizeof(err))) {
			logf_(n, "691: %s is not %s %s: %s", c->address, mm_cert_kind_name(c->kind),
			      c->expect, err);
			conn_lost(c, err);
			return;
		}
		if (!mm_tls_peer_identity(ssl, peer.name, sizeof(peer.name), &peer.kind)) {
			logf_(n,
			      "691: a peer from %s without an organization certificate naming it",
			      c->address);
			conn_lost(c, "no organization certificate naming the peer");
			return;
		}
		pp = &peer;
	}
	c->open = true;
	n->ops.opened(n->ops.ctx, c->num, pp);
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct mm_net_conn *c = arg;
	if (what & BEV_EVENT_CONNECTED) {
		established(c);
		return;
	}
	if (c->closing) {
		conn_free(c);
		return;
	}
	char buf[256], why[300];
	const char *tls = ssl_reason(bev, buf, sizeof(buf));
	if (what & BEV_EVENT_EOF)
		snprintf(why, sizeof(why), "closed by the peer");
	else if (tls)
		snprintf(why, sizeof(why), "TLS: %s", tls);
	else
		snprintf(why, sizeof(why), "%s",
		         evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
	if (!c->open && tls) {
		char q[300];
		logf_(c->n, "691: handshake with %s failed: %s", c->address,
		      mm_logfmt_quote(q, sizeof(q), tls));
	}
	conn_lost(c, why);
}

static struct mm_net_conn *conn_new(struct mm_net *n, uint32_t num, bool outgoing)
{
	struct mm_net_conn *c = mm_xcalloc(1, sizeof(*c));
	*c = (struct mm_net_conn){.n = n, .num = num, .outgoing = outgoing};
	c->timer = evtimer_new(n->base, timer_cb, c);
	mm_u64map_put(&n->conns, num, c);
	return c;
}

static void setup_bev(struct mm_net_conn *c)
{
	bufferevent_setcb(c->bev, read_cb, write_cb, event_cb, c);
	/* write_cb runs when the output drains to MM_NET_OUT_LOW (and to 0) */
	bufferevent_setwatermark(c->bev, EV_WRITE, MM_NET_OUT_LOW, 0);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	arm(c, c->n->handshake_ms);
}

/* Accepted connections from ip still in their handshake (at most
 * MM_NET_PENDING_MAX to look through). */
static uint32_t pending_from(const struct mm_net *n, const char *ip)
{
	uint32_t k = 0;
	for (size_t i = 0; i < n->conns.cap; i++) {
		const struct mm_net_conn *c = n->conns.slots[i].value;
		k += c && c->pending && strcmp(c->address, ip) == 0;
	}
	return k;
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                      int socklen, void *arg)
{
	(void)l, (void)socklen;
	struct mm_net *n = arg;
	char ip[64] = "?";
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)sa)->sin_addr, ip, sizeof(ip));
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)sa)->sin6_addr, ip, sizeof(ip));
	if (!n->insecure &&
	    (n->npending >= MM_NET_PENDING_MAX || pending_from(n, ip) >= MM_NET_PENDING_PER_IP)) {
		/* anyone may open a TCP connection: one that has not finished
		 * its TLS handshake costs a descriptor for handshake_ms, so
		 * their number is bounded (a flood must not starve our SMTP
		 * sessions and probes of descriptors) */
		close(fd);
		if ((n->refused++ & 1023) == 0)
			logf_(n,
			      "691: too many TLS handshakes in progress (%u, or %u from %s): "
			      "connection refused (%llu so far)",
			      n->npending, MM_NET_PENDING_PER_IP, ip,
			      (unsigned long long)n->refused);
		return;
	}
	uint32_t num;
	do
		num = n->next_in++ & ~MM_NET_OUT;
	while (num == 0 || mm_u64map_get(&n->conns, num) != NULL);
	struct mm_net_conn *c = conn_new(n, num, false);
	snprintf(c->address, sizeof(c->address), "%s", ip);
	if (!n->insecure) {
		c->pending = true;
		n->npending++;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (n->insecure) {
		c->bev = bufferevent_socket_new(n->base, fd, BEV_OPT_CLOSE_ON_FREE);
		setup_bev(c);
		established(c);
		return;
	}
	c->bev = bufferevent_openssl_socket_new(n->base, fd, SSL_new(n->tls.accept),
	                                        BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL) {
		close(fd);
		conn_free(c);
		return;
	}
	setup_bev(c);
}

bool mm_net_init(struct mm_net *n, struct event_base *base, const struct mm_net_ops *ops,
                 const char *tls_dir, const char *self, bool insecure, char *err, size_t errlen)
{
	*n = (struct mm_net){.base = base, .ops = *ops, .handshake_ms = 10000, .next_in = 1};
	if (tls_dir == NULL && !insecure) {
		snprintf(err, errlen, "routing traffic needs --tls (or --set insecure=1 in tests)");
		return false;
	}
	n->insecure = tls_dir == NULL;
	if (tls_dir && !mm_tls_routing_init(&n->tls, tls_dir, self, err, errlen)) {
		mm_tls_routing_free(&n->tls);
		return false;
	}
	return true;
}

static void later_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct mm_net *n = arg;
	struct mm_net_conn *c;
	while ((c = n->failed) != NULL) {
		n->failed = c->next_failed;
		char why[256];
		snprintf(why, sizeof(why), "%s", c->why);
		conn_lost(c, why);
	}
}

void mm_net_bind_source(struct mm_net *n, const char *ip)
{
	n->src_len = 0;
	if (ip == NULL)
		return;
	/* evutil_parse_sockaddr_port refuses port 0: "ip:0" and "[ip6]:0"
	 * are parsed as "ip" and "[ip6]", which mean port 0 to it (a bare
	 * IPv6 address such as ::1:0 is left alone) */
	char buf[128];
	snprintf(buf, sizeof(buf), "%s", ip);
	size_t l = strlen(buf);
	bool v4 = strchr(buf, ':') == strrchr(buf, ':');
	bool v6 = buf[0] == '[' && l > 3 && buf[l - 3] == ']';
	if (l > 2 && strcmp(buf + l - 2, ":0") == 0 && (v4 || v6))
		buf[l - 2] = '\0';
	int len = sizeof(n->src);
	if (evutil_parse_sockaddr_port(buf, (struct sockaddr *)&n->src, &len) == 0)
		n->src_len = len;
	else
		logf_(n, "691: source address %s does not parse: dialling from any", ip);
}

static void fail_later(struct mm_net_conn *c, const char *why)
{
	struct mm_net *n = c->n;
	snprintf(c->why, sizeof(c->why), "%s", why);
	c->next_failed = n->failed;
	n->failed = c;
	if (n->later == NULL)
		n->later = event_new(n->base, -1, 0, later_cb, n);
	event_active(n->later, 0, 0);
}

void mm_net_dial(struct mm_net *n, uint32_t num, const char *address, enum mm_cert_kind kind,
                 const char *expect)
{
	struct mm_net_conn *c = conn_new(n, num, true);
	c->kind = kind;
	snprintf(c->expect, sizeof(c->expect), "%s", expect ? expect : "");
	snprintf(c->address, sizeof(c->address), "%s", address);
	struct sockaddr_storage ss;
	int len = sizeof(ss);
	if (evutil_parse_sockaddr_port(address, (struct sockaddr *)&ss, &len) != 0) {
		fail_later(c, "the routing address is not ip:port");
		return;
	}
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		fail_later(c, strerror(errno));
		return;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (n->src_len > 0 && n->src.ss_family == ss.ss_family &&
	    bind(fd, (struct sockaddr *)&n->src, (socklen_t)n->src_len) != 0)
		logf_(n, "691: dialling %s from our routing address: bind: %s; from any", address,
		      strerror(errno));
	if (n->insecure)
		c->bev = bufferevent_socket_new(n->base, fd, BEV_OPT_CLOSE_ON_FREE);
	else
		c->bev = bufferevent_openssl_socket_new(n->base, fd, SSL_new(n->tls.dial),
		                                        BUFFEREVENT_SSL_CONNECTING,
		                                        BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL) {
		close(fd);
		fail_later(c, "cannot make a connection");
		return;
	}
	setup_bev(c);
	if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&ss, len) != 0) {
		char why[200];
		snprintf(why, sizeof(why), "connect to %s: %s", address,
		         evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
		bufferevent_free(c->bev);
		c->bev = NULL;
		fail_later(c, why);
	}
}

bool mm_net_listen(struct mm_net *n, const char *address, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	int len = sizeof(ss);
	if (evutil_parse_sockaddr_port(address, (struct sockaddr *)&ss, &len) != 0) {
		snprintf(err, errlen, "routing address %s is not ip:port", address);
		return false;
	}
	n->listener = evconnlistener_new_bind(n->base, accept_cb, n,
	                                      LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 128,
	                                      (struct sockaddr *)&ss, len);
	if (n->listener == NULL) {
		snprintf(err, errlen, "cannot listen on %s: %s", address, strerror(errno));
		return false;
	}
	return true;
}

void mm_net_send(struct mm_net *n, uint32_t conn, const uint8_t *p, size_t len)
{
	struct mm_net_conn *c = mm_u64map_get(&n->conns, conn);
	if (c == NULL || c->bev == NULL || c->closing || c->overflow)
		return;
	bufferevent_write(c->bev, p, len);
	size_t out = evbuffer_get_length(bufferevent_get_output(c->bev));
	if (out > MM_NET_OUT_MAX) {
		/* it does not read what we send: its end comes on the next turn
		 * (we are inside the machine's call) */
		c->overflow = true;
		bufferevent_disable(c->bev, EV_READ | EV_WRITE);
		logf_(n, "691: connection %u from %s: %zu bytes it does not read; closing", c->num,
		      c->address, out);
		fail_later(c, "the peer does not read what it is sent");
	} else if (out > MM_NET_OUT_HIGH && !c->throttled) {
		/* read nothing more from it (no more queries) until it reads */
		c->throttled = true;
		bufferevent_disable(c->bev, EV_READ);
	}
}

void mm_net_close(struct mm_net *n, uint32_t conn)
{
	struct mm_net_conn *c = mm_u64map_get(&n->conns, conn);
	if (c == NULL || c->closing)
		return;
	c->closing = true;
	for (struct mm_net_conn **p = &n->failed; *p; p = &(*p)->next_failed)
		if (*p == c) { /* a dial that failed: nothing to flush */
			*p = c->next_failed;
			conn_free(c);
			return;
		}
	if (c->bev == NULL || evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
		conn_free(c);
		return;
	}
	bufferevent_disable(c->bev, EV_READ);
	arm(c, n->handshake_ms); /* a peer that never reads does not keep it */
}

void mm_net_free(struct mm_net *n)
{
	if (n->listener)
		evconnlistener_free(n->listener);
	while (n->conns.used > 0)
		for (size_t i = 0; i < n->conns.cap; i++)
			if (n->conns.slots[i].value) {
				conn_free(n->conns.slots[i].value);
				break;
			}
	mm_u64map_free(&n->conns);
	if (n->later)
		event_free(n->later);
	mm_tls_routing_free(&n->tls);
	*n = (struct mm_net){0};
}
