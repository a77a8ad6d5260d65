/* main.c — stowaged: options, subcommands, start and stop order. */
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "stowage/api.h"
#include "stowage/core.h"
#include "stowage/format.h"
#include "stowage/http.h"

static const char usage[] =
    "usage: stowaged [--listen HOST:PORT] [--state-dir DIR] [--config FILE]\n"
    "       stowaged token create --role reader|admin|superadmin [--owner NAME] [common options]\n"
    "       stowaged user add NAME --role reader|admin|superadmin [common options]\n"
    "                (the password is read from the first line of stdin)\n"
    "       stowaged inspect FILE [--format DECLARED]\n"
    "       stowaged routes            (the HTTP route table)\n"
    "       stowaged --version | --help\n"
    "\n"
    "  --listen HOST:PORT   address to serve on (default 127.0.0.1:8080)\n"
    "  --state-dir DIR      database, tokens and logs (default ./var)\n"
    "  --config FILE        JSON configuration (see docs/configuration.md)\n";

struct opts {
    const char *config;
    const char *listen;
    const char *state_dir;
    const char *role;
    const char *owner;
    const char *args[4];
    int n_args;
};

static int parse_opts(int argc, char **argv, struct opts *o)
{
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char **slot = strcmp(a, "--config") == 0      ? &o->config
                            : strcmp(a, "--listen") == 0    ? &o->listen
                            : strcmp(a, "--state-dir") == 0 ? &o->state_dir
                            : strcmp(a, "--role") == 0      ? &o->role
                            : strcmp(a, "--owner") == 0     ? &o->owner
                                                            : NULL;
        if (slot) {
            if (i + 1 >= argc) {
                fprintf(stderr, "stowaged: %s needs a value\n", a);
                return -1;
            }
            *slot = argv[++i];
        } else if (a[0] == '-') {
            fprintf(stderr, "stowaged: unknown option %s\n%s", a, usage);
            return -1;
        } else if (o->n_args < 4) {
            o->args[o->n_args++] = a;
        } else {
            fprintf(stderr, "stowaged: too many arguments\n");
            return -1;
        }
    }
    return 0;
}

/* Defaults, then the config file, then the command line. */
static int load_config(struct st_config *cfg, const struct opts *o)
{
    struct st_err e;
    cfg_defaults(cfg);
    if ((o->config && cfg_load_file(cfg, o->config, &e)) ||
        (o->listen && cfg_set_listen(cfg, o->listen, &e)) ||
        (o->state_dir && cfg_set_state_dir(cfg, o->state_dir, &e)) || cfg_finish(cfg, &e)) {
        fprintf(stderr, "stowaged: %s\n", e.msg);
        return -1;
    }
    return 0;
}

static int cmd_token(struct stowage *st, const struct opts *o)
{
    struct st_err e;
    enum st_role role;
    char token[96];

    if (o->n_args != 2 || strcmp(o->args[1], "create") != 0 || !o->role ||
        core_role_parse(o->role, &role)) {
        fprintf(stderr, "usage: stowaged token create --role reader|admin|superadmin\n");
        return 2;
    }
    if (core_open(st, &e) ||
        core_token_create(st, role, o->owner ? o->owner : o->role, 0, 0, token, sizeof token, &e)) {
        fprintf(stderr, "stowaged: %s\n", e.msg);
        return 1;
    }
    printf("%s\n", token);
    return 0;
}

static int cmd_user(struct stowage *st, const struct opts *o)
{
    struct st_err e;
    enum st_role role;
    char pw[1100];

    if (o->n_args != 3 || strcmp(o->args[1], "add") != 0 || !o->role ||
        core_role_parse(o->role, &role)) {
        fprintf(stderr,
                "usage: stowaged user add NAME --role reader|admin|superadmin < password\n");
        return 2;
    }
    if (!fgets(pw, sizeof pw, stdin)) {
        fprintf(stderr, "stowaged: no password on stdin\n");
        return 2;
    }
    pw[strcspn(pw, "\r\n")] = '\0';
    if (core_open(st, &e) || core_user_add(st, o->args[2], pw, role, &e)) {
        fprintf(stderr, "stowaged: %s\n", e.msg);
        return 1;
    }
    printf("user %s (%s) saved\n", o->args[2], o->role);
    return 0;
}

