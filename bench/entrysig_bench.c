/* What checking a signed entry costs (linkstate/entrysig.h), and what the
 * cache saves: every receiver of a flood checks each new entry once
 * (chain to the CA and CRL, kind, candidacy, Ed25519 signature), and the
 * same entry again -- a member's offer of what its master pushed, an
 * anti-entropy transfer -- from the cache.
 *
 *   build/bench/entrysig_bench [N]
 *
 * The PKI is tests/fuzz/fuzz_pki.c's (in process, Ed25519 throughout,
 * with a CRL of one entry); `meshctl pki` gives the CA a P-256 key, whose
 * ECDSA verification in the chain costs a little more. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "entrysig.h"
#include "fuzz_pki.h"
#include "synth.h"

static double now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* group G000000 as the directory has it: candidate M0 */
static mm_entry *dir_entry(void)
{
	mm_entry *e = synth_group(0, 4);
	e->masters = mm_xcalloc(1, sizeof(*e->masters));
	Mailmesh__MasterCandidate *m = mm_xmalloc(sizeof(*m));
	mailmesh__master_candidate__init(m);
	m->name = mm_xstrdup("M0");
	m->routing_address = mm_xstrdup("127.0.0.1:691");
	e->masters[e->n_masters++] = m;
	return e;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 2000;
	uint8_t seed[FPKI_SEED_LEN] = {1};
	struct fpki p;
	fpki_init(&p, seed, "Bench");
	const struct fpki_cert *m0 = fpki_issue(&p, MM_CERT_MASTER, "M0");
	fpki_revoke(&p, fpki_issue(&p, MM_CERT_MASTER, "R0"));
	struct mm_trust *t = fpki_trust(&p, true);
	mm_entry *dir = dir_entry();
	mm_entry **es = mm_xcalloc((size_t)n, sizeof(*es));
	double t0 = now_us();
	for (int i = 0; i < n; i++) {
		es[i] = dir_entry();
		es[i]->version->incarnation = 1790000000;
		es[i]->version->minor = (uint64_t)i; /* each its own content */
		fpki_sign(m0, es[i]);
	}
	double sign = (now_us() - t0) / n;
	char signer[MM_CERT_NAME_MAX + 1];
	t0 = now_us();
	for (int i = 0; i < n; i++)
		if (mm_entry_check(t, es[i], dir, signer) != MM_ENTRY_OK)
			return fprintf(stderr, "entry %d refused\n", i), 1;
	double fresh = (now_us() - t0) / n;
	t0 = now_us();
	for (int k = 0; k < 10; k++)
		for (int i = 0; i < n; i++)
			mm_entry_check(t, es[i % 64], dir, signer);
	double cached = (now_us() - t0) / (10.0 * n);
	printf("signing an entry (Ed25519):                 %7.1f us\n", sign);
	printf("checking a new entry (chain, CRL, signature): %7.1f us\n", fresh);
	printf("checking it again (cache):                   %7.1f us\n", cached);
	for (int i = 0; i < n; i++)
		mm_entry_free(es[i]);
	free(es);
	mm_entry_free(dir);
	mm_trust_free(t);
	fpki_free(&p);
	return 0;
}
