/* The smart hosts (DESIGN §8): at every smart-host address the directory
 * names, an SMTP sink that takes every message and counts it by (Message-ID,
 * recipient). `refuse CONNECTOR` closes the sink's listening socket (a
 * connection is refused, as by a host whose server is down); `accept`
 * opens it again. One acceptor thread per sink, one thread per session:
 * the scenario's own thread never waits on a sink. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "alloc.h"
#include "world.h"

#define SINK_LINE_MAX 4096
#define SINK_IDLE_MS  60000
#define SINK_MSG_MAX  (64u << 20)

struct session {
	struct sim_world *w;
	struct sim_sink *sink;
	int fd;
};

static int listen_on(const char *host, int port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
		return -1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 128) != 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* a session's connection: plain, or TLS after STARTTLS */
struct io {
	int fd;
	SSL *ssl;
};

static bool say(struct io *io, const char *s)
{
	size_t n = strlen(s);
	if (io->ssl)
		return SSL_write(io->ssl, s, (int)n) == (int)n;
	return send(io->fd, s, n, MSG_NOSIGNAL) == (ssize_t)n;
}

/* one line (CRLF or LF stripped) from fd through buf; false at the end */
struct reader {
	char buf[SINK_LINE_MAX * 2];
	size_t len;
};

static bool read_line(struct io *io, struct reader *r, char *line, size_t cap)
{
	for (;;) {
		char *nl = memchr(r->buf, '\n', r->len);
		if (nl) {
			size_t n = (size_t)(nl - r->buf);
			size_t k = n > 0 && r->buf[n - 1] == '\r' ? n - 1 : n;
			if (k >= cap)
				k = cap - 1;
			memcpy(line, r->buf, k);
			line[k] = '\0';
			memmove(r->buf, nl + 1, r->len - n - 1);
			r->len -= n + 1;
			return true;
		}
		if (r->len == sizeof(r->buf))
			return false; /* a line too long: end the session */
		struct pollfd pf = {.fd = io->fd, .events = POLLIN};
		if ((io->ssl == NULL || SSL_pending(io->ssl) == 0) &&
		    poll(&pf, 1, SINK_IDLE_MS) <= 0)
			return false;
		ssize_t got =
		    io->ssl ? SSL_read(io->ssl, r->buf + r->len, (int)(sizeof(r->buf) - r->len))
		            : recv(io->fd, r->buf + r->len, sizeof(r->buf) - r->len, 0);
		if (got <= 0)
			return false;
		r->len += (size_t)got;
	}
}

static void record(struct sim_world *w, const char *msgid, char **rcpts, size_t n)
{
	struct sim_sinks *s = &w->sinks;
	pthread_mutex_lock(&s->lock);
	s->messages++;
	for (size_t i = 0; i < n; i++) {
		if (s->ndone == s->capdone)
			s->done = mm_xrealloc(s->done, s->capdone = s->capdone * 2 + 64,
			                      sizeof(*s->done));
		s->done[s->ndone++] =
		    (struct sim_delivery){.msgid = mm_xstrdup(msgid), .rcpt = mm_xstrdup(rcpts[i])};
	}
	pthread_mutex_unlock(&s->lock);
}

/* "<x@y>" out of a MAIL/RCPT argument, lower-cased */
static void path_of(const char *arg, char *out, size_t cap)
{
	const char *lt = strchr(arg, '<'), *gt = lt ? strchr(lt, '>') : NULL;
	size_t n = lt && gt ? (size_t)(gt - lt - 1) : 0;
	if (n >= cap)
		n = cap - 1;
	for (size_t i = 0; i < n; i++)
		out[i] =
		    (char)((lt[1 + i] >= 'A' && lt[1 + i] <= 'Z') ? lt[1 + i] + 32 : lt[1 + i]);
	out[n] = '\0';
}

