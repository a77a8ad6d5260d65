/* sendfile.c — file replies in 4 MiB sendfile steps instead of libmicrohttpd's 128 KiB,
 * on an uncorked socket.
 *
 * libmicrohttpd 0.9.75 sends a file response at most 128 KiB per event-loop turn
 * (MHD_SENFILE_CHUNK_; no option changes it, and its 2 MiB is only for thread-per-
 * connection mode, which gives every connection, idle ones too, a thread of its own).
 * Each turn costs a poll, TCP_CORK calls and a sendfile, and a cold file is read
 * 128 KiB at a time, so the disk waits between turns. Its upgrade API cannot help: it
 * only answers 101 Switching Protocols.
 *
 * So the daemon defines sendfile64 itself. libmicrohttpd's calls bind to it (the
 * executable comes first in symbol lookup), and a call for a file reply registered
 * here may run on to 4 MiB (the read path's block), never past the end of the reply's
 * range. Every other call goes to the kernel as it was asked. libmicrohttpd adds what
 * was sent to its position and ends the reply when the range is done, as it does after
 * a short step.
 *
 * The first step of each reply also takes the socket out of TCP_CORK. libmicrohttpd
 * corks the body and uncorks only for the step it knows to be the last; a reply that a
 * longer step finished never got that call, so its last partial segment sat in the
 * kernel until the cork's 200 ms timer sent it — a fifth of a second added to every
 * download. A file body is sent in full-sized steps anyway, so nothing is gained by
 * corking it (nginx does not either); libmicrohttpd's later uncork is a no-op.
 *
 * A body with no kernel fd behind it (an RBD image's read-ahead blocks) goes the same
 * way: libmicrohttpd is given a response "from" a placeholder fd (an eventfd), and a
 * step on it send()s the bytes the lender points at, without MSG_WAITALL and without
 * copying them into libmicrohttpd's buffer first. A content-reader callback would copy
 * every byte once more and send 64 KiB per event-loop turn. With TLS libmicrohttpd
 * never calls sendfile, so lent replies are callback replies there (reply.c).
 * bench/REPORT.md has the figures of each choice. */
#include "http_internal.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#define STEP (4u << 20)
#define MAX_FD 65536

/* The end of each registered reply's range, plus one (0: not a reply of ours), by fd. */
static _Atomic uint64_t range_end[MAX_FD];
/* The source of each lent reply's placeholder fd, or NULL. */
static struct http_lent *_Atomic lent_at[MAX_FD];
/* Set at registration, cleared by the reply's first step, which uncorks its socket. */
static atomic_bool uncork_due[MAX_FD];

ssize_t sendfile64(int out_fd, int in_fd, off64_t *offset, size_t count);

void http_sendfile_register(int fd, uint64_t off, uint64_t len)
{
    if (fd >= 0 && fd < MAX_FD) {
        atomic_store(&uncork_due[fd], true);
        atomic_store(&range_end[fd], off + len + 1);
    }
}

int http_sendfile_lend(int fd, struct http_lent *l)
{
    if (fd < 0 || fd >= MAX_FD)
        return -1;
    atomic_store(&uncork_due[fd], true);
    atomic_store(&lent_at[fd], l);
    return 0;
}

void http_sendfile_forget(int fd)
{
    if (fd >= 0 && fd < MAX_FD) {
        atomic_store(&range_end[fd], 0);
        atomic_store(&lent_at[fd], NULL);
    }
}

/* A lent reply's step: its bytes at *offset straight from the lender to the socket,
 * through to a block's end and on into the next while the socket takes them, up to
 * STEP. An error is EBADF for libmicrohttpd, which then closes the connection: any other
 * errno would make it fall back to reading the placeholder fd itself. */
static ssize_t send_lent(int out_fd, struct http_lent *l, off64_t *offset)
{
    size_t sent = 0;
    if (!offset || *offset < 0) {
        errno = EBADF;
        return -1;
    }
    while (sent < STEP && (uint64_t)*offset < l->size) {
        uint64_t pos = (uint64_t)*offset;
        uint64_t left = l->size - pos;
        const void *p;
        ssize_t n = l->ops->peek(l->cls, pos, left < STEP - sent ? (size_t)left : STEP - sent, &p);
        if (n <= 0) {
            errno = EBADF; /* a failed read, or an image shorter than it said */
            break;
        }
        ssize_t w = send(out_fd, p, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                errno = EBADF;
            break;
        }
        l->ops->advance(l->cls, pos, (size_t)w);
        *l->bytes_out += (uint64_t)w;
        *offset += w;
        sent += (size_t)w;
        if (w < n)
            break; /* the socket is full */
    }
    return sent ? (ssize_t)sent : -1;
}

__attribute__((visibility("default"))) ssize_t sendfile64(int out_fd, int in_fd, off64_t *offset,
                                                          size_t count)
{
    if (in_fd < 0 || in_fd >= MAX_FD)
        return syscall(SYS_sendfile, out_fd, in_fd, offset, count);
    uint64_t end = atomic_load(&range_end[in_fd]);
    struct http_lent *l = atomic_load(&lent_at[in_fd]);
    if ((end || l) && atomic_exchange(&uncork_due[in_fd], false)) {
        int off = 0; /* a failure leaves the socket as libmicrohttpd set it: still correct */
        (void)setsockopt(out_fd, IPPROTO_TCP, TCP_CORK, &off, sizeof off);
    }
    if (l)
        return send_lent(out_fd, l, offset);
    if (end-- && offset && *offset >= 0 && (uint64_t)*offset < end && count < STEP) {
        uint64_t left = end - (uint64_t)*offset;
        if (left > count)
            count = left < STEP ? (size_t)left : STEP;
    }
    return syscall(SYS_sendfile, out_fd, in_fd, offset, count);
}
