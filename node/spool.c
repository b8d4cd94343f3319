#include "spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "buf.h"
#include "crc32c.h"
#include "strmap.h"

/* Mutants (-DMM_MUTANT=NAME in CMake): each takes one durability step
 * away, and the power-cut tests must fail without it (scripts/test.sh).
 *   NO_SYNCER_FDATASYNC  the syncer reports durable without fdatasync
 *   NO_SEGMENT_DIRSYNC   a new segment's directory entry is not fsync'ed
 *   NO_SPOOL_DIRSYNC     the spool's own directories are not fsync'ed in
 *                        their parents */

/* The spool tells its owner what recovery found through meshnode's log
 * when it is linked into meshnode; elsewhere (unit tests, fuzzers) there is
 * no node_log and the lines go to stderr. */
void node_log(const char *fmt, ...) __attribute__((weak, format(printf, 1, 2)));

#define spool_log(...)                                \
	do {                                          \
		if (node_log) {                       \
			node_log(__VA_ARGS__);        \
		} else {                              \
			fprintf(stderr, __VA_ARGS__); \
			fputc('\n', stderr);          \
		}                                     \
	} while (0)

/* Record: magic, type, length of the payload, CRC-32C of the payload. */
#define REC_MAGIC 0x4d4d5131u /* "MMQ1" */
#define REC_MSG   1
#define REC_DONE  2
#define REC_HDR   16
#define REC_MAX   (MM_SPOOL_SEGMENT_MAX - REC_HDR)

static void put32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void buf_u32(struct mm_buf *b, uint32_t v)
{
	unsigned char x[4];
	put32(x, v);
	mm_buf_add(b, x, 4);
}

static void buf_u64(struct mm_buf *b, uint64_t v)
{
	buf_u32(b, (uint32_t)v);
	buf_u32(b, (uint32_t)(v >> 32));
}

static void buf_str(struct mm_buf *b, const char *s)
{
	size_t n = s ? strlen(s) : 0;
	buf_u32(b, (uint32_t)n);
	mm_buf_add(b, s ? s : "", n);
}

/* --- segments ---------------------------------------------------------- */

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* fsync of a directory: what was made or removed in it is durable */
static int sync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return errno;
	int e = fsync(fd) == 0 ? 0 : errno;
	close(fd);
	return e;
}

static void seg_path(const struct mm_spool *sp, uint32_t seq, char *out, size_t n)
{
	snprintf(out, n, "%s/%08x.seg", sp->dir, seq);
}

static struct mm_seg *seg_find(struct mm_spool *sp, uint32_t seq)
{
	if (sp->nsegs == 0 || seq < sp->segs[0].seq || seq - sp->segs[0].seq >= sp->nsegs)
		return NULL;
	return &sp->segs[seq - sp->segs[0].seq];
}

/* An fdatasync failed: after that the state of the file is unknown (the
 * page cache may have dropped the pages, and Linux reports a writeback
 * error to one fsync only -- the next one on the same file says 0). So the
 * error is sticky and wakes the loop, which promises nothing more and
 * stops, whichever thread's fdatasync saw it. */
static int sync_failed(struct mm_spool *sp, int err)
{
	pthread_mutex_lock(&sp->mu);
	if (sp->sync_err == 0)
		sp->sync_err = err;
	uint64_t one = 1;
	if (sp->event_fd >= 0 && write(sp->event_fd, &one, sizeof(one)) < 0) {
		/* the counter is only a wake-up */
	}
	pthread_mutex_unlock(&sp->mu);
	return err;
}

/* fdatasync of a segment, from either thread. One at a time, and a failure
 * recorded before the next may start: the syncer's descriptor is a dup
 * (one open file, one writeback-error cursor), so of two concurrent
 * fdatasyncs only one would hear of an EIO, and the other's 0 could then
 * promise what the disk lost. 0, or the sticky error. */
static int data_sync(struct mm_spool *sp, int fd)
{
	pthread_mutex_lock(&sp->sync_mu);
	int e = fdatasync(fd) == 0 ? 0 : errno;
	if (e)
		sync_failed(sp, e);
	pthread_mutex_lock(&sp->mu);
	e = sp->sync_err;
	pthread_mutex_unlock(&sp->mu);
	pthread_mutex_unlock(&sp->sync_mu);
	return e;
}

