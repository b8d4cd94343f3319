#include "admit.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"

/* --- addresses ------------------------------------------------------------ */

static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static void from_v6(const uint8_t b[16], struct mm_ip *ip)
{
	/* a dual-stack listener sees IPv4 peers as ::ffff:a.b.c.d: the same
	 * host as a.b.c.d, counted as one */
	if (memcmp(b, v4mapped, sizeof(v4mapped)) == 0) {
		*ip = (struct mm_ip){.len = 4};
		memcpy(ip->b, b + 12, 4);
		return;
	}
	*ip = (struct mm_ip){.len = 16};
	memcpy(ip->b, b, 16);
}

bool mm_ip_from_sockaddr(const struct sockaddr *sa, struct mm_ip *ip)
{
	if (sa->sa_family == AF_INET) {
		*ip = (struct mm_ip){.len = 4};
		memcpy(ip->b, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		return true;
	}
	if (sa->sa_family == AF_INET6) {
		from_v6(((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr, ip);
		return true;
	}
	return false;
}

bool mm_ip_parse(const char *s, struct mm_ip *ip)
{
	char host[64];
	const char *first = strchr(s, ':'), *last = strrchr(s, ':');
	size_t len = strlen(s);
	if (s[0] == '[') { /* [ip6]:port */
		const char *end = strchr(s, ']');
		if (end == NULL)
			return false;
		len = (size_t)(end - s - 1);
		s++;
	} else if (first != NULL && first == last) { /* ip:port */
		len = (size_t)(first - s);
	}
	if (len == 0 || len >= sizeof(host))
		return false;
	memcpy(host, s, len);
	host[len] = '\0';
	uint8_t b[16];
	if (inet_pton(AF_INET, host, b) == 1) {
		*ip = (struct mm_ip){.len = 4};
		memcpy(ip->b, b, 4);
		return true;
	}
	if (inet_pton(AF_INET6, host, b) == 1) {
		from_v6(b, ip);
		return true;
	}
	return false;
}

bool mm_ip_eq(const struct mm_ip *a, const struct mm_ip *b)
{
	return a->len == b->len && memcmp(a->b, b->b, a->len) == 0;
}

struct mm_ip mm_ip_key(const struct mm_ip *ip)
{
	struct mm_ip k = *ip;
	if (ip->len == 16) {
		/* a host is given a /64: its addresses there are one peer */
		k.len = 8;
		memset(k.b + 8, 0, 8);
	}
	return k;
}

const char *mm_ip_str(const struct mm_ip *ip, char *out, size_t n)
{
	char a[INET6_ADDRSTRLEN];
	if (ip->len == 4) {
		inet_ntop(AF_INET, ip->b, a, sizeof(a));
		snprintf(out, n, "%s", a);
	} else {
		uint8_t b[16] = {0};
		memcpy(b, ip->b, ip->len);
		inet_ntop(AF_INET6, b, a, sizeof(a));
		snprintf(out, n, "%s%s", a, ip->len == 8 ? "/64" : "");
	}
	return out;
}

/* --- the directory's addresses ---------------------------------------------- */

static int ip_cmp(const struct mm_ip *a, const struct mm_ip *b)
{
	if (a->len != b->len)
		return a->len < b->len ? -1 : 1;
	return memcmp(a->b, b->b, a->len);
}

static int item_cmp(const void *a, const void *b)
{
	return ip_cmp(&((const struct mm_ipset_item *)a)->ip,
	              &((const struct mm_ipset_item *)b)->ip);
}

void mm_ipset_build(struct mm_ipset *s, const char *const *addresses, size_t n)
{
	*s = (struct mm_ipset){.items = mm_xcalloc(n ? n : 1, sizeof(*s->items))};
	for (size_t i = 0; i < n; i++)
		if (mm_ip_parse(addresses[i], &s->items[s->n].ip))
			s->items[s->n++].objects = 1;
	qsort(s->items, s->n, sizeof(*s->items), item_cmp);
	/* one item per address, counting the objects there */
	size_t k = 0;
	for (size_t i = 0; i < s->n; i++) {
		if (k > 0 && mm_ip_eq(&s->items[k - 1].ip, &s->items[i].ip))
			s->items[k - 1].objects++;
		else
			s->items[k++] = s->items[i];
	}
	s->n = k;
}

void mm_ipset_free(struct mm_ipset *s)
{
	free(s->items);
	*s = (struct mm_ipset){0};
}

uint32_t mm_ipset_objects(const struct mm_ipset *s, const struct mm_ip *ip)
{
	struct mm_ipset_item key = {.ip = *ip};
	const struct mm_ipset_item *it =
	    s->n ? bsearch(&key, s->items, s->n, sizeof(*s->items), item_cmp) : NULL;
	return it ? it->objects : 0;
}

/* --- the slots --------------------------------------------------------------- */

uint32_t mm_admit_from(const struct mm_admit *a, const struct mm_ip *key)
{
	uint32_t k = 0;
	for (uint32_t i = 0; i < a->n; i++)
		k += mm_ip_eq(&a->s[i].key, key);
	return k;
}

/* splitmix64: one random number gives every sample */
static uint64_t mix(uint64_t *x)
{
	uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

/* The slot of the k-th handshake from outside the directory. */
static uint32_t nth_untrusted(const struct mm_admit *a, uint32_t k)
{
	for (uint32_t i = 0; i < a->n; i++)
		if (!a->s[i].trusted && k-- == 0)
			return i;
	return 0; /* not reached: k < nuntrusted */
}

/* Random samples from outside the directory; of those, the one whose
 * address holds the most slots, the oldest of equals. A flood from a few
 * addresses thus loses its own handshakes, and one from many addresses
 * (each holding one) loses at random: either way a newcomer's handshake,
 * which takes a few milliseconds, is very unlikely to be dropped before it
 * is done. */
static uint32_t choose_victim(const struct mm_admit *a, uint64_t rnd)
{
	uint32_t best = 0, best_count = 0;
	for (int i = 0; i < MM_ADMIT_SAMPLES; i++) {
		uint32_t s = nth_untrusted(a, (uint32_t)(mix(&rnd) % a->nuntrusted));
		uint32_t count = mm_admit_from(a, &a->s[s].key);
		if (i == 0 || count > best_count ||
		    (count == best_count && a->s[s].seq < a->s[best].seq)) {
			best = s;
			best_count = count;
		}
	}
	return best;
}

enum mm_admit_verdict mm_admit_check(const struct mm_admit *a, const struct mm_ip *key,
                                     bool trusted, uint64_t rnd, uint32_t *victim)
{
	if (mm_admit_from(a, key) >= MM_ADMIT_PER_ADDRESS)
		return MM_ADMIT_REFUSE_ADDR;
	bool full =
	    a->n >= MM_ADMIT_MAX || (!trusted && a->nuntrusted >= MM_ADMIT_MAX - MM_ADMIT_RESERVED);
	if (!full)
		return MM_ADMIT_OK;
	if (a->nuntrusted == 0)
		return MM_ADMIT_REFUSE_FULL;
	*victim = a->s[choose_victim(a, rnd)].conn;
	return MM_ADMIT_EVICT;
}

void mm_admit_add(struct mm_admit *a, const struct mm_ip *key, bool trusted, uint32_t conn)
{
	if (a->n >= MM_ADMIT_MAX)
		return; /* the caller checked first */
	a->s[a->n++] =
	    (struct mm_admit_slot){.key = *key, .trusted = trusted, .seq = ++a->seq, .conn = conn};
	a->nuntrusted += !trusted;
}

void mm_admit_del(struct mm_admit *a, uint32_t conn)
{
	for (uint32_t i = 0; i < a->n; i++)
		if (a->s[i].conn == conn) {
			a->nuntrusted -= !a->s[i].trusted;
			a->s[i] = a->s[--a->n];
			return;
		}
}
