/* meshctl table, offline: the directory's table (with the --down marks)
 * through the one renderer a live node or master answers with
 * (table_view.c), so offline and live output cannot drift apart. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meshctl.h"
#include "table_view.h"

int ctl_table(struct ctl *c)
{
	char *doc = mm_table_render(&c->dir.table, c->dir.org, NULL, "offline", c->json);
	if (doc == NULL) {
		fprintf(stderr, "meshctl: table: out of memory\n");
		return EX_OSERR;
	}
	fputs(doc, stdout);
	free(doc);
	return EX_OK;
}
