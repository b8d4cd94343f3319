/* Who may hold a TLS handshake slot on a 691 listener (docs/decisions.md,
 * "691 handshake slots"). Anyone may open a TCP connection, and one that
 * has not finished its handshake costs a descriptor and our key exchange
 * for up to one dead interval, so their number is bounded; this is the
 * policy that keeps a flood from using the bound to shut everyone else out:
 *
 *   - the routing addresses of the directory's servers and masters (the
 *     daemon hands them over, and again on SIGHUP) have MM_ADMIT_RESERVED
 *     slots that no one else may take, and their handshakes are never
 *     dropped to make room;
 *   - a handshake from anywhere else that finds the slots full drops one
 *     in progress from another address outside the directory, picked at
 *     random with a lean towards the address that holds the most: a few
 *     busy addresses lose their own handshakes, not a newcomer's;
 *   - one address holds at most MM_ADMIT_PER_ADDRESS slots; IPv6 counts per
 *     /64, the block one host is given.
 *
 * Pure: no I/O, no clock; the caller brings the randomness. */
#ifndef MM_ADMIT_H
#define MM_ADMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define MM_ADMIT_MAX         256
#define MM_ADMIT_RESERVED    64
#define MM_ADMIT_PER_ADDRESS 8
/* handshakes looked at to choose the one dropped */
#define MM_ADMIT_SAMPLES 4

/* An address: 4 bytes (IPv4, also an IPv4-mapped IPv6 address), 16
 * (IPv6), or 8 (an IPv6 /64, as counted). */
struct mm_ip {
	uint8_t len;
	uint8_t b[16];
};

bool mm_ip_from_sockaddr(const struct sockaddr *sa, struct mm_ip *ip);
/* "ip", "ip:port", "[ip6]:port" or "ip6"; false when it is none. */
bool mm_ip_parse(const char *s, struct mm_ip *ip);
bool mm_ip_eq(const struct mm_ip *a, const struct mm_ip *b);
/* What the bounds count: ip itself, or its /64. */
struct mm_ip mm_ip_key(const struct mm_ip *ip);
/* For the log: "192.0.2.1", "2001:db8::1", "2001:db8:1:2::/64". */
const char *mm_ip_str(const struct mm_ip *ip, char *out, size_t n);

/* A set of addresses, each with how many directory objects are there. */
struct mm_ipset {
	struct mm_ipset_item {
		struct mm_ip ip;
		uint32_t objects;
	} * items; /* sorted */
	size_t n;
};

/* The set of those of addresses[0..n) that parse ("ip:port" each). */
void mm_ipset_build(struct mm_ipset *s, const char *const *addresses, size_t n);
void mm_ipset_free(struct mm_ipset *s);
/* How many of the set's objects are at ip (0: not in the set). */
uint32_t mm_ipset_objects(const struct mm_ipset *s, const struct mm_ip *ip);

/* The handshakes in progress. */
struct mm_admit {
	struct mm_admit_slot {
		struct mm_ip key; /* mm_ip_key of its address */
		bool trusted;     /* from a directory routing address */
		uint64_t seq;     /* order of arrival */
		uint32_t conn;
	} s[MM_ADMIT_MAX];
	uint32_t n, nuntrusted;
	uint64_t seq;
};

enum mm_admit_verdict {
	MM_ADMIT_OK,          /* take a free slot */
	MM_ADMIT_EVICT,       /* take the slot of *victim, dropped first */
	MM_ADMIT_REFUSE_ADDR, /* its address holds MM_ADMIT_PER_ADDRESS already */
	MM_ADMIT_REFUSE_FULL, /* every slot held by the directory's addresses */
};

/* May a handshake from key (an mm_ip_key) start? rnd: a fresh random
 * number, which chooses the victim. */
enum mm_admit_verdict mm_admit_check(const struct mm_admit *a, const struct mm_ip *key,
                                     bool trusted, uint64_t rnd, uint32_t *victim);
void mm_admit_add(struct mm_admit *a, const struct mm_ip *key, bool trusted, uint32_t conn);
/* The handshake of conn is over (done, failed or dropped). */
void mm_admit_del(struct mm_admit *a, uint32_t conn);
uint32_t mm_admit_from(const struct mm_admit *a, const struct mm_ip *key);

#endif
