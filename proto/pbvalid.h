/* Messages protobuf-c decodes but would not decode again. */
#ifndef MM_PBVALID_H
#define MM_PBVALID_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>

/* False when m, or a message inside it, holds an unknown field numbered 0.
 * protobuf-c takes a field number 0 written in two bytes or more (0x82 0x00)
 * as an unknown field, then writes it in one byte (0x02), which it refuses:
 * such a message decodes once and never again after we pass it on (found by
 * tests/fuzz/frame_fuzz.c). mm_frame_next refuses such frames. */
bool mm_pb_fields_valid(const ProtobufCMessage *m);

#endif