static int serve(struct stowage *st)
{
    struct st_err e;
    struct http_server *http = NULL;
    sigset_t set;
    int sig = 0;

    /* Memory a transfer freed goes back to the system (bench/REPORT.md, memory): glibc's
     * default of 8 arenas a core keeps one per thread that ever allocated (HTTP, workers,
     * gfapi's own), and the mmap threshold it raises after the first big free keeps later
     * big buffers in those arenas for good. Two arenas, and big buffers always mapped (the
     * RBD module raises the threshold to its object size when an RBD volume opens: rbd.c). */
    mallopt(M_ARENA_MAX, 2);
    mallopt(M_MMAP_THRESHOLD, 256 * 1024);

    /* Threads inherit this mask; only the main thread takes the signals, by sigwait. */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    const struct st_config *cfg = core_config(st);
    int fd = http_listen(cfg, &e);
    if (fd < 0) {
        fprintf(stderr, "stowaged: %s\n", e.msg);
        return 1;
    }
    if (core_start(st, &e)) {
        close(fd);
        fprintf(stderr, "stowaged: %s\n", e.msg);
        return 1;
    }
    if (http_start(&http, st, fd, api_dialects, &e)) {
        fprintf(stderr, "stowaged: %s\n", e.msg);
        core_stop(st);
        return 1;
    }
    fprintf(stderr, "stowaged %s: listening on http%s://%s:%u, state in %s\n", STOWAGE_VERSION,
            cfg->tls_cert ? "s" : "", cfg->listen_host, cfg->port, cfg->state_dir);
    while (sigwait(&set, &sig) != 0)
        ;
    fprintf(stderr, "stowaged: %s: shutting down\n", strsignal(sig));
    http_stop(http);
    core_stop(st);
    fprintf(stderr, "stowaged: stopped\n");
    return 0;
}

/* `stowaged routes`: the route table, for schema/openapi.yaml's test and for operators. */
static int print_routes(void)
{
    for (size_t d = 0; api_dialects[d]; d++)
        for (const struct http_route *r = api_dialects[d]->routes; r->method; r++)
            printf("%s %s %s %s\n", r->method, r->pattern, core_role_name(r->role),
                   api_dialects[d]->name);
    return 0;
}

int main(int argc, char **argv)
{
    struct opts o = {0};
    struct stowage *st;
    int rc;

    if (argc > 1 && strcmp(argv[1], "inspect") == 0)
        return fmt_cli_inspect(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "qcow2-overlay") == 0)
        return fmt_cli_overlay(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "routes") == 0)
        return print_routes();
    if (argc > 1 && (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0)) {
        printf("stowaged %s\n", STOWAGE_VERSION);
        return 0;
    }
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        fputs(usage, stdout);
        return 0;
    }
    if (parse_opts(argc - 1, argv + 1, &o))
        return 2;
    if (!(st = core_new())) {
        fprintf(stderr, "stowaged: out of memory\n");
        return 1;
    }
    if (load_config(core_config(st), &o)) {
        core_free(st);
        return 2;
    }
    if (o.n_args > 0 && strcmp(o.args[0], "token") == 0)
        rc = cmd_token(st, &o);
    else if (o.n_args > 0 && strcmp(o.args[0], "user") == 0)
        rc = cmd_user(st, &o);
    else if (o.n_args > 0) {
        fprintf(stderr, "stowaged: unknown command '%s'\n%s", o.args[0], usage);
        rc = 2;
    } else
        rc = serve(st);
    core_free(st);
    return rc;
}
