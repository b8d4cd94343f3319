/* tls_probe: node/tls.c's routing contexts and identity checks on a real
 * socket, for tests/integration/pki.py to drive against the openssl tool
 * (until the 691 engine itself uses them).
 *
 *   tls_probe serve DIR NAME IP:PORT [KIND CLAIM]
 *       accept one connection with the routing accept context; print the
 *       protocol and the peer's identity; with KIND CLAIM also check it
 *       as a Hello claiming (KIND, CLAIM) would be checked
 *   tls_probe serve-smtp DIR NAME IP:PORT
 *       the same with the SMTP server context, which lets any certificate
 *       finish the handshake: the identity of one that does not verify
 *       must read as none
 *   tls_probe dial DIR NAME IP:PORT KIND EXPECT
 *       dial with the routing dial context and check that the peer is the
 *       object dialled (KIND, EXPECT)
 *   tls_probe check DIR
 *       the daemons' start check of a --tls directory
 *
 * Exit: 0 ok, 1 the handshake failed, 2 the identity check refused,
 * 64 usage, 69 no connection, 78 the start check refused, 70 otherwise. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "tls.h"

static bool address(const char *s, struct sockaddr_in *sa)
{
	char host[64];
	const char *colon = strrchr(s, ':');
	if (colon == NULL || (size_t)(colon - s) >= sizeof(host))
		return false;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	*sa = (struct sockaddr_in){.sin_family = AF_INET,
	                           .sin_port = htons((uint16_t)atoi(colon + 1))};
	return inet_pton(AF_INET, host, &sa->sin_addr) == 1;
}

static bool kind_of(const char *s, enum mm_cert_kind *k)
{
	for (int i = MM_CERT_SERVER; i <= MM_CERT_ADMIN; i++) {
		if (strcmp(s, mm_cert_kind_name((enum mm_cert_kind)i)) == 0) {
			*k = (enum mm_cert_kind)i;
			return true;
		}
	}
	return false;
}

static void show_peer(SSL *ssl)
{
	char name[MM_CERT_NAME_MAX + 1];
	enum mm_cert_kind kind;
	printf("protocol %s\n", SSL_get_version(ssl));
	if (mm_tls_peer_identity(ssl, name, sizeof(name), &kind))
		printf("identity %s %s\n", mm_cert_kind_name(kind), name);
	else
		printf("identity none\n");
}

static int expect(SSL *ssl, const char *kind, const char *name)
{
	enum mm_cert_kind k;
	char err[512];
	if (!kind_of(kind, &k)) {
		fprintf(stderr, "tls_probe: %s: not a kind\n", kind);
		return EX_USAGE;
	}
	if (!mm_tls_expect_peer(ssl, k, name, err, sizeof(err))) {
		printf("expect refused: %s\n", err);
		return 2;
	}
	printf("expect ok\n");
	return 0;
}

static int handshake_failed(void)
{
	char buf[256];
	ERR_error_string_n(ERR_get_error(), buf, sizeof(buf));
	printf("handshake failed: %s\n", buf);
	return 1;
}

static int serve(SSL_CTX *ctx, const struct sockaddr_in *sa, int argc, char **argv)
{
	int one = 1, ls = socket(AF_INET, SOCK_STREAM, 0), rc = EX_SOFTWARE;
	if (ls < 0 || setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    bind(ls, (const struct sockaddr *)sa, sizeof(*sa)) != 0 || listen(ls, 1) != 0) {
		fprintf(stderr, "tls_probe: listen: %s\n", strerror(errno));
		return EX_UNAVAILABLE;
	}
	printf("listening\n");
	fflush(stdout);
	alarm(30); /* a test that never connects does not hang the suite */
	int fd = accept(ls, NULL, NULL);
	close(ls);
	if (fd < 0)
		return EX_UNAVAILABLE;
	SSL *ssl = SSL_new(ctx);
	SSL_set_fd(ssl, fd);
	if (SSL_accept(ssl) != 1) {
		rc = handshake_failed();
	} else {
		show_peer(ssl);
		rc = argc == 7 ? expect(ssl, argv[5], argv[6]) : 0;
		SSL_shutdown(ssl);
	}
	SSL_free(ssl);
	close(fd);
	return rc;
}

static int dial(SSL_CTX *ctx, const struct sockaddr_in *sa, const char *kind, const char *name)
{
	int fd = -1;
	/* the openssl s_server of the test may still be starting */
	for (int i = 0; i < 200 && fd < 0; i++) {
		fd = socket(AF_INET, SOCK_STREAM, 0);
		if (fd >= 0 && connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) != 0) {
			close(fd);
			fd = -1;
			nanosleep(&(struct timespec){0, 50000000}, NULL);
		}
	}
	if (fd < 0)
		return EX_UNAVAILABLE;
	SSL *ssl = SSL_new(ctx);
	SSL_set_fd(ssl, fd);
	int rc;
	if (SSL_connect(ssl) != 1) {
		rc = handshake_failed();
	} else {
		show_peer(ssl);
		rc = expect(ssl, kind, name);
		SSL_shutdown(ssl);
	}
	SSL_free(ssl);
	close(fd);
	return rc;
}

int main(int argc, char **argv)
{
	char err[4096 + 512];
	struct sockaddr_in sa;
	if (argc == 3 && strcmp(argv[1], "check") == 0) {
		if (!mm_tls_check_dir(argv[2], err, sizeof(err))) {
			printf("refused: %s\n", err);
			return EX_CONFIG;
		}
		printf("ok\n");
		return 0;
	}
	bool smtp = argc == 5 && strcmp(argv[1], "serve-smtp") == 0;
	bool srv = argc >= 5 && strcmp(argv[1], "serve") == 0 && (argc == 5 || argc == 7);
	bool cli = argc == 7 && strcmp(argv[1], "dial") == 0;
	if ((!srv && !cli && !smtp) || !address(argv[4], &sa)) {
		fprintf(stderr, "usage: tls_probe serve DIR NAME IP:PORT [KIND CLAIM]\n"
		                "       tls_probe serve-smtp DIR NAME IP:PORT\n"
		                "       tls_probe dial DIR NAME IP:PORT KIND EXPECT\n"
		                "       tls_probe check DIR\n");
		return EX_USAGE;
	}
	int rc;
	if (smtp) {
		struct mm_tls st;
		if (!mm_tls_init(&st, argv[2], argv[3], err, sizeof(err))) {
			fprintf(stderr, "tls_probe: %s\n", err);
			rc = EX_CONFIG;
		} else {
			rc = serve(st.server, &sa, argc, argv);
		}
		mm_tls_free(&st);
		return rc;
	}
	struct mm_tls_routing t;
	if (!mm_tls_routing_init(&t, argv[2], argv[3], err, sizeof(err))) {
		fprintf(stderr, "tls_probe: %s\n", err);
		rc = EX_CONFIG;
	} else if (srv) {
		rc = serve(t.accept, &sa, argc, argv);
	} else {
		rc = dial(t.dial, &sa, argv[5], argv[6]);
	}
	mm_tls_routing_free(&t);
	fflush(stdout);
	return rc;
}
