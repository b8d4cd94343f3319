/* Allocation that never returns NULL: running out of memory is not a
 * condition any caller in mailmesh can repair, so it aborts (FRR's two tiers
 * of errors: invariants and allocation abort, peer input returns an error). */
#ifndef MM_ALLOC_H
#define MM_ALLOC_H

#include <stddef.h>

void *mm_xmalloc(size_t n);
void *mm_xcalloc(size_t count, size_t size);
void *mm_xrealloc(void *p, size_t count, size_t size);
char *mm_xstrdup(const char *s);
char *mm_xstrndup(const char *s, size_t n);

/* Grow *arr (element size elem) so that index need-1 fits; *cap doubles. */
void mm_grow(void *arr_ptr, size_t *cap, size_t need, size_t elem);

#endif
