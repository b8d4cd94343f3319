#include "buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"

static void reserve(struct mm_buf *b, size_t extra)
{
	mm_grow(&b->p, &b->cap, b->len + extra + 1, 1);
}

void mm_buf_add(struct mm_buf *b, const void *data, size_t n)
{
	reserve(b, n);
	memcpy(b->p + b->len, data, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void mm_buf_adds(struct mm_buf *b, const char *s)
{
	mm_buf_add(b, s, strlen(s));
}

void mm_buf_printf(struct mm_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	reserve(b, (size_t)n);
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

void mm_buf_consume(struct mm_buf *b, size_t n)
{
	if (n >= b->len) {
		b->len = 0;
	} else {
		memmove(b->p, b->p + n, b->len - n);
		b->len -= n;
	}
	if (b->p)
		b->p[b->len] = '\0';
}

void mm_buf_reset(struct mm_buf *b)
{
	b->len = 0;
	if (b->p)
		b->p[0] = '\0';
}

void mm_buf_free(struct mm_buf *b)
{
	free(b->p);
	*b = (struct mm_buf){0};
}
