/* powercut: an LD_PRELOAD library that journals every change a process
 * makes under POWERCUT_ROOT, so that after the process is killed the undo
 * step (tests/support/powercut.py) can put the files back to what a disk
 * with a volatile write cache would hold at that instant. The rules are in
 * docs/durability.md; in short:
 *
 *  - the bytes and the size of a file change at once (so that the process
 *    reads back what it wrote, mmap included); the journal keeps what they
 *    were, and the change is undone unless an fsync or fdatasync of the
 *    same inode, through any descriptor, began after it returned;
 *  - a directory change is undone unless an fsync of its directory (for a
 *    rename: of the destination's) began after it returned;
 *  - writes it cannot see (stdio, shared writable mappings, in-kernel
 *    copies into a file of the root) stop the process: tests fail closed.
 *
 * Every interposed call does the real work with the raw system call, so
 * that it never comes back into itself (nor, under AddressSanitizer, into
 * the sanitizer's interceptor that called it). */
#include "powercut.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif
#ifndef RWF_APPEND
#define RWF_APPEND 0x10
#endif
#ifndef RWF_DSYNC
#define RWF_DSYNC 0x02
#define RWF_SYNC  0x04
#endif

/* glibc's fortified entry points, not declared without _FORTIFY_SOURCE */
int __open_2(const char *path, int flags);
int __open64_2(const char *path, int flags);
int __openat_2(int dirfd, const char *path, int flags);
int __openat64_2(int dirfd, const char *path, int flags);

static bool active(void)
{
	pc_init();
	return pc.on;
}

static void *next(const char *name)
{
	void *f = dlsym(RTLD_NEXT, name);
	if (f == NULL)
		pc_die("no %s after the preload library", name);
	return f;
}

static bool writes(const char *mode)
{
	return mode && strpbrk(mode, "wa+") != NULL;
}

/* --- creation and truncation by open ------------------------------------ */

static int raw_openat(int dirfd, const char *path, int flags, mode_t mode)
{
	return (int)syscall(SYS_openat, dirfd, path, flags, mode);
}

static int do_openat(int dirfd, const char *path, int flags, mode_t mode)
{
	bool creat = flags & O_CREAT;
	bool trunc = (flags & O_TRUNC) && (flags & O_ACCMODE) != O_RDONLY;
	char abs[4096];
	if (!active() || path == NULL || !(creat || trunc) ||
	    !pc_resolve(dirfd, path, abs, sizeof(abs)) || !pc_under_root(abs))
		return raw_openat(dirfd, path, flags, mode);
	struct stat st;
	bool exists = stat(abs, &st) == 0;
	if (creat && !exists) {
		struct stat dir;
		pc_parent(abs, &dir);
		struct pc_rec r = {.type = PC_NS,
		                   .op = PC_CREATE,
		                   .id = pc_next_id(),
		                   .pdev = dir.st_dev,
		                   .pino = dir.st_ino,
		                   .mode = mode};
		pc_journal(&r, abs, NULL, NULL, 0);
		int fd = raw_openat(dirfd, path, flags, mode);
		int e = errno;
		struct stat made;
		bool ok = fd >= 0 && fstat(fd, &made) == 0;
		pc_done(r.id, fd >= 0 ? 0 : -e, ok ? &made : NULL);
		errno = e;
		return fd;
	}
	if (!trunc || !exists || !S_ISREG(st.st_mode) || st.st_size == 0)
		return raw_openat(dirfd, path, flags, mode);
	/* O_TRUNC of a file with bytes in it: a truncation to 0 */
	pc_stash_path(abs, &st);
	pc_inode_lock(&st);
	stat(abs, &st);
	uint64_t id = pc_data_begin(abs, &st, PC_TRUNC, 0, 0, 0, (uint64_t)st.st_size);
	int fd = raw_openat(dirfd, path, flags, mode);
	int e = errno;
	pc_done(id, fd >= 0 ? 0 : -e, NULL);
	pc_inode_unlock(&st);
	errno = e;
	return fd;
}

static mode_t mode_arg(int flags, va_list ap)
{
	return (flags & O_CREAT) || (flags & __O_TMPFILE) == __O_TMPFILE ? (mode_t)va_arg(ap, int)
	                                                                 : 0;
}

int open(const char *path, int flags, ...)
{
	va_list ap;
	va_start(ap, flags);
	mode_t mode = mode_arg(flags, ap);
	va_end(ap);
	return do_openat(AT_FDCWD, path, flags, mode);
}

