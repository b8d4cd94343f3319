/* libFuzzer target: spool recovery over arbitrary bytes. After a crash a
 * segment file may hold anything at its end (a torn record, zeros, an old
 * block); recovery must stop at the first bad record and never crash. The
 * input becomes the one segment of a fresh spool. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spool.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void count(void *ctx, const struct mm_spool_msg *m)
{
	size_t *n = ctx;
	*n += m->nrcpt + m->body.len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char dir[] = "/tmp/mm-spool-fuzz.XXXXXX";
	if (mkdtemp(dir) == NULL)
		return 0;
	char path[256];
	snprintf(path, sizeof(path), "%s/queue", dir);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/queue/00000001.seg", dir);
	FILE *f = fopen(path, "wb");
	if (f) {
		fwrite(data, 1, size, f);
		fclose(f);
	}
	struct mm_spool sp;
	const char *what;
	size_t n = 0;
	if (mm_spool_open(&sp, dir, count, &n, &what) == 0 || sp.dir)
		mm_spool_close(&sp);
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		abort();
	return 0;
}
