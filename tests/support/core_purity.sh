#!/usr/bin/env bash
# The node core is pure (DESIGN §1): its objects call no libevent, OpenSSL,
# c-ares or libldap, open no socket or file, read no clock, use no libm, and
# hold no writable data (no globals, no statics); and the queue manager's
# test links against the core, linkstate/ and libcrypto only.
#   core_purity.sh LIBMM_NODECORE.a QMGR_TEST
# Proven by breaking it: a `static int calls;` in qmgr.c, a time(NULL) in
# qmgr_dsn.c, or linking qmgr_test against mm_spool each makes it fail.
set -u
lib=$1 exe=$2
fail=0
forbidden='^(event_|evbuffer_|bufferevent_|evutil_|SSL_|TLS_|ares_|ldap_|ber_|socket$|connect$|bind$|accept|listen$|send$|recv$|open$|open64$|openat|creat|fopen|fdopen|read$|write$|pread|pwrite|close$|fsync|fdatasync|mmap|clock_gettime$|clock$|clock_nanosleep$|nanosleep$|sleep$|usleep$|times$|timespec_get$|time$|gettimeofday$|localtime|gmtime|strftime|getpid$|getrandom$|getentropy$|arc4random|rand$|rand_r$|srand$|random$|srandom$|drand48$|erand48$|lrand48$|nrand48$|mrand48$|jrand48$|srand48$|pthread_|pow$|exp$|log$|log2$|floor$|ceil$|sqrt$|fmod$|lround|llround)'
bad=$(nm -u "$lib" | awk '{print $NF}' | sed 's/@.*//' | sort -u | grep -E "$forbidden")
if [ -n "$bad" ]; then
	echo "FAIL the core calls what it must not:"; echo "$bad" | sed 's/^/  /'
	for s in $bad; do nm -A -u "$lib" 2>/dev/null | grep -w "$s" | sed 's/^/    /'; done
	fail=1
else
	echo "ok   no libevent, OpenSSL, c-ares, libldap, socket, file, clock or libm call"
fi
# writable data: .data, .bss and thread-local sections must be empty
# (.data.rel.ro is read-only once relocated)
writable=$(objdump -h "$lib" | awk '
	/file format/ { obj = $1 }
	$2 ~ /^\.(data|bss|tdata|tbss)(\.|$)/ && $2 !~ /^\.data\.rel\.ro/ && $3 ~ /[1-9a-f]/ { print obj " " $2 " " $3 }')
if [ -n "$writable" ]; then
	echo "FAIL writable data in the core (a global or a static):"; echo "$writable" | sed 's/^/  /'
	fail=1
else
	echo "ok   no writable .data or .bss"
fi
# shared libraries beyond libcrypto, protobuf-c and cmocka, and calls that
# only a driver (libevent, OpenSSL's TLS, c-ares, libldap, the file spool)
# would bring in
needed=$(readelf -d "$exe" | awk '/NEEDED/ {gsub(/[\[\]]/, "", $5); print $5}' |
	grep -vE '^(libc\.so|libcrypto\.so|libprotobuf-c\.so|libcmocka\.so|libasan\.so|libubsan\.so|libm\.so|libgcc_s\.so|libstdc\+\+\.so)')
needed="$needed$(nm -u "$exe" | awk '{print $NF}' | sed 's/@.*//' | sort -u |
	grep -E '^(event_|bufferevent_|SSL_|ares_|ldap_|socket$|connect$|pwritev?$|fdatasync$|fsync$|open$|open64$|openat)')"
if [ -n "$needed" ]; then
	echo "FAIL the queue manager's test links more than the core, linkstate and libcrypto:"
	echo "$needed" | sed 's/^/  /'
	fail=1
else
	echo "ok   $(basename "$exe") links the core, linkstate, libcrypto (and protobuf-c, cmocka) only"
fi
exit $fail
