/* The detector's probes (env.probe of core/connstate.h): connect to a
 * connector's hop, read its greeting, EHLO (STARTTLS per the connector's
 * policy, and EHLO again), QUIT -- the SMTP client machine of
 * core/smtp_client.c with no job, on a bufferevent as relay_client.c runs
 * it. A probe works when the session is ready for mail (what a delivery
 * needs before its first MAIL); anything else before that fails it.
 *
 * Every probe is answered exactly once, from a libevent callback, never
 * from inside probe_start (which the detector calls from inside its own
 * calls): a probe that cannot even start is answered on the next turn of
 * the loop. probes_free forgets what is out without answering (the
 * detector ignores late results). Probes leave from this server's own
 * address, as deliveries do. */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "alloc.h"
#include "connstate.h"
#include "node.h"
#include "smtp_client.h"

struct probe {
	struct probes *ps;
	uint32_t id;
	int tls;
	evutil_socket_t fd; /* ours: the bufferevents do not close it */
	SSL *ssl;
	struct bufferevent *bev;
	struct mm_smtpc c;
	bool connected, tls_pending, answered;
	bool keep;                    /* an exchange session kept open for the next exchange */
	bool idle;                    /* ... between two exchanges */
	uint64_t plain_in, plain_out; /* octets before STARTTLS */
	uint64_t base_in, base_out;   /* the wire octets when this exchange began */
	char addr[80];
	char expect[MM_CERT_NAME_MAX + 1]; /* an organization server: its name */
	char why[300];
	struct probe *next_failed;
};

struct probes {
	struct node *n;
	void (*done)(void *ctx, uint32_t id, bool ok, const char *why);
	void *ctx;
	struct mm_u64map live; /* id → struct probe */
	struct probe *failed;  /* answered on the next turn */
	struct event *later;
};

static void probe_free(struct probe *p)
{
	mm_u64map_del(&p->ps->live, p->id);
	if (p->bev)
		bufferevent_free(p->bev);
	SSL_free(p->ssl);
	if (p->fd >= 0)
		evutil_closesocket(p->fd);
	mm_smtpc_free(&p->c);
	free(p);
}

/* The answer, once; the probe may go on with its QUIT. */
static void answer(struct probe *p, bool ok, const char *why)
{
	if (p->answered)
		return;
	p->answered = true;
	p->ps->done(p->ps->ctx, p->id, ok, why);
}

static void end(struct probe *p, bool ok, const char *why)
{
	struct probes *ps = p->ps;
	uint32_t id = p->id;
	bool answered = p->answered;
	char reason[MM_SMTPC_REPLY_MAX];
	snprintf(reason, sizeof(reason), "%s", why ? why : p->c.error.text);
	probe_free(p);
	if (!answered)
		ps->done(ps->ctx, id, ok, reason);
}

static void flush(struct probe *p)
{
	if (p->c.out.len > 0 && p->bev) {
		if (p->ssl == NULL)
			p->plain_out += p->c.out.len;
		bufferevent_write(p->bev, p->c.out.p, p->c.out.len);
		mm_buf_reset(&p->c.out);
	}
}

static void on_event(struct bufferevent *bev, short what, void *arg);
static void on_read(struct bufferevent *bev, void *arg);

/* An exchange's cost on the wire so far, TLS records and all (not TCP/IP
 * headers): the plain text before STARTTLS, and what went through the TLS
 * connection's socket BIO. The QUIT to come is a few octets more. */
static void wire_bytes(struct probe *p)
{
	BIO *b = p->ssl ? SSL_get_rbio(p->ssl) : NULL;
	uint64_t in = p->plain_in + (b ? BIO_number_read(b) : 0);
	b = p->ssl ? SSL_get_wbio(p->ssl) : NULL;
	uint64_t out = p->plain_out + (b ? BIO_number_written(b) : 0);
	if (p->c.xlink) {
		p->c.xlink->wire_in = in - p->base_in;
		p->c.xlink->wire_out = out - p->base_out;
	}
	p->base_in = in;
	p->base_out = out;
}

