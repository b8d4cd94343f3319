/* Synthetic organizations for the property test and the routing benchmark:
 * groups "G%06u", each with servers "S<g>-<s>" that have one virtual server
 * "SMTP", and routing-group connectors between them, built straight into
 * table entries (no directory). A seeded generator keeps them reproducible. */
#ifndef MM_SYNTH_H
#define MM_SYNTH_H

#include <stdint.h>

#include "table.h"

/* A number in [0, n), from a 64-bit LCG state. */
uint32_t synth_rand(uint64_t *state, uint32_t n);
/* snprintf of two numbers into a new string. */
char *synth_name(const char *fmt, unsigned a, unsigned b);
/* Group g with nservers servers, version (0, 1, 0, 0). */
mm_entry *synth_group(unsigned g, unsigned nservers);
/* Connector "C<g>-<k>" of group g to group `to`: local bridgehead on server
 * local_server of g, remote bridgeheads on servers 0..nremote-1 of `to`. */
Mailmesh__Connector *synth_connector(mm_entry *e, unsigned g, unsigned k, unsigned to,
                                     unsigned cost, unsigned local_server, unsigned nremote);
/* Bridgehead on virtual server SMTP of server s of group g. */
Mailmesh__Bridgehead *synth_bridgehead(unsigned g, unsigned s);

#endif
