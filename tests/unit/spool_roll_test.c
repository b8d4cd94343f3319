/* The spool's syncer never syncs a descriptor the loop may close.
 *
 * Segments roll every few records (mm_spool.seg_max) and every message is
 * finished and released at once, so each old segment is collected (its
 * descriptor closed) right after the roll, while the syncer pauses between
 * taking its descriptor and fdatasync (mm_spool.syncer_pause_us widens the
 * window a roll and a collection fit in). The numbers the loop frees are
 * taken at once by pipes, as accepted sockets take them in meshnode. The
 * syncer must never fail, and what is still queued must come back after a
 * restart.
 *
 * Proven: with the syncer syncing sp->sync_fd itself (as it did before it
 * synced a dup of its own) fdatasync hits a pipe (EINVAL) or a closed
 * number (EBADF), the error is sticky and the test fails. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "spool.h"

static void count(void *ctx, const struct mm_spool_msg *m)
{
	(void)m;
	++*(int *)ctx;
}

static uint64_t durable_now(struct mm_spool *sp, int *err)
{
	return mm_spool_durable(sp, err);
}

static void test_syncer_survives_rolls(void **state)
{
	(void)state;
	char dir[] = "/tmp/mm-spool-roll.XXXXXX";
	assert_non_null(mkdtemp(dir));
	struct mm_spool sp;
	const char *what;
	int recovered = 0;
	assert_int_equal(mm_spool_open(&sp, dir, count, &recovered, &what), 0);
	sp.seg_max = 2048;         /* about three messages a segment */
	sp.syncer_pause_us = 3000; /* the syncer holds its descriptor a while */
	static const struct mm_spool_rcpt rcpt = {"a@x.test", "", 0};
	char body[600];
	memset(body, 'x', sizeof(body));
	int pipes[400][2], npipes = 0, kept = 0, err = 0;
	uint64_t lsn = 0;
	for (int i = 0; i < 400; i++) {
		struct mm_spool_msg m = {.id = mm_spool_new_id(&sp, 1000 + (uint64_t)i),
		                         .sender = "s@y.test",
		                         .envid = "",
		                         .helo = "h",
		                         .client = "c",
		                         .nrcpt = 1,
		                         .rcpt = &rcpt};
		struct iovec iov = {body, sizeof(body)};
		struct mm_spool_loc loc;
		assert_int_equal(mm_spool_put(&sp, &m, &iov, 1, &loc, &lsn), 0);
		mm_spool_sync(&sp, lsn);
		if (i >= 397) {
			kept++; /* the last ones stay queued (a queued message keeps its
			         * segment and every later one from collection) */
			continue;
		}
		assert_int_equal(mm_spool_done(&sp, m.id, 0), 0);
		mm_spool_release(&sp, loc.seg);
		/* the number a collection just freed goes to a "socket" */
		if (npipes < 400 && pipe(pipes[npipes]) == 0)
			npipes++;
		durable_now(&sp, &err);
		assert_int_equal(err, 0);
	}
	/* everything written becomes durable, without an error */
	struct timespec deadline, now;
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += 10;
	while (durable_now(&sp, &err) < lsn && err == 0) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec > deadline.tv_sec ||
		    (now.tv_sec == deadline.tv_sec && now.tv_nsec > deadline.tv_nsec))
			break;
		usleep(1000);
	}
	assert_int_equal(err, 0);
	assert_true(durable_now(&sp, &err) >= lsn);
	mm_spool_close(&sp);
	for (int i = 0; i < npipes; i++) {
		close(pipes[i][0]);
		close(pipes[i][1]);
	}
	recovered = 0;
	assert_int_equal(mm_spool_open(&sp, dir, count, &recovered, &what), 0);
	assert_int_equal(recovered, kept);
	mm_spool_close(&sp);
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_syncer_survives_rolls),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
