/* meshctl --connect HOST:PORT --tls DIR [--as NAME] [--expect KIND:NAME]:
 * one query to a live meshnode or rgmaster over TCP 691 (docs/protocol.md,
 * "Queries").
 *
 * Mutual TLS 1.3 with the routing context of DIR/NAME.pem (an admin
 * certificate), the peer's certificate checked to name a server or a master
 * (an address names no one: either is accepted, and its Hello must say the
 * same; --expect names the one it must be, as a daemon's dial does), Hello
 * as ADMIN, one Query, one Reply. The Reply's body is what an offline
 * meshctl would print, and its status is our exit status. Blocking sockets
 * with a deadline: one question, one answer. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "frame.h"
#include "meshctl.h"
#include "tls.h"

/* The whole exchange must fit in this: a live daemon answers at once. */
#define CONNECT_TIMEOUT_MS 10000
#define REPLY_TIMEOUT_MS   30000

struct peer {
	const char *address;
	SSL *ssl;
	int fd;
	struct mm_frame_reader reader;
	enum mm_cert_kind kind;
	char name[MM_CERT_NAME_MAX + 1];
	bool eof; /* closed, or a TLS error (in tls_err) */
	char tls_err[256];
};

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *openssl_reason(void)
{
	static char buf[256];
	unsigned long e = ERR_get_error();
	if (e == 0)
		return "closed";
	ERR_error_string_n(e, buf, sizeof(buf));
	return buf;
}

/* "host:port", "[v6]:port"; a connected socket, or -1 with a message. */
static int dial(const char *address, char *err, size_t errlen)
{
	char host[256];
	const char *colon = strrchr(address, ':');
	if (colon == NULL || colon == address || colon[1] == '\0' ||
	    (size_t)(colon - address) >= sizeof(host)) {
		snprintf(err, errlen, "--connect %s: want HOST:PORT", address);
		return -2;
	}
	memcpy(host, address, (size_t)(colon - address));
	host[colon - address] = '\0';
	char *h = host;
	if (h[0] == '[' && h[strlen(h) - 1] == ']') {
		h[strlen(h) - 1] = '\0';
		h++;
	}
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV}, *res;
	int rc = getaddrinfo(h, colon + 1, &hints, &res);
	if (rc != 0) {
		snprintf(err, errlen, "--connect %s: %s", address, gai_strerror(rc));
		return rc == EAI_NONAME || rc == EAI_SERVICE ? -2 : -1;
	}
	int fd = -1;
	snprintf(err, errlen, "%s: no address", address);
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0)
			continue;
		int e = 0;
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
			e = errno;
			if (e == EINPROGRESS) {
				struct pollfd p = {.fd = fd, .events = POLLOUT};
				socklen_t sl = sizeof(e);
				if (poll(&p, 1, CONNECT_TIMEOUT_MS) != 1)
					e = ETIMEDOUT;
				else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &sl) != 0)
					e = errno;
			}
		}
		if (e == 0)
			break;
		snprintf(err, errlen, "%s: %s", address, strerror(e));
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		return -1;
	/* blocking from here, every read and write bounded */
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	struct timeval tv = {CONNECT_TIMEOUT_MS / 1000, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	return fd;
}

static bool send_frame(struct peer *p, const Mailmesh__Frame *f)
{
	size_t len;
	uint8_t *buf = mm_frame_encode(f, &len);
	bool ok = SSL_write(p->ssl, buf, (int)len) == (int)len;
	free(buf);
	if (!ok)
		snprintf(p->tls_err, sizeof(p->tls_err), "%s", openssl_reason());
	return ok;
}

/* The next frame, NULL at the end (p->eof) or on a bad frame (a message in
 * err); the caller frees it with mailmesh__frame__free_unpacked. */
