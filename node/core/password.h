/* userPassword as LDAP stores it (RFC 2307 schemes): {SSHA}, {SHA},
 * {SSHA256}, or clear text. Pure: libcrypto only, no allocation. */
#ifndef MM_PASSWORD_H
#define MM_PASSWORD_H

#include <stdbool.h>

/* Longest stored value a scheme's base64 may have: a digest and a salt
 * of up to 64 bytes. A longer one (a directory any user may write to can
 * hold anything) is no match, never a read past a buffer. */
#define MM_PASSWORD_B64_MAX 256

/* True when given matches stored. A scheme we do not know, a value that
 * does not decode or is too long: false, as a wrong password is. */
bool mm_password_ok(const char *stored, const char *given);

#endif