int open64(const char *path, int flags, ...)
{
	va_list ap;
	va_start(ap, flags);
	mode_t mode = mode_arg(flags, ap);
	va_end(ap);
	return do_openat(AT_FDCWD, path, flags, mode);
}

int openat(int dirfd, const char *path, int flags, ...)
{
	va_list ap;
	va_start(ap, flags);
	mode_t mode = mode_arg(flags, ap);
	va_end(ap);
	return do_openat(dirfd, path, flags, mode);
}

int openat64(int dirfd, const char *path, int flags, ...)
{
	va_list ap;
	va_start(ap, flags);
	mode_t mode = mode_arg(flags, ap);
	va_end(ap);
	return do_openat(dirfd, path, flags, mode);
}

int __open_2(const char *path, int flags)
{
	return do_openat(AT_FDCWD, path, flags, 0);
}

int __open64_2(const char *path, int flags)
{
	return do_openat(AT_FDCWD, path, flags, 0);
}

int __openat_2(int dirfd, const char *path, int flags)
{
	return do_openat(dirfd, path, flags, 0);
}

int __openat64_2(int dirfd, const char *path, int flags)
{
	return do_openat(dirfd, path, flags, 0);
}

int creat(const char *path, mode_t mode)
{
	return do_openat(AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC, mode);
}

int creat64(const char *path, mode_t mode)
{
	return do_openat(AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC, mode);
}

/* --- bytes ---------------------------------------------------------------- */

struct change {
	uint64_t id;
	struct stat st;
};

/* Before a change of [off, off + len) (off < 0: at the descriptor's offset,
 * or at the end with O_APPEND): journal what it overwrites. False for a
 * descriptor the journal does not follow. */
static bool change_begin(struct change *c, int fd, int op, int64_t off, uint64_t len, bool append,
                         bool keeps_bytes)
{
	struct stat st;
	if (!active() || !pc_tracked_fd(fd, &st, false))
		return false;
	int fl = fcntl(fd, F_GETFL);
	/* a write that is durable when it returns (and durable for its own
	 * range only) is not something this model can tell apart */
	if (fl >= 0 && (fl & O_DSYNC))
		pc_die(
		    "cannot track a write through an O_SYNC/O_DSYNC descriptor of a file under %s",
		    pc.root);
	pc_stash_fd(fd, &st);
	pc_inode_lock(&st);
	fstat(fd, &c->st); /* the size as it is now that no other change can run */
	uint64_t size = (uint64_t)c->st.st_size;
	uint64_t at;
	if (append || (fl >= 0 && (fl & O_APPEND) && op == PC_WRITE))
		at = size; /* (Linux appends even for pwrite on O_APPEND) */
	else if (off >= 0)
		at = (uint64_t)off;
	else
		at = (uint64_t)lseek(fd, 0, SEEK_CUR);
	uint64_t from = at < size ? at : size, to = at + len < size ? at + len : size;
	if (keeps_bytes)
		from = to = 0;
	char src[64];
	snprintf(src, sizeof(src), "/proc/self/fd/%d", fd);
	c->id = pc_data_begin(src, &c->st, op, at, len, from, to);
	return true;
}

static void change_end(struct change *c, int64_t rc, int e)
{
	pc_done(c->id, rc < 0 ? -e : rc, NULL);
	pc_inode_unlock(&c->st);
	errno = e;
}

static uint64_t iov_len(const struct iovec *iov, int n)
{
	uint64_t len = 0;
	for (int i = 0; i < n && iov; i++)
		len += iov[i].iov_len;
	return len;
}

ssize_t write(int fd, const void *buf, size_t n)
{
	struct change c;
	if (!change_begin(&c, fd, PC_WRITE, -1, n, false, false))
		return syscall(SYS_write, fd, buf, n);
	ssize_t r = syscall(SYS_write, fd, buf, n);
	change_end(&c, r, errno);
	return r;
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
	struct change c;
	if (!change_begin(&c, fd, PC_WRITE, off, n, false, false))
		return syscall(SYS_pwrite64, fd, buf, n, off);
	ssize_t r = syscall(SYS_pwrite64, fd, buf, n, off);
	change_end(&c, r, errno);
	return r;
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off)
{
	return pwrite(fd, buf, n, off);
}

ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
	struct change c;
	if (!change_begin(&c, fd, PC_WRITE, -1, iov_len(iov, cnt), false, false))
		return syscall(SYS_writev, fd, iov, cnt);
	ssize_t r = syscall(SYS_writev, fd, iov, cnt);
	change_end(&c, r, errno);
	return r;
}

