/* powercut: what the interposed calls (powercut.c) share with the state,
 * path and journal code (powercut_core.c). Not a public interface: the
 * journal format below is read by tests/support/powercut.py, and the two
 * must change together.
 *
 * The journal is one file, opened O_APPEND by every process under the
 * harness; each record is one writev(2), so records never interleave and
 * their order in the file is the order in which they happened. A record
 * is a fixed header of 24 little-endian 64-bit words, then path1, path2
 * and data (their lengths are in the header). */
#ifndef MM_POWERCUT_H
#define MM_POWERCUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#define PC_MAGIC 0x314a4350u /* "PCJ1" */

enum pc_type {
	PC_DATA = 1, /* a change of a file's bytes or size is about to happen */
	PC_PRE = 2,  /* bytes [off, off + dlen) as they were before it */
	PC_DONE = 3, /* the operation `id` returned rc (for creations: the new inode) */
	PC_SYNC = 4, /* a sync of one inode (or of everything) is about to begin */
	PC_NS = 5,   /* a directory change is about to happen */
};

enum pc_data_op { PC_WRITE = 1, PC_TRUNC = 2, PC_FALLOC = 3 };
enum pc_sync_op { PC_FSYNC = 1, PC_FDATASYNC = 2, PC_SYNCFS = 3, PC_SYNCALL = 4 };
enum pc_ns_op {
	PC_CREATE = 1,
	PC_MKDIR = 2,
	PC_UNLINK = 3,
	PC_RMDIR = 4,
	PC_RENAME = 5,
	PC_LINK = 6,
	PC_SYMLINK = 7,
};

struct pc_rec {
	uint64_t magic, size, type, pid, id;
	uint64_t dev, ino;          /* the inode the record is about */
	uint64_t off, len, oldsize; /* PC_DATA: range, size before; PC_TRUNC: off = new size */
	int64_t rc;                 /* PC_DONE */
	uint64_t pdev, pino;        /* PC_NS: directory of path1 */
	uint64_t qdev, qino;        /* PC_NS: directory of path2 (rename, link) */
	uint64_t rdev, rino;        /* PC_NS rename: the inode it replaced (stashed), 0 none */
	uint64_t op, mode, len1, len2, dlen;
	uint64_t flags; /* PC_SYNC: 1 = everything (sync, syncfs) */
	uint64_t rmode; /* PC_NS rename: st_mode of the replaced inode */
};

struct pc_state {
	bool on;
	bool lying;
	char root[4096];
	size_t rootlen;
	dev_t root_dev;
	char state[4096]; /* journal and stash/ */
	int jfd;
	char ignore[4096];   /* POWERCUT_IGNORE, ':' replaced by '\0', "\0\0" ends it */
	char fail_read[256]; /* POWERCUT_FAIL_READ: reads of this file name fail (EIO) */
};

extern struct pc_state pc;

void pc_init(void);
_Noreturn void pc_die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
uint64_t pc_next_id(void);

/* Paths: absolute and lexically normal; false when too long. */
bool pc_resolve(int dirfd, const char *path, char *out, size_t n);
bool pc_under_root(const char *abs);              /* strictly inside the root, not ignored */
bool pc_ignored(const char *abs);                 /* on POWERCUT_IGNORE */
bool pc_parent(const char *abs, struct stat *st); /* stat of its directory */
bool pc_fd_path(int fd, char *out, size_t n);     /* through /proc/self/fd */

/* A descriptor the journal must see: a regular file (or, with dirs, a
 * directory) inside the root. st is filled in either way. */
bool pc_tracked_fd(int fd, struct stat *st, bool dirs);
void pc_forget_fd(int fd);

/* Keep an inode reachable from the stash (a hard link) so that the undo
 * step can restore its bytes or its name whatever happens to it. */
void pc_stash_fd(int fd, const struct stat *st);
void pc_stash_path(const char *abs, const struct stat *st);

/* One journal record: header (size and magic filled in here), paths, data. */
void pc_journal(struct pc_rec *r, const char *p1, const char *p2, const void *data, size_t dlen);
/* Before a change of bytes: PC_DATA, then PC_PRE records of [from, to)
 * read from src (the file's path, or /proc/self/fd/N; opened read-only).
 * Returns the id for PC_DONE. */
uint64_t pc_data_begin(const char *src, const struct stat *st, int op, uint64_t off, uint64_t len,
                       uint64_t from, uint64_t to);
void pc_done(uint64_t id, int64_t rc, const struct stat *made);

/* Serializes changes of one inode's bytes (never its syncs) so that the
 * size and pre-image read before a write are the ones it overwrote. */
void pc_inode_lock(const struct stat *st);
void pc_inode_unlock(const struct stat *st);

#endif
