/* powercut: state, paths, the journal and the stash (see powercut.h).
 *
 * Everything here may run inside an interposed call of any thread, and
 * inside a signal handler's write(2) to a pipe: nothing takes a lock
 * before it knows the descriptor is a file in the root, nothing calls an
 * interposed name (the raw system call is used instead), and nothing
 * allocates. */
#include "powercut.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

struct pc_state pc = {.jfd = -1};

static pthread_once_t once = PTHREAD_ONCE_INIT;
#define STRIPES 64
static pthread_mutex_t stripes[STRIPES]; /* made in init_once, before any use */
static atomic_uint_fast64_t counter;

_Noreturn void pc_die(const char *fmt, ...)
{
	char msg[8192];
	int n = snprintf(msg, sizeof(msg), "powercut: ");
	va_list ap;
	va_start(ap, fmt);
	n += vsnprintf(msg + n, sizeof(msg) - (size_t)n - 2, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(msg) - 2)
		n = (int)sizeof(msg) - 2;
	msg[n++] = '\n';
	(void)!syscall(SYS_write, 2, msg, (size_t)n);
	abort();
}

static void mkdir_or_die(const char *path)
{
	if (syscall(SYS_mkdirat, AT_FDCWD, path, 0700) != 0 && errno != EEXIST)
		pc_die("cannot make %s: %s", path, strerror(errno));
}

static void parse_ignore(const char *list)
{
	size_t n = 0;
	for (const char *p = list; p && *p && n + 2 < sizeof(pc.ignore); p++)
		pc.ignore[n++] = *p == ':' ? '\0' : *p;
	pc.ignore[n] = pc.ignore[n + 1] = '\0';
}

static void init_once(void)
{
	const char *root = getenv("POWERCUT_ROOT");
	if (root == NULL || root[0] == '\0')
		return;
	if (realpath(root, pc.root) == NULL)
		pc_die("POWERCUT_ROOT %s: %s", root, strerror(errno));
	pc.rootlen = strlen(pc.root);
	struct stat st;
	if (stat(pc.root, &st) != 0 || !S_ISDIR(st.st_mode))
		pc_die("POWERCUT_ROOT %s is not a directory", pc.root);
	pc.root_dev = st.st_dev;
	const char *state = getenv("POWERCUT_STATE");
	if (state && state[0])
		snprintf(pc.state, sizeof(pc.state), "%s", state);
	else
		snprintf(pc.state, sizeof(pc.state), "%s.powercut", pc.root);
	mkdir_or_die(pc.state);
	char path[4200];
	snprintf(path, sizeof(path), "%s/stash", pc.state);
	mkdir_or_die(path);
	/* the stash keeps inodes by hard link: it must share the file system */
	if (stat(path, &st) != 0 || st.st_dev != pc.root_dev)
		pc_die("POWERCUT_STATE %s is not on the file system of %s", pc.state, pc.root);
	snprintf(path, sizeof(path), "%s/journal", pc.state);
	int fd = (int)syscall(SYS_openat, AT_FDCWD, path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
	                      0600);
	if (fd < 0)
		pc_die("cannot open the journal %s: %s", path, strerror(errno));
	/* out of the way of programs that reuse low descriptors */
	pc.jfd = fcntl(fd, F_DUPFD_CLOEXEC, 1000);
	if (pc.jfd < 0)
		pc.jfd = fd;
	else
		syscall(SYS_close, fd);
	const char *lying = getenv("POWERCUT_LYING");
	pc.lying = lying && strcmp(lying, "1") == 0;
	parse_ignore(getenv("POWERCUT_IGNORE"));
	const char *fail = getenv("POWERCUT_FAIL_READ");
	if (fail)
		snprintf(pc.fail_read, sizeof(pc.fail_read), "%s", fail);
	for (int i = 0; i < STRIPES; i++)
		pthread_mutex_init(&stripes[i], NULL);
	pc.on = true;
}

void pc_init(void)
{
	pthread_once(&once, init_once);
}

uint64_t pc_next_id(void)
{
	return (uint64_t)getpid() << 32 | (atomic_fetch_add(&counter, 1) + 1);
}

/* --- paths ------------------------------------------------------------- */

/* In place: "/a//b/./c/../d" -> "/a/b/d". Symbolic links are not followed
 * (the harness assumes none inside the root). */
static void normalize(char *p)
{
	char *out = p;
	const char *in = p;
	while (*in) {
		while (*in == '/')
			in++;
		const char *end = in;
		while (*end && *end != '/')
			end++;
		size_t n = (size_t)(end - in);
		if (n == 0 || (n == 1 && in[0] == '.')) {
			/* nothing */
		} else if (n == 2 && in[0] == '.' && in[1] == '.') {
			while (out > p && *--out != '/')
				;
		} else {
			*out++ = '/';
			memmove(out, in, n);
			out += n;
		}
		in = end;
	}
	if (out == p)
		*out++ = '/';
	*out = '\0';
}

