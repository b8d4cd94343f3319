/* libFuzzer target: the TCP 691 frame reader, fed in two uneven pieces,
 * then the link-state table decoder on the same bytes. */
#include <stddef.h>
#include <stdint.h>

#include "frame.h"
#include "table.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mm_frame_reader r;
	mm_frame_reader_init(&r, 1 << 16);
	size_t cut = size ? data[0] % (size + 1) : 0;
	Mailmesh__Frame *f;
	mm_frame_feed(&r, data, cut);
	while (mm_frame_next(&r, &f) == MM_FRAME_OK)
		mailmesh__frame__free_unpacked(f, NULL);
	mm_frame_feed(&r, data + cut, size - cut);
	while (mm_frame_next(&r, &f) == MM_FRAME_OK)
		mailmesh__frame__free_unpacked(f, NULL);
	mm_frame_reader_free(&r);

	struct mm_table t;
	if (mm_table_decode(data, size, 1 << 20, &t)) {
		uint8_t d[MM_DIGEST_LEN];
		mm_table_digest(&t, d);
		mm_table_free(&t);
	}
	return 0;
}