/* A new segment to write. The one before it is made durable first, so
 * that the syncer only ever needs the newest file and a segment that is
 * not the last one is always whole (recovery quarantines one that is not);
 * the new directory entry is made durable before any record in it is
 * promised. */
static int seg_new(struct mm_spool *sp)
{
	uint32_t seq = sp->nsegs ? sp->segs[sp->nsegs - 1].seq + 1 : 1;
	int e;
	if (sp->nsegs > 0 && (e = data_sync(sp, sp->segs[sp->nsegs - 1].fd)) != 0)
		return e;
	char path[4096];
	seg_path(sp, seq, path, sizeof(path));
	int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return errno;
#ifndef MM_MUTANT_NO_SEGMENT_DIRSYNC
	if (fsync(sp->dirfd) != 0) {
		e = sync_failed(sp, errno); /* sticky too: the directory's state is unknown */
		close(fd);
		unlink(path);
		return e;
	}
#endif
	mm_grow(&sp->segs, &sp->capsegs, sp->nsegs + 1, sizeof(*sp->segs));
	sp->segs[sp->nsegs++] = (struct mm_seg){.seq = seq, .fd = fd, .created_ms = mono_ms()};
	pthread_mutex_lock(&sp->mu);
	sp->sync_fd = fd;
	if (sp->durable < sp->lsn) {
		sp->durable = sp->lsn;
		uint64_t one = 1;
		if (sp->event_fd >= 0 && write(sp->event_fd, &one, sizeof(one)) < 0) {
			/* the counter is only a wake-up */
		}
	}
	pthread_mutex_unlock(&sp->mu);
	return 0;
}

/* Drop dead segments from the front, never the one being written. */
static void seg_collect(struct mm_spool *sp)
{
	size_t drop = 0;
	while (drop + 1 < sp->nsegs && sp->segs[drop].live == 0)
		drop++;
	if (drop == 0)
		return;
	/* what let go of these segments -- DONE records, the DSN that took a
	 * bounced message's place -- is in the current one: durable before
	 * the unlinks, which a file system may make durable at any time (a
	 * journal commit for anybody's fsync) */
	if (data_sync(sp, sp->segs[sp->nsegs - 1].fd) != 0)
		return;
	for (size_t i = 0; i < drop; i++) {
		char path[4096];
		seg_path(sp, sp->segs[i].seq, path, sizeof(path));
		if (sp->segs[i].fd >= 0) {
			close(sp->segs[i].fd);
			unlink(path);
		}
	}
	memmove(sp->segs, sp->segs + drop, (sp->nsegs - drop) * sizeof(*sp->segs));
	sp->nsegs -= drop;
}

/* --- append ------------------------------------------------------------ */

static int append(struct mm_spool *sp, int type, const struct iovec *parts, int nparts,
                  uint64_t *payload_off)
{
	size_t len = 0;
	uint32_t crc = 0;
	for (int i = 0; i < nparts; i++) {
		len += parts[i].iov_len;
		crc = mm_crc32c(crc, parts[i].iov_base, parts[i].iov_len);
	}
	if (len > REC_MAX)
		return EFBIG;
	struct mm_seg *seg = &sp->segs[sp->nsegs - 1];
	uint64_t max = sp->seg_max ? sp->seg_max : MM_SPOOL_SEGMENT_MAX;
	if (seg->size > 0 && seg->size + REC_HDR + len > max) {
		int e = seg_new(sp);
		if (e)
			return e;
		seg = &sp->segs[sp->nsegs - 1];
	}
	unsigned char hdr[REC_HDR];
	put32(hdr, REC_MAGIC);
	put32(hdr + 4, (uint32_t)type);
	put32(hdr + 8, (uint32_t)len);
	put32(hdr + 12, crc);
	struct iovec iov[16];
	if (nparts > 15)
		return EINVAL;
	iov[0] = (struct iovec){hdr, REC_HDR};
	memcpy(iov + 1, parts, (size_t)nparts * sizeof(*parts));
	size_t total = REC_HDR + len, done = 0;
	int at = 0, n = nparts + 1;
	while (done < total) {
		ssize_t w = pwritev(seg->fd, iov + at, n - at, (off_t)(seg->size + done));
		if (w < 0) {
			if (errno == EINTR)
				continue;
			int e = errno;
			/* nothing partial stays: cut the file back */
			if (ftruncate(seg->fd, (off_t)seg->size) != 0) {
				/* recovery would drop the torn record anyway */
			}
			return e;
		}
		done += (size_t)w;
		while (at < n && (size_t)w >= iov[at].iov_len) {
			w -= (ssize_t)iov[at].iov_len;
			at++;
		}
		if (at < n) {
			iov[at].iov_base = (char *)iov[at].iov_base + w;
			iov[at].iov_len -= (size_t)w;
		}
	}
	if (payload_off)
		*payload_off = seg->size + REC_HDR;
	seg->size += total;
	sp->lsn += total;
	return 0;
}

