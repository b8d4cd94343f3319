#include "digest.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"

#define CHECKPOINT 64

void mm_digest_cache_init(struct mm_digest_cache *c)
{
	*c = (struct mm_digest_cache){0};
}

void mm_digest_cache_free(struct mm_digest_cache *c)
{
	for (size_t i = 0; i < c->n; i++)
		free(c->ent[i].bytes);
	free(c->ent);
	for (size_t i = 0; i < c->nck; i++)
		EVP_MD_CTX_free(c->ck[i]);
	free(c->ck);
	*c = (struct mm_digest_cache){0};
}

static void version_of(const mm_entry *e, uint32_t v[4])
{
	const Mailmesh__Version *x = e->version;
	v[0] = x ? x->incarnation : 0;
	v[1] = x ? x->major : 0;
	v[2] = x ? x->minor : 0;
	v[3] = x ? x->user : 0;
}

static bool fresh(const struct mm_digest_entry *d, const mm_entry *e)
{
	uint32_t v[4];
	version_of(e, v);
	return d->e == e && d->incarnation == v[0] && d->major == v[1] && d->minor == v[2] &&
	       d->user == v[3];
}

/* "groups" (field 1, length-delimited) then the length and the entry: the
 * bytes protobuf-c writes for this entry inside a packed LinkStateTable */
static void pack(struct mm_digest_entry *d, const mm_entry *entry)
{
	/* the content: who signed it is not part of the digest */
	Mailmesh__GroupEntry content = mm_entry_content_of(entry);
	const mm_entry *e = &content;
	size_t len = mailmesh__group_entry__get_packed_size(e);
	uint8_t hdr[11];
	size_t h = 0;
	hdr[h++] = 0x0a;
	for (size_t v = len;; v >>= 7) {
		hdr[h++] = (uint8_t)((v & 0x7f) | (v >= 0x80 ? 0x80 : 0));
		if (v < 0x80)
			break;
	}
	free(d->bytes);
	d->bytes = mm_xmalloc(h + len);
	memcpy(d->bytes, hdr, h);
	mailmesh__group_entry__pack(e, d->bytes + h);
	d->len = h + len;
	uint32_t v[4];
	version_of(e, v);
	*d = (struct mm_digest_entry){entry, v[0], v[1], v[2], v[3], d->bytes, d->len};
}

void mm_table_digest_cached(const struct mm_table *t, struct mm_digest_cache *c,
                            uint8_t out[MM_DIGEST_LEN])
{
	/* the first entry that is not what the cache holds */
	size_t first = 0;
	while (first < t->n && first < c->n && fresh(&c->ent[first], t->entries[first]))
		first++;
	if (c->valid && first == t->n && c->n == t->n) {
		memcpy(out, c->digest, MM_DIGEST_LEN);
		return;
	}
	mm_grow(&c->ent, &c->cap, t->n, sizeof(*c->ent));
	for (size_t i = c->n; i < t->n; i++)
		c->ent[i] = (struct mm_digest_entry){0};
	for (size_t i = t->n; i < c->n; i++)
		free(c->ent[i].bytes);
	c->n = t->n;

	size_t k = first / CHECKPOINT;
	if (k > c->nck)
		k = c->nck;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (k > 0)
		EVP_MD_CTX_copy_ex(ctx, c->ck[k - 1]);
	else
		EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
	/* checkpoints past k describe old content */
	for (size_t i = k; i < c->nck; i++)
		EVP_MD_CTX_free(c->ck[i]);
	c->nck = k;
	for (size_t i = k * CHECKPOINT; i < t->n; i++) {
		if (!fresh(&c->ent[i], t->entries[i]))
			pack(&c->ent[i], t->entries[i]);
		EVP_DigestUpdate(ctx, c->ent[i].bytes, c->ent[i].len);
		if ((i + 1) % CHECKPOINT == 0) {
			mm_grow(&c->ck, &c->capck, c->nck + 1, sizeof(*c->ck));
			EVP_MD_CTX *copy = EVP_MD_CTX_new();
			EVP_MD_CTX_copy_ex(copy, ctx);
			c->ck[c->nck++] = copy;
		}
	}
	unsigned int dl = MM_DIGEST_LEN;
	EVP_DigestFinal_ex(ctx, c->digest, &dl);
	EVP_MD_CTX_free(ctx);
	c->valid = 1;
	memcpy(out, c->digest, MM_DIGEST_LEN);
}