static void *session(void *arg)
{
	struct session *ss = arg;
	int fd = ss->fd;
	struct sim_world *w = ss->w;
	const struct sim_sink *ss_sink = ss->sink;
	free(ss);
	struct reader *r = mm_xcalloc(1, sizeof(*r));
	struct io io = {.fd = fd};
	char line[SINK_LINE_MAX];
	char **rcpts = NULL;
	size_t nrcpts = 0;
	say(&io, "220 sink.meshsim ESMTP the simulator's smart host\r\n");
	while (read_line(&io, r, line, sizeof(line))) {
		/* refusing: sessions already open end too, at their next command
		 * (a client's cached session must not outlive the refusal) */
		pthread_mutex_lock(&w->sinks.lock);
		bool refusing = ss_sink->refusing;
		pthread_mutex_unlock(&w->sinks.lock);
		if (refusing) {
			say(&io, "421 4.3.2 sink.meshsim refusing; closing connection\r\n");
			break;
		}
		if (strncasecmp(line, "EHLO", 4) == 0 && w->sinks.tls && io.ssl == NULL)
			say(&io,
			    "250-sink.meshsim\r\n250-STARTTLS\r\n250-PIPELINING\r\n250-8BITMIME\r\n"
			    "250 SIZE 67108864\r\n");
		else if (strcasecmp(line, "STARTTLS") == 0 && w->sinks.tls && io.ssl == NULL) {
			/* with the run's own certificate (meshsim's, by the organization's CA:
			 * a `required` connector verifies the CA, not a host name) */
			say(&io, "220 2.0.0 Ready to start TLS\r\n");
			r->len = 0; /* what was pipelined after STARTTLS is not to be trusted */
			io.ssl = SSL_new(w->sinks.tls);
			if (io.ssl == NULL || SSL_set_fd(io.ssl, fd) != 1 ||
			    SSL_accept(io.ssl) != 1)
				break;
			for (size_t i = 0; i < nrcpts; i++)
				free(rcpts[i]);
			nrcpts = 0;
		} else if (strncasecmp(line, "EHLO", 4) == 0)
			say(&io, "250-sink.meshsim\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE "
			         "67108864\r\n");
		else if (strncasecmp(line, "HELO", 4) == 0)
			say(&io, "250 sink.meshsim\r\n");
		else if (strncasecmp(line, "MAIL FROM:", 10) == 0)
			say(&io, "250 2.1.0 Ok\r\n");
		else if (strncasecmp(line, "RCPT TO:", 8) == 0) {
			char p[512];
			path_of(line + 8, p, sizeof(p));
			rcpts = mm_xrealloc(rcpts, nrcpts + 1, sizeof(*rcpts));
			rcpts[nrcpts++] = mm_xstrdup(p);
			say(&io, "250 2.1.5 Ok\r\n");
		} else if (strcasecmp(line, "DATA") == 0) {
			if (nrcpts == 0) {
				say(&io, "554 5.5.1 no valid recipients\r\n");
				continue;
			}
			say(&io, "354 End data with <CR><LF>.<CR><LF>\r\n");
			char msgid[512] = "";
			bool headers = true, ok = false;
			size_t total = 0;
			while (read_line(&io, r, line, sizeof(line))) {
				if (strcmp(line, ".") == 0) {
					ok = true;
					break;
				}
				total += strlen(line) + 2;
				if (headers && line[0] == '\0')
					headers = false;
				else if (headers && strncasecmp(line, "Message-ID:", 11) == 0) {
					const char *v = line + 11;
					while (*v == ' ' || *v == '\t')
						v++;
					snprintf(msgid, sizeof(msgid), "%.500s", v);
				}
			}
			if (!ok)
				break;
			if (total > SINK_MSG_MAX) {
				say(&io, "552 5.3.4 too big\r\n");
			} else {
				record(w, msgid, rcpts, nrcpts);
				say(&io, "250 2.0.0 Ok: queued\r\n");
			}
			for (size_t i = 0; i < nrcpts; i++)
				free(rcpts[i]);
			nrcpts = 0;
		} else if (strcasecmp(line, "RSET") == 0) {
			for (size_t i = 0; i < nrcpts; i++)
				free(rcpts[i]);
			nrcpts = 0;
			say(&io, "250 2.0.0 Ok\r\n");
		} else if (strcasecmp(line, "NOOP") == 0)
			say(&io, "250 2.0.0 Ok\r\n");
		else if (strcasecmp(line, "QUIT") == 0) {
			say(&io, "221 2.0.0 Bye\r\n");
			break;
		} else
			say(&io, "502 5.5.2 Error: command not recognized\r\n");
	}
	for (size_t i = 0; i < nrcpts; i++)
		free(rcpts[i]);
	free(rcpts);
	free(r);
	if (io.ssl) {
		SSL_shutdown(io.ssl);
		SSL_free(io.ssl);
	}
	close(fd);
	pthread_mutex_lock(&w->sinks.lock);
	w->sinks.active--;
	pthread_mutex_unlock(&w->sinks.lock);
	return NULL;
}