static Mailmesh__Frame *next_frame(struct peer *p, int64_t deadline, char *err, size_t errlen)
{
	for (;;) {
		Mailmesh__Frame *f = NULL;
		switch (mm_frame_next(&p->reader, &f)) {
		case MM_FRAME_OK: return f;
		case MM_FRAME_TOO_BIG:
			snprintf(err, errlen, "%s sent a frame over the limit", p->address);
			return NULL;
		case MM_FRAME_BAD:
			snprintf(err, errlen, "%s sent a frame that does not decode", p->address);
			return NULL;
		case MM_FRAME_NEED_MORE: break;
		}
		if (now_ms() >= deadline) {
			snprintf(err, errlen, "%s: no answer in time", p->address);
			return NULL;
		}
		uint8_t buf[16384];
		int n = SSL_read(p->ssl, buf, sizeof(buf));
		if (n <= 0) {
			int e = SSL_get_error(p->ssl, n);
			if ((e == SSL_ERROR_WANT_READ || e == SSL_ERROR_SYSCALL) &&
			    (errno == EAGAIN || errno == EWOULDBLOCK)) {
				if (now_ms() < deadline)
					continue; /* SO_RCVTIMEO: look at the deadline */
				snprintf(err, errlen, "%s: no answer in time", p->address);
				return NULL;
			}
			p->eof = true;
			snprintf(p->tls_err, sizeof(p->tls_err), "%s",
			         e == SSL_ERROR_ZERO_RETURN ? "closed" : openssl_reason());
			snprintf(err, errlen, "%s closed the connection (%s)", p->address,
			         p->tls_err);
			return NULL;
		}
		if (mm_frame_feed(&p->reader, buf, (size_t)n) == MM_FRAME_TOO_BIG) {
			snprintf(err, errlen, "%s sent a frame over the limit", p->address);
			return NULL;
		}
	}
}

static void pong(struct peer *p, const Mailmesh__Ping *ping)
{
	Mailmesh__Pong r = MAILMESH__PONG__INIT;
	r.nonce = ping->nonce;
	Mailmesh__Frame f = MAILMESH__FRAME__INIT;
	f.body_case = MAILMESH__FRAME__BODY_PONG;
	f.pong = &r;
	send_frame(p, &f);
}

/* The peer's Hello: a node (certificate of kind server) or a master
 * candidate (kind master), the name of its certificate. */
static int check_hello(struct peer *p, const Mailmesh__Hello *h)
{
	const char *kind = mm_cert_kind_name(p->kind);
	if (h->proto_major != 1) {
		fprintf(stderr, "meshctl: %s %s speaks protocol %u.%u, this meshctl 1.0\n", kind,
		        p->name, h->proto_major, h->proto_minor);
		return EX_PROTOCOL;
	}
	bool role_ok = (h->role == MAILMESH__ROLE__ROLE_NODE && p->kind == MM_CERT_SERVER) ||
	               (h->role == MAILMESH__ROLE__ROLE_MASTER && p->kind == MM_CERT_MASTER);
	if (!role_ok || strcmp(h->name, p->name) != 0) {
		fprintf(stderr,
		        "meshctl: %s: the certificate names %s %s, its Hello another peer (role "
		        "%d); not answering for it\n",
		        p->address, kind, p->name, (int)h->role);
		return EX_PROTOCOL;
	}
	return EX_OK;
}

/* Print what the daemon rendered, as an offline meshctl would. */
static void print_body(const char *body, int status)
{
	FILE *out = status == 0 ? stdout : stderr;
	size_t n = strlen(body);
	fputs(body, out);
	if (n == 0 || body[n - 1] != '\n')
		fputc('\n', out);
}

