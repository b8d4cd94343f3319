#include "table.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "pbvalid.h"

static int u64cmp(uint64_t a, uint64_t b)
{
	return (a > b) - (a < b);
}

int mm_version_cmp(const Mailmesh__Version *a, const Mailmesh__Version *b)
{
	if (a == NULL || b == NULL)
		return (a != NULL) - (b != NULL);
	int c = u64cmp(a->incarnation, b->incarnation);
	if (c == 0)
		c = u64cmp(a->major, b->major);
	if (c == 0)
		c = u64cmp(a->minor, b->minor);
	if (c == 0)
		c = u64cmp(a->user, b->user);
	return c;
}

void mm_table_init(struct mm_table *t)
{
	*t = (struct mm_table){0};
}

void mm_entry_free(mm_entry *e)
{
	if (e)
		protobuf_c_message_free_unpacked(&e->base, NULL);
}

void mm_table_free(struct mm_table *t)
{
	for (size_t i = 0; i < t->n; i++)
		mm_entry_free(t->entries[i]);
	free(t->entries);
	*t = (struct mm_table){0};
}

/* Index of the first entry whose name is >= group. */
static size_t lower_bound(const struct mm_table *t, const char *group)
{
	size_t lo = 0, hi = t->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (strcmp(t->entries[mid]->name, group) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

mm_entry *mm_table_find(const struct mm_table *t, const char *group)
{
	size_t i = lower_bound(t, group);
	return i < t->n && strcmp(t->entries[i]->name, group) == 0 ? t->entries[i] : NULL;
}

/* --- canonical form ------------------------------------------------------ */

#define NAME_CMP(fn, type, field)                                                      \
	static int fn(const void *a, const void *b)                                    \
	{                                                                              \
		return strcmp((*(type *const *)a)->field, (*(type *const *)b)->field); \
	}
NAME_CMP(cmp_master, Mailmesh__MasterCandidate, name)
NAME_CMP(cmp_server, Mailmesh__Server, name)
NAME_CMP(cmp_vserver, Mailmesh__VirtualServer, name)
NAME_CMP(cmp_connector, Mailmesh__Connector, name)

static int cmp_bridgehead(const void *a, const void *b)
{
	const Mailmesh__Bridgehead *x = *(Mailmesh__Bridgehead *const *)a;
	const Mailmesh__Bridgehead *y = *(Mailmesh__Bridgehead *const *)b;
	int c = strcmp(x->server, y->server);
	return c ? c : strcmp(x->virtual_server, y->virtual_server);
}

static int cmp_space(const void *a, const void *b)
{
	const Mailmesh__AddressSpace *x = *(Mailmesh__AddressSpace *const *)a;
	const Mailmesh__AddressSpace *y = *(Mailmesh__AddressSpace *const *)b;
	int c = strcmp(x->type, y->type);
	if (c == 0)
		c = strcmp(x->pattern, y->pattern);
	return c ? c : (x->cost > y->cost) - (x->cost < y->cost);
}

#define SORT(arr, n, cmp)                                       \
	do {                                                    \
		if ((n) > 1)                                    \
			qsort((arr), (n), sizeof(*(arr)), cmp); \
	} while (0)

void mm_entry_canonicalize(mm_entry *e)
{
	SORT(e->masters, e->n_masters, cmp_master);
	SORT(e->servers, e->n_servers, cmp_server);
	for (size_t i = 0; i < e->n_servers; i++)
		SORT(e->servers[i]->virtual_servers, e->servers[i]->n_virtual_servers, cmp_vserver);
	SORT(e->connectors, e->n_connectors, cmp_connector);
	for (size_t i = 0; i < e->n_connectors; i++) {
		Mailmesh__Connector *c = e->connectors[i];
		SORT(c->address_spaces, c->n_address_spaces, cmp_space);
		SORT(c->local_bridgeheads, c->n_local_bridgeheads, cmp_bridgehead);
		SORT(c->remote_bridgeheads, c->n_remote_bridgeheads, cmp_bridgehead);
	}
}

/* --- digests ------------------------------------------------------------- */

static void sha256(const uint8_t *buf, size_t len, uint8_t out[MM_DIGEST_LEN])
{
	unsigned int n = 0;
	if (!EVP_Digest(buf, len, out, &n, EVP_sha256(), NULL) || n != MM_DIGEST_LEN)
		abort(); /* SHA-256 of memory cannot fail but for a broken libcrypto */
}

static uint8_t *pack(const ProtobufCMessage *m, size_t *len)
{
	*len = protobuf_c_message_get_packed_size(m);
	uint8_t *buf = mm_xmalloc(*len);
	protobuf_c_message_pack(m, buf);
	return buf;
}

Mailmesh__GroupEntry mm_entry_content_of(const mm_entry *e)
{
	Mailmesh__GroupEntry c = *e;
	c.signature = (ProtobufCBinaryData){0, NULL};
	c.signer = (ProtobufCBinaryData){0, NULL};
	return c;
}

uint8_t *mm_entry_content(const mm_entry *e, size_t *len)
{
	Mailmesh__GroupEntry c = mm_entry_content_of(e);
	return pack(&c.base, len);
}

void mm_entry_digest(const mm_entry *e, uint8_t out[MM_DIGEST_LEN])
{
	size_t len;
	uint8_t *buf = mm_entry_content(e, &len);
	sha256(buf, len, out);
	free(buf);
}

mm_entry *mm_entry_clone(const mm_entry *e)
{
	size_t len;
	uint8_t *buf = pack(&e->base, &len);
	mm_entry *c = mailmesh__group_entry__unpack(NULL, len, buf);
	free(buf);
	if (c == NULL)
		abort(); /* what we packed must unpack */
	return c;
}

uint8_t *mm_table_encode(const struct mm_table *t, size_t *len)
{
	Mailmesh__LinkStateTable m = MAILMESH__LINK_STATE_TABLE__INIT;
	m.n_groups = t->n;
	m.groups = t->entries;
	return pack(&m.base, len);
}

void mm_table_digest(const struct mm_table *t, uint8_t out[MM_DIGEST_LEN])
{
	/* the entries' content: who signed them is not part of it */
	Mailmesh__GroupEntry *c = mm_xcalloc(t->n + 1, sizeof(*c));
	Mailmesh__GroupEntry **p = mm_xcalloc(t->n + 1, sizeof(*p));
	for (size_t i = 0; i < t->n; i++) {
		c[i] = mm_entry_content_of(t->entries[i]);
		p[i] = &c[i];
	}
	Mailmesh__LinkStateTable m = MAILMESH__LINK_STATE_TABLE__INIT;
	m.n_groups = t->n;
	m.groups = p;
	size_t len;
	uint8_t *buf = pack(&m.base, &len);
	sha256(buf, len, out);
	free(buf);
	free(p);
	free(c);
}

void mm_digest_hex(const uint8_t d[MM_DIGEST_LEN], char out[2 * MM_DIGEST_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	for (size_t i = 0; i < MM_DIGEST_LEN; i++) {
		out[2 * i] = hex[d[i] >> 4];
		out[2 * i + 1] = hex[d[i] & 15];
	}
	out[2 * MM_DIGEST_LEN] = '\0';
}

bool mm_table_decode(const uint8_t *buf, size_t len, size_t limit, struct mm_table *out)
{
	mm_table_init(out);
	if (len > limit)
		return false;
	Mailmesh__LinkStateTable *m = mailmesh__link_state_table__unpack(NULL, len, buf);
	if (m == NULL)
		return false;
	/* a field numbered 0 decodes once and never again (pbvalid.h) */
	bool ok = mm_pb_fields_valid(&m->base);
	for (size_t i = 0; i < m->n_groups && ok; i++)
		ok = m->groups[i]->name[0] != '\0' &&
		     (i == 0 || strcmp(m->groups[i - 1]->name, m->groups[i]->name) < 0);
	if (!ok) {
		mailmesh__link_state_table__free_unpacked(m, NULL);
		return false;
	}
	/* steal the entries; the container goes */
	out->n = out->cap = m->n_groups;
	out->entries = mm_xcalloc(m->n_groups, sizeof(*out->entries));
	for (size_t i = 0; i < m->n_groups; i++) {
		out->entries[i] = m->groups[i];
		mm_entry_canonicalize(out->entries[i]);
	}
	m->n_groups = 0;
	mailmesh__link_state_table__free_unpacked(m, NULL);
	return true;
}

/* --- merge and delta ----------------------------------------------------- */

enum mm_merge mm_table_merge(struct mm_table *t, mm_entry *e)
{
	mm_entry_canonicalize(e);
	size_t i = lower_bound(t, e->name);
	if (i == t->n || strcmp(t->entries[i]->name, e->name) != 0) {
		mm_grow(&t->entries, &t->cap, t->n + 1, sizeof(*t->entries));
		memmove(&t->entries[i + 1], &t->entries[i], (t->n - i) * sizeof(*t->entries));
		t->entries[i] = e;
		t->n++;
		return MM_MERGE_NEWER;
	}
	mm_entry *ours = t->entries[i];
	int c = mm_version_cmp(e->version, ours->version);
	if (c < 0) {
		mm_entry_free(e);
		return MM_MERGE_OLDER;
	}
	if (c > 0) {
		mm_entry_free(ours);
		t->entries[i] = e;
		return MM_MERGE_NEWER;
	}
	uint8_t dt[MM_DIGEST_LEN], de[MM_DIGEST_LEN];
	mm_entry_digest(ours, dt);
	mm_entry_digest(e, de);
	int d = memcmp(de, dt, MM_DIGEST_LEN);
	if (d == 0) {
		mm_entry_free(e);
		return MM_MERGE_SAME;
	}
	if (d < 0) {
		mm_entry_free(e);
		return MM_MERGE_CONFLICT_LOST;
	}
	mm_entry_free(ours);
	t->entries[i] = e;
	return MM_MERGE_CONFLICT_WON;
}

static int cmp_summary(const void *a, const void *b)
{
	return strcmp((*(Mailmesh__EntrySummary *const *)a)->group,
	              (*(Mailmesh__EntrySummary *const *)b)->group);
}

size_t mm_table_delta(const struct mm_table *t, const Mailmesh__EntrySummary *const *peer,
                      size_t npeer, const mm_entry ***out)
{
	const Mailmesh__EntrySummary **sorted = mm_xcalloc(npeer, sizeof(*sorted));
	if (npeer > 0) /* an empty list may be NULL (protobuf-c's) */
		memcpy(sorted, peer, npeer * sizeof(*sorted));
	if (npeer > 1)
		qsort(sorted, npeer, sizeof(*sorted), cmp_summary);
	*out = mm_xcalloc(t->n, sizeof(**out));
	size_t n = 0, j = 0;
	for (size_t i = 0; i < t->n; i++) {
		const mm_entry *e = t->entries[i];
		while (j < npeer && strcmp(sorted[j]->group, e->name) < 0)
			j++;
		if (e->version == NULL || e->version->incarnation == 0)
			continue; /* a directory's baseline never travels */
		bool have = j < npeer && strcmp(sorted[j]->group, e->name) == 0;
		int c = have ? mm_version_cmp(e->version, sorted[j]->version) : 1;
		bool other = false;
		if (c == 0 && sorted[j]->content_digest.len == MM_DIGEST_LEN) {
			uint8_t d[MM_DIGEST_LEN];
			mm_entry_digest(e, d);
			other = memcmp(d, sorted[j]->content_digest.data, MM_DIGEST_LEN) != 0;
		}
		if (c > 0 || other)
			(*out)[n++] = e;
	}
	free(sorted);
	return n;
}

/* --- state changes ------------------------------------------------------- */

static Mailmesh__Version *version_of(mm_entry *e)
{
	if (e->version == NULL) {
		e->version = mm_xmalloc(sizeof(*e->version));
		mailmesh__version__init(e->version);
	}
	return e->version;
}

bool mm_entry_set_server(mm_entry *e, const char *server, bool down)
{
	for (size_t i = 0; i < e->n_servers; i++) {
		Mailmesh__Server *s = e->servers[i];
		if (strcmp(s->name, server) != 0)
			continue;
		if (s->down == down)
			return false;
		s->down = down;
		version_of(e)->user++;
		return true;
	}
	return false;
}

bool mm_entry_set_master(mm_entry *e, const char *master, bool down)
{
	for (size_t i = 0; i < e->n_masters; i++) {
		Mailmesh__MasterCandidate *m = e->masters[i];
		if (strcmp(m->name, master) != 0)
			continue;
		if (m->down == down)
			return false;
		m->down = down;
		const Mailmesh__MasterCandidate *active = mm_entry_elect_master(e);
		char *name = mm_xstrdup(active ? active->name : "");
		if (e->master != protobuf_c_empty_string)
			free(e->master);
		e->master = name;
		version_of(e)->user++;
		return true;
	}
	return false;
}

bool mm_entry_set_connector(mm_entry *e, const char *conn, bool down)
{
	for (size_t i = 0; i < e->n_connectors; i++) {
		Mailmesh__Connector *c = e->connectors[i];
		if (strcmp(c->name, conn) != 0)
			continue;
		if (c->down == down)
			return false;
		c->down = down;
		version_of(e)->minor++;
		return true;
	}
	return false;
}

static bool set_bh(Mailmesh__Bridgehead **bh, size_t n, const char *server, const char *vserver,
                   bool down)
{
	bool changed = false;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(bh[i]->server, server) != 0 ||
		    (vserver && strcmp(bh[i]->virtual_server, vserver) != 0))
			continue;
		changed |= bh[i]->down != down;
		bh[i]->down = down;
	}
	return changed;
}

bool mm_entry_set_bridgehead(mm_entry *e, const char *conn, const char *server, const char *vserver,
                             bool down)
{
	bool changed = false;
	for (size_t i = 0; i < e->n_connectors; i++) {
		Mailmesh__Connector *c = e->connectors[i];
		if (conn && strcmp(c->name, conn) != 0)
			continue;
		changed |=
		    set_bh(c->local_bridgeheads, c->n_local_bridgeheads, server, vserver, down);
		changed |=
		    set_bh(c->remote_bridgeheads, c->n_remote_bridgeheads, server, vserver, down);
	}
	if (changed)
		version_of(e)->minor++;
	return changed;
}

const Mailmesh__MasterCandidate *mm_entry_elect_master(const mm_entry *e)
{
	const Mailmesh__MasterCandidate *best = NULL;
	for (size_t i = 0; i < e->n_masters; i++) {
		const Mailmesh__MasterCandidate *m = e->masters[i];
		if (m->down)
			continue;
		if (best == NULL || m->priority > best->priority ||
		    (m->priority == best->priority && strcmp(m->name, best->name) < 0))
			best = m;
	}
	return best;
}

bool mm_table_mark(struct mm_table *t, const char *name, bool down)
{
	bool found = false;
	const char *slash = strchr(name, '/');
	for (size_t i = 0; i < t->n; i++) {
		mm_entry *e = t->entries[i];
		if (slash) {
			char server[256];
			size_t n = (size_t)(slash - name);
			if (n >= sizeof(server))
				return false;
			memcpy(server, name, n);
			server[n] = '\0';
			for (size_t c = 0; c < e->n_connectors; c++) {
				const Mailmesh__Connector *cn = e->connectors[c];
				for (size_t b = 0;
				     b < cn->n_local_bridgeheads + cn->n_remote_bridgeheads; b++) {
					const Mailmesh__Bridgehead *bh =
					    b < cn->n_local_bridgeheads
					        ? cn->local_bridgeheads[b]
					        : cn->remote_bridgeheads[b -
					                                 cn->n_local_bridgeheads];
					found |= strcmp(bh->server, server) == 0 &&
					         strcmp(bh->virtual_server, slash + 1) == 0;
				}
			}
			mm_entry_set_bridgehead(e, NULL, server, slash + 1, down);
			continue;
		}
		for (size_t s = 0; s < e->n_servers; s++)
			found |= strcmp(e->servers[s]->name, name) == 0;
		for (size_t m = 0; m < e->n_masters; m++)
			found |= strcmp(e->masters[m]->name, name) == 0;
		for (size_t c = 0; c < e->n_connectors; c++)
			found |= strcmp(e->connectors[c]->name, name) == 0;
		mm_entry_set_server(e, name, down);
		mm_entry_set_master(e, name, down);
		mm_entry_set_connector(e, name, down);
	}
	return found;
}

void mm_table_summary(const struct mm_table *t, struct mm_summary *out)
{
	out->n = t->n;
	out->s = mm_xcalloc(t->n + 1, sizeof(*out->s));
	out->p = mm_xcalloc(t->n + 1, sizeof(*out->p));
	out->d = mm_xcalloc(t->n + 1, sizeof(*out->d));
	for (size_t i = 0; i < t->n; i++) {
		mailmesh__entry_summary__init(&out->s[i]);
		out->s[i].group = t->entries[i]->name;
		out->s[i].version = t->entries[i]->version;
		mm_entry_digest(t->entries[i], out->d[i]);
		out->s[i].content_digest = (ProtobufCBinaryData){MM_DIGEST_LEN, out->d[i]};
		out->p[i] = &out->s[i];
	}
}

void mm_summary_free(struct mm_summary *s)
{
	free(s->s);
	free(s->p);
	free(s->d);
	*s = (struct mm_summary){0};
}
