/* libFuzzer target: the TCP 691 frame reader and the link-state table
 * decoder.
 *
 * Input: one flags byte (unused, kept for later), eight piece sizes, then
 * the bytes; every stream below is fed to a reader in pieces of those sizes
 * (cycled), so a frame header or body cut anywhere is the fuzzer's choice.
 * An input shorter than the header is all bytes.
 *
 * 1. The bytes as a stream of frames.
 * 2. The bytes as the body of one frame behind a correct length prefix, so
 *    the protobuf decoder sees every input, not only those that begin with
 *    a length the fuzzer got right.
 * 3. The bytes as an encoded link-state table (the seed corpus holds the
 *    example organization's, tests/fuzz/frame_seed.c): a table that decodes
 *    is encoded again and must decode to the same bytes and digest, and it
 *    goes out as a TablePush frame that is read back in pieces.
 * Every frame read is encoded again and read back (the same bytes), and a
 * TablePush's entries go through the table decoder as a table. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "table.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HEADER 9
#define NPIECE 8
#define LIMIT  (1u << 20)

struct input {
	uint8_t piece[NPIECE];
	const uint8_t *p;
	size_t n;
};

static void die(const char *what)
{
	fprintf(stderr, "frame_fuzz: %s\n", what);
	abort();
}

static void table_bytes(const uint8_t *p, size_t n, bool must);

/* A frame read is written again by mm_frame_encode and read back whole:
 * the second encoding is the first. */
static void reencode(const Mailmesh__Frame *f)
{
	size_t len1;
	uint8_t *b1 = mm_frame_encode(f, &len1);
	if (len1 > 4) { /* an empty body is refused by design */
		struct mm_frame_reader r;
		mm_frame_reader_init(&r, LIMIT);
		Mailmesh__Frame *g = NULL;
		if (mm_frame_feed(&r, b1, len1) != MM_FRAME_NEED_MORE ||
		    mm_frame_next(&r, &g) != MM_FRAME_OK)
			die("an encoded frame does not read back");
		size_t len2;
		uint8_t *b2 = mm_frame_encode(g, &len2);
		if (len2 != len1 || memcmp(b1, b2, len1) != 0)
			die("a frame encodes differently after a round trip");
		free(b2);
		mailmesh__frame__free_unpacked(g, NULL);
		mm_frame_reader_free(&r);
	}
	free(b1);
	if (f->body_case == MAILMESH__FRAME__BODY_TABLE_PUSH) {
		/* its entries as a table, as a node would merge them */
		Mailmesh__LinkStateTable t = MAILMESH__LINK_STATE_TABLE__INIT;
		t.n_groups = f->table_push->n_entries;
		t.groups = f->table_push->entries;
		size_t n = mailmesh__link_state_table__get_packed_size(&t);
		uint8_t *b = malloc(n ? n : 1);
		if (b == NULL)
			abort();
		mailmesh__link_state_table__pack(&t, b);
		table_bytes(b, n, false);
		free(b);
	}
}

/* Feed p in pieces; every whole frame is taken out as soon as it is in.
 * Returns the frames read. */
static size_t read_frames(const struct input *in, const uint8_t *p, size_t n, size_t limit)
{
	struct mm_frame_reader r;
	mm_frame_reader_init(&r, limit);
	size_t frames = 0, k = 0, off = 0;
	do {
		size_t step = (size_t)in->piece[k++ % NPIECE] + 1;
		size_t m = n - off < step ? n - off : step;
		enum mm_frame_status st = mm_frame_feed(&r, p + off, m);
		off += m;
		Mailmesh__Frame *f;
		while (mm_frame_next(&r, &f) == MM_FRAME_OK) {
			frames++;
			reencode(f);
			mailmesh__frame__free_unpacked(f, NULL);
		}
		if (st == MM_FRAME_TOO_BIG || r.error != MM_FRAME_NEED_MORE)
			break;
	} while (off < n);
	mm_frame_reader_free(&r);
	return frames;
}

/* mm_table_decode refuses an entry with a field numbered 0 (see
 * mm_pb_fields_valid): such a table could not survive a round trip. */
static bool table_valid(const struct mm_table *t)
{
	for (size_t i = 0; i < t->n; i++)
		if (!mm_pb_fields_valid(&t->entries[i]->base))
			return false;
	return true;
}

/* p as an encoded table. A table that decodes is canonical (the decoder
 * refuses entries out of order): encoded again, it decodes to the same
 * bytes and digest. must: p is an encoding we made. */
static void table_bytes(const uint8_t *p, size_t n, bool must)
{
	struct mm_table t;
	if (!mm_table_decode(p, n, LIMIT, &t)) {
		if (must)
			die("a table we encoded does not decode");
		return;
	}
	if (!table_valid(&t))
		die("a decoded table holds a field numbered 0");
	uint8_t d1[MM_DIGEST_LEN], d2[MM_DIGEST_LEN];
	mm_table_digest(&t, d1);
	size_t len1, len2;
	uint8_t *b1 = mm_table_encode(&t, &len1);
	struct mm_table u;
	if (!mm_table_decode(b1, len1, LIMIT, &u))
		die("an encoded table does not decode");
	mm_table_digest(&u, d2);
	uint8_t *b2 = mm_table_encode(&u, &len2);
	if (memcmp(d1, d2, sizeof(d1)) != 0 || len1 != len2 || memcmp(b1, b2, len1) != 0)
		die("a table encodes differently after a round trip");
	free(b1);
	free(b2);
	mm_table_free(&u);
	mm_table_free(&t);
}

/* 3: the decoded table as a TablePush frame, read back in pieces. */
static void table_push(const struct input *in)
{
	struct mm_table t;
	if (!mm_table_decode(in->p, in->n, LIMIT, &t))
		return;
	if (!table_valid(&t))
		die("a decoded table holds a field numbered 0");
	table_bytes(in->p, in->n, true);
	uint8_t d[MM_DIGEST_LEN];
	mm_table_digest(&t, d);
	Mailmesh__TablePush push = MAILMESH__TABLE_PUSH__INIT;
	push.full = true;
	push.n_entries = t.n;
	push.entries = t.entries;
	push.digest.data = d;
	push.digest.len = sizeof(d);
	Mailmesh__Frame f = MAILMESH__FRAME__INIT;
	f.seq = 1;
	f.body_case = MAILMESH__FRAME__BODY_TABLE_PUSH;
	f.table_push = &push;
	size_t len;
	uint8_t *b = mm_frame_encode(&f, &len);
	if (read_frames(in, b, len, LIMIT) != 1)
		die("a TablePush frame we encoded does not read back");
	free(b);
	mm_table_free(&t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = {.p = data, .n = size};
	memset(in.piece, 0xff, sizeof(in.piece));
	if (size >= HEADER) {
		memcpy(in.piece, data + 1, NPIECE);
		in.p += HEADER;
		in.n -= HEADER;
	}
	/* 1 */
	read_frames(&in, in.p, in.n, 1 << 16);
	/* 2 */
	uint8_t *framed = malloc(in.n + 4);
	if (framed == NULL)
		abort();
	framed[0] = (uint8_t)(in.n >> 24);
	framed[1] = (uint8_t)(in.n >> 16);
	framed[2] = (uint8_t)(in.n >> 8);
	framed[3] = (uint8_t)in.n;
	if (in.n)
		memcpy(framed + 4, in.p, in.n);
	read_frames(&in, framed, in.n + 4, LIMIT);
	free(framed);
	/* 3 */
	table_push(&in);
	return 0;
}
