#ifndef MM_MESHCTL_H
#define MM_MESHCTL_H

#include <stdbool.h>
#include <stddef.h>
#include <sysexits.h>

#include "directory.h"
#include "topo.h"

/* What every command works on: the organization from the directory with the
 * operator's --down marks applied, and its compiled topology. */
struct ctl {
	bool json;
	struct mm_directory dir;
	struct mm_topo topo;
};

int ctl_table(struct ctl *c);
int ctl_route(struct ctl *c, const char *from, const char *rcpt);
int ctl_graph(struct ctl *c, const char *output);
/* a live node's queues through SPOOL/control.sock */
int ctl_queues(const char *spool, bool json, const char *verb, const char *queue);

/* meshctl --connect (connect.c): whom to ask, and as whom. */
struct ctl_peer {
	const char *address; /* --connect HOST:PORT */
	const char *tls;     /* --tls DIR */
	const char *as;      /* --as NAME, NULL: admin */
	const char *expect;  /* --expect KIND:NAME, NULL: any server or master */
};

/* One Query to a live node or master over 691; its Reply printed, its
 * status returned. */
int ctl_connect(const struct ctl_peer *peer, bool json, const char *verb,
                const char *const *operands, size_t noperands);

/* The directory at SPEC, its problems on stderr; the exit status of the
 * loader (0, or 64, 65, 66, 69). */
int ctl_load_directory(const char *spec, struct mm_directory *dir);

/* meshctl pki init|issue (pki.c): what the command line gave it */
struct pki_args {
	const char *directory, *dir, *org;
	size_t nnames, nserver, nmaster, nadmin;
	const char **names;  /* operands after init|issue */
	const char **server; /* --server NAME: of kind server */
	const char **master; /* --master NAME: of kind master */
	const char **admin;  /* --admin NAME: an administrator */
};
int ctl_pki(const char *verb, const struct pki_args *a);

#endif