/* the kernel takes the offset as two longs; on 64-bit the high one is 0 */
ssize_t pwritev(int fd, const struct iovec *iov, int cnt, off_t off)
{
	struct change c;
	if (!change_begin(&c, fd, PC_WRITE, off, iov_len(iov, cnt), false, false))
		return syscall(SYS_pwritev, fd, iov, cnt, off, 0);
	ssize_t r = syscall(SYS_pwritev, fd, iov, cnt, off, 0);
	change_end(&c, r, errno);
	return r;
}

ssize_t pwritev64(int fd, const struct iovec *iov, int cnt, off_t off)
{
	return pwritev(fd, iov, cnt, off);
}

ssize_t pwritev2(int fd, const struct iovec *iov, int cnt, off_t off, int flags)
{
	struct change c;
	struct stat st;
	if ((flags & (RWF_DSYNC | RWF_SYNC)) && active() && pc_tracked_fd(fd, &st, false))
		pc_die("cannot track pwritev2(RWF_DSYNC/RWF_SYNC) into a file under %s", pc.root);
	if (!change_begin(&c, fd, PC_WRITE, off, iov_len(iov, cnt), flags & RWF_APPEND, false))
		return syscall(SYS_pwritev2, fd, iov, cnt, off, 0, flags);
	ssize_t r = syscall(SYS_pwritev2, fd, iov, cnt, off, 0, flags);
	change_end(&c, r, errno);
	return r;
}

ssize_t pwritev64v2(int fd, const struct iovec *iov, int cnt, off_t off, int flags)
{
	return pwritev2(fd, iov, cnt, off, flags);
}

/* A truncation keeps the bytes it cuts off ([len, size)) in the journal. */
static bool trunc_begin(struct change *c, int fd, uint64_t len)
{
	struct stat st;
	if (!active() || !pc_tracked_fd(fd, &st, false))
		return false;
	pc_stash_fd(fd, &st);
	pc_inode_lock(&st);
	fstat(fd, &c->st);
	uint64_t size = (uint64_t)c->st.st_size;
	char src[64];
	snprintf(src, sizeof(src), "/proc/self/fd/%d", fd);
	c->id = pc_data_begin(src, &c->st, PC_TRUNC, len, 0, len < size ? len : size, size);
	return true;
}

int ftruncate(int fd, off_t len)
{
	struct change c;
	if (len < 0 || !trunc_begin(&c, fd, (uint64_t)len))
		return (int)syscall(SYS_ftruncate, fd, len);
	int r = (int)syscall(SYS_ftruncate, fd, len);
	change_end(&c, r, errno);
	return r;
}

int ftruncate64(int fd, off_t len)
{
	return ftruncate(fd, len);
}

int truncate(const char *path, off_t len)
{
	char abs[4096];
	if (!active() || len < 0 || !pc_resolve(AT_FDCWD, path, abs, sizeof(abs)) ||
	    !pc_under_root(abs))
		return (int)syscall(SYS_truncate, path, len);
	/* through a descriptor of its own, so the rules are ftruncate's */
	int fd = raw_openat(AT_FDCWD, path, O_WRONLY | O_CLOEXEC, 0);
	if (fd < 0)
		return (int)syscall(SYS_truncate, path, len);
	int r = ftruncate(fd, len);
	int e = errno;
	syscall(SYS_close, fd);
	pc_forget_fd(fd);
	errno = e;
	return r;
}

int truncate64(const char *path, off_t len)
{
	return truncate(path, len);
}

int fallocate(int fd, int mode, off_t off, off_t len)
{
	struct change c;
	if (!active() || off < 0 || len <= 0)
		return (int)syscall(SYS_fallocate, fd, mode, off, len);
	if (mode & (FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_INSERT_RANGE)) {
		struct stat st;
		if (pc_tracked_fd(fd, &st, false))
			pc_die("cannot track fallocate(COLLAPSE/INSERT_RANGE) of a file under %s",
			       pc.root);
		return (int)syscall(SYS_fallocate, fd, mode, off, len);
	}
	/* punching or zeroing changes bytes; plain allocation only the size */
	bool zeroes = mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE);
	if (!change_begin(&c, fd, PC_FALLOC, off, (uint64_t)len, false, !zeroes))
		return (int)syscall(SYS_fallocate, fd, mode, off, len);
	int r = (int)syscall(SYS_fallocate, fd, mode, off, len);
	change_end(&c, r, errno);
	return r;
}