bool pc_fd_path(int fd, char *out, size_t n)
{
	char link[64];
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	ssize_t r = readlink(link, out, n - 1);
	if (r <= 0 || (size_t)r >= n - 1)
		return false;
	out[r] = '\0';
	static const char deleted[] = " (deleted)";
	size_t dl = sizeof(deleted) - 1;
	if ((size_t)r > dl && strcmp(out + r - dl, deleted) == 0)
		out[r - dl] = '\0';
	return out[0] == '/';
}

bool pc_resolve(int dirfd, const char *path, char *out, size_t n)
{
	char base[4096];
	int w;
	if (path[0] == '/') {
		w = snprintf(out, n, "%s", path);
	} else {
		if (dirfd == AT_FDCWD) {
			if (getcwd(base, sizeof(base)) == NULL)
				return false;
		} else if (!pc_fd_path(dirfd, base, sizeof(base))) {
			return false;
		}
		w = snprintf(out, n, "%s/%s", base, path);
	}
	if (w < 0 || (size_t)w >= n)
		return false;
	normalize(out);
	return true;
}

bool pc_ignored(const char *abs)
{
	const char *rel = abs + pc.rootlen + 1;
	const char *base = strrchr(abs, '/') + 1;
	for (const char *e = pc.ignore; *e; e += strlen(e) + 1)
		if (strcmp(strchr(e, '/') ? rel : base, e) == 0)
			return true;
	return false;
}

bool pc_under_root(const char *abs)
{
	return pc.on && strncmp(abs, pc.root, pc.rootlen) == 0 && abs[pc.rootlen] == '/' &&
	       abs[pc.rootlen + 1] != '\0' && !pc_ignored(abs);
}

bool pc_parent(const char *abs, struct stat *st)
{
	char dir[4096];
	snprintf(dir, sizeof(dir), "%s", abs);
	char *slash = strrchr(dir, '/');
	if (slash == NULL)
		return false;
	if (slash == dir)
		slash[1] = '\0';
	else
		*slash = '\0';
	if (stat(dir, st) == 0)
		return true;
	memset(st, 0, sizeof(*st));
	return false;
}

/* --- which descriptors --------------------------------------------------- */

/* fd -> verdict for the inode it had when asked; checked against fstat so
 * that a reused number is asked again */
#define FD_CACHE 4096
static struct {
	dev_t dev;
	ino_t ino;
	unsigned char verdict; /* 0 unknown, 1 tracked, 2 not */
} fdc[FD_CACHE];
static pthread_mutex_t fdc_mu = PTHREAD_MUTEX_INITIALIZER;

bool pc_tracked_fd(int fd, struct stat *st, bool dirs)
{
	if (!pc.on || fstat(fd, st) != 0)
		return false;
	if (!(S_ISREG(st->st_mode) || (dirs && S_ISDIR(st->st_mode))) || st->st_dev != pc.root_dev)
		return false;
	if (fd >= 0 && fd < FD_CACHE) {
		pthread_mutex_lock(&fdc_mu);
		unsigned char v = 0;
		if (fdc[fd].dev == st->st_dev && fdc[fd].ino == st->st_ino)
			v = fdc[fd].verdict;
		pthread_mutex_unlock(&fdc_mu);
		if (v)
			return v == 1;
	}
	char path[4096];
	bool yes = pc_fd_path(fd, path, sizeof(path)) &&
	           (strcmp(path, pc.root) == 0 || pc_under_root(path));
	if (fd >= 0 && fd < FD_CACHE) {
		pthread_mutex_lock(&fdc_mu);
		fdc[fd].dev = st->st_dev;
		fdc[fd].ino = st->st_ino;
		fdc[fd].verdict = yes ? 1 : 2;
		pthread_mutex_unlock(&fdc_mu);
	}
	return yes;
}

void pc_forget_fd(int fd)
{
	if (fd >= 0 && fd < FD_CACHE) {
		pthread_mutex_lock(&fdc_mu);
		fdc[fd].verdict = 0;
		pthread_mutex_unlock(&fdc_mu);
	}
}

/* --- stash ------------------------------------------------------------- */

#define STASH_CACHE (1u << 16)
static struct {
	dev_t dev;
	ino_t ino;
} stc[STASH_CACHE];
static pthread_mutex_t stc_mu = PTHREAD_MUTEX_INITIALIZER;

static size_t stash_slot(const struct stat *st)
{
	uint64_t h = ((uint64_t)st->st_ino * 0x9E3779B97F4A7C15ull) ^ (uint64_t)st->st_dev;
	return (size_t)(h >> 48) & (STASH_CACHE - 1);
}

