/* A growable byte buffer: the input and output queues of the SMTP machines
 * and the message being received. Allocation aborts on failure (alloc.h). */
#ifndef MM_BUF_H
#define MM_BUF_H

#include <stddef.h>

struct mm_buf {
	char *p;
	size_t len, cap;
};

void mm_buf_add(struct mm_buf *b, const void *data, size_t n);
void mm_buf_adds(struct mm_buf *b, const char *s);
void mm_buf_printf(struct mm_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Drop the first n bytes. */
void mm_buf_consume(struct mm_buf *b, size_t n);
void mm_buf_reset(struct mm_buf *b);
void mm_buf_free(struct mm_buf *b);

#endif
