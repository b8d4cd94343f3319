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
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "logfmt.h"

struct mm_net_conn {
	struct mm_net *n;
	uint32_t num;
	struct bufferevent *bev; /* owns the socket and the SSL */
	bool outgoing, open, closing;
	bool pending;           /* accepted, TLS not done: holds a handshake slot (admit.h) */
	bool trusted;           /* accepted from a directory routing address */
	bool counted;           /* accepted, open, from outside the directory: open_outside */
	bool throttled;         /* not read while our output to it is over MM_NET_OUT_HIGH */
	bool overflow;          /* output over MM_NET_OUT_MAX: its end is on the way */
	enum mm_cert_kind kind; /* dialled: what the peer must be */
	char expect[MM_CERT_NAME_MAX + 1];
	char address[80];
	struct mm_ip key;    /* accepted: its address as the bounds count it */
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

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* xorshift64*: which handshake is dropped must not be guessable from
 * outside (an attacker who knew would keep his own), so it is seeded
 * from RAND_bytes; nothing here needs more than that */
static uint64_t rnd64(struct mm_net *n)
{
	uint64_t x = n->rng;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	n->rng = x;
	return x * 0x2545F4914F6CDD1Dull;
}

static void conn_free(struct mm_net_conn *c)
{
	if (c->pending)
		mm_admit_del(&c->n->admit, c->num);
	if (c->counted)
		c->n->open_outside--;
	mm_u64map_del(&c->n->conns, c->num);
	if (c->bev)
		bufferevent_free(c->bev); /* BEV_OPT_CLOSE_ON_FREE: the socket and the SSL */
	if (c->timer)
		event_free(c->timer);
	free(c);
}

/* "master LAB-RGM at 192.0.2.1:691": who a dial was for. */
static const char *dialled(const struct mm_net_conn *c, char *out, size_t n)
{
	snprintf(out, n, "%s %s at %s", mm_cert_kind_name(c->kind), c->expect, c->address);
	return out;
}

/* A dial of who failed for why: true when it failed so before and is not
 * to be said again (repeat.h); the count is said once a minute, and the
 * end of a streak of another reason. */
static bool said_before(struct mm_net *n, const char *who, const char *why)
{
	char q[MM_REPEAT_WHY], line[512];
	mm_logfmt_quote(q, sizeof(q), why);
	enum mm_repeat_say say =
	    mm_repeat_failed(&n->fails, who, q, mono_ms(), wall_ms(), line, sizeof(line));
	if (line[0])
		logf_(n, "691: %s", line);
	return say != MM_REPEAT_NEW;
}

/* The end of a connection the machine knows: it hears why. */
static void conn_lost(struct mm_net_conn *c, const char *why)
{
	struct mm_net *n = c->n;
	uint32_t num = c->num;
	bool told = (c->open || c->outgoing) && !c->closing;
	bool dial_failed = told && c->outgoing && !c->open;
	char reason[256], who[MM_REPEAT_KEY];
	snprintf(reason, sizeof(reason), "%s", why);
	if (dial_failed)
		dialled(c, who, sizeof(who));
	conn_free(c);
	if (!told)
		return;
	n->quiet = dial_failed && said_before(n, who, reason);
	n->ops.closed(n->ops.ctx, num, reason);
	n->quiet = false;
}

bool mm_net_quiet(const struct mm_net *n)
{
	return n->quiet;
}

static const char *errno_words(int err)
{
	switch (err) {
	case ECONNREFUSED: return "connection refused";
	case ECONNRESET: return "connection reset by the peer";
	case EPIPE: return "closed by the peer";
	case ETIMEDOUT: return "timed out";
	case EHOSTUNREACH: return "host unreachable";
	case ENETUNREACH: return "network unreachable";
	case EADDRNOTAVAIL: return "address not available";
	default: return strerror(err);
	}
}

/* Why a connection ended, in words. libevent hands OpenSSL's
 * SSL_ERROR_SYSCALL on as the bare number 5 (which prints as
 * "error:00000005:lib(0)::reason(5)"): then the socket's errno says it. */
static void failure_words(struct bufferevent *bev, short what, int err, bool open, char *out,
                          size_t n)
{
	unsigned long e = bufferevent_get_openssl_error(bev);
	const char *during = open ? "" : " during the TLS handshake";
	if (e != 0 && ERR_GET_LIB(e) != 0) {
		const char *r = ERR_reason_error_string(e);
		char buf[256];
		if (ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING)
			snprintf(out, n, "closed by the peer%s", during);
		else if (r)
			snprintf(out, n, "TLS: %s", r);
		else
			snprintf(out, n, "TLS: %s", (ERR_error_string_n(e, buf, sizeof(buf)), buf));
		return;
	}
	if (what & BEV_EVENT_TIMEOUT)
		snprintf(out, n, "timed out");
	else if ((what & BEV_EVENT_EOF) || err == 0)
		snprintf(out, n, "closed by the peer%s", during);
	else
		snprintf(out, n, "%s", errno_words(err));
}

/* At most this many failed handshakes of accepted peers said a minute
 * (each address and reason once, repeat.h); the rest are counted in the
 * pressure report: a flood from many addresses must not write the log
 * full. */
#define SAID_PER_MINUTE 20

static bool say_budget(struct mm_net *n)
{
	int64_t now = mono_ms();
	if (n->said_at == 0 || now - n->said_at >= MM_REPEAT_EVERY_MS) {
		n->said_at = now;
		n->said = 0;
	}
	return n->said++ < SAID_PER_MINUTE;
}

static void pressure_report(struct mm_net *n);

/* An accepted peer's handshake failed (the transport's own news: no
 * machine heard of the connection). */
static void accepted_failed(struct mm_net *n, const struct mm_net_conn *c, const char *why)
{
	char who[MM_REPEAT_KEY], q[MM_REPEAT_WHY], line[512];
	snprintf(who, sizeof(who), "handshakes from %s", c->address);
	mm_logfmt_quote(q, sizeof(q), why);
	enum mm_repeat_say say =
	    mm_repeat_failed(&n->fails, who, q, mono_ms(), wall_ms(), line, sizeof(line));
	if (say == MM_REPEAT_QUIET)
		return;
	if (!say_budget(n)) {
		n->pressure.failed++;
		pressure_report(n);
		return;
	}
	if (line[0])
		logf_(n, "691: %s", line);
	if (say == MM_REPEAT_NEW)
		logf_(n, "691: handshake with %s failed: %s", c->address, q);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct mm_net_conn *c = arg;
	if (c->closing) {
		conn_free(c); /* the peer never read what was left */
		return;
	}
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

/* An accepted connection outside the directory is open: within conn_max?
 * (checked at accept too, but handshakes finish together) */
static bool count_open(struct mm_net_conn *c)
{
	struct mm_net *n = c->n;
	if (c->outgoing || c->trusted)
		return true;
	if (n->open_outside >= n->conn_max) {
		n->pressure.refused_conn++;
		pressure_report(n);
		conn_free(c);
		return false;
	}
	c->counted = true;
	n->open_outside++;
	return true;
}

/* TLS is up (or the TCP connection, when insecure): who is it? */
static void established(struct mm_net_conn *c)
{
	struct mm_net *n = c->n;
	evtimer_del(c->timer);
	if (c->pending) {
		c->pending = false;
		mm_admit_del(&n->admit, c->num);
	}
	struct mm_net_peer peer, *pp = NULL;
	SSL *ssl = n->insecure ? NULL : bufferevent_openssl_get_ssl(c->bev);
	if (ssl) {
		char err[256];
		if (c->outgoing && !mm_tls_expect_peer(ssl, c->kind, c->expect, err, sizeof(err))) {
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
	if (!count_open(c))
		return;
	char who[MM_REPEAT_KEY], line[512];
	if (c->outgoing &&
	    mm_repeat_ok(&n->fails, dialled(c, who, sizeof(who)), line, sizeof(line)))
		logf_(n, "691: %s", line);
	c->open = true;
	n->ops.opened(n->ops.ctx, c->num, pp);
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct mm_net_conn *c = arg;
	int err = EVUTIL_SOCKET_ERROR(); /* before anything else can change it */
	if (what & BEV_EVENT_CONNECTED) {
		established(c);
		return;
	}
	if (c->closing) {
		conn_free(c);
		return;
	}
	char why[300];
	failure_words(bev, what, err, c->open, why, sizeof(why));
	if (!c->open && !c->outgoing)
		accepted_failed(c->n, c, why);
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

/* The report of what the listener refused and dropped: the first at once,
 * then at most one a minute, with the counts since the one before. */
static void pressure_report(struct mm_net *n)
{
	struct mm_net_pressure *p = &n->pressure;
	int64_t now = mono_ms();
	if ((p->evicted | p->refused_addr | p->refused_full | p->refused_conn | p->failed) == 0 ||
	    (n->pressure_at != 0 && now - n->pressure_at < MM_REPEAT_EVERY_MS))
		return;
	logf_(n,
	      "691: the listener is under pressure%s: %llu TLS handshakes dropped to make room "
	      "(the last from %s), %llu refused from an address with %u in progress, %llu "
	      "refused with every slot held by the directory's addresses, %llu connections "
	      "over the bounds (%u from outside the directory, %u from one address), %llu failed "
	      "handshakes not said one by one; the next report in a minute at most",
	      n->pressure_at ? " since the last report" : "", (unsigned long long)p->evicted,
	      p->busiest[0] ? p->busiest : "nowhere", (unsigned long long)p->refused_addr,
	      MM_ADMIT_PER_ADDRESS, (unsigned long long)p->refused_full,
	      (unsigned long long)p->refused_conn, n->conn_max, n->conn_per_address,
	      (unsigned long long)p->failed);
	*p = (struct mm_net_pressure){0};
	n->pressure_at = now;
}

/* Accepted connections from key, in their handshake or open. */
static uint32_t accepted_from(const struct mm_net *n, const struct mm_ip *key)
{
	uint32_t k = 0;
	for (size_t i = 0; i < n->conns.cap; i++) {
		const struct mm_net_conn *c = n->conns.slots[i].value;
		k += c && !c->outgoing && mm_ip_eq(&c->key, key);
	}
	return k;
}

/* conn_per_address and conn_max: false (counted) when over. objects: the
 * directory's servers and masters at this address. */
static bool within_bounds(struct mm_net *n, const struct mm_ip *key, uint32_t objects)
{
	uint32_t per = n->conn_per_address * (objects ? objects : 1);
	if (accepted_from(n, key) < per && (objects > 0 || n->open_outside < n->conn_max))
		return true;
	n->pressure.refused_conn++;
	return false;
}

/* A handshake slot for key (admit.h); false (counted) when refused. */
static bool admit(struct mm_net *n, const struct mm_ip *key, bool trusted)
{
	uint32_t victim = 0;
	if (n->insecure)
		return true; /* no handshake to hold a slot */
	switch (mm_admit_check(&n->admit, key, trusted, rnd64(n), &victim)) {
	case MM_ADMIT_OK: return true;
	case MM_ADMIT_EVICT: {
		/* never told to anyone: it goes silently */
		struct mm_net_conn *v = mm_u64map_get(&n->conns, victim);
		if (v) {
			mm_ip_str(&v->key, n->pressure.busiest, sizeof(n->pressure.busiest));
			conn_free(v);
		}
		n->pressure.evicted++;
		return true;
	}
	case MM_ADMIT_REFUSE_ADDR: n->pressure.refused_addr++; return false;
	case MM_ADMIT_REFUSE_FULL: n->pressure.refused_full++; return false;
	}
	return false;
}

static uint32_t next_number(struct mm_net *n)
{
	uint32_t num;
	do
		num = n->next_in++ & ~MM_NET_OUT;
	while (num == 0 || mm_u64map_get(&n->conns, num) != NULL);
	return num;
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                      int socklen, void *arg)
{
	(void)l, (void)socklen;
	struct mm_net *n = arg;
	struct mm_ip ip;
	if (!mm_ip_from_sockaddr(sa, &ip)) {
		close(fd);
		return;
	}
	/* anyone may open a TCP connection: what it may hold is bounded
	 * before a byte is read (a flood must not starve our SMTP sessions
	 * and probes of descriptors, nor the directory's servers of room) */
	struct mm_ip key = mm_ip_key(&ip);
	uint32_t objects = mm_ipset_objects(&n->dir, &ip);
	if (!within_bounds(n, &key, objects) || !admit(n, &key, objects > 0)) {
		close(fd);
		pressure_report(n);
		return;
	}
	pressure_report(n);
	struct mm_net_conn *c = conn_new(n, next_number(n), false);
	mm_ip_str(&ip, c->address, sizeof(c->address));
	c->key = key;
	c->trusted = objects > 0;
	if (!n->insecure) {
		c->pending = true;
		mm_admit_add(&n->admit, &key, c->trusted, c->num);
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
	*n = (struct mm_net){.base = base,
	                     .ops = *ops,
	                     .handshake_ms = 10000,
	                     .conn_max = MM_NET_CONN_MAX,
	                     .conn_per_address = MM_NET_CONN_PER_ADDRESS,
	                     .next_in = 1};
	if (RAND_bytes((unsigned char *)&n->rng, sizeof(n->rng)) != 1 || n->rng == 0)
		n->rng = (uint64_t)wall_ms() ^ ((uint64_t)getpid() << 32) ^ 1;
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

void mm_net_set_directory(struct mm_net *n, const char *const *addresses, size_t count)
{
	/* handshakes in progress keep the standing they came with: they end
	 * within one dead interval */
	mm_ipset_free(&n->dir);
	mm_ipset_build(&n->dir, addresses, count);
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
	mm_ipset_free(&n->dir);
	*n = (struct mm_net){0};
}

size_t mm_net_recheck(struct mm_net *n)
{
	if (n->insecure || n->conns.used == 0)
		return 0;
	/* the numbers first: a close tells the owner, who may close more */
	uint32_t *nums = mm_xcalloc(n->conns.used, sizeof(*nums));
	size_t k = 0, closed = 0;
	for (size_t i = 0; i < n->conns.cap; i++) {
		struct mm_net_conn *c = n->conns.slots[i].value;
		if (c && c->open && !c->closing)
			nums[k++] = c->num;
	}
	for (size_t i = 0; i < k; i++) {
		struct mm_net_conn *c = mm_u64map_get(&n->conns, nums[i]);
		SSL *ssl = c && c->open && !c->closing ? bufferevent_openssl_get_ssl(c->bev) : NULL;
		if (ssl && !mm_tls_peer_still_trusted(ssl)) {
			logf_(n,
			      "691: connection %u: the peer's certificate no longer verifies "
			      "(revoked?): closed",
			      nums[i]);
			conn_lost(c, "its certificate no longer verifies (revoked)");
			closed++;
		}
	}
	free(nums);
	return closed;
}