static int exchange(struct peer *p, const char *as, bool json, const char *verb,
                    const char *const *operands, size_t noperands)
{
	char err[512];
	Mailmesh__Hello h = MAILMESH__HELLO__INIT;
	h.name = (char *)as;
	h.group = (char *)"";
	h.proto_major = 1;
	h.proto_minor = 0;
	h.role = MAILMESH__ROLE__ROLE_ADMIN;
	Mailmesh__Frame f = MAILMESH__FRAME__INIT;
	f.body_case = MAILMESH__FRAME__BODY_HELLO;
	f.hello = &h;
	f.seq = 1;
	if (!send_frame(p, &f)) {
		fprintf(stderr, "meshctl: %s: cannot send Hello: %s\n", p->address, p->tls_err);
		return EX_UNAVAILABLE;
	}
	int64_t deadline = now_ms() + REPLY_TIMEOUT_MS;
	Mailmesh__Frame *in;
	for (;;) {
		in = next_frame(p, deadline, err, sizeof(err));
		if (in == NULL) {
			if (p->eof) {
				/* a daemon closes on a Hello it refuses, or TLS 1.3
				 * ends here when our certificate did not verify */
				fprintf(stderr,
				        "meshctl: %s %s refused us (%s): --connect needs an admin "
				        "certificate naming %s in the --tls directory (meshctl pki "
				        "issue --admin %s); the daemon's log says why\n",
				        mm_cert_kind_name(p->kind), p->name, p->tls_err, as, as);
				return EX_NOPERM;
			}
			fprintf(stderr, "meshctl: %s\n", err);
			return p->reader.error ? EX_PROTOCOL : EX_UNAVAILABLE;
		}
		if (in->body_case == MAILMESH__FRAME__BODY_HELLO)
			break;
		if (in->body_case == MAILMESH__FRAME__BODY_PING) {
			pong(p, in->ping);
			mailmesh__frame__free_unpacked(in, NULL);
			continue;
		}
		fprintf(stderr, "meshctl: %s: a frame (body %d) before its Hello\n", p->address,
		        (int)in->body_case);
		mailmesh__frame__free_unpacked(in, NULL);
		return EX_PROTOCOL;
	}
	int rc = check_hello(p, in->hello);
	mailmesh__frame__free_unpacked(in, NULL);
	if (rc != EX_OK)
		return rc;

	/* args[0] is the output format, then the verb's operands */
	char **args = calloc(noperands + 1, sizeof(*args));
	if (args == NULL)
		return EX_OSERR;
	args[0] = (char *)(json ? "json" : "text");
	for (size_t i = 0; i < noperands; i++)
		args[i + 1] = (char *)operands[i];
	Mailmesh__Query q = MAILMESH__QUERY__INIT;
	q.command = (char *)verb;
	q.n_args = noperands + 1;
	q.args = args;
	f = (Mailmesh__Frame)MAILMESH__FRAME__INIT;
	f.body_case = MAILMESH__FRAME__BODY_QUERY;
	f.query = &q;
	f.seq = 2;
	bool sent = send_frame(p, &f);
	free(args);
	if (!sent) {
		fprintf(stderr, "meshctl: %s: cannot send the query: %s\n", p->address, p->tls_err);
		return EX_UNAVAILABLE;
	}
	for (;;) {
		in = next_frame(p, deadline, err, sizeof(err));
		if (in == NULL) {
			fprintf(stderr, "meshctl: %s %s: %s before its reply\n",
			        mm_cert_kind_name(p->kind), p->name, err);
			return p->reader.error ? EX_PROTOCOL : EX_UNAVAILABLE;
		}
		if (in->body_case == MAILMESH__FRAME__BODY_REPLY)
			break;
		if (in->body_case == MAILMESH__FRAME__BODY_PING)
			pong(p, in->ping);
		/* anything else (a later minor's frame, a Hello again) is not
		 * for us: the reply is what we wait for */
		mailmesh__frame__free_unpacked(in, NULL);
	}
	int status = in->reply->status;
	if (status < 0 || status > 255) {
		fprintf(stderr, "meshctl: %s %s: reply status %d is no exit status\n",
		        mm_cert_kind_name(p->kind), p->name, status);
		mailmesh__frame__free_unpacked(in, NULL);
		return EX_PROTOCOL;
	}
	print_body(in->reply->json, status);
	mailmesh__frame__free_unpacked(in, NULL);
	return status;
}

/* --expect KIND:NAME: the object the peer must be. */
struct expect {
	bool set;
	enum mm_cert_kind kind;
	char name[MM_CERT_NAME_MAX + 1];
};