uint64_t mm_spool_new_id(struct mm_spool *sp, uint64_t now_ms)
{
	uint64_t id = now_ms << 16 | (uint64_t)sp->id_salt << 8;
	if (id <= sp->next_id)
		id = sp->next_id + 1;
	sp->next_id = id;
	return id;
}

int mm_spool_put(struct mm_spool *sp, const struct mm_spool_msg *m, const struct iovec *body,
                 int nbody, struct mm_spool_loc *loc, uint64_t *lsn)
{
	struct mm_buf meta = {0};
	buf_u64(&meta, m->id);
	buf_u64(&meta, (uint64_t)m->arrival);
	buf_u32(&meta, (uint32_t)m->ret | (uint32_t)m->flags << 8);
	buf_str(&meta, m->sender);
	buf_str(&meta, m->envid);
	buf_str(&meta, m->helo);
	buf_str(&meta, m->client);
	buf_u32(&meta, m->nrcpt);
	for (uint32_t i = 0; i < m->nrcpt; i++) {
		buf_str(&meta, m->rcpt[i].addr);
		buf_str(&meta, m->rcpt[i].orcpt);
		/* low byte NOTIFY, bit 8: finished (a relocated copy carries
		 * what its DONE records said) */
		buf_u32(&meta, m->rcpt[i].notify | (m->done && m->done[i] ? 0x100u : 0));
	}
	size_t blen = 0;
	for (int i = 0; i < nbody; i++)
		blen += body[i].iov_len;
	buf_u32(&meta, (uint32_t)blen);
	struct iovec parts[15];
	if (nbody > 14) {
		mm_buf_free(&meta);
		return EINVAL;
	}
	parts[0] = (struct iovec){meta.p, meta.len};
	memcpy(parts + 1, body, (size_t)nbody * sizeof(*body));
	uint64_t off;
	int e = append(sp, REC_MSG, parts, nbody + 1, &off);
	if (e == 0) {
		struct mm_seg *seg = &sp->segs[sp->nsegs - 1];
		*loc = (struct mm_spool_loc){seg->seq, off + meta.len, (uint32_t)blen};
		seg->live++;
		*lsn = sp->lsn;
	}
	mm_buf_free(&meta);
	return e;
}

int mm_spool_done(struct mm_spool *sp, uint64_t id, uint32_t idx)
{
	unsigned char p[12];
	put32(p, (uint32_t)id);
	put32(p + 4, (uint32_t)(id >> 32));
	put32(p + 8, idx);
	struct iovec part = {p, sizeof(p)};
	int e = append(sp, REC_DONE, &part, 1, NULL);
	/* nobody waits for it, but the syncer makes it durable in its next
	 * round (with whatever else is written by then): a power cut repeats
	 * only the deliveries of that moment, not every one since the last
	 * message came in */
	if (e == 0)
		mm_spool_sync(sp, sp->lsn);
	return e;
}

int mm_spool_read(const struct mm_spool *sp, const struct mm_spool_loc *loc, char *out)
{
	struct mm_seg *seg = seg_find((struct mm_spool *)sp, loc->seg);
	if (seg == NULL)
		return ENOENT;
	size_t done = 0;
	while (done < loc->len) {
		ssize_t r = pread(seg->fd, out + done, loc->len - done, (off_t)(loc->off + done));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? errno : EIO;
		done += (size_t)r;
	}
	return 0;
}

