/* The TCP 691 framing (DESIGN §5.1): a 4-byte big-endian length, then one
 * protobuf Frame. The reader is sans-I/O: feed it whatever bytes arrived,
 * take whole frames out. A length over the limit is refused from the header
 * alone, before anything is allocated for the body; a body that does not
 * decode is refused too. Either error is final for the connection. */
#ifndef MM_FRAME_H
#define MM_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mailmesh.pb-c.h"

#define MM_FRAME_LIMIT_DEFAULT (16u << 20)

enum mm_frame_status {
	MM_FRAME_OK,        /* *out holds a frame: free with mailmesh__frame__free_unpacked */
	MM_FRAME_NEED_MORE, /* no whole frame yet */
	MM_FRAME_TOO_BIG,   /* announced length over the limit */
	MM_FRAME_BAD,       /* body does not decode, or an empty body */
};

struct mm_frame_reader {
	size_t limit;
	size_t first_limit;         /* the first frame's, when not 0 (mm_frame_reader_first) */
	bool taken;                 /* a frame was taken out: first_limit is over */
	enum mm_frame_status error; /* sticky once TOO_BIG or BAD */
	uint8_t *buf;
	size_t len, cap;
};

void mm_frame_reader_init(struct mm_frame_reader *r, size_t limit);
/* A smaller limit for the first frame only: on 691 it must be a Hello, a
 * few hundred bytes, so a peer that announces megabytes before saying who
 * it is is refused from the header alone instead of being read that far
 * (docs/protocol.md, "Framing"). */
void mm_frame_reader_first(struct mm_frame_reader *r, size_t first_limit);
void mm_frame_reader_free(struct mm_frame_reader *r);
/* Append bytes. Returns MM_FRAME_TOO_BIG as soon as a header announces an
 * oversized frame (the bytes are not kept), else MM_FRAME_NEED_MORE. */
enum mm_frame_status mm_frame_feed(struct mm_frame_reader *r, const uint8_t *data, size_t n);
enum mm_frame_status mm_frame_next(struct mm_frame_reader *r, Mailmesh__Frame **out);

#include "pbvalid.h" /* mm_pb_fields_valid, which mm_frame_next applies */

/* Header and body in one malloc'd buffer. */
uint8_t *mm_frame_encode(const Mailmesh__Frame *f, size_t *len);

#endif
