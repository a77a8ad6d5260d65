/* gluster_status.c — what a Gluster volume looks like, from the gluster CLI's XML.
 *
 * gfapi gives a client's view only: no brick list, no volume type, no brick liveness.
 * glusterd knows all of that and the CLI prints it as XML (`volume info`, `volume
 * status`), so we run the CLI — without a shell, with a deadline, its output capped —
 * and read the few flat tags we need with the scanner in xml.c. Each CLI call costs
 * ~150 ms, which is why core/ caches the result and refreshes it in the background. */
#include "stowage/probe.h"
#include "stowage/run.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "xml.h"

#define CLI_OUTPUT_MAX (4u << 20) /* volume info of a 64-brick volume is ~40 KiB */

/* ---- "Number of Bricks" ---- */

/* Gluster's notation, as cli-rpc-ops.c prints it, except that for disperse volumes
 * our API drops the trailing " = N" ("1 x (4 + 2)"). The number of distribute groups
 * is derived as brick_count / bricks-per-group rather than read from distCount, whose
 * meaning changed between releases (3.x: bricks per group; 10.x: number of groups). */
int probe_gluster_configuration(const char *type_str, int brick_count, int dist_count,
                                int replica_count, int arbiter_count, int disperse_count,
                                int redundancy_count, char *out, size_t outlen)
{
    int n;

    (void)dist_count;
    if (brick_count <= 0 || !out || outlen == 0)
        return -EINVAL;
    if (type_str && strstr(type_str, "Disperse") && disperse_count <= 0)
        return -EINVAL;
    if (type_str && strstr(type_str, "Replicate") && replica_count <= 1)
        return -EINVAL;
    if (disperse_count > 0) {
        if (redundancy_count <= 0 || redundancy_count >= disperse_count ||
            brick_count % disperse_count)
            return -EINVAL;
        n = snprintf(out, outlen, "%d x (%d + %d)", brick_count / disperse_count,
                     disperse_count - redundancy_count, redundancy_count);
    } else if (replica_count > 1) {
        if (brick_count % replica_count || arbiter_count < 0 || arbiter_count >= replica_count)
            return -EINVAL;
        if (arbiter_count == 0)
            n = snprintf(out, outlen, "%d x %d = %d", brick_count / replica_count, replica_count,
                         brick_count);
        else
            n = snprintf(out, outlen, "%d x (%d + %d) = %d", brick_count / replica_count,
                         replica_count - arbiter_count, arbiter_count, brick_count);
    } else {
        n = snprintf(out, outlen, "%d", brick_count);
    }
    return (n < 0 || (size_t)n >= outlen) ? -ERANGE : 0;
}

/* ---- parsing ---- */

/* <cliOutput> of a document, checking opRet; on failure e carries opErrstr. */
static int cli_output(const char *xml, size_t len, const char *what, struct probe_xml_el *root,
                      long *op_ret, char *errstr, size_t errlen, struct st_err *e)
{
    const char *pos = xml;

    if (!xml || probe_xml_next(&pos, xml + len, "cliOutput", root) < 0) {
        /* Without glusterd the CLI prints a plain sentence ("Connection failed. Please
         * check if gluster daemon is operational."): pass it on. */
        size_t max = len < 160 ? len : 160;
        const char *nl = xml ? memchr(xml, '\n', max) : NULL;
        int n = xml ? (int)(nl ? (size_t)(nl - xml) : max) : 0;

        if (n > 0 && !memchr(xml, '<', (size_t)n))
            st_fail(e, ST_UNAVAILABLE, "gluster %s: %.*s", what, n, xml);
        else
            st_fail(e, ST_UNAVAILABLE, "gluster %s: unexpected output (no XML)", what);
        return -EBADMSG;
    }
    if (probe_xml_child_int(root, "opRet", op_ret) < 0) {
        st_fail(e, ST_UNAVAILABLE, "gluster %s: no <opRet>", what);
        return -EBADMSG;
    }
    errstr[0] = '\0';
    probe_xml_child_text(root, "opErrstr", errstr, errlen);
    return 0;
}

/* Descend root/a/b/c. */
static int xml_path(const struct probe_xml_el *root, const char *const *path,
                    struct probe_xml_el *out)
{
    struct probe_xml_el cur = *root;