int mm_spool_sync_now(struct mm_spool *sp)
{
	struct mm_seg *seg = &sp->segs[sp->nsegs - 1];
	int e = data_sync(sp, seg->fd);
	if (e != 0)
		return e;
	pthread_mutex_lock(&sp->mu);
	if (sp->durable < sp->lsn)
		sp->durable = sp->lsn;
	pthread_mutex_unlock(&sp->mu);
	return 0;
}

const struct mm_seg *mm_spool_oldest(const struct mm_spool *sp, int64_t older_than_ms)
{
	for (size_t i = 0; i + 1 < sp->nsegs; i++) {
		const struct mm_seg *seg = &sp->segs[i];
		if (seg->live > 0)
			return mono_ms() - seg->created_ms >= older_than_ms ? seg : NULL;
	}
	return NULL;
}

void mm_spool_release(struct mm_spool *sp, uint32_t seq)
{
	struct mm_seg *seg = seg_find(sp, seq);
	if (seg && seg->live > 0 && --seg->live == 0)
		seg_collect(sp);
}

/* --- syncer ------------------------------------------------------------ */

/* The syncer fdatasyncs a descriptor of its own, dup'ed under the lock
 * from the current segment's: the loop may roll to a new segment and close
 * the old one (collection) while an fdatasync runs, and a closed, or worse
 * reused, number must never be what it syncs. The dup shares the open file,
 * so its fdatasync covers what the loop wrote. */
static void *syncer(void *arg)
{
	struct mm_spool *sp = arg;
	pthread_mutex_lock(&sp->mu);
	for (;;) {
		while (!sp->stop && sp->want <= sp->durable)
			pthread_cond_wait(&sp->cv, &sp->mu);
		if (sp->stop)
			break;
		uint64_t target = sp->want;
		int fd = fcntl(sp->sync_fd, F_DUPFD_CLOEXEC, 0);
		int err = fd < 0 ? errno : 0;
		unsigned pause = sp->syncer_pause_us;
		pthread_mutex_unlock(&sp->mu);
		if (pause)
			usleep(pause);
		if (fd >= 0) {
#ifndef MM_MUTANT_NO_SYNCER_FDATASYNC
			err = data_sync(sp, fd);
#endif
			close(fd);
		}
		pthread_mutex_lock(&sp->mu);
		if (err)
			sp->sync_err = err;
		else if (target > sp->durable)
			sp->durable = target;
		uint64_t one = 1;
		if (write(sp->event_fd, &one, sizeof(one)) < 0) {
			/* a wake-up only; the loop reads durable under the lock */
		}
	}
	pthread_mutex_unlock(&sp->mu);
	return NULL;
}

void mm_spool_sync(struct mm_spool *sp, uint64_t lsn)
{
	pthread_mutex_lock(&sp->mu);
	if (lsn > sp->want) {
		sp->want = lsn;
		pthread_cond_signal(&sp->cv);
	}
	pthread_mutex_unlock(&sp->mu);
}

uint64_t mm_spool_durable(struct mm_spool *sp, int *err)
{
	uint64_t v;
	(void)!read(sp->event_fd, &v, sizeof(v));
	pthread_mutex_lock(&sp->mu);
	v = sp->durable;
	*err = sp->sync_err;
	pthread_mutex_unlock(&sp->mu);
	return v;
}

/* --- recovery ---------------------------------------------------------- */

struct rec_msg {
	struct mm_spool_msg m;
	struct mm_spool_rcpt *rcpt;
	uint8_t *done;
	char idkey[17];
};

struct reader {
	const unsigned char *p, *end;
	bool bad;
};

static uint32_t rd32(struct reader *r)
{
	if (r->end - r->p < 4) {
		r->bad = true;
		return 0;
	}
	uint32_t v = get32(r->p);
	r->p += 4;
	return v;
}

static uint64_t rd64(struct reader *r)
{
	uint64_t lo = rd32(r);
	return lo | (uint64_t)rd32(r) << 32;
}

static char *rdstr(struct reader *r)
{
	uint32_t n = rd32(r);
	if (r->bad || (size_t)(r->end - r->p) < n) {
		r->bad = true;
		return mm_xstrdup("");
	}
	char *s = mm_xstrndup((const char *)r->p, n);
	r->p += n;
	return s;
}

