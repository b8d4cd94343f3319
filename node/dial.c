/* The outgoing SMTP connection of a delivery (relay_client.c) and of a
 * probe (probe.c), made the same way: a non-blocking socket from this
 * server's own address (so that other organization servers know it by
 * address), TCP_NODELAY, connect_timeout_ms on the connect and on every
 * read and write. */
#include <errno.h>
#include <event2/bufferevent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "node.h"

struct bufferevent *node_dial(struct node *n, const char *address, bufferevent_data_cb read_cb,
                              bufferevent_event_cb event_cb, void *ctx, evutil_socket_t *fd_out,
                              char *why, size_t whylen)
{
	*fd_out = -1;
	struct sockaddr_storage ss;
	int len = sizeof(ss);
	if (evutil_parse_sockaddr_port(address, (struct sockaddr *)&ss, &len) != 0) {
		snprintf(why, whylen, "4.4.3 the next hop is not an IP address");
		return NULL;
	}
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(why, whylen, "4.3.0 no socket for the next hop: %s", strerror(errno));
		return NULL;
	}
	*fd_out = fd;
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (ss.ss_family == AF_INET)
		setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
	if (n->src_len > 0 && n->src.ss_family == ss.ss_family &&
	    bind(fd, (struct sockaddr *)&n->src, (socklen_t)n->src_len) != 0)
		node_log("cannot bind the source address of a connection: %s", strerror(errno));
	struct bufferevent *bev = bufferevent_socket_new(n->base, fd, 0);
	bufferevent_setcb(bev, read_cb, NULL, event_cb, ctx);
	struct timeval tv = {(time_t)(n->set.connect_timeout_ms / 1000),
	                     (suseconds_t)(n->set.connect_timeout_ms % 1000) * 1000};
	bufferevent_set_timeouts(bev, &tv, &tv);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	if (bufferevent_socket_connect(bev, (struct sockaddr *)&ss, len) != 0) {
		snprintf(why, whylen, "4.4.1 connect to %s failed: %s", address,
		         evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
		bufferevent_free(bev);
		return NULL;
	}
	return bev;
}