int fallocate64(int fd, int mode, off_t off, off_t len)
{
	return fallocate(fd, mode, off, len);
}

int posix_fallocate(int fd, off_t off, off_t len)
{
	int (*real)(int, off_t, off_t) = (int (*)(int, off_t, off_t))next("posix_fallocate");
	struct change c;
	if (off < 0 || len <= 0 ||
	    !change_begin(&c, fd, PC_FALLOC, off, (uint64_t)len, false, true))
		return real(fd, off, len);
	int e = errno;
	int r = real(fd, off, len); /* returns the error, errno untouched */
	change_end(&c, r == 0 ? 0 : -1, r);
	errno = e;
	return r;
}

int posix_fallocate64(int fd, off_t off, off_t len)
{
	return posix_fallocate(fd, off, len);
}

/* --- durability ------------------------------------------------------------ */

static int do_sync(int fd, int op, long nr)
{
	struct stat st;
	if (!active() || !pc_tracked_fd(fd, &st, true))
		return (int)syscall(nr, fd);
	if (pc.lying)
		return 0; /* success, and nothing in the journal: nothing durable */
	struct pc_rec r = {.type = PC_SYNC,
	                   .op = (uint64_t)op,
	                   .id = pc_next_id(),
	                   .dev = st.st_dev,
	                   .ino = st.st_ino};
	char path[4096] = "";
	pc_fd_path(fd, path, sizeof(path));
	pc_journal(&r, path, NULL, NULL, 0);
	int rc = (int)syscall(nr, fd);
	int e = errno;
	pc_done(r.id, rc == 0 ? 0 : -e, NULL);
	errno = e;
	return rc;
}

int fsync(int fd)
{
	return do_sync(fd, PC_FSYNC, SYS_fsync);
}

int fdatasync(int fd)
{
	return do_sync(fd, PC_FDATASYNC, SYS_fdatasync);
}

static uint64_t sync_all(int op)
{
	struct pc_rec r = {.type = PC_SYNC, .op = (uint64_t)op, .id = pc_next_id(), .flags = 1};
	pc_journal(&r, NULL, NULL, NULL, 0);
	return r.id;
}

int syncfs(int fd)
{
	struct stat st;
	if (!active() || fstat(fd, &st) != 0 || st.st_dev != pc.root_dev)
		return (int)syscall(SYS_syncfs, fd);
	if (pc.lying)
		return 0;
	uint64_t id = sync_all(PC_SYNCFS);
	int rc = (int)syscall(SYS_syncfs, fd);
	int e = errno;
	pc_done(id, rc == 0 ? 0 : -e, NULL);
	errno = e;
	return rc;
}

void sync(void)
{
	if (!active()) {
		syscall(SYS_sync);
		return;
	}
	if (pc.lying)
		return;
	uint64_t id = sync_all(PC_SYNCALL);
	syscall(SYS_sync);
	pc_done(id, 0, NULL);
}

/* sync_file_range starts or waits for writeback of a range but neither
 * writes the metadata nor flushes the device's cache: in this model it
 * makes nothing durable, so it is passed on and not journaled. */
int sync_file_range(int fd, off_t off, off_t n, unsigned int flags)
{
	return (int)syscall(SYS_sync_file_range, fd, off, n, flags);
}

/* --- directories ----------------------------------------------------------- */

static uint64_t ns_begin(int op, const char *p1, const struct stat *d1, const char *p2,
                         const struct stat *d2, const struct stat *subj, const struct stat *repl,
                         uint64_t mode, uint64_t flags)
{
	struct pc_rec r = {.type = PC_NS, .op = (uint64_t)op, .id = pc_next_id(), .mode = mode};
	r.pdev = d1->st_dev, r.pino = d1->st_ino;
	if (d2)
		r.qdev = d2->st_dev, r.qino = d2->st_ino;
	if (subj)
		r.dev = subj->st_dev, r.ino = subj->st_ino;
	if (repl)
		r.rdev = repl->st_dev, r.rino = repl->st_ino, r.rmode = repl->st_mode;
	r.flags = flags;
	pc_journal(&r, p1, p2, NULL, 0);
	return r.id;
}

