/* SPOOL/damping (pure: the driver reads and writes the file): each connector's flap damping, kept
 * across restarts (docs/meshnode.md, FILES). Text, one connector a line:
 *
 *   mailmesh-damping 1 SAVED_AT_MS
 *   FIGURE HELD LAST_DOWN_AGE_MS NAME
 *
 * SAVED_AT_MS is the wall clock in ms when it was written; FIGURE the
 * scaled figure (core/damping.h) then, HELD 0 or 1, LAST_DOWN_AGE_MS how
 * long before the save the last down was (-1: never); NAME the rest of
 * the line. */
#ifndef MM_DAMPING_FILE_H
#define MM_DAMPING_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "connstate.h"

#define MM_DAMPING_FILE_MAX (1u << 20) /* read up to this size */

/* The file's bytes (allocated, *len set). Names with a line break are
 * left out (no directory name has one). */
char *mm_damping_format(const struct mm_damp_saved *s, size_t n, int64_t saved_at_ms, size_t *len);
/* Parses text[0..len); false with the line named in err when it does not
 * parse (nothing is kept then). */
bool mm_damping_parse(const char *text, size_t len, struct mm_damp_saved **out, size_t *n,
                      int64_t *saved_at_ms, char *err, size_t errlen);

#endif
