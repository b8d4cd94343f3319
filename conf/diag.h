/* Diagnostics gathered while reading the directory: every problem found is
 * kept with where it is ("file:line" or a DN), so that one run reports them
 * all, and nothing is used unless the list is empty. */
#ifndef MM_DIAG_H
#define MM_DIAG_H

#include <stdio.h>

struct mm_diag {
	size_t n, cap;
	struct mm_diag_item {
		char *where;
		char *msg;
	} * items;
};

__attribute__((format(printf, 3, 4))) void mm_diag_add(struct mm_diag *d, const char *where,
                                                       const char *fmt, ...);
void mm_diag_print(const struct mm_diag *d, FILE *f);
void mm_diag_free(struct mm_diag *d);

#endif