static int ns_end(uint64_t id, int rc, const char *made_at)
{
	int e = errno;
	struct stat made;
	bool ok = rc == 0 && made_at && lstat(made_at, &made) == 0;
	pc_done(id, rc == 0 ? 0 : -e, ok ? &made : NULL);
	errno = e;
	return rc;
}

static int do_mkdirat(int dirfd, const char *path, mode_t mode)
{
	char abs[4096];
	if (!active() || !pc_resolve(dirfd, path, abs, sizeof(abs)) || !pc_under_root(abs))
		return (int)syscall(SYS_mkdirat, dirfd, path, mode);
	struct stat dir;
	pc_parent(abs, &dir);
	uint64_t id = ns_begin(PC_MKDIR, abs, &dir, NULL, NULL, NULL, NULL, mode, 0);
	return ns_end(id, (int)syscall(SYS_mkdirat, dirfd, path, mode), abs);
}

int mkdir(const char *path, mode_t mode)
{
	return do_mkdirat(AT_FDCWD, path, mode);
}

int mkdirat(int dirfd, const char *path, mode_t mode)
{
	return do_mkdirat(dirfd, path, mode);
}

static int do_unlinkat(int dirfd, const char *path, int flags)
{
	char abs[4096];
	struct stat st, dir;
	if (!active() || !pc_resolve(dirfd, path, abs, sizeof(abs)) || !pc_under_root(abs) ||
	    lstat(abs, &st) != 0)
		return (int)syscall(SYS_unlinkat, dirfd, path, flags);
	bool rmdir = flags & AT_REMOVEDIR;
	/* sockets and FIFOs hold no data: their names are not modelled */
	if (rmdir ? !S_ISDIR(st.st_mode) : !(S_ISREG(st.st_mode) || S_ISLNK(st.st_mode)))
		return (int)syscall(SYS_unlinkat, dirfd, path, flags);
	pc_stash_path(abs, &st);
	pc_parent(abs, &dir);
	uint64_t id =
	    ns_begin(rmdir ? PC_RMDIR : PC_UNLINK, abs, &dir, NULL, NULL, &st, NULL, st.st_mode, 0);
	return ns_end(id, (int)syscall(SYS_unlinkat, dirfd, path, flags), NULL);
}

int unlink(const char *path)
{
	return do_unlinkat(AT_FDCWD, path, 0);
}

int unlinkat(int dirfd, const char *path, int flags)
{
	return do_unlinkat(dirfd, path, flags);
}

int rmdir(const char *path)
{
	return do_unlinkat(AT_FDCWD, path, AT_REMOVEDIR);
}

int remove(const char *path)
{
	if (do_unlinkat(AT_FDCWD, path, 0) == 0)
		return 0;
	return errno == EISDIR ? do_unlinkat(AT_FDCWD, path, AT_REMOVEDIR) : -1;
}

static int do_renameat2(int ofd, const char *from, int nfd, const char *to, unsigned flags)
{
	char a[4096], b[4096];
	if (!active() || !pc_resolve(ofd, from, a, sizeof(a)) || !pc_resolve(nfd, to, b, sizeof(b)))
		return (int)syscall(SYS_renameat2, ofd, from, nfd, to, flags);
	bool in_a = pc_under_root(a), in_b = pc_under_root(b);
	if (!in_a && !in_b)
		return (int)syscall(SYS_renameat2, ofd, from, nfd, to, flags);
	if (in_a != in_b)
		pc_die("cannot track rename(%s, %s) across the edge of %s (or of POWERCUT_IGNORE)",
		       a, b, pc.root);
	if (flags & ~(unsigned)RENAME_NOREPLACE)
		pc_die("cannot track renameat2(%s, %s, flags 0x%x)", a, b, flags);
	struct stat src, dst, d1, d2;
	if (lstat(a, &src) != 0)
		return (int)syscall(SYS_renameat2, ofd, from, nfd, to, flags);
	bool replaces = lstat(b, &dst) == 0;
	pc_stash_path(a, &src);
	if (replaces)
		pc_stash_path(b, &dst);
	pc_parent(a, &d1);
	pc_parent(b, &d2);
	uint64_t id =
	    ns_begin(PC_RENAME, a, &d1, b, &d2, &src, replaces ? &dst : NULL, src.st_mode, flags);
	return ns_end(id, (int)syscall(SYS_renameat2, ofd, from, nfd, to, flags), NULL);
}

