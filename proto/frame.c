#include "frame.h"

#include <stdlib.h>
#include <string.h>

#include "alloc.h"

void mm_frame_reader_init(struct mm_frame_reader *r, size_t limit)
{
	*r = (struct mm_frame_reader){.limit = limit, .error = MM_FRAME_NEED_MORE};
}

void mm_frame_reader_first(struct mm_frame_reader *r, size_t first_limit)
{
	r->first_limit = first_limit;
}

void mm_frame_reader_free(struct mm_frame_reader *r)
{
	free(r->buf);
	*r = (struct mm_frame_reader){0};
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Memory grows only with bytes actually received, never with a length a
 * peer announces; every header that is whole in the buffer is checked
 * against the limit as soon as it arrives. */
enum mm_frame_status mm_frame_feed(struct mm_frame_reader *r, const uint8_t *data, size_t n)
{
	if (r->error != MM_FRAME_NEED_MORE)
		return r->error;
	mm_grow(&r->buf, &r->cap, r->len + n, 1);
	if (n)
		memcpy(r->buf + r->len, data, n);
	r->len += n;
	for (size_t off = 0; off + 4 <= r->len;) {
		uint32_t body = be32(r->buf + off);
		bool first = off == 0 && !r->taken && r->first_limit != 0;
		if (body > (first ? r->first_limit : r->limit))
			return r->error = MM_FRAME_TOO_BIG;
		off += 4 + (size_t)body;
	}
	return MM_FRAME_NEED_MORE;
}

enum mm_frame_status mm_frame_next(struct mm_frame_reader *r, Mailmesh__Frame **out)
{
	*out = NULL;
	if (r->error != MM_FRAME_NEED_MORE)
		return r->error;
	if (r->len < 4)
		return MM_FRAME_NEED_MORE;
	size_t body = be32(r->buf);
	if (r->len < 4 + body)
		return MM_FRAME_NEED_MORE;
	Mailmesh__Frame *f = body ? mailmesh__frame__unpack(NULL, body, r->buf + 4) : NULL;
	if (f != NULL && !mm_pb_fields_valid(&f->base)) {
		mailmesh__frame__free_unpacked(f, NULL);
		f = NULL;
	}
	if (f == NULL)
		return r->error = MM_FRAME_BAD;
	memmove(r->buf, r->buf + 4 + body, r->len - 4 - body);
	r->len -= 4 + body;
	r->taken = true;
	*out = f;
	return MM_FRAME_OK;
}

uint8_t *mm_frame_encode(const Mailmesh__Frame *f, size_t *len)
{
	size_t body = mailmesh__frame__get_packed_size(f);
	uint8_t *buf = mm_xmalloc(4 + body);
	buf[0] = (uint8_t)(body >> 24);
	buf[1] = (uint8_t)(body >> 16);
	buf[2] = (uint8_t)(body >> 8);
	buf[3] = (uint8_t)body;
	mailmesh__frame__pack(f, buf + 4);
	*len = 4 + body;
	return buf;
}
