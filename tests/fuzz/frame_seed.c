/* Seeds for the frame fuzzer from a directory (the example organization):
 *
 *   frame_seed ORG.ldif DIR
 *
 * writes, each behind the fuzzer's header (flags, eight piece sizes):
 *   table         the organization's link-state table, mm_table_encode
 *   table-pieces  the same, fed in small pieces
 *   frames        one frame of every kind, TablePush with the whole table
 *   push-body     a TablePush frame's body without its length prefix
 * so that the table decoder and the frame reader start from valid input. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "directory.h"
#include "frame.h"
#include "table.h"

static void put(const char *dir, const char *name, const uint8_t piece[8], const uint8_t *p,
                size_t n)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	uint8_t flags = 0;
	if (f == NULL || fwrite(&flags, 1, 1, f) != 1 || fwrite(piece, 1, 8, f) != 8 ||
	    (n && fwrite(p, 1, n, f) != n) || fclose(f) != 0) {
		perror(path);
		exit(1);
	}
}

static void add_frame(uint8_t **buf, size_t *len, const Mailmesh__Frame *f)
{
	size_t n;
	uint8_t *b = mm_frame_encode(f, &n);
	*buf = realloc(*buf, *len + n);
	if (*buf == NULL)
		exit(1);
	memcpy(*buf + *len, b, n);
	*len += n;
	free(b);
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: frame_seed ORG.ldif DIR\n");
		return 64;
	}
	char spec[4096];
	snprintf(spec, sizeof(spec), "ldif:%s", argv[1]);
	struct mm_directory dir;
	struct mm_diag diag = {0};
	if (mm_directory_load(spec, &dir, &diag) != MM_LOAD_OK) {
		fprintf(stderr, "%s: does not load\n", argv[1]);
		return 65;
	}
	mm_diag_free(&diag);
	static const uint8_t whole[8] = {255, 255, 255, 255, 255, 255, 255, 255};
	static const uint8_t small[8] = {0, 3, 1, 7, 2, 30, 0, 11};

	size_t tlen;
	uint8_t *table = mm_table_encode(&dir.table, &tlen);
	put(argv[2], "table", whole, table, tlen);
	put(argv[2], "table-pieces", small, table, tlen);

	uint8_t digest[MM_DIGEST_LEN];
	mm_table_digest(&dir.table, digest);
	uint8_t *frames = NULL;
	size_t flen = 0;
	Mailmesh__TablePush push = MAILMESH__TABLE_PUSH__INIT;
	push.full = true;
	push.n_entries = dir.table.n;
	push.entries = dir.table.entries;
	push.digest = (ProtobufCBinaryData){sizeof(digest), digest};
	Mailmesh__Frame f = MAILMESH__FRAME__INIT;
	f.seq = 1;
	f.body_case = MAILMESH__FRAME__BODY_TABLE_PUSH;
	f.table_push = &push;
	add_frame(&frames, &flen, &f);
	/* the push's body alone: the fuzzer frames it */
	put(argv[2], "push-body", whole, frames + 4, flen - 4);

	Mailmesh__Hello hello = MAILMESH__HELLO__INIT;
	hello.name = "NYC-01";
	hello.group = "NewYork";
	hello.digest = push.digest;
	f = (Mailmesh__Frame)MAILMESH__FRAME__INIT;
	f.seq = 2;
	f.body_case = MAILMESH__FRAME__BODY_HELLO;
	f.hello = &hello;
	add_frame(&frames, &flen, &f);

	Mailmesh__EntrySummary sum = MAILMESH__ENTRY_SUMMARY__INIT;
	Mailmesh__EntrySummary *sums[] = {&sum};
	sum.group = dir.table.n ? dir.table.entries[0]->name : "G";
	sum.version = dir.table.n ? dir.table.entries[0]->version : NULL;
	Mailmesh__DigestProbe probe = MAILMESH__DIGEST_PROBE__INIT;
	probe.digest = push.digest;
	probe.n_entries = 1;
	probe.entries = sums;
	f = (Mailmesh__Frame)MAILMESH__FRAME__INIT;
	f.seq = 3;
	f.body_case = MAILMESH__FRAME__BODY_DIGEST_PROBE;
	f.digest_probe = &probe;
	add_frame(&frames, &flen, &f);

	Mailmesh__ObjectState os = MAILMESH__OBJECT_STATE__INIT;
	Mailmesh__ObjectState *changes[] = {&os};
	os.kind = MAILMESH__OBJECT_STATE__KIND__BRIDGEHEAD;
	os.name = "NYC-LON";
	os.server = "NYC-01";
	os.virtual_server = "SMTP";
	os.down = true;
	Mailmesh__StateReport rep = MAILMESH__STATE_REPORT__INIT;
	rep.reporter = "NYC-01";
	rep.n_changes = 1;
	rep.changes = changes;
	f = (Mailmesh__Frame)MAILMESH__FRAME__INIT;
	f.seq = 4;
	f.body_case = MAILMESH__FRAME__BODY_STATE_REPORT;
	f.state_report = &rep;
	add_frame(&frames, &flen, &f);

	char *args[] = {"erin@contoso.test"};
	Mailmesh__Query q = MAILMESH__QUERY__INIT;
	q.command = "route";
	q.n_args = 1;
	q.args = args;
	f = (Mailmesh__Frame)MAILMESH__FRAME__INIT;
	f.seq = 5;
	f.body_case = MAILMESH__FRAME__BODY_QUERY;
	f.query = &q;
	add_frame(&frames, &flen, &f);

	Mailmesh__Reply r = MAILMESH__REPLY__INIT;
	r.status = 0;
	r.json = "{\"via\":\"smart-host\"}";
	f = (Mailmesh__Frame)MAILMESH__FRAME__INIT;
	f.seq = 6;
	f.body_case = MAILMESH__FRAME__BODY_REPLY;
	f.reply = &r;
	add_frame(&frames, &flen, &f);

	Mailmesh__Ack ack = MAILMESH__ACK__INIT;
	ack.seq = 5;
	Mailmesh__Ping ping = MAILMESH__PING__INIT;
	ping.nonce = 42;
	Mailmesh__Pong pong = MAILMESH__PONG__INIT;
	pong.nonce = 42;
	f = (Mailmesh__Frame)MAILMESH__FRAME__INIT;
	f.seq = 7;
	f.body_case = MAILMESH__FRAME__BODY_ACK;
	f.ack = &ack;
	add_frame(&frames, &flen, &f);
	f.seq = 8;
	f.body_case = MAILMESH__FRAME__BODY_PING;
	f.ping = &ping;
	add_frame(&frames, &flen, &f);
	f.seq = 9;
	f.body_case = MAILMESH__FRAME__BODY_PONG;
	f.pong = &pong;
	add_frame(&frames, &flen, &f);
	put(argv[2], "frames", small, frames, flen);

	free(frames);
	free(table);
	mm_directory_free(&dir);
	return 0;
}