int rename(const char *from, const char *to)
{
	return do_renameat2(AT_FDCWD, from, AT_FDCWD, to, 0);
}

int renameat(int ofd, const char *from, int nfd, const char *to)
{
	return do_renameat2(ofd, from, nfd, to, 0);
}

int renameat2(int ofd, const char *from, int nfd, const char *to, unsigned int flags)
{
	return do_renameat2(ofd, from, nfd, to, flags);
}

static int do_linkat(int ofd, const char *from, int nfd, const char *to, int flags)
{
	char a[4096] = "", b[4096];
	struct stat src, dir;
	if (!active() || !pc_resolve(nfd, to, b, sizeof(b)) || !pc_under_root(b))
		return (int)syscall(SYS_linkat, ofd, from, nfd, to, flags);
	bool ok;
	if ((flags & AT_EMPTY_PATH) && from[0] == '\0')
		ok = fstat(ofd, &src) == 0;
	else
		ok = pc_resolve(ofd, from, a, sizeof(a)) &&
		     ((flags & AT_SYMLINK_FOLLOW) ? stat(a, &src) : lstat(a, &src)) == 0;
	if (!ok)
		return (int)syscall(SYS_linkat, ofd, from, nfd, to, flags);
	pc_parent(b, &dir);
	uint64_t id = ns_begin(PC_LINK, a, &dir, b, &dir, &src, NULL, src.st_mode, 0);
	return ns_end(id, (int)syscall(SYS_linkat, ofd, from, nfd, to, flags), b);
}

int link(const char *from, const char *to)
{
	return do_linkat(AT_FDCWD, from, AT_FDCWD, to, 0);
}

int linkat(int ofd, const char *from, int nfd, const char *to, int flags)
{
	return do_linkat(ofd, from, nfd, to, flags);
}

static int do_symlinkat(const char *target, int nfd, const char *to)
{
	char b[4096];
	struct stat dir;
	if (!active() || !pc_resolve(nfd, to, b, sizeof(b)) || !pc_under_root(b))
		return (int)syscall(SYS_symlinkat, target, nfd, to);
	pc_parent(b, &dir);
	uint64_t id = ns_begin(PC_SYMLINK, b, &dir, target, NULL, NULL, NULL, 0, 0);
	return ns_end(id, (int)syscall(SYS_symlinkat, target, nfd, to), b);
}

int symlink(const char *target, const char *to)
{
	return do_symlinkat(target, AT_FDCWD, to);
}

int symlinkat(const char *target, int nfd, const char *to)
{
	return do_symlinkat(target, nfd, to);
}

/* --- descriptors ----------------------------------------------------------- */

int close(int fd)
{
	if (active()) {
		if (fd == pc.jfd) {
			errno = EBADF; /* the journal is not the program's to close */
			return -1;
		}
		pc_forget_fd(fd);
	}
	return (int)syscall(SYS_close, fd);
}

int dup(int fd)
{
	return (int)syscall(SYS_dup, fd);
}

int dup3(int fd, int to, int flags)
{
	if (active()) {
		if (to == pc.jfd)
			pc_die("cannot track: dup2/dup3 onto the journal's descriptor %d", to);
		pc_forget_fd(to);
	}
	return (int)syscall(SYS_dup3, fd, to, flags);
}

int dup2(int fd, int to)
{
	if (fd == to) /* dup3 refuses this; dup2 checks fd and returns it */
		return fcntl(fd, F_GETFD) < 0 ? -1 : fd;
	return dup3(fd, to, 0);
}

/* --- writes it cannot see: fail closed ----------------------------------- */

static void refuse_path(const char *what, const char *path, const char *mode)
{
	char abs[4096];
	if (active() && path && writes(mode) && pc_resolve(AT_FDCWD, path, abs, sizeof(abs)) &&
	    pc_under_root(abs))
		pc_die("cannot track %s(%s, \"%s\"): stdio writes are invisible to the journal "
		       "(list it in POWERCUT_IGNORE if it need not survive)",
		       what, abs, mode);
}

static void refuse_fd(const char *what, int fd)
{
	struct stat st;
	char path[4096] = "?";
	if (active() && fd >= 0 && pc_tracked_fd(fd, &st, false)) {
		pc_fd_path(fd, path, sizeof(path));
		pc_die("cannot track %s into %s", what, path);
	}
}

