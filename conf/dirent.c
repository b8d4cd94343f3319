#include "dirent.h"

#include <stdlib.h>

#include "alloc.h"

struct mm_dirent *mm_dirents_add(struct mm_dirents *l, const char *dn, const char *where)
{
	mm_grow(&l->e, &l->cap, l->n + 1, sizeof(*l->e));
	struct mm_dirent *e = &l->e[l->n++];
	*e = (struct mm_dirent){0};
	e->dn = mm_xstrdup(dn);
	e->where = mm_xstrdup(where);
	return e;
}

void mm_dirent_add_attr(struct mm_dirent *e, const char *name, const char *value, const char *where)
{
	mm_grow(&e->attrs, &e->cap, e->nattrs + 1, sizeof(*e->attrs));
	e->attrs[e->nattrs++] =
	    (struct mm_attr){mm_xstrdup(name), mm_xstrdup(value), mm_xstrdup(where)};
}

void mm_dirents_free(struct mm_dirents *l)
{
	for (size_t i = 0; i < l->n; i++) {
		struct mm_dirent *e = &l->e[i];
		for (size_t a = 0; a < e->nattrs; a++) {
			free(e->attrs[a].name);
			free(e->attrs[a].value);
			free(e->attrs[a].where);
		}
		free(e->attrs);
		free(e->dn);
		free(e->where);
	}
	free(l->e);
	*l = (struct mm_dirents){0};
}
