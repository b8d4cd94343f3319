/* --state DIR: the incarnation this candidate last took, so that after a
 * restart it takes a greater one (docs/protocol.md, "Incarnation"). One
 * file, DIR/incarnation, holding the number in decimal and a newline.
 * Written once per activation: a temporary file, fsync, rename, fsync of
 * the directory -- after a crash either the old number or the new one is
 * there, never a torn one. A file that is anything else is corrupt: the
 * daemon refuses to start (exit 65) rather than guess, since a guess too
 * low could reuse versions. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include "rgm.h"

#define STATE_FILE "incarnation"
#define STATE_TMP  "incarnation.tmp"
/* 2^53 - 1 has 16 digits; the file holds at most that and a newline */
#define STATE_MAX_LEN 17

static int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return errno;
	int e = fsync(fd) == 0 ? 0 : errno;
	close(fd);
	return e;
}

/* mkdir DIR (0700) and make its entry durable in the parent -- also when
 * it was there already: whoever made it (an operator, a run killed between
 * its mkdir and its fsync) may not have made it durable, and a power cut
 * would take it away with the incarnation in it. */
static int make_dir(const char *dir)
{
	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		return errno;
	char *copy = strdup(dir);
	if (copy == NULL)
		return ENOMEM;
	int e = fsync_dir(dirname(copy));
	free(copy);
	return e;
}

static bool path(char *buf, size_t n, const char *dir, const char *file)
{
	int w = snprintf(buf, n, "%s/%s", dir, file);
	return w >= 0 && (size_t)w < n;
}

int rgm_state_read(const char *dir, uint64_t *inc, char *err, size_t errlen)
{
	*inc = 0;
	char file[4096];
	if (!path(file, sizeof(file), dir, STATE_FILE)) {
		snprintf(err, errlen, "--state %s: path too long", dir);
		return EX_USAGE;
	}
	/* the directory is made (or made durable) now, so that a state that
	 * cannot be written is found before anything depends on it */
	int e = make_dir(dir);
	if (e != 0) {
		snprintf(err, errlen, "--state %s: cannot create it: %s", dir, strerror(e));
		return EX_CANTCREAT;
	}
	int fd = open(file, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT)
		return EX_OK; /* a fresh start */
	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", file, strerror(errno));
		return EX_IOERR;
	}
	char buf[STATE_MAX_LEN + 2];
	size_t len = 0;
	ssize_t n;
	while (len < sizeof(buf) && (n = read(fd, buf + len, sizeof(buf) - len)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			snprintf(err, errlen, "%s: %s", file, strerror(errno));
			close(fd);
			return EX_IOERR;
		}
		len += (size_t)n;
	}
	close(fd);
	/* exactly: 1 to 16 digits and a newline */
	size_t digits = 0;
	uint64_t v = 0;
	while (digits < len && buf[digits] >= '0' && buf[digits] <= '9' && digits < 16) {
		v = v * 10 + (uint64_t)(buf[digits] - '0');
		digits++;
	}
	if (digits == 0 || len != digits + 1 || buf[digits] != '\n' ||
	    v > MM_MASTER_INCARNATION_MAX) {
		snprintf(err, errlen,
		         "%s is corrupt (want the incarnation in decimal and a newline, at most "
		         "%llu): not starting; a master without its state starts above the wall "
		         "clock: remove the file to start afresh",
		         file, (unsigned long long)MM_MASTER_INCARNATION_MAX);
		return EX_DATAERR;
	}
	*inc = v;
	return EX_OK;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return errno;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int write_once(const char *dir, uint64_t inc)
{
	char tmp[4096], file[4096], text[32];
	if (!path(tmp, sizeof(tmp), dir, STATE_TMP) || !path(file, sizeof(file), dir, STATE_FILE))
		return ENAMETOOLONG;
	int len = snprintf(text, sizeof(text), "%llu\n", (unsigned long long)inc);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return errno;
	int e = write_all(fd, text, (size_t)len);
	if (e == 0 && fsync(fd) != 0)
		e = errno;
	if (close(fd) != 0 && e == 0)
		e = errno;
	if (e == 0 && rename(tmp, file) != 0)
		e = errno;
	if (e != 0) {
		unlink(tmp);
		return e;
	}
	/* the rename is durable only once the directory is */
	return fsync_dir(dir);
}

int rgm_state_write(const char *dir, uint64_t inc)
{
	int e = write_once(dir, inc);
	if (e == ENOENT) {
		/* the directory went while we ran: make it again, as at start */
		e = make_dir(dir);
		if (e == 0)
			e = write_once(dir, inc);
	}
	return e;
}