    for (; *path; path++)
        if (probe_xml_child(&cur, *path, &cur) < 0)
            return -ENOENT;
    *out = cur;
    return 0;
}

static int child_count(const struct probe_xml_el *vol, const char *tag, int *out)
{
    long v;

    if (probe_xml_child_int(vol, tag, &v) < 0 || v < 0 || v > 100000)
        return -EBADMSG;
    *out = (int)v;
    return 0;
}

static int parse_bricks(const struct probe_xml_el *vol, struct probe_gluster *g, struct st_err *e)
{
    struct probe_xml_el bricks, brick;
    const char *pos;
    int rc;

    if (probe_xml_child(vol, "bricks", &bricks) < 0)
        return st_fail(e, ST_UNAVAILABLE, "gluster volume info %s: no <bricks>", g->name), -EBADMSG;
    pos = bricks.body;
    while ((rc = probe_xml_next(&pos, bricks.end, "brick", &brick)) == 0) {
        struct probe_gluster_brick *b = &g->bricks[g->n_bricks];

        if (g->n_bricks == PROBE_MAX_BRICKS)
            return st_fail(e, ST_INTERNAL, "gluster volume %s has more than %d bricks", g->name,
                           PROBE_MAX_BRICKS),
                   -E2BIG;
        /* <brick uuid=…>host:/path<name>host:/path</name>…: prefer <name>, older CLIs
         * only had the text. */
        if (probe_xml_child_text(&brick, "name", b->name, sizeof b->name) < 0 &&
            probe_xml_text(&brick, b->name, sizeof b->name) < 0)
            return st_fail(e, ST_UNAVAILABLE, "gluster volume info %s: bad <brick>", g->name),
                   -EBADMSG;
        b->online = -1;
        b->pid = -1;
        g->n_bricks++;
    }
    if (rc != -ENOENT)
        return st_fail(e, ST_UNAVAILABLE, "gluster volume info %s: bad XML", g->name), -EBADMSG;
    return 0;
}

static const char *transport_name(long t)
{
    return t == 0 ? "tcp" : t == 1 ? "rdma" : t == 2 ? "tcp,rdma" : "unknown";
}

static int parse_counts(const struct probe_xml_el *vol, struct probe_gluster *g, struct st_err *e)
{
    static const char *const names[] = {"brickCount",   "distCount",     "replicaCount",
                                        "arbiterCount", "disperseCount", "redundancyCount"};
    int c[6], rc;
    size_t i;

    for (i = 0; i < 6; i++)
        if (child_count(vol, names[i], &c[i]) < 0)
            return st_fail(e, ST_UNAVAILABLE, "gluster volume info %s: no <%s>", g->name, names[i]),
                   -EBADMSG;
    rc = probe_gluster_configuration(g->type, c[0], c[1], c[2], c[3], c[4], c[5], g->configuration,
                                     sizeof g->configuration);
    if (rc < 0)
        return st_fail(e, ST_UNAVAILABLE, "gluster volume %s: inconsistent brick counts", g->name),
               rc;
    if ((size_t)c[0] != g->n_bricks)
        return st_fail(e, ST_UNAVAILABLE, "gluster volume %s: brickCount %d but %zu bricks",
                       g->name, c[0], g->n_bricks),
               -EBADMSG;
    return 0;
}

int probe_gluster_parse_info(const char *xml, size_t len, struct probe_gluster *g, struct st_err *e)
{
    static const char *const path[] = {"volInfo", "volumes", "volume", NULL};
    struct probe_xml_el root, vol;
    char errstr[256];
    long op_ret, status, transport;
    int rc;

    memset(g, 0, sizeof *g);
    g->bricks_online = -1;
    g->heal_pending = -1;
    if ((rc = cli_output(xml, len, "volume info", &root, &op_ret, errstr, sizeof errstr, e)) < 0)
        return rc;
    if (op_ret != 0) {
        int missing = strstr(errstr, "does not exist") != NULL;

        st_fail(e, missing ? ST_NOT_FOUND : ST_UNAVAILABLE, "gluster volume info: %s",
                errstr[0] ? errstr : "failed");
        return missing ? -ENOENT : -EIO;
    }
    if (xml_path(&root, path, &vol) < 0 ||
        probe_xml_child_text(&vol, "name", g->name, sizeof g->name) < 0 ||
        probe_xml_child_text(&vol, "typeStr", g->type, sizeof g->type) < 0 ||
        probe_xml_child_int(&vol, "status", &status) < 0 ||
        probe_xml_child_int(&vol, "transport", &transport) < 0)
        return st_fail(e, ST_UNAVAILABLE, "gluster volume info: unexpected XML"), -EBADMSG;
    g->started = status == 1;
    snprintf(g->transport, sizeof g->transport, "%s", transport_name(transport));
    if ((rc = parse_bricks(&vol, g, e)) < 0 || (rc = parse_counts(&vol, g, e)) < 0)
        return rc;
    return 0;
}

