/* CRC-32C (Castagnoli), to tell a whole spool record from a torn one. */
#ifndef MM_CRC32C_H
#define MM_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Start with crc = 0; feed pieces in order. */
uint32_t mm_crc32c(uint32_t crc, const void *data, size_t n);

#endif
