/* The link-state table as meshctl shows it (`meshctl table`), in JSON or in
 * text, from one place: offline meshctl, rgmaster and meshnode (answering
 * `meshctl --connect`) all render it here, so what an operator reads
 * offline and live cannot drift apart. Library mm_tableview; it needs the
 * topology (linkstate) and the JSON writer (cli/json.c), nothing else. */
#ifndef MM_TABLE_VIEW_H
#define MM_TABLE_VIEW_H

#include <stdbool.h>

#include "table.h"

/* The whole document, newline-terminated, malloc'd (free()); NULL only
 * when memory runs out. org: the organization's name (the directory's o).
 * server: who answers, NULL offline (JSON null); role: "offline", "node",
 * "master-active" or "master-standby". JSON: {"server", "role",
 * "organization", "digest", "groups": [...]} (docs/meshctl.md). Text: the
 * WinRoute-like listing, after a first line "Answered by SERVER (ROLE)"
 * when server is given. */
char *mm_table_render(const struct mm_table *t, const char *org, const char *server,
                      const char *role, bool json);

#endif