static bool parse_msg(const unsigned char *p, size_t n, uint32_t seq, uint64_t payload_off,
                      struct rec_msg *out)
{
	struct reader r = {p, p + n, false};
	struct mm_spool_msg *m = &out->m;
	*out = (struct rec_msg){0};
	m->id = rd64(&r);
	m->arrival = (int64_t)rd64(&r);
	uint32_t f = rd32(&r);
	m->ret = (uint8_t)f;
	m->flags = (uint8_t)(f >> 8);
	m->sender = rdstr(&r);
	m->envid = rdstr(&r);
	m->helo = rdstr(&r);
	m->client = rdstr(&r);
	m->nrcpt = rd32(&r);
	if (r.bad || m->nrcpt > n / 12)
		m->nrcpt = 0, r.bad = true;
	out->rcpt = mm_xcalloc(m->nrcpt, sizeof(*out->rcpt));
	out->done = mm_xcalloc(m->nrcpt, 1);
	for (uint32_t i = 0; i < m->nrcpt && !r.bad; i++) {
		out->rcpt[i].addr = rdstr(&r);
		out->rcpt[i].orcpt = rdstr(&r);
		uint32_t v = rd32(&r);
		out->rcpt[i].notify = (uint8_t)v;
		out->done[i] = (v >> 8) & 1;
	}
	uint32_t blen = rd32(&r);
	if (!r.bad && (size_t)(r.end - r.p) != blen)
		r.bad = true;
	m->rcpt = out->rcpt;
	m->done = out->done;
	m->body = (struct mm_spool_loc){seq, payload_off + (uint64_t)(r.p - p), blen};
	snprintf(out->idkey, sizeof(out->idkey), "%016llx", (unsigned long long)m->id);
	return !r.bad;
}

static void free_msg(struct rec_msg *x)
{
	free((char *)x->m.sender);
	free((char *)x->m.envid);
	free((char *)x->m.helo);
	free((char *)x->m.client);
	for (uint32_t i = 0; i < x->m.nrcpt; i++) {
		free((char *)x->rcpt[i].addr);
		free((char *)x->rcpt[i].orcpt);
	}
	free(x->rcpt);
	free(x->done);
}

struct recovery {
	size_t n, cap;
	struct rec_msg **msgs; /* each allocated alone: the map keys point into them */
	struct mm_strmap by_id;
};

/* The whole segment, read with pread: an I/O error is an error here (a
 * mapping would turn it into SIGBUS). */
static int read_segment(int fd, unsigned char **out, size_t *n)
{
	struct stat st;
	*out = NULL;
	*n = 0;
	if (fstat(fd, &st) != 0)
		return errno;
	size_t size = (size_t)st.st_size, done = 0;
	if (size == 0)
		return 0;
	unsigned char *buf = malloc(size);
	if (buf == NULL)
		return ENOMEM;
	while (done < size) {
		ssize_t r = pread(fd, buf + done, size - done, (off_t)done);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;
			free(buf);
			return e;
		}
		if (r == 0)
			break;
		done += (size_t)r;
	}
	*out = buf;
	*n = done;
	return 0;
}

/* Why the record at p (of n bytes to the end) cannot be read; NULL when it
 * can. *len is its payload length then. */
static const char *bad_record(const unsigned char *p, size_t n, uint32_t *len)
{
	if (n < REC_HDR)
		return "a record header cut short";
	*len = get32(p + 8);
	if (get32(p) != REC_MAGIC)
		return "a bad magic number";
	if (*len > n - REC_HDR)
		return "a length past the end of the file";
#ifndef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
	/* (the fuzzer skips the CRC to reach the record parser) */
	if (mm_crc32c(0, p + REC_HDR, *len) != get32(p + 12))
		return "a bad CRC";
#endif
	return NULL;
}

/* A readable record anywhere after from: then what stopped the replay is
 * damage, not a torn tail (a tail is the last thing written). */
static bool record_after(const unsigned char *map, size_t from, size_t size)
{
	uint32_t len;
	for (size_t pos = from + 1; pos + REC_HDR <= size; pos++)
		if (get32(map + pos) == REC_MAGIC &&
		    bad_record(map + pos, size - pos, &len) == NULL)
			return true;
	return false;
}