static void mark_all(struct probe_gluster *g, int online)
{
    size_t i;

    for (i = 0; i < g->n_bricks; i++) {
        g->bricks[i].online = online;
        g->bricks[i].pid = -1;
    }
    g->bricks_online = online > 0 ? (int)g->n_bricks : online;
}

/* Mark the brick that node (hostname + path) describes. Nodes for the self-heal
 * daemon, NFS, quotad… name no brick ("Self-heal Daemon" / "localhost") and are ignored. */
static void mark_node(const struct probe_xml_el *node, struct probe_gluster *g)
{
    char host[256], path[4096], name[sizeof g->bricks[0].name];
    long status, pid;
    size_t i;

    if (probe_xml_child_text(node, "hostname", host, sizeof host) < 0 ||
        probe_xml_child_text(node, "path", path, sizeof path) < 0 ||
        probe_xml_child_int(node, "status", &status) < 0)
        return;
    if (probe_xml_child_int(node, "pid", &pid) < 0)
        pid = -1;
    if ((size_t)snprintf(name, sizeof name, "%s:%s", host, path) >= sizeof name)
        return;
    for (i = 0; i < g->n_bricks; i++) {
        if (strcmp(g->bricks[i].name, name) != 0)
            continue;
        g->bricks[i].online = status == 1;
        g->bricks[i].pid = (status == 1 && pid > 0 && pid <= 0x7fffffff) ? (int)pid : -1;
    }
}

int probe_gluster_parse_status(const char *xml, size_t len, struct probe_gluster *g,
                               struct st_err *e)
{
    static const char *const path[] = {"volStatus", "volumes", "volume", NULL};
    struct probe_xml_el root, vol, node;
    const char *pos;
    char errstr[256];
    long op_ret;
    size_t i;
    int rc;

    mark_all(g, -1);
    if ((rc = cli_output(xml, len, "volume status", &root, &op_ret, errstr, sizeof errstr, e)) < 0)
        return rc;
    if (op_ret != 0) {
        /* A stopped volume has no brick processes: that is an answer, not an error. */
        if (strstr(errstr, "is not started")) {
            g->started = 0;
            mark_all(g, 0);
            return 0;
        }
        st_fail(e, ST_UNAVAILABLE, "gluster volume status %s: %s", g->name,
                errstr[0] ? errstr : "failed");
        return -EIO;
    }
    if (xml_path(&root, path, &vol) < 0)
        return st_fail(e, ST_UNAVAILABLE, "gluster volume status: unexpected XML"), -EBADMSG;
    /* A brick the status does not list (its peer is gone) is not serving: offline. */
    mark_all(g, 0);
    pos = vol.body;
    while ((rc = probe_xml_next(&pos, vol.end, "node", &node)) == 0)
        mark_node(&node, g);
    if (rc != -ENOENT)
        return st_fail(e, ST_UNAVAILABLE, "gluster volume status: bad XML"), -EBADMSG;
    g->bricks_online = 0;
    for (i = 0; i < g->n_bricks; i++)
        g->bricks_online += g->bricks[i].online == 1;
    return 0;
}

/* ---- running the CLI ---- */

struct capture {
    char *buf;
    size_t len;
};

/* Run argv and capture its stdout. The exit code is not looked at: the CLI exits
 * non-zero when opRet != 0 but still prints the XML that says why. what ("volume info
 * gv0") names the call in errors. */
