/* test_http_sendfile.c — the daemon's own sendfile64 (src/http/sendfile.c) on a real
 * loopback TCP connection and a real file.
 *
 * What matters: a registered file reply goes out uncorked (a corked tail waits for the
 * kernel's 200 ms timer), its steps run on past libmicrohttpd's 128 KiB but never past
 * the reply's range, and every other sendfile is the kernel's, as asked. A lent reply's
 * steps send the lender's bytes instead, block after block, never past its size, and a
 * lender that fails makes the step EBADF (libmicrohttpd then closes the connection). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "http_internal.h"

#define FILE_SIZE (1u << 20)

struct conn {
    int tx, rx, file;
};

static int tcp_pair(int *tx, int *rx)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int l = socket(AF_INET, SOCK_STREAM, 0);
    if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) < 0 || listen(l, 1) < 0 ||
        getsockname(l, (struct sockaddr *)&a, &len) < 0)
        return -1;
    *tx = socket(AF_INET, SOCK_STREAM, 0);
    if (*tx < 0 || connect(*tx, (struct sockaddr *)&a, sizeof a) < 0)
        return -1;
    *rx = accept(l, NULL, NULL);
    close(l);
    /* never block on a receiver that does not read: a step ends where the buffer does */
    return *rx < 0 ? -1 : fcntl(*tx, F_SETFL, O_NONBLOCK);
}

static int setup(void **state)
{
    struct conn *c = calloc(1, sizeof *c);
    char path[] = "/tmp/stowage-sendfile-XXXXXX";
    static char block[FILE_SIZE];
    int on = 1;
    if (!c || tcp_pair(&c->tx, &c->rx) < 0 || (c->file = mkstemp(path)) < 0)
        return -1;
    unlink(path);
    memset(block, 'x', sizeof block);
    if (write(c->file, block, sizeof block) != (ssize_t)sizeof block)
        return -1;
    /* as libmicrohttpd leaves it for a body */
    if (setsockopt(c->tx, IPPROTO_TCP, TCP_CORK, &on, sizeof on) < 0)
        return -1;
    *state = c;
    return 0;
}

static int teardown(void **state)
{
    struct conn *c = *state;
    http_sendfile_forget(c->file);
    close(c->tx);
    close(c->rx);
    close(c->file);
    free(c);
    return 0;
}

static int corked(int fd)
{
    int v = -1;
    socklen_t len = sizeof v;
    assert_int_equal(getsockopt(fd, IPPROTO_TCP, TCP_CORK, &v, &len), 0);
    return v;
}

static void test_sendfile_uncorks_a_registered_reply_and_runs_past_128k(void **state)
{
    struct conn *c = *state;
    off64_t off = 0;
    http_sendfile_register(c->file, 0, FILE_SIZE);
    ssize_t n = sendfile64(c->tx, c->file, &off, 128 * 1024);
    assert_true(n > 128 * 1024);
    assert_true((size_t)n <= FILE_SIZE);
    assert_int_equal(off, n);
    assert_int_equal(corked(c->tx), 0);
}

static void test_sendfile_never_passes_the_end_of_the_range(void **state)
{
    struct conn *c = *state;
    off64_t off = 1000;
    http_sendfile_register(c->file, 1000, 5000);
    ssize_t n = sendfile64(c->tx, c->file, &off, 1000);
    assert_int_equal(n, 5000);
    assert_int_equal(off, 6000);
}

static void test_sendfile_of_an_unregistered_file_is_the_kernels(void **state)
{
    struct conn *c = *state;
    off64_t off = 0;
    ssize_t n = sendfile64(c->tx, c->file, &off, 4096);
    assert_int_equal(n, 4096);
    assert_int_equal(corked(c->tx), 1);
}

static void test_sendfile_after_forget_is_the_kernels(void **state)
{
    struct conn *c = *state;
    off64_t off = 0;
    http_sendfile_register(c->file, 0, FILE_SIZE);
    http_sendfile_forget(c->file);
    assert_int_equal(sendfile64(c->tx, c->file, &off, 4096), 4096);
    assert_int_equal(corked(c->tx), 1);
}

