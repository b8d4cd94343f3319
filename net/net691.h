/* The routing-engine transport, TCP 691 (docs/protocol.md "Transport"),
 * on libevent: what meshnode and rgmaster both need to carry their pure
 * machines' bytes -- a listener, dialled connections, mutual TLS 1.3 with
 * the organization's certificates (node/tls.h routing contexts), the
 * peer's certificate identity, an ordered write queue and a close that
 * flushes first. It knows nothing of frames or machines: bytes in, bytes
 * out, and three events.
 *
 * Connection numbers: the caller numbers what it dials (any number with
 * the top bit set, MM_NET_OUT); the transport numbers what it accepts
 * (top bit clear). Every event comes from a libevent callback, never from
 * inside an mm_net_* call: a dial that fails at once is reported on the
 * next turn of the loop. After mm_net_close no event comes for that
 * connection. A connection that has not finished its TLS handshake within
 * handshake_ms is dropped (an accepted one silently, a dialled one with a
 * closed event).
 *
 * Bounds at the listener, since anyone may open a TCP connection: the
 * handshakes in progress (admit.h: reserved room for the directory's
 * routing addresses, a newcomer drops a handshake of a busy address when
 * the slots are full), the connections from one address and from outside
 * the directory (conn_per_address, conn_max). What they refuse is counted
 * and reported at most once a minute; a failure of the same peer again is
 * said once with a count (repeat.h). */
#ifndef MM_NET691_H
#define MM_NET691_H

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "admit.h"
#include "repeat.h"
#include "tls.h"
#include "u64map.h"

#define MM_NET_OUT 0x80000000u

/* The peer's certificate (URI:mailmesh:<kind>:<name>); none when insecure. */
struct mm_net_peer {
	enum mm_cert_kind kind;
	char name[MM_CERT_NAME_MAX + 1];
};

struct mm_net_ops {
	void *ctx;
	/* The connection is up (TLS done). peer: the certificate's identity,
	 * NULL without TLS. For a dialled connection, a certificate that does
	 * not name `expect` (given to mm_net_dial) has already closed it. */
	void (*opened)(void *ctx, uint32_t conn, const struct mm_net_peer *peer);
	void (*data)(void *ctx, uint32_t conn, const uint8_t *p, size_t n);
	/* The peer closed, the connection broke, or the dial failed; why in
	 * words ("connection refused", "closed by the peer", "TLS: ...").
	 * A dial that failed as before comes with mm_net_quiet() true. */
	void (*closed)(void *ctx, uint32_t conn, const char *why);
	/* one line, for the daemon's log (peer strings are quoted already) */
	void (*log)(void *ctx, const char *line);
};

/* Output queued to one peer: above HIGH it is not read until the output
 * drains to LOW; above MAX it is closed. A peer that asks and never reads
 * the answers holds at most this much of our memory. */
#define MM_NET_OUT_LOW  (1u << 20)
#define MM_NET_OUT_HIGH (4u << 20)
#define MM_NET_OUT_MAX  (32u << 20)

/* Accepted connections, in their handshake or open: at most conn_max from
 * addresses outside the directory (open ones), and conn_per_address from
 * one address (IPv6: one /64) -- that many for each server or master of
 * the directory at it. The handshakes in progress have their own bound
 * (admit.h). The daemon may change both before it listens. */
#define MM_NET_CONN_MAX         1024
#define MM_NET_CONN_PER_ADDRESS 16

/* What was refused or dropped at the listener since the last report. */
struct mm_net_pressure {
	uint64_t evicted;      /* handshakes dropped to make room (admit.h) */
	uint64_t refused_addr; /* MM_ADMIT_PER_ADDRESS handshakes from one address */
	uint64_t refused_full; /* every slot held by the directory's addresses */
	uint64_t refused_conn; /* over conn_max or conn_per_address */
	uint64_t failed;       /* handshakes that failed, not said one by one */
	char busiest[64];      /* the address of the last handshake dropped */
};

struct mm_net {
	struct event_base *base;
	struct mm_net_ops ops;
	struct mm_tls_routing tls; /* contexts NULL when insecure */
	bool insecure;
	uint32_t handshake_ms;
	uint32_t conn_max, conn_per_address;
	struct evconnlistener *listener;
	struct mm_u64map conns; /* number → struct mm_net_conn */
	uint32_t next_in;
	uint32_t open_outside; /* accepted, open, from outside the directory */
	struct mm_admit admit; /* the handshakes in progress */
	struct mm_ipset dir;   /* the directory's routing addresses */
	uint64_t rng;          /* xorshift64*, seeded from RAND_bytes: who is dropped */
	struct mm_net_pressure pressure;
	int64_t pressure_at; /* monotonic ms of the last report, 0: none yet */
	struct mm_repeat fails;
	uint32_t said;       /* failed handshakes of accepted peers said this minute */
	int64_t said_at;     /* when that minute began */
	bool quiet;          /* inside closed() for a failure said already */
	struct event *later; /* failures found inside a call, told on the next turn */
	struct mm_net_conn *failed;
	struct sockaddr_storage src; /* source address of dialled connections */
	int src_len;
};

/* tls_dir NULL and insecure: plain TCP (tests of the plain path only).
 * self: this daemon's name (its certificate NAME.pem). Returns false with
 * err set. */
bool mm_net_init(struct mm_net *n, struct event_base *base, const struct mm_net_ops *ops,
                 const char *tls_dir, const char *self, bool insecure, char *err, size_t errlen);
void mm_net_free(struct mm_net *n);
/* Listen on "ip:port"; false with err set. */
bool mm_net_listen(struct mm_net *n, const char *address, char *err, size_t errlen);
/* Connect; the peer's certificate must name kind `kind` and `expect`. */
void mm_net_dial(struct mm_net *n, uint32_t conn, const char *address, enum mm_cert_kind kind,
                 const char *expect);
void mm_net_send(struct mm_net *n, uint32_t conn, const uint8_t *p, size_t len);
/* Write out what is queued, then close; no event follows. */
void mm_net_close(struct mm_net *n, uint32_t conn);
/* The source address of dialled connections ("ip" or "ip:0"), so that a
 * peer sees this server's own address; NULL: any. */
void mm_net_bind_source(struct mm_net *n, const char *ip);
/* The routing addresses ("ip:port") of every server and master of the
 * directory: their handshakes have room kept for them (admit.h) and their
 * connection bound is per object. At start and on every SIGHUP. */
void mm_net_set_directory(struct mm_net *n, const char *const *addresses, size_t count);
/* The same from a table: every mmRoutingAddress of its servers and
 * master candidates (net691_dir.c). */
struct mm_table;
void mm_net_directory_table(struct mm_net *n, const struct mm_table *t);
/* True inside the closed event of a dial that failed as the ones before it
 * (repeat.h): the caller's own lines about it are better left unsaid, the
 * transport counts them and says the count once a minute. */
bool mm_net_quiet(const struct mm_net *n);
/* After a new CRL (or CA) is in the contexts: every open connection whose
 * peer's certificate no longer verifies is closed, as a lost one (the
 * owner is told). Returns how many. */
size_t mm_net_recheck(struct mm_net *n);

#endif
