/* The 691 listener's policy, alone (net/admit.h, net/repeat.h), and the
 * frame reader's Hello limit (proto/frame.h): who may hold a handshake
 * slot under a flood, a failure said once, a first frame refused from its
 * header. No sockets, no clock. Each test names, in a comment, the
 * mutation it was seen to catch. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "admit.h"
#include "frame.h"
#include "repeat.h"

static struct mm_ip ip(const char *s)
{
	struct mm_ip a;
	assert_true(mm_ip_parse(s, &a));
	return a;
}

static struct mm_ip key(const char *s)
{
	struct mm_ip a = ip(s);
	return mm_ip_key(&a);
}

/* The n-th of 256 IPv4 addresses 10.0.X.Y outside any directory. */
static struct mm_ip nth(unsigned i)
{
	char s[32];
	snprintf(s, sizeof(s), "10.0.%u.%u", i / 250, i % 250 + 1);
	return key(s);
}

/* --- addresses ---------------------------------------------------------- */

/* (mutation: mm_ip_key returning the IPv6 address whole -- two addresses
 * of one /64 count apart) */
static void test_addresses(void **state)
{
	(void)state;
	char buf[64];
	struct mm_ip a = ip("127.0.0.1:691"), b = ip("::ffff:127.0.0.1"), c = ip("[::1]:691");
	assert_int_equal(a.len, 4);
	assert_true(mm_ip_eq(&a, &b));
	assert_int_equal(c.len, 16);
	assert_string_equal(mm_ip_str(&c, buf, sizeof(buf)), "::1");
	struct mm_ip k1 = key("[2001:db8:0:1::1]:691"), k2 = key("2001:db8:0:1:ffff::2"),
	             k3 = key("2001:db8:0:2::1");
	assert_true(mm_ip_eq(&k1, &k2));
	assert_false(mm_ip_eq(&k1, &k3));
	assert_string_equal(mm_ip_str(&k1, buf, sizeof(buf)), "2001:db8:0:1::/64");
	struct mm_ip x;
	assert_false(mm_ip_parse("not-an-address:691", &x));
	assert_false(mm_ip_parse(":691", &x));
	assert_false(mm_ip_parse("[::1:691", &x));

	const char *dir[] = {"192.0.2.1:691", "192.0.2.1:6910", "[2001:db8::5]:691", "junk"};
	struct mm_ipset s;
	mm_ipset_build(&s, dir, 4);
	assert_int_equal(s.n, 2);
	struct mm_ip d1 = ip("192.0.2.1"), d2 = ip("2001:db8::5"), d3 = ip("2001:db8::6");
	assert_int_equal(mm_ipset_objects(&s, &d1), 2);
	assert_int_equal(mm_ipset_objects(&s, &d2), 1);
	assert_int_equal(mm_ipset_objects(&s, &d3), 0); /* the directory is exact */
	mm_ipset_free(&s);
}

/* --- the slots ------------------------------------------------------------ */

static void fill(struct mm_admit *a, unsigned from, unsigned n, bool trusted, uint32_t conn0)
{
	for (unsigned i = 0; i < n; i++) {
		struct mm_ip k = nth(from + i / MM_ADMIT_PER_ADDRESS);
		uint32_t v;
		assert_int_equal(mm_admit_check(a, &k, trusted, i, &v), MM_ADMIT_OK);
		mm_admit_add(a, &k, trusted, conn0 + i);
	}
}

/* (mutation: mm_admit_check without the per-address bound -- the ninth
 * handshake of one address, and of one IPv6 /64, is let in) */
static void test_per_address(void **state)
{
	(void)state;
	static struct mm_admit a;
	a = (struct mm_admit){0};
	uint32_t v;
	fill(&a, 0, MM_ADMIT_PER_ADDRESS, false, 1);
	struct mm_ip k = nth(0), other = nth(1);
	assert_int_equal(mm_admit_check(&a, &k, false, 1, &v), MM_ADMIT_REFUSE_ADDR);
	assert_int_equal(mm_admit_check(&a, &other, false, 1, &v), MM_ADMIT_OK);
	mm_admit_del(&a, 1);
	assert_int_equal(mm_admit_check(&a, &k, false, 1, &v), MM_ADMIT_OK);

	a = (struct mm_admit){0};
	for (unsigned i = 0; i < MM_ADMIT_PER_ADDRESS; i++) {
		char s[64];
		snprintf(s, sizeof(s), "2001:db8:0:7::%x", i + 1);
		struct mm_ip k6 = key(s);
		assert_int_equal(mm_admit_check(&a, &k6, false, 1, &v), MM_ADMIT_OK);
		mm_admit_add(&a, &k6, false, 100 + i);
	}
	struct mm_ip next = key("2001:db8:0:7::99");
	assert_int_equal(mm_admit_check(&a, &next, false, 1, &v), MM_ADMIT_REFUSE_ADDR);
}