/* A lender over an image of BLOCKS blocks of BLOCK bytes, one block per peek, as the
 * read-ahead ring lends them; the second block is a hole (zeros). */
#define BLOCK (300u * 1024)
#define BLOCKS 3

struct image {
    char bytes[BLOCKS * BLOCK];
    uint64_t advanced; /* the sum of the advances, each at the position where the last ended */
    int fail;
};

static ssize_t img_peek(void *cls, uint64_t pos, size_t max, const void **p)
{
    struct image *im = cls;
    if (im->fail)
        return -5;
    if (pos >= sizeof im->bytes)
        return 0;
    size_t n = BLOCK - pos % BLOCK;
    *p = im->bytes + pos;
    return (ssize_t)(n < max ? n : max);
}

static void img_advance(void *cls, uint64_t pos, size_t n)
{
    struct image *im = cls;
    assert_int_equal(pos, im->advanced);
    im->advanced += n;
}

static const struct http_lender img_lender = {img_peek, img_advance, NULL};

static struct image *new_image(void)
{
    struct image *im = calloc(1, sizeof *im);
    assert_non_null(im);
    for (size_t i = 0; i < sizeof im->bytes; i++)
        im->bytes[i] = i / BLOCK == 1 ? 0 : (char)(i * 7 + i / 4096);
    return im;
}

static void test_a_lent_reply_sends_the_lenders_bytes_across_blocks_uncorked(void **state)
{
    struct conn *c = *state;
    struct image *im = new_image();
    char *got = malloc(sizeof im->bytes);
    uint64_t out = 0;
    size_t have = 0;
    off64_t off = 0;
    struct http_lent l = {&img_lender, im, sizeof im->bytes, &out};
    assert_non_null(got);
    assert_int_equal(http_sendfile_lend(c->file, &l), 0);
    while ((uint64_t)off < sizeof im->bytes) {
        off64_t was = off;
        ssize_t n = sendfile64(c->tx, c->file, &off, 128 * 1024);
        if (n < 0) {
            assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
        } else {
            assert_int_equal(off - was, n);
        }
        assert_int_equal(corked(c->tx), 0);
        while (have < (size_t)off) {
            ssize_t r = recv(c->rx, got + have, (size_t)off - have, 0);
            assert_true(r > 0);
            have += (size_t)r;
        }
    }
    assert_int_equal(off, sizeof im->bytes);
    assert_int_equal(im->advanced, sizeof im->bytes);
    assert_int_equal(out, sizeof im->bytes);
    assert_memory_equal(got, im->bytes, sizeof im->bytes);
    free(got);
    free(im);
}

static void test_a_lent_reply_never_passes_its_size(void **state)
{
    struct conn *c = *state;
    struct image *im = new_image();
    uint64_t out = 0;
    off64_t off = 0;
    struct http_lent l = {&img_lender, im, 1000, &out};
    assert_int_equal(http_sendfile_lend(c->file, &l), 0);
    assert_int_equal(sendfile64(c->tx, c->file, &off, 1000), 1000);
    assert_int_equal(off, 1000);
    assert_int_equal(im->advanced, 1000);
    free(im);
}

static void test_a_lent_reply_whose_lender_fails_is_ebadf(void **state)
{
    struct conn *c = *state;
    struct image *im = new_image();
    uint64_t out = 0;
    off64_t off = 0;
    struct http_lent l = {&img_lender, im, sizeof im->bytes, &out};
    im->fail = 1;
    assert_int_equal(http_sendfile_lend(c->file, &l), 0);
    errno = 0;
    assert_int_equal(sendfile64(c->tx, c->file, &off, 4096), -1);
    assert_int_equal(errno, EBADF);
    assert_int_equal(off, 0);
    assert_int_equal(out, 0);
    free(im);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sendfile_uncorks_a_registered_reply_and_runs_past_128k,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_sendfile_never_passes_the_end_of_the_range, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_sendfile_of_an_unregistered_file_is_the_kernels, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_sendfile_after_forget_is_the_kernels, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_a_lent_reply_sends_the_lenders_bytes_across_blocks_uncorked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_lent_reply_never_passes_its_size, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_lent_reply_whose_lender_fails_is_ebadf, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
