#include "diag.h"

#include <stdarg.h>
#include <stdlib.h>

#include "alloc.h"

void mm_diag_add(struct mm_diag *d, const char *where, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	mm_grow(&d->items, &d->cap, d->n + 1, sizeof(*d->items));
	d->items[d->n++] = (struct mm_diag_item){mm_xstrdup(where ? where : "?"), mm_xstrdup(msg)};
}

void mm_diag_print(const struct mm_diag *d, FILE *f)
{
	for (size_t i = 0; i < d->n; i++)
		fprintf(f, "%s: %s\n", d->items[i].where, d->items[i].msg);
}

void mm_diag_free(struct mm_diag *d)
{
	for (size_t i = 0; i < d->n; i++) {
		free(d->items[i].where);
		free(d->items[i].msg);
	}
	free(d->items);
	*d = (struct mm_diag){0};
}