static void timeouts(struct probe *p)
{
	struct timeval tv = {(time_t)p->ps->n->set.reply_timeout_s, 0};
	if (p->c.xlink) {
		/* an exchange waits for a peer's answer no longer than for its
		 * connection: a peer that hangs would hold every exchange with it
		 * for reply_timeout_s, and anti-entropy heals what is lost */
		uint64_t ms = p->ps->n->set.connect_timeout_ms;
		tv = (struct timeval){(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
	}
	bufferevent_set_timeouts(p->bev, &tv, &tv);
}

static void start_tls(struct probe *p)
{
	struct node *n = p->ps->n;
	SSL_CTX *ctx = p->tls == MM_SMTPC_TLS_REQUIRED ? n->tls.client_verify : n->tls.client;
	if (ctx == NULL) {
		end(p, false, "4.7.4 TLS is required, but this server has no --tls");
		return;
	}
	p->ssl = SSL_new(ctx);
	bufferevent_free(p->bev);
	p->bev =
	    bufferevent_openssl_socket_new(n->base, p->fd, p->ssl, BUFFEREVENT_SSL_CONNECTING, 0);
	if (p->bev == NULL) {
		end(p, false, "4.7.0 cannot start TLS");
		return;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(p->bev, 1);
	p->tls_pending = true;
	bufferevent_setcb(p->bev, on_read, NULL, on_event, p);
	timeouts(p);
	bufferevent_enable(p->bev, EV_READ | EV_WRITE);
}

static void on_read(struct bufferevent *bev, void *arg)
{
	struct probe *p = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	char chunk[4096];
	size_t len;
	while ((len = evbuffer_get_length(in)) > 0) {
		if (p->idle) {
			/* a kept session's peer speaks unasked: not one to keep */
			end(p, true, NULL);
			return;
		}
		if (len > sizeof(chunk))
			len = sizeof(chunk);
		evbuffer_remove(in, chunk, len);
		if (p->ssl == NULL)
			p->plain_in += len;
		switch (mm_smtpc_feed(&p->c, chunk, len)) {
		case MM_SMTPC_NONE:
		case MM_SMTPC_JOB_DONE: flush(p); break;
		case MM_SMTPC_READY:
			/* greeting and EHLO (over TLS when the policy wants it) done */
			if (!p->answered) {
				answer(p, true, NULL);
				mm_smtpc_quit(&p->c);
			}
			flush(p);
			break;
		case MM_SMTPC_FAILED: end(p, false, NULL); return;
		case MM_SMTPC_XLINK_DONE:
			/* an exchange session (probe_start_xlink): its end is the
			 * answer; then QUIT, or, kept, nothing until the next
			 * exchange (probe_xlink_again) or the peer's close */
			wire_bytes(p);
			if (p->keep && p->c.xlink->state == MM_XCLI_DONE && p->c.in.len == 0 &&
			    evbuffer_get_length(in) == 0) {
				p->idle = true;
				bufferevent_set_timeouts(p->bev, NULL, NULL);
				answer(p, true, NULL);
				break; /* the answer may have begun the next one */
			}
			answer(p, p->c.xlink->state == MM_XCLI_DONE, p->c.xlink->why);
			mm_smtpc_quit(&p->c);
			flush(p);
			break;
		case MM_SMTPC_TLS:
			flush(p);
			start_tls(p);
			return;
		}
		if (p->c.state == MM_SMTPC_DEAD) {
			end(p, p->answered, NULL);
			return;
		}
	}
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	struct probe *p = arg;
	struct node *n = p->ps->n;
	if ((what & BEV_EVENT_CONNECTED) && p->tls_pending) {
		p->tls_pending = false;
		SSL *ssl = bufferevent_openssl_get_ssl(p->bev);
		if (p->tls == MM_SMTPC_TLS_REQUIRED &&
		    (ssl == NULL || !mm_tls_peer_verified(ssl, NULL, 0))) {
			end(p, false,
			    "4.7.5 TLS is required, and the hop's certificate is not trusted");
			return;
		}
		/* as a delivery would: an organization server must be the one
		 * dialled, or the probe calls a hop up that delivery refuses */
		char err[200], why[MM_CERT_NAME_MAX + 260];
		if (p->expect[0] && ssl &&
		    !mm_tls_expect_peer(ssl, MM_CERT_SERVER, p->expect, err, sizeof(err))) {
			snprintf(why, sizeof(why), "4.7.5 the hop is not server %s: %s", p->expect,
			         err);
			end(p, false, why);
			return;
		}
		mm_smtpc_tls_started(&p->c);
		flush(p);
		return;
	}
	if (what & BEV_EVENT_CONNECTED) {
		p->connected = true;
		timeouts(p);
		return;
	}
	if (p->answered) { /* its QUIT: whatever the hop does now */
		end(p, true, NULL);
		return;
	}
	char why[400], err[120];
	if (!p->connected)
		snprintf(why, sizeof(why), "4.4.1 connect to %s failed: %s", p->addr,
		         what & BEV_EVENT_TIMEOUT
		             ? "timed out"
		             : evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
	else if (p->tls_pending && p->tls == MM_SMTPC_TLS_REQUIRED &&
	         mm_tls_verify_failed(p->ssl, err, sizeof(err)))
		snprintf(why, sizeof(why),
		         "4.7.5 TLS is required, and the certificate of %s failed verification: %s",
		         p->addr, err);
	else
		snprintf(why, sizeof(why), "4.4.2 %s with %s before EHLO was done",
		         what & BEV_EVENT_TIMEOUT ? "timeout" : "lost connection", p->addr);
	(void)n;
	end(p, false, why);
}

static void later_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	struct probes *ps = arg;
	struct probe *p;
	while ((p = ps->failed) != NULL) {
		ps->failed = p->next_failed;
		char why[300];
		snprintf(why, sizeof(why), "%s", p->why);
		end(p, false, why);
	}
}

static void fail_later(struct probe *p, const char *why)
{
	snprintf(p->why, sizeof(p->why), "%s", why);
	p->next_failed = p->ps->failed;
	p->ps->failed = p;
	event_active(p->ps->later, 0, 0);
}

struct probes *probes_new(struct node *n, void (*done)(void *, uint32_t, bool, const char *),
                          void *ctx)
{
	struct probes *ps = mm_xcalloc(1, sizeof(*ps));
	*ps = (struct probes){.n = n, .done = done, .ctx = ctx};
	ps->later = event_new(n->base, -1, 0, later_cb, ps);
	return ps;
}

/* The server with a virtual server at address, into out: true when there
 * is exactly one. Else why says so (no one, or the first two of several),
 * with RFC 3463's 4.7.5: a probe of an organization hop checks the
 * certificate of the server dialled, and an address that names no single
 * server leaves nothing to check it against -- the probe fails rather
 * than call up a hop that any organization certificate could answer. */
static bool expected_server(const struct node *n, const char *address, char *out, size_t size,
                            char *why, size_t whylen)
{
	const struct mm_topo *t = &n->router.topo;
	const char *found = NULL;
	out[0] = '\0';
	for (uint32_t i = 0; i < t->nvs; i++) {
		if (strcmp(t->vs[i].address, address) != 0)
			continue;
		const char *name = t->servers[t->vs[i].server].name;
		if (found && strcmp(found, name) != 0) {
			snprintf(why, whylen,
			         "4.7.5 %s is the address of several servers (%s, %s): the hop's "
			         "certificate cannot be checked",
			         address, found, name);
			return false;
		}
		found = name;
	}
	if (found == NULL) {
		snprintf(why, whylen,
		         "4.7.5 %s is the address of no server of the organization: the hop's "
		         "certificate cannot be checked",
		         address);
		return false;
	}
	snprintf(out, size, "%s", found);
	return true;
}

void probe_start(struct probes *ps, uint32_t id, const struct mm_cs_probe *t)
{
	struct node *n = ps->n;
	struct probe *p = mm_xcalloc(1, sizeof(*p));
	*p = (struct probe){.ps = ps, .id = id, .tls = t->tls, .fd = -1};
	snprintf(p->addr, sizeof(p->addr), "%s", t->address);
	mm_u64map_put(&ps->live, id, p);
	mm_smtpc_init(&p->c, n->fqdn);
	char why[300];
	/* with the organization's certificates, an organization hop must be
	 * one server, whose certificate the handshake is checked against */
	if (t->org && t->tls == MM_SMTPC_TLS_REQUIRED &&
	    !expected_server(n, t->address, p->expect, sizeof(p->expect), why, sizeof(why))) {
		fail_later(p, why);
		return;
	}
	/* as relay_client.c: without --tls opportunistic means clear text,
	 * required stays required and fails closed */
	p->c.tls_want =
	    n->tls.client || t->tls == MM_SMTPC_TLS_REQUIRED ? t->tls : MM_SMTPC_TLS_NONE;
	p->bev = node_dial(n, t->address, on_read, on_event, p, &p->fd, why, sizeof(why));
	if (p->bev == NULL)
		fail_later(p, why);
}

void probe_start_xlink(struct probes *ps, uint32_t id, const char *address, const char *server,
                       struct mm_xlink_cli *x, bool keep)
{
	struct node *n = ps->n;
	struct probe *p = mm_xcalloc(1, sizeof(*p));
	*p = (struct probe){
	    .ps = ps, .id = id, .tls = MM_SMTPC_TLS_REQUIRED, .fd = -1, .keep = keep};
	snprintf(p->addr, sizeof(p->addr), "%s", address);
	snprintf(p->expect, sizeof(p->expect), "%s", server);
	mm_u64map_put(&ps->live, id, p);
	mm_smtpc_init(&p->c, n->fqdn);
	p->c.tls_want = MM_SMTPC_TLS_REQUIRED;
	p->c.xlink = x;
	char why[300];
	p->bev = node_dial(n, address, on_read, on_event, p, &p->fd, why, sizeof(why));
	if (p->bev == NULL)
		fail_later(p, why);
}

bool probe_xlink_again(struct probes *ps, uint32_t id, struct mm_xlink_cli *x)
{
	struct probe *p = mm_u64map_get(&ps->live, id);
	if (p == NULL || !p->idle || !mm_smtpc_xlink_again(&p->c, x))
		return false;
	p->idle = false;
	p->answered = false;
	flush(p);
	timeouts(p);
	return true;
}

void probe_drop(struct probes *ps, uint32_t id)
{
	struct probe *p = mm_u64map_get(&ps->live, id);
	if (p)
		probe_free(p);
}

void probes_free(struct probes *ps)
{
	if (ps == NULL)
		return;
	while (ps->failed) {
		struct probe *p = ps->failed;
		ps->failed = p->next_failed;
		probe_free(p);
	}
	while (ps->live.used > 0)
		for (size_t i = 0; i < ps->live.cap; i++)
			if (ps->live.slots[i].value) {
				probe_free(ps->live.slots[i].value);
				break;
			}
	mm_u64map_free(&ps->live);
	if (ps->later)
		event_free(ps->later);
	free(ps);
}