/* true when the inode is known to be in the stash already */
static bool stash_known(const struct stat *st, bool add)
{
	size_t i = stash_slot(st);
	bool found = false;
	pthread_mutex_lock(&stc_mu);
	for (size_t k = 0; k < 64; k++, i = (i + 1) & (STASH_CACHE - 1)) {
		if (stc[i].ino == st->st_ino && stc[i].dev == st->st_dev) {
			found = true;
			break;
		}
		if (stc[i].ino == 0) {
			if (add) {
				stc[i].dev = st->st_dev;
				stc[i].ino = st->st_ino;
			}
			break;
		}
	}
	pthread_mutex_unlock(&stc_mu);
	return found;
}

static void stash_name(const struct stat *st, char *out, size_t n)
{
	snprintf(out, n, "%s/stash/%llu-%llu", pc.state, (unsigned long long)st->st_dev,
	         (unsigned long long)st->st_ino);
}

static void stash_link(const char *from, int flags, const struct stat *st)
{
	if (stash_known(st, false))
		return;
	char name[4300];
	stash_name(st, name, sizeof(name));
	int e = errno;
	if (syscall(SYS_linkat, AT_FDCWD, from, AT_FDCWD, name, flags) == 0 || errno == EEXIST)
		stash_known(st, true);
	/* else: an inode with no name left (unlinked before its first change)
	 * cannot be linked; the undo step says so if it needs it */
	errno = e;
}

void pc_stash_fd(int fd, const struct stat *st)
{
	char link[64];
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	stash_link(link, AT_SYMLINK_FOLLOW, st);
}

void pc_stash_path(const char *abs, const struct stat *st)
{
	if (S_ISREG(st->st_mode) || S_ISLNK(st->st_mode))
		stash_link(abs, 0, st);
}

/* --- journal ------------------------------------------------------------ */

void pc_journal(struct pc_rec *r, const char *p1, const char *p2, const void *data, size_t dlen)
{
	int e = errno;
	r->magic = PC_MAGIC;
	r->pid = (uint64_t)getpid();
	r->len1 = p1 ? strlen(p1) : 0;
	r->len2 = p2 ? strlen(p2) : 0;
	r->dlen = dlen;
	r->size = sizeof(*r) + r->len1 + r->len2 + dlen;
	struct iovec iov[4] = {{r, sizeof(*r)},
	                       {(void *)(p1 ? p1 : ""), r->len1},
	                       {(void *)(p2 ? p2 : ""), r->len2},
	                       {(void *)data, dlen}};
	/* one writev on an O_APPEND file: the record lands whole and in order */
	long w = syscall(SYS_writev, pc.jfd, iov, 4);
	if (w != (long)r->size)
		pc_die("journal write failed (%ld of %llu bytes): %s", w,
		       (unsigned long long)r->size, strerror(errno));
	errno = e;
}

uint64_t pc_data_begin(const char *src, const struct stat *st, int op, uint64_t off, uint64_t len,
                       uint64_t from, uint64_t to)
{
	struct pc_rec r = {.type = PC_DATA,
	                   .id = pc_next_id(),
	                   .dev = st->st_dev,
	                   .ino = st->st_ino,
	                   .off = off,
	                   .len = len,
	                   .oldsize = (uint64_t)st->st_size,
	                   .op = (uint64_t)op};
	pc_journal(&r, src, NULL, NULL, 0);
	if (from >= to)
		return r.id;
	int e = errno;
	int rfd = (int)syscall(SYS_openat, AT_FDCWD, src, O_RDONLY | O_CLOEXEC, 0);
	if (rfd < 0)
		pc_die("cannot read what %s held before a change: %s", src, strerror(errno));
	char buf[16384];
	for (uint64_t pos = from; pos < to;) {
		size_t want = to - pos < sizeof(buf) ? (size_t)(to - pos) : sizeof(buf);
		ssize_t n = syscall(SYS_pread64, rfd, buf, want, (off_t)pos);
		if (n <= 0)
			break; /* shorter than fstat said: nothing more to keep */
		struct pc_rec p = {
		    .type = PC_PRE, .id = r.id, .dev = st->st_dev, .ino = st->st_ino, .off = pos};
		pc_journal(&p, NULL, NULL, buf, (size_t)n);
		pos += (uint64_t)n;
	}
	syscall(SYS_close, rfd);
	errno = e;
	return r.id;
}

void pc_done(uint64_t id, int64_t rc, const struct stat *made)
{
	struct pc_rec r = {.type = PC_DONE, .id = id, .rc = rc};
	if (made) {
		r.dev = made->st_dev;
		r.ino = made->st_ino;
		r.mode = made->st_mode;
	}
	pc_journal(&r, NULL, NULL, NULL, 0);
}

/* --- per-inode order of changes ------------------------------------------ */

static pthread_mutex_t *stripe(const struct stat *st)
{
	return &stripes[((uint64_t)st->st_ino ^ (uint64_t)st->st_dev * 31) % STRIPES];
}

void pc_inode_lock(const struct stat *st)
{
	pthread_mutex_lock(stripe(st));
}

void pc_inode_unlock(const struct stat *st)
{
	pthread_mutex_unlock(stripe(st));
}