struct acceptor {
	struct sim_world *w;
	size_t i;
};

static void *acceptor(void *arg)
{
	struct acceptor *a = arg;
	struct sim_world *w = a->w;
	struct sim_sink *s = &w->sinks.s[a->i];
	free(a);
	for (;;) {
		pthread_mutex_lock(&w->sinks.lock);
		bool refusing = s->refusing;
		pthread_mutex_unlock(&w->sinks.lock);
		if (refusing && s->lfd >= 0) {
			close(s->lfd);
			s->lfd = -1;
		} else if (!refusing && s->lfd < 0) {
			s->lfd = listen_on(s->host, s->port);
		}
		struct pollfd pf[2] = {{.fd = w->sinks.stop_pipe[0], .events = POLLIN},
		                       {.fd = s->lfd, .events = POLLIN}};
		int k = poll(pf, s->lfd >= 0 ? 2 : 1, 50);
		if (k > 0 && pf[0].revents)
			break;
		if (k > 0 && s->lfd >= 0 && (pf[1].revents & POLLIN)) {
			int fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
			if (fd < 0)
				continue;
			struct session *ss = mm_xmalloc(sizeof(*ss));
			*ss = (struct session){.w = w, .sink = s, .fd = fd};
			pthread_t t;
			pthread_mutex_lock(&w->sinks.lock);
			w->sinks.active++;
			pthread_mutex_unlock(&w->sinks.lock);
			if (pthread_create(&t, NULL, session, ss) != 0) {
				pthread_mutex_lock(&w->sinks.lock);
				w->sinks.active--;
				pthread_mutex_unlock(&w->sinks.lock);
				close(fd);
				free(ss);
				continue;
			}
			pthread_detach(t);
		}
	}
	if (s->lfd >= 0)
		close(s->lfd);
	s->lfd = -1;
	return NULL;
}

/* "[ip]:port" or "ip:port" (a smart host as the directory gives it) */
static void split(const char *hostport, char *host, size_t cap, int *port)
{
	const char *colon = strrchr(hostport, ':');
	*port = colon ? atoi(colon + 1) : 25;
	size_t n = colon ? (size_t)(colon - hostport) : strlen(hostport);
	if (n >= 2 && hostport[0] == '[' && hostport[n - 1] == ']') {
		hostport++;
		n -= 2;
	}
	snprintf(host, cap, "%.*s", (int)n, hostport);
}

