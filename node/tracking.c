/* The message tracking log, SPOOL/tracking.log (DESIGN §6, §7a): one line
 * per event, the time stamp and what the queue manager wrote,
 *   2026-11-22T19:50:00.123Z EVENT MESSAGE-ID key=value ...
 * (the format is in linkstate/logfmt.h and docs/meshnode.md), written through a
 * buffer that the once-a-second tick flushes (and every stop), so logging
 * never waits for the disk. */
#include "date.h"
#include "node.h"

void track_line(void *ctx, const char *line)
{
	struct node *n = ctx;
	char when[32];
	mm_date_iso8601_ms(node_wall_ms(), when);
	if (n->track)
		fprintf(n->track, "%s %s\n", when, line);
	else /* recovery runs before the log is open (it lives in the spool) */
		mm_buf_printf(&n->track_early, "%s %s\n", when, line);
}

int track_open(struct node *n, const char *path)
{
	if ((n->track = fopen(path, "a")) == NULL)
		return -1;
	if (n->track_early.len > 0)
		fwrite(n->track_early.p, 1, n->track_early.len, n->track);
	mm_buf_free(&n->track_early);
	return 0;
}
