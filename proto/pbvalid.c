#include "pbvalid.h"

#include <string.h>

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