/* Replays the records of one segment into rc; *pos is where the readable
 * records end, and the reason when that is before the end of map. */
static const char *replay_records(struct mm_spool *sp, struct mm_seg *seg, struct recovery *rc,
                                  const unsigned char *map, size_t size, size_t *at)
{
	size_t pos = 0;
	const char *why = NULL;
	while (pos < size) {
		const unsigned char *h = map + pos;
		uint32_t len;
		if ((why = bad_record(h, size - pos, &len)) != NULL)
			break;
		uint32_t type = get32(h + 4);
		const unsigned char *p = h + REC_HDR;
		if (type == REC_MSG) {
			struct rec_msg x;
			if (!parse_msg(p, len, seg->seq, pos + REC_HDR, &x)) {
				free_msg(&x);
				why = "a message record that does not parse";
				break;
			}
			if (x.m.id > sp->next_id)
				sp->next_id = x.m.id;
			uint32_t i;
			if (mm_strmap_get(&rc->by_id, x.idkey, &i)) {
				/* a later copy of the message replaces the earlier one */
				free_msg(rc->msgs[i]);
				*rc->msgs[i] = x;
			} else {
				struct rec_msg *m = mm_xmalloc(sizeof(*m));
				*m = x;
				mm_grow(&rc->msgs, &rc->cap, rc->n + 1, sizeof(*rc->msgs));
				rc->msgs[rc->n] = m;
				mm_strmap_put(&rc->by_id, m->idkey, (uint32_t)rc->n++);
			}
		} else if (type == REC_DONE && len == 12) {
			char key[17];
			uint64_t id = (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
			snprintf(key, sizeof(key), "%016llx", (unsigned long long)id);
			uint32_t i, idx = get32(p + 8);
			if (mm_strmap_get(&rc->by_id, key, &i) && idx < rc->msgs[i]->m.nrcpt)
				rc->msgs[i]->done[idx] = 1;
		}
		pos += REC_HDR + len;
	}
	*at = pos;
	return why;
}

/* A damaged segment: its file goes to quarantine/ as it is (a hard link,
 * so not one byte of it is lost), and a copy of the readable records
 * before the damage takes its place, so that what was recovered from it
 * stays on disk until it is delivered. Each step is durable before the
 * next; a start that stops half way does it again. */
static int quarantine(struct mm_spool *sp, struct mm_seg *seg, const unsigned char *map,
                      size_t good, char *where, size_t wn)
{
	char qdir[4200], path[4200], keep[4300];
	snprintf(qdir, sizeof(qdir), "%s/quarantine", sp->dir);
	seg_path(sp, seg->seq, path, sizeof(path));
	snprintf(keep, sizeof(keep), "%s.keep", path);
	if (mkdir(qdir, 0700) != 0 && errno != EEXIST)
		return errno;
	if (fsync(sp->dirfd) != 0)
		return errno;
	struct stat st, q;
	if (fstat(seg->fd, &st) != 0)
		return errno;
	for (int k = 0;; k++) {
		if (k == 0)
			snprintf(where, wn, "%s/%08x.seg", qdir, seg->seq);
		else
			snprintf(where, wn, "%s/%08x.seg.%d", qdir, seg->seq, k);
		if (link(path, where) == 0)
			break;
		if (errno != EEXIST)
			return errno;
		if (stat(where, &q) == 0 && q.st_ino == st.st_ino && q.st_dev == st.st_dev)
			break; /* linked by a start that stopped half way */
	}
	int e;
	if ((e = sync_dir(qdir)) != 0)
		return e;
	if (unlink(keep) != 0 && errno != ENOENT)
		return errno;
	int fd = open(keep, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return errno;
	size_t done = 0;
	while (done < good) {
		ssize_t w = pwrite(fd, map + done, good - done, (off_t)done);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			e = errno;
			close(fd);
			return e;
		}
		done += (size_t)w;
	}
	if (fdatasync(fd) != 0 || rename(keep, path) != 0 || fsync(sp->dirfd) != 0) {
		e = errno;
		close(fd);
		return e;
	}
	close(seg->fd);
	seg->fd = fd;
	return 0;
}

/* One segment: its records into rc, and what stopped them dealt with. The
 * segment is durable as recovery saw it before anything new is written
 * (a restart after a crash of the process alone may see bytes that only
 * the page cache holds). */
static int replay_segment(struct mm_spool *sp, struct mm_seg *seg, struct recovery *rc, bool last)
{
	char path[4200];
	seg_path(sp, seg->seq, path, sizeof(path));
	unsigned char *map;
	size_t size, pos;
	int e = read_segment(seg->fd, &map, &size);
	if (e != 0) {
		snprintf(sp->what, sizeof(sp->what), "read segment %s (it is left as it is)", path);
		return e;
	}
	const char *why = replay_records(sp, seg, rc, map, size, &pos);
	seg->size = pos;
	if (why && (!last || record_after(map, pos, size))) {
		char where[4400];
		e = quarantine(sp, seg, map, pos, where, sizeof(where));
		if (e != 0) {
			free(map);
			snprintf(sp->what, sizeof(sp->what), "quarantine segment %s", path);
			return e;
		}
		spool_log(
		    "spool: segment %s: %s at byte %zu; the segment is kept as %s and the %zu "
		    "bytes before it are recovered",
		    path, why, pos, where, pos);
	} else if (why) {
		/* a torn tail: it was never acknowledged */
		if (ftruncate(seg->fd, (off_t)pos) != 0) {
			e = errno;
			free(map);
			snprintf(sp->what, sizeof(sp->what), "cut the torn tail of %s", path);
			return e;
		}
		spool_log("spool: segment %s: %s at byte %zu, the end of the log: %zu bytes never "
		          "acknowledged cut off",
		          path, why, pos, size - pos);
	}
	free(map);
	if (fdatasync(seg->fd) != 0) {
		snprintf(sp->what, sizeof(sp->what), "make segment %s durable", path);
		return errno;
	}
	return 0;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

static int recover(struct mm_spool *sp, mm_spool_recover_fn cb, void *ctx)
{
	DIR *d = opendir(sp->dir);
	if (d == NULL)
		return errno;
	size_t n = 0, cap = 0;
	uint32_t *seqs = NULL;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		unsigned seq;
		char tail[8];
		if (sscanf(e->d_name, "%8x.%7s", &seq, tail) == 2 && strcmp(tail, "seg") == 0 &&
		    strlen(e->d_name) == 12) {
			mm_grow(&seqs, &cap, n + 1, sizeof(*seqs));
			seqs[n++] = seq;
		}
	}
	closedir(d);
	if (n > 1)
		qsort(seqs, n, sizeof(*seqs), cmp_u32);
	int err = 0;
	for (size_t i = 0; i < n; i++) {
		char path[4096];
		seg_path(sp, seqs[i], path, sizeof(path));
		int fd = open(path, O_RDWR | O_CLOEXEC);
		if (fd < 0) {
			err = errno;
			snprintf(sp->what, sizeof(sp->what),
			         "open segment %s (it is left as it is)", path);
			break;
		}
		mm_grow(&sp->segs, &sp->capsegs, sp->nsegs + 1, sizeof(*sp->segs));
		/* gaps in the numbering (removed segments) are filled with
		 * empty placeholders so that seg_find stays an index */
		while (sp->nsegs > 0 && sp->segs[sp->nsegs - 1].seq + 1 < seqs[i]) {
			uint32_t s = sp->segs[sp->nsegs - 1].seq + 1;
			mm_grow(&sp->segs, &sp->capsegs, sp->nsegs + 1, sizeof(*sp->segs));
			sp->segs[sp->nsegs++] = (struct mm_seg){.seq = s, .fd = -1};
		}
		mm_grow(&sp->segs, &sp->capsegs, sp->nsegs + 1, sizeof(*sp->segs));
		sp->segs[sp->nsegs++] =
		    (struct mm_seg){.seq = seqs[i], .fd = fd, .created_ms = mono_ms()};
	}
	free(seqs);
	struct recovery rc = {0};
	for (size_t i = 0; i < sp->nsegs && !err; i++)
		if (sp->segs[i].fd >= 0)
			err = replay_segment(sp, &sp->segs[i], &rc, i + 1 == sp->nsegs);
	for (size_t i = 0; i < rc.n; i++) {
		struct rec_msg *x = rc.msgs[i];
		bool pending = false;
		for (uint32_t k = 0; k < x->m.nrcpt; k++)
			pending |= !x->done[k];
		if (pending && !err) {
			seg_find(sp, x->m.body.seg)->live++;
			cb(ctx, &x->m);
		}
		free_msg(x);
		free(x);
	}
	free(rc.msgs);
	mm_strmap_free(&rc.by_id);
	return err;
}

/* --- open/close -------------------------------------------------------- */

/* mkdir, and its entry made durable in the parent: also when it was there
 * already, since a start killed between the two may have made it. */
static int mkdir_sync(const char *path)
{
	if (mkdir(path, 0700) != 0 && errno != EEXIST)
		return errno;
#ifdef MM_MUTANT_NO_SPOOL_DIRSYNC
	return 0;
#else
	char parent[4096];
	size_t n = strlen(path);
	while (n > 1 && path[n - 1] == '/')
		n--;
	while (n > 0 && path[n - 1] != '/')
		n--;
	while (n > 1 && path[n - 1] == '/')
		n--;
	if (n == 0)
		snprintf(parent, sizeof(parent), ".");
	else
		snprintf(parent, sizeof(parent), "%.*s", (int)n, path);
	return sync_dir(parent);
#endif
}

int mm_spool_open(struct mm_spool *sp, const char *spool_dir, mm_spool_recover_fn cb, void *ctx,
                  const char **what)
{
	*sp = (struct mm_spool){.dirfd = -1, .event_fd = -1, .sync_fd = -1};
	pthread_mutex_init(&sp->mu, NULL);
	pthread_mutex_init(&sp->sync_mu, NULL);
	pthread_cond_init(&sp->cv, NULL);
	size_t n = strlen(spool_dir) + sizeof("/queue");
	sp->dir = mm_xmalloc(n);
	snprintf(sp->dir, n, "%s/queue", spool_dir);
	int e;
	*what = "create the spool directory";
	if ((e = mkdir_sync(spool_dir)) != 0 || (e = mkdir_sync(sp->dir)) != 0)
		return e;
	*what = "open the queue directory";
	sp->dirfd = open(sp->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (sp->dirfd < 0)
		return errno;
	*what = "read the queue";
	if ((e = recover(sp, cb, ctx)) != 0) {
		if (sp->what[0])
			*what = sp->what;
		return e;
	}
	/* Dead segments (and the placeholders before them) go now: recovery
	 * made what they hold durable, so the new segment's directory fsync
	 * may make their removal durable too (else every power cut brings back
	 * the ones collected since the last). The last one read goes after it,
	 * if it is dead: collection never drops the segment being written. */
	seg_collect(sp);
	*what = "start a queue segment";
	if ((e = seg_new(sp)) != 0)
		return e;
	seg_collect(sp);
	sp->event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	*what = "start the syncer";
	if (sp->event_fd < 0)
		return errno;
	if ((e = pthread_create(&sp->thread, NULL, syncer, sp)) != 0)
		return e;
	sp->running = true;
	return 0;
}

void mm_spool_close(struct mm_spool *sp)
{
	if (sp->running) {
		pthread_mutex_lock(&sp->mu);
		sp->stop = true;
		pthread_cond_signal(&sp->cv);
		pthread_mutex_unlock(&sp->mu);
		pthread_join(sp->thread, NULL);
	}
	for (size_t i = 0; i < sp->nsegs; i++) {
		if (sp->segs[i].fd >= 0) {
			(void)!fdatasync(sp->segs[i].fd);
			close(sp->segs[i].fd);
		}
	}
	free(sp->segs);
	if (sp->dirfd >= 0)
		close(sp->dirfd);
	if (sp->event_fd >= 0)
		close(sp->event_fd);
	pthread_mutex_destroy(&sp->mu);
	pthread_mutex_destroy(&sp->sync_mu);
	pthread_cond_destroy(&sp->cv);
	free(sp->dir);
	*sp = (struct mm_spool){.dirfd = -1, .event_fd = -1};
}
