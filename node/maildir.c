#include "maildir.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "buf.h"
#include "strmap.h"

static int sync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return errno;
	int e = fsync(fd) == 0 ? 0 : errno;
	close(fd);
	return e;
}

/* mkdir, and the entry made durable in its parent: also when it was there
 * already, since a run killed between a mkdir and its fsync leaves one that
 * a power cut would still take away. */
static int make_dir(const char *path, const char *parent)
{
	if (mkdir(path, 0700) != 0 && errno != EEXIST)
		return errno;
	return sync_dir(parent);
}

/* The mailboxes this process has made durable (keys owned here): the first
 * delivery to each makes every directory on its path durable in its
 * parent, the next ones trust them. */
static struct mm_strmap known;

static int ensure(const char *store, const char *box)
{
	uint32_t v;
	if (mm_strmap_get(&known, box, &v))
		return 0;
	char sub[4096 + 8];
	int e;
	const char *dirs[] = {"tmp", "new", "cur"};
	char parent[4096];
	snprintf(parent, sizeof(parent), "%s", store);
	char *slash = strrchr(parent, '/');
	if (slash)
		*slash = '\0';
	if ((e = make_dir(store, slash ? parent : ".")) != 0 || (e = make_dir(box, store)) != 0)
		return e;
	for (int i = 0; i < 3; i++) {
		snprintf(sub, sizeof(sub), "%s/%s", box, dirs[i]);
		if ((e = make_dir(sub, box)) != 0)
			return e;
	}
	mm_strmap_put(&known, mm_xstrdup(box), 0);
	return 0;
}

/* CRLF line ends as LF; every other byte as it is. */
static void lf_text(struct mm_buf *out, const char *p, size_t n)
{
	size_t from = 0;
	while (from < n) {
		const char *cr = memchr(p + from, '\r', n - from);
		size_t i = cr ? (size_t)(cr - p) : n;
		if (i + 1 < n && p[i + 1] == '\n') {
			mm_buf_add(out, p + from, i - from);
			from = i + 1; /* the LF goes with the next span */
		} else {
			mm_buf_add(out, p + from, (i < n ? i + 1 : n) - from);
			from = i < n ? i + 1 : n;
		}
	}
}

int mm_maildir_deliver(const char *store, const char *addr, const char *host, const char *prefix,
                       size_t plen, const char *msg, size_t len)
{
	static unsigned long counter;
	char box[4096], tmp[4096 + 300], new[4096 + 300], newdir[4096 + 8];
	/* the address names a directory: refuse anything that could escape */
	if (addr[0] == '.' || strchr(addr, '/') != NULL)
		return EINVAL;
	snprintf(box, sizeof(box), "%s/%s", store, addr);
	int e = ensure(store, box);
	if (e)
		return e;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	char name[256];
	snprintf(name, sizeof(name), "%lld.M%ldP%dQ%lu.%s", (long long)ts.tv_sec, ts.tv_nsec / 1000,
	         (int)getpid(), ++counter, host);
	snprintf(tmp, sizeof(tmp), "%s/tmp/%s", box, name);
	snprintf(new, sizeof(new), "%s/new/%s", box, name);
	snprintf(newdir, sizeof(newdir), "%s/new", box);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return errno;
	/* Maildir is LF-only (qmail's maildir(5)); MUAs and IMAP servers
	 * read it so. The spool keeps CRLF, as SMTP carries it. */
	struct mm_buf text = {0};
	lf_text(&text, prefix, plen);
	lf_text(&text, msg, len);
	size_t done = 0;
	while (done < text.len) {
		ssize_t w = write(fd, text.p + done, text.len - done);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			e = errno;
			mm_buf_free(&text);
			goto fail;
		}
		done += (size_t)w;
	}
	mm_buf_free(&text);
	if (fsync(fd) != 0) {
		e = errno;
		goto fail;
	}
	close(fd);
	/* link, not rename: a name that exists already in new/ (a pid reused
	 * after a restart) is never replaced; the delivery is tried again
	 * with another name. A tmp/ file a crash leaves behind is harmless. */
	if (link(tmp, new) != 0) {
		e = errno;
		unlink(tmp);
		return e;
	}
	unlink(tmp);
	return sync_dir(newdir);
fail:
	close(fd);
	unlink(tmp);
	return e;
}