FILE *fopen(const char *path, const char *mode)
{
	refuse_path("fopen", path, mode);
	return ((FILE * (*)(const char *, const char *)) next("fopen"))(path, mode);
}

FILE *fopen64(const char *path, const char *mode)
{
	refuse_path("fopen", path, mode);
	return ((FILE * (*)(const char *, const char *)) next("fopen64"))(path, mode);
}

FILE *freopen(const char *path, const char *mode, FILE *f)
{
	refuse_path("freopen", path, mode);
	if (path == NULL && writes(mode))
		refuse_fd("freopen", fileno(f));
	return ((FILE * (*)(const char *, const char *, FILE *)) next("freopen"))(path, mode, f);
}

FILE *freopen64(const char *path, const char *mode, FILE *f)
{
	refuse_path("freopen", path, mode);
	if (path == NULL && writes(mode))
		refuse_fd("freopen", fileno(f));
	return ((FILE * (*)(const char *, const char *, FILE *)) next("freopen64"))(path, mode, f);
}

FILE *fdopen(int fd, const char *mode)
{
	if (writes(mode))
		refuse_fd("fdopen (stdio writes are invisible to the journal)", fd);
	return ((FILE * (*)(int, const char *)) next("fdopen"))(fd, mode);
}

/* Fault injection (POWERCUT_FAIL_READ=NAME): reading a file of that name,
 * by pread or by mapping it, fails with EIO as a bad disk block would. */
static bool failing(int fd)
{
	char path[4096];
	return pc.fail_read[0] && fd >= 0 && pc_fd_path(fd, path, sizeof(path)) &&
	       strcmp(strrchr(path, '/') + 1, pc.fail_read) == 0;
}

ssize_t pread(int fd, void *buf, size_t n, off_t off)
{
	if (active() && failing(fd)) {
		errno = EIO;
		return -1;
	}
	return syscall(SYS_pread64, fd, buf, n, off);
}

ssize_t pread64(int fd, void *buf, size_t n, off_t off)
{
	return pread(fd, buf, n, off);
}

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	if (fd >= 0 && active()) {
		if (failing(fd)) {
			errno = EIO;
			return MAP_FAILED;
		}
		if ((prot & PROT_WRITE) && (flags & MAP_SHARED))
			refuse_fd("a shared writable mapping (mmap)", fd);
	}
	long r = syscall(SYS_mmap, addr, len, prot, flags, fd, off);
	return (void *)r;
}

void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	return mmap(addr, len, prot, flags, fd, off);
}

ssize_t copy_file_range(int in, off_t *oin, int out, off_t *oout, size_t n, unsigned int flags)
{
	refuse_fd("copy_file_range", out);
	return syscall(SYS_copy_file_range, in, oin, out, oout, n, flags);
}

ssize_t sendfile(int out, int in, off_t *off, size_t n)
{
	refuse_fd("sendfile", out);
	return syscall(SYS_sendfile, out, in, off, n);
}

ssize_t sendfile64(int out, int in, off_t *off, size_t n)
{
	return sendfile(out, in, off, n);
}

ssize_t splice(int in, off_t *oin, int out, off_t *oout, size_t n, unsigned int flags)
{
	refuse_fd("splice", out);
	return syscall(SYS_splice, in, oin, out, oout, n, flags);
}

/* glibc makes these files and directories with internal calls */
static void refuse_template(const char *what, const char *tmpl)
{
	char abs[4096];
	if (active() && tmpl && pc_resolve(AT_FDCWD, tmpl, abs, sizeof(abs)) && pc_under_root(abs))
		pc_die("cannot track %s(%s): glibc creates it out of sight", what, abs);
}

int mkstemp(char *tmpl)
{
	refuse_template("mkstemp", tmpl);
	return ((int (*)(char *))next("mkstemp"))(tmpl);
}

int mkostemp(char *tmpl, int flags)
{
	refuse_template("mkostemp", tmpl);
	return ((int (*)(char *, int))next("mkostemp"))(tmpl, flags);
}

int mkstemps(char *tmpl, int suffixlen)
{
	refuse_template("mkstemps", tmpl);
	return ((int (*)(char *, int))next("mkstemps"))(tmpl, suffixlen);
}

char *mkdtemp(char *tmpl)
{
	refuse_template("mkdtemp", tmpl);
	return ((char *(*)(char *))next("mkdtemp"))(tmpl);
}
