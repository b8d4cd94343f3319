/* meshctl queues | queue NAME | retry|freeze|thaw QUEUE: a live node's
 * queues, through SPOOL/control.sock (--spool DIR). The node renders both
 * the text and the JSON, so the two always agree. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "meshctl.h"

int ctl_queues(const char *spool, bool json, const char *verb, const char *queue)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	int n = snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/control.sock", spool);
	if (n < 0 || (size_t)n >= sizeof(sun.sun_path)) {
		fprintf(stderr, "meshctl: --spool %s: path too long\n", spool);
		return EX_USAGE;
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
		fprintf(stderr, "meshctl: %s: %s (is meshnode running on this spool?)\n",
		        sun.sun_path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return EX_UNAVAILABLE;
	}
	char req[1024];
	n = snprintf(req, sizeof(req), "%s%s%s%s\n", json ? "" : "text ", verb, queue ? " " : "",
	             queue ? queue : "");
	if (n < 0 || (size_t)n >= sizeof(req) || write(fd, req, (size_t)n) != n) {
		fprintf(stderr, "meshctl: cannot send the request\n");
		close(fd);
		return EX_UNAVAILABLE;
	}
	char buf[65536];
	ssize_t r;
	bool first = true, err = false;
	while ((r = read(fd, buf, sizeof(buf))) > 0) {
		if (first && (strncmp(buf, "{\"error\"", 8) == 0 || strncmp(buf, "error:", 6) == 0))
			err = true;
		first = false;
		fwrite(buf, 1, (size_t)r, err ? stderr : stdout);
	}
	close(fd);
	if (first) {
		fprintf(stderr, "meshctl: no answer from the node\n");
		return EX_UNAVAILABLE;
	}
	if (err && !json)
		fputc('\n', stderr);
	return err ? EX_DATAERR : EX_OK;
}