/* s (NULL: none) into e; false (a usage error) when it is not KIND:NAME. */
static bool parse_expect(const char *s, struct expect *e)
{
	*e = (struct expect){0};
	if (s == NULL)
		return true;
	const char *colon = strchr(s, ':');
	if (colon == NULL || !mm_cert_name_ok(colon + 1))
		return false;
	const enum mm_cert_kind kinds[] = {MM_CERT_SERVER, MM_CERT_MASTER, MM_CERT_ADMIN};
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		const char *k = mm_cert_kind_name(kinds[i]);
		if (strlen(k) == (size_t)(colon - s) && strncmp(k, s, (size_t)(colon - s)) == 0) {
			*e = (struct expect){.set = true, .kind = kinds[i]};
			snprintf(e->name, sizeof(e->name), "%s", colon + 1);
			return true;
		}
	}
	return false;
}

/* Who answered, before a byte of ours goes to it: an organization server
 * or master, and with --expect that very object (DESIGN §7: exit 76 unless
 * the certificate names it). */
static int check_peer(struct peer *p, const struct expect *e)
{
	if (!mm_tls_peer_identity(p->ssl, p->name, sizeof(p->name), &p->kind) ||
	    p->kind == MM_CERT_ADMIN) {
		fprintf(stderr,
		        "meshctl: %s: the peer's certificate names no server or master of the "
		        "organization%s%s\n",
		        p->address, p->name[0] ? ": admin " : "", p->name);
		return EX_PROTOCOL;
	}
	if (e->set && (e->kind != p->kind || strcmp(e->name, p->name) != 0)) {
		fprintf(stderr,
		        "meshctl: %s: the peer's certificate names %s %s, not %s %s (--expect); "
		        "nothing asked\n",
		        p->address, mm_cert_kind_name(p->kind), p->name, mm_cert_kind_name(e->kind),
		        e->name);
		return EX_PROTOCOL;
	}
	return EX_OK;
}

int ctl_connect(const struct ctl_peer *who, bool json, const char *verb,
                const char *const *operands, size_t noperands)
{
	const char *as = who->as ? who->as : "admin";
	signal(SIGPIPE, SIG_IGN); /* a daemon that hangs up is an error, not our end */
	if (!mm_cert_name_ok(as)) {
		fprintf(stderr, "meshctl: --as %s: not a certificate name\n", as);
		return EX_USAGE;
	}
	struct expect e;
	if (!parse_expect(who->expect, &e)) {
		fprintf(stderr,
		        "meshctl: --expect %s: want KIND:NAME, KIND server, master or admin\n",
		        who->expect);
		return EX_USAGE;
	}
	char err[4096 + 256];
	struct mm_tls_routing t;
	if (!mm_tls_routing_init(&t, who->tls, as, err, sizeof(err))) {
		fprintf(stderr, "meshctl: --tls %s: %s\n", who->tls, err);
		mm_tls_routing_free(&t);
		return EX_CONFIG;
	}
	struct peer p = {.address = who->address, .fd = -1};
	mm_frame_reader_init(&p.reader, MM_FRAME_LIMIT_DEFAULT);
	int rc = EX_UNAVAILABLE;
	p.fd = dial(who->address, err, sizeof(err));
	if (p.fd < 0) {
		fprintf(stderr, "meshctl: %s\n", err);
		rc = p.fd == -2 ? EX_USAGE : EX_UNAVAILABLE;
		goto out;
	}
	p.ssl = SSL_new(t.dial);
	if (p.ssl == NULL || SSL_set_fd(p.ssl, p.fd) != 1) {
		fprintf(stderr, "meshctl: TLS: %s\n", openssl_reason());
		rc = EX_SOFTWARE;
		goto out;
	}
	/* frames carry their length: a close without close_notify cuts no
	 * answer short unnoticed, and is just the end of the connection */
	SSL_set_options(p.ssl, SSL_OP_IGNORE_UNEXPECTED_EOF);
	if (SSL_connect(p.ssl) != 1) {
		fprintf(stderr, "meshctl: %s: TLS handshake failed: %s\n", who->address,
		        openssl_reason());
		goto out;
	}
	rc = check_peer(&p, &e);
	if (rc == EX_OK)
		rc = exchange(&p, as, json, verb, operands, noperands);
	if (!p.eof)
		SSL_shutdown(p.ssl);
out:
	if (p.ssl)
		SSL_free(p.ssl);
	if (p.fd >= 0)
		close(p.fd);
	mm_frame_reader_free(&p.reader);
	mm_tls_routing_free(&t);
	return rc;
}