/* (mutation: MM_ADMIT_RESERVED 0 in mm_admit_check -- a flood from
 * outside the directory takes all 256 slots, and the 193rd handshake from
 * outside is let in without dropping one) */
static void test_reserved(void **state)
{
	(void)state;
	static struct mm_admit a;
	a = (struct mm_admit){0};
	uint32_t v = 0;
	unsigned outside = MM_ADMIT_MAX - MM_ADMIT_RESERVED;
	fill(&a, 0, outside, false, 1);
	struct mm_ip newcomer = nth(100);
	assert_int_equal(mm_admit_check(&a, &newcomer, false, 7, &v), MM_ADMIT_EVICT);
	assert_true(v >= 1 && v <= outside);
	/* the directory's addresses find their room free */
	fill(&a, 50, MM_ADMIT_RESERVED, true, 1000);
	assert_int_equal(a.n, MM_ADMIT_MAX);
	struct mm_ip member = nth(90);
	assert_int_equal(mm_admit_check(&a, &member, true, 7, &v), MM_ADMIT_EVICT);
	assert_true(v >= 1 && v <= outside); /* one from outside makes room */

	/* every slot the directory's: refused, nothing dropped */
	a = (struct mm_admit){0};
	fill(&a, 0, MM_ADMIT_MAX, true, 1);
	assert_int_equal(mm_admit_check(&a, &member, true, 7, &v), MM_ADMIT_REFUSE_FULL);
	assert_int_equal(mm_admit_check(&a, &newcomer, false, 7, &v), MM_ADMIT_REFUSE_FULL);
}

/* The directory's handshakes are never dropped, and a newcomer holding
 * one slot beside addresses holding eight is never the one dropped.
 * (mutations: nth_untrusted counting every slot -- a directory handshake
 * is chosen; choose_victim keeping its first sample -- the newcomer's is
 * dropped about once in 192 choices) */
static void test_victims(void **state)
{
	(void)state;
	static struct mm_admit a;
	a = (struct mm_admit){0};
	unsigned outside = MM_ADMIT_MAX - MM_ADMIT_RESERVED;
	fill(&a, 50, MM_ADMIT_RESERVED, true, 1000); /* the first slots */
	fill(&a, 0, outside - 1, false, 1);          /* 23 addresses of 8, one of 7 */
	struct mm_ip admin = nth(200);
	mm_admit_add(&a, &admin, false, 5000);
	struct mm_ip newcomer = nth(201);
	unsigned per[MM_ADMIT_MAX] = {0};
	for (uint64_t r = 0; r < 20000; r++) {
		uint32_t v = 0;
		assert_int_equal(mm_admit_check(&a, &newcomer, false, r, &v), MM_ADMIT_EVICT);
		assert_int_not_equal(v, 5000);
		assert_true(v < 1000); /* never the directory's */
		per[v % MM_ADMIT_MAX]++;
	}
	/* and it is random: many different ones are chosen */
	unsigned distinct = 0;
	for (unsigned i = 0; i < MM_ADMIT_MAX; i++)
		distinct += per[i] > 0;
	assert_true(distinct > 100);
}

/* --- a failure said once --------------------------------------------------- */

/* (mutations: mm_repeat_failed without the QUIET branch -- the second
 * failure is said again; mm_repeat_ok not forgetting the streak -- the
 * failure after it is quiet) */
