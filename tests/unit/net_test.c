/* The frame reader's Hello limit (proto/frame.h): a first frame refused
 * from its header, the frames after it held to the usual limit. No
 * sockets, no clock. Each test names, in a comment, the mutation it was
 * seen to catch. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "frame.h"

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
	    cmocka_unit_test(test_hello_limit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
