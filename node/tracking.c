/* The message tracking log, SPOOL/tracking.log (DESIGN §6, §7a): one line
 * per event,
 *   2026-11-22T19:50:00.123Z EVENT MESSAGE-ID key=value ...
 * written through a buffer that the once-a-second tick flushes (and every
 * stop), so logging never waits for the disk. */
#include <stdarg.h>
#include <time.h>

#include "node.h"

void track(struct node *n, const char *event, const struct mm_qmsg *m, const char *fmt, ...)
{
	if (n->track == NULL)
		return;
	char when[32];
	node_timestamp(when);
	fprintf(n->track, "%s %s %s ", when, event, m->idhex);
	va_list ap;
	va_start(ap, fmt);
	vfprintf(n->track, fmt, ap);
	va_end(ap);
	fputc('\n', n->track);
}