static void test_repeat(void **state)
{
	(void)state;
	static struct mm_repeat r;
	r = (struct mm_repeat){0};
	char line[512];
	const char *who = "master LAB-RGM at 192.0.2.1:691";
	int64_t t0 = 1000000, wall = 1796122229000;
	assert_int_equal(mm_repeat_failed(&r, who, "connection refused", t0, wall, line, 512),
	                 MM_REPEAT_NEW);
	assert_string_equal(line, "");
	for (int i = 1; i < 24; i++)
		assert_int_equal(mm_repeat_failed(&r, who, "connection refused", t0 + i * 2500,
		                                  wall + i * 2500, line, 512),
		                 MM_REPEAT_QUIET);
	assert_int_equal(
	    mm_repeat_failed(&r, who, "connection refused", t0 + 60000, wall + 60000, line, 512),
	    MM_REPEAT_SUMMARY);
	assert_string_equal(line, "master LAB-RGM at 192.0.2.1:691: connection refused again "
	                          "(25 times since 2026-12-01T10:50:29Z)");
	assert_int_equal(
	    mm_repeat_failed(&r, who, "connection refused", t0 + 62500, wall + 62500, line, 512),
	    MM_REPEAT_QUIET);
	/* another reason: news, and the end of the streak before it */
	assert_int_equal(
	    mm_repeat_failed(&r, who, "timed out", t0 + 65000, wall + 65000, line, 512),
	    MM_REPEAT_NEW);
	assert_string_equal(line, "master LAB-RGM at 192.0.2.1:691: connection refused 26 times "
	                          "since 2026-12-01T10:50:29Z");
	assert_int_equal(
	    mm_repeat_failed(&r, who, "timed out", t0 + 66000, wall + 66000, line, 512),
	    MM_REPEAT_QUIET);
	assert_true(mm_repeat_ok(&r, who, line, 512));
	assert_string_equal(line, "master LAB-RGM at 192.0.2.1:691: works again after 2 failures "
	                          "since 2026-12-01T10:51:34Z (timed out)");
	assert_int_equal(
	    mm_repeat_failed(&r, who, "timed out", t0 + 70000, wall + 70000, line, 512),
	    MM_REPEAT_NEW);
	assert_false(mm_repeat_ok(&r, who, line, 512)); /* once: nothing to say */
	assert_false(mm_repeat_ok(&r, "nobody", line, 512));
	/* more peers than slots: each still said the first time */
	for (int i = 0; i < 2 * MM_REPEAT_SLOTS; i++) {
		char k[32];
		snprintf(k, sizeof(k), "peer %d", i);
		assert_int_equal(mm_repeat_failed(&r, k, "x", t0, wall, line, 512), MM_REPEAT_NEW);
	}
}

/* --- the reader's Hello limit ------------------------------------------------ */

static size_t header(uint8_t *p, uint32_t len)
{
	p[0] = (uint8_t)(len >> 24);
	p[1] = (uint8_t)(len >> 16);
	p[2] = (uint8_t)(len >> 8);
	p[3] = (uint8_t)len;
	return 4;
}

/* A Hello frame, then (in the same bytes) a header announcing `next`. */
static size_t hello_then(uint8_t *buf, uint32_t next)
{
	Mailmesh__Hello h = MAILMESH__HELLO__INIT;
	h.name = (char *)"admin";
	h.group = (char *)"";
	h.proto_major = 1;
	Mailmesh__Frame f = MAILMESH__FRAME__INIT;
	f.body_case = MAILMESH__FRAME__BODY_HELLO;
	f.hello = &h;
	size_t len;
	uint8_t *b = mm_frame_encode(&f, &len);
	memcpy(buf, b, len);
	free(b);
	return len + header(buf + len, next);
}

/* (mutations: mm_frame_feed checking every header against first_limit --
 * a push announced in the bytes after the Hello is refused; mm_frame_next
 * not marking the first frame taken -- the same) */
static void test_hello_limit(void **state)
{
	(void)state;
	struct mm_frame_reader r;
	uint8_t buf[256];
	mm_frame_reader_init(&r, MM_FRAME_LIMIT_DEFAULT);
	mm_frame_reader_first(&r, 64u << 10);
	assert_int_equal(mm_frame_feed(&r, buf, header(buf, 8u << 20)), MM_FRAME_TOO_BIG);
	mm_frame_reader_free(&r);

	mm_frame_reader_init(&r, MM_FRAME_LIMIT_DEFAULT);
	mm_frame_reader_first(&r, 64u << 10);
	assert_int_equal(mm_frame_feed(&r, buf, header(buf, 64u << 10)), MM_FRAME_NEED_MORE);
	mm_frame_reader_free(&r);

	mm_frame_reader_init(&r, MM_FRAME_LIMIT_DEFAULT);
	mm_frame_reader_first(&r, 64u << 10);
	size_t n = hello_then(buf, 8u << 20);
	assert_int_equal(mm_frame_feed(&r, buf, n), MM_FRAME_NEED_MORE);
	Mailmesh__Frame *f = NULL;
	assert_int_equal(mm_frame_next(&r, &f), MM_FRAME_OK);
	assert_int_equal(f->body_case, MAILMESH__FRAME__BODY_HELLO);
	mailmesh__frame__free_unpacked(f, NULL);
	assert_int_equal(mm_frame_feed(&r, buf, header(buf, 1)), MM_FRAME_NEED_MORE);
	mm_frame_reader_free(&r);

	/* without it, as before: the limit alone */
	mm_frame_reader_init(&r, MM_FRAME_LIMIT_DEFAULT);
	assert_int_equal(mm_frame_feed(&r, buf, header(buf, 8u << 20)), MM_FRAME_NEED_MORE);
	mm_frame_reader_free(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_addresses), cmocka_unit_test(test_per_address),
	    cmocka_unit_test(test_reserved),  cmocka_unit_test(test_victims),
	    cmocka_unit_test(test_repeat),    cmocka_unit_test(test_hello_limit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