bool sim_sinks_start(struct sim_world *w, char *err, size_t errlen)
{
	struct sim_sinks *k = &w->sinks;
	pthread_mutex_init(&k->lock, NULL);
	if (pipe2(k->stop_pipe, O_CLOEXEC) != 0) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		return false;
	}
	char cert[700], key[700];
	snprintf(cert, sizeof(cert), "%s/meshsim.pem", w->admin_tls);
	snprintf(key, sizeof(key), "%s/meshsim.key", w->admin_tls);
	SSL_CTX *tls = SSL_CTX_new(TLS_server_method());
	if (tls == NULL || SSL_CTX_use_certificate_chain_file(tls, cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(tls, key, SSL_FILETYPE_PEM) != 1) {
		SSL_CTX_free(tls);
		snprintf(err, errlen, "the sinks' TLS context (%s): cannot load", cert);
		return false;
	}
	k->tls = tls;
	const struct mm_table *t = &w->dir.table;
	for (size_t g = 0; g < t->n; g++)
		for (size_t c = 0; c < t->entries[g]->n_connectors; c++) {
			const char *sh = t->entries[g]->connectors[c]->smart_host;
			if (sh == NULL || sh[0] == '\0')
				continue;
			char host[48];
			int port;
			split(sh, host, sizeof(host), &port);
			bool dup = false;
			for (size_t i = 0; i < k->n; i++)
				dup |= strcmp(k->s[i].host, host) == 0 && k->s[i].port == port;
			if (dup)
				continue;
			k->s = mm_xrealloc(k->s, k->n + 1, sizeof(*k->s));
			struct sim_sink *s = &k->s[k->n];
			*s = (struct sim_sink){.port = port, .lfd = listen_on(host, port)};
			snprintf(s->host, sizeof(s->host), "%s", host);
			if (s->lfd < 0) {
				snprintf(err, errlen,
				         "the sink for smart host %s: cannot listen: %s", sh,
				         strerror(errno));
				return false;
			}
			k->n++;
		}
	for (size_t i = 0; i < k->n; i++) {
		struct acceptor *a = mm_xmalloc(sizeof(*a));
		*a = (struct acceptor){.w = w, .i = i};
		if (pthread_create(&k->s[i].thread, NULL, acceptor, a) != 0) {
			free(a);
			snprintf(err, errlen, "pthread_create failed");
			return false;
		}
		k->s[i].running = true;
	}
	return true;
}

void sim_sinks_stop(struct sim_world *w)
{
	struct sim_sinks *k = &w->sinks;
	if (k->stop_pipe[1] > 0) {
		if (write(k->stop_pipe[1], "x", 1) != 1)
			return;
	}
	for (size_t i = 0; i < k->n; i++)
		if (k->s[i].running) {
			pthread_join(k->s[i].thread, NULL);
			k->s[i].running = false;
		}
	/* the daemons are gone: their sessions end at once (at most the
	 * idle time of one that hangs) */
	for (int i = 0; i < SINK_IDLE_MS / 10; i++) {
		pthread_mutex_lock(&k->lock);
		unsigned active = k->active;
		pthread_mutex_unlock(&k->lock);
		if (active == 0)
			break;
		usleep(10000);
	}
	SSL_CTX_free(k->tls);
	k->tls = NULL;
	if (k->stop_pipe[1] > 0) {
		close(k->stop_pipe[0]);
		close(k->stop_pipe[1]);
		k->stop_pipe[0] = k->stop_pipe[1] = -1;
	}
}

void sim_sink_refuse(struct sim_world *w, const char *hostport, bool refuse)
{
	char host[48];
	int port;
	split(hostport, host, sizeof(host), &port);
	pthread_mutex_lock(&w->sinks.lock);
	for (size_t i = 0; i < w->sinks.n; i++)
		if (strcmp(w->sinks.s[i].host, host) == 0 && w->sinks.s[i].port == port)
			w->sinks.s[i].refusing = refuse;
	pthread_mutex_unlock(&w->sinks.lock);
}

void sim_sink_disown(struct sim_world *w, const char *hostport)
{
	char host[48];
	int port;
	split(hostport, host, sizeof(host), &port);
	for (size_t i = 0; i < w->sinks.n; i++)
		if (strcmp(w->sinks.s[i].host, host) == 0 && w->sinks.s[i].port == port)
			w->sinks.s[i].chaos = false;
}
