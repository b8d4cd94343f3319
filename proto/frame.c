#include "frame.h"

#include <stdlib.h>
#include <string.h>

#include "alloc.h"

void mm_frame_reader_init(struct mm_frame_reader *r, size_t limit)
{
	*r = (struct mm_frame_reader){.limit = limit, .error = MM_FRAME_NEED_MORE};
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
		if (body > r->limit)
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
	*out = f;
	return MM_FRAME_OK;
}

bool mm_pb_fields_valid(const ProtobufCMessage *m)
{
	if (m == NULL)
		return true;
	/* Protocol Buffers encoding: field numbers start at 1 */
	for (unsigned i = 0; i < m->n_unknown_fields; i++)
		if (m->unknown_fields[i].tag == 0)
			return false;
	const ProtobufCMessageDescriptor *d = m->descriptor;
	const char *base = (const char *)m;
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		if (f->type != PROTOBUF_C_TYPE_MESSAGE)
			continue;
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n;
			ProtobufCMessage **v;
			memcpy(&n, base + f->quantifier_offset, sizeof(n));
			memcpy(&v, base + f->offset, sizeof(v));
			for (size_t k = 0; k < n; k++)
				if (!mm_pb_fields_valid(v[k]))
					return false;
			continue;
		}
		if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
			uint32_t which;
			memcpy(&which, base + f->quantifier_offset, sizeof(which));
			if (which != f->id)
				continue; /* another member of the oneof */
		}
		ProtobufCMessage *sub;
		memcpy(&sub, base + f->offset, sizeof(sub));
		if (!mm_pb_fields_valid(sub))
			return false;
	}
	return true;
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
