#include "alloc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

void *mm_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (p == NULL)
		abort();
	return p;
}

void *mm_xcalloc(size_t count, size_t size)
{
	void *p = calloc(count ? count : 1, size ? size : 1);
	if (p == NULL)
		abort();
	return p;
}

void *mm_xrealloc(void *p, size_t count, size_t size)
{
	if (size != 0 && count > SIZE_MAX / size)
		abort();
	size_t n = count * size;
	p = realloc(p, n ? n : 1);
	if (p == NULL)
		abort();
	return p;
}

char *mm_xstrdup(const char *s)
{
	return mm_xstrndup(s, strlen(s));
}

char *mm_xstrndup(const char *s, size_t n)
{
	char *d = mm_xmalloc(n + 1);
	memcpy(d, s, n);
	d[n] = '\0';
	return d;
}

void mm_grow(void *arr_ptr, size_t *cap, size_t need, size_t elem)
{
	void **arr = arr_ptr;
	size_t c = *cap;

	if (need <= c)
		return;
	while (c < need)
		c = c ? c * 2 : 8;
	*arr = mm_xrealloc(*arr, c, elem);
	*cap = c;
}
