/* meshctl queues | queue Q | retry|freeze|thaw Q: a live node's queues,
 * through SPOOL/control.sock (--spool DIR). Q is a queue's id or name. The
 * node renders both the text and the JSON, so the two always agree, and
 * says which exit status fits (64 when a name matches several queues). */
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
	/* the first line is the exit status, then what to print: on stdout
	 * when it is 0, on stderr otherwise */
	FILE *in = fdopen(fd, "r");
	int status = -1;
	if (in == NULL || fscanf(in, "%d", &status) != 1 || fgetc(in) != '\n') {
		fprintf(stderr, "meshctl: no answer from the node\n");
		if (in)
			fclose(in);
		else
			close(fd);
		return EX_UNAVAILABLE;
	}
	char buf[65536];
	size_t r;
	while ((r = fread(buf, 1, sizeof(buf), in)) > 0)
		fwrite(buf, 1, r, status == 0 ? stdout : stderr);
	fclose(in);
	return status;
}