static int run_cli(char *const argv[], const char *what, unsigned timeout_ms, struct capture *c,
                   struct st_err *e)
{
    int status;
    free(c->buf);
    int rc = st_run(argv, 0, timeout_ms, CLI_OUTPUT_MAX, &c->buf, &c->len, &status);
    if (rc == -ETIMEDOUT)
        return st_fail(e, ST_UNAVAILABLE, "gluster %s: timed out", what), rc;
    if (rc == -EFBIG)
        return st_fail(e, ST_UNAVAILABLE, "gluster %s: output over %u bytes", what, CLI_OUTPUT_MAX),
               rc;
    if (rc == -ENOENT)
        return st_fail(e, ST_UNAVAILABLE, "cannot run %s: not installed", argv[0]), rc;
    if (rc < 0)
        return st_fail_errno(e, -rc, "gluster %s", what), rc;
    return 0;
}

/* Names that mean "the glusterd on this machine": no --remote-host needed. */
static int is_local_server(const char *server)
{
    char host[256];
    size_t hl, sl;

    if (!server || !*server || !strcasecmp(server, "localhost") || !strcmp(server, "127.0.0.1") ||
        !strcmp(server, "::1"))
        return 1;
    if (gethostname(host, sizeof host) < 0)
        return 0;
    host[sizeof host - 1] = '\0';
    if (!strcasecmp(server, host))
        return 1;
    /* "vm" vs "vm.example.org": equal when the shorter one is the other's first label. */
    hl = strcspn(host, ".");
    sl = strcspn(server, ".");
    return hl == sl && !strncasecmp(server, host, hl) && (!host[hl] || !server[sl]);
}

/* Argument values reach the CLI as argv (no shell), but one starting with '-' would
 * still be read as an option. Gluster volume names are [A-Za-z0-9_-]. */
static int arg_ok(const char *s, const char *extra)
{
    size_t n = s ? strlen(s) : 0;

    if (n == 0 || n > 255 || s[0] == '-')
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '-' || *s == '_' || strchr(extra, *s)))
            return 0;
    return 1;
}

static int run_volume_cmd(const char *cli, const char *server, const char *op, const char *volume,
                          unsigned timeout_ms, struct capture *c, struct st_err *e)
{
    char remote[300], what[300];
    char *argv[8];
    int i = 0;

    argv[i++] = (char *)cli;
    argv[i++] = "--mode=script";
    argv[i++] = "--xml";
    if (!is_local_server(server)) {
        snprintf(remote, sizeof remote, "--remote-host=%s", server);
        argv[i++] = remote;
    }
    argv[i++] = "volume";
    argv[i++] = (char *)op;
    argv[i++] = (char *)volume;
    argv[i] = NULL;
    snprintf(what, sizeof what, "volume %s %s", op, volume);
    return run_cli(argv, what, timeout_ms ? timeout_ms : 10000, c, e);
}

int probe_gluster(const char *cli, const char *server, const char *volume, unsigned timeout_ms,
                  struct probe_gluster *g, struct st_err *e)
{
    struct capture c = {0};
    struct st_err status_err;
    int rc;

    memset(g, 0, sizeof *g);
    g->bricks_online = -1;
    g->heal_pending = -1;
    if (!arg_ok(volume, ""))
        return st_fail_field(e, ST_INVALID, "gluster_volume", "bad gluster volume name"), -EINVAL;
    if (server && *server && !arg_ok(server, ".:[]"))
        return st_fail_field(e, ST_INVALID, "gluster_server", "bad gluster server name"), -EINVAL;
    if (!cli || !*cli)
        cli = "gluster";
    if ((rc = run_volume_cmd(cli, server, "info", volume, timeout_ms, &c, e)) < 0)
        goto out;
    if ((rc = probe_gluster_parse_info(c.buf, c.len, g, e)) < 0)
        goto out;
    /* A stopped volume has no brick processes; save the second CLI call. */
    if (!g->started) {
        mark_all(g, 0);
        rc = 0;
        goto out;
    }
    /* Info is the answer; status only adds liveness. When it cannot be had (timeout,
     * glusterd busy with another transaction) the bricks stay "unknown" (-1). */
    if (run_volume_cmd(cli, server, "status", volume, timeout_ms, &c, &status_err) == 0)
        probe_gluster_parse_status(c.buf, c.len, g, &status_err);
    rc = 0;
out:
    free(c.buf);
    return rc;
}
