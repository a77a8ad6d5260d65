#!/bin/sh
# bench_inspect.sh — format inspector timings: a 10 GiB sparse raw, a 10 GiB
# qcow2 and a 100 GiB qcow2 overlay. Prints a Markdown section.
#
# The inspector reads headers only, so its time must not depend on the image
# size: each must be under 5 ms. Measured in-process (open + fmt_inspect_fd +
# close, median of many runs, warm page cache) with a small C loop built from
# src/format/ right here; `stowaged inspect` as a whole process is timed with
# hyperfine beside it when $STOWAGED has the subcommand. Env: STOWAGED,
# BENCH_WORK (scratch directory), BENCH_RUNS (default 2000).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
W=${BENCH_WORK:-$(mktemp -d)}/inspect
RUNS=${BENCH_RUNS:-2000}
LIMIT_MS=5
rm -rf "$W"
mkdir -p "$W"

cat > "$W/timing.c" <<'EOF'
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "stowage/format.h"

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* timing FILE RUNS TRUSTED: prints "median_ms p99_ms bytes_read format verdict" */
int main(int argc, char **argv)
{
    int runs = atoi(argv[2]);
    double *t = calloc((size_t)runs, sizeof(*t));
    struct fmt_opts o;
    struct fmt_info info;

    fmt_opts_init(&o);
    o.allow_backing_file = atoi(argv[3]); /* the daemon checking its own clone */
    for (int i = 0; i < runs; i++) {
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        int fd = open(argv[1], O_RDONLY);
        if (fd < 0 || fmt_inspect_fd(fd, &o, &info) < 0)
            return 1;
        close(fd);
        clock_gettime(CLOCK_MONOTONIC, &b);
        t[i] = (b.tv_sec - a.tv_sec) * 1e3 + (b.tv_nsec - a.tv_nsec) / 1e6;
    }
    qsort(t, (size_t)runs, sizeof(*t), cmp);
    printf("%.3f %.3f %llu %s %s\n", t[runs / 2], t[runs * 99 / 100],
           (unsigned long long)info.bytes_read, fmt_name(info.format),
           info.reason == FMT_R_OK ? "accept" : fmt_reason_str(info.reason));
    free(t);
    return 0;
}
EOF
cc -std=c11 -O2 -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -I "$root/include/format" \
    -I "$root/include/common" "$W/timing.c" \
    "$root"/src/format/*.c "$root"/src/common/*.c -ljansson -o "$W/timing"

# The images: sparse files, a few MiB on disk.
truncate -s 10G "$W/raw10g.img"
dd if=/dev/urandom of="$W/raw10g.img" bs=1M count=4 conv=notrunc status=none
qemu-img create -q -f qcow2 "$W/qcow2-10g.qcow2" 10G
qemu-io -f qcow2 -c "write -P 1 0 4M" -c "write -P 2 5G 1M" -c "write -P 3 10238M 1M" \
    "$W/qcow2-10g.qcow2" > /dev/null
truncate -s 100G "$W/base100g.raw"
overlay_made=0
if [ -n "${STOWAGED:-}" ] && "$STOWAGED" qcow2-overlay "$W/overlay100g.qcow2" "$W/base100g.raw" raw \
    > /dev/null 2>&1; then
    overlay_made=1
else # the daemon is not built: the same writer through qemu-img's eyes is enough here
    qemu-img create -q -f qcow2 -b "$W/base100g.raw" -F raw "$W/overlay100g.qcow2"
fi

has_cli=0
if [ -n "${STOWAGED:-}" ] && [ -x "$STOWAGED" ] && command -v hyperfine > /dev/null 2>&1 &&
    "$STOWAGED" inspect --help > /dev/null 2>&1; then
    has_cli=1
fi

cli_ms() { # median wall time of the whole `stowaged inspect` process
    hyperfine -N -w 20 -r 200 --export-json "$W/h.json" -i "$STOWAGED inspect $1" > /dev/null 2>&1
    /usr/bin/python3 -c 'import json,sys; print("%.2f" % (json.load(open(sys.argv[1]))["results"][0]["median"] * 1e3))' "$W/h.json"
}

echo "## Format inspector"
echo
echo "\`fmt_inspect_fd\` in-process (open + inspect + close, warm page cache), median and"
echo "99th percentile of $RUNS runs; headers and tables only, so the time does not grow with"
echo "the image. Limit: $LIMIT_MS ms each."
echo
echo "| image | file on disk | verdict | bytes read | median | p99 | \`stowaged inspect\` process | < $LIMIT_MS ms |"
echo "|---|---|---|---|---|---|---|---|"
status=0
for spec in "raw10g.img:10 GiB sparse raw:0" "qcow2-10g.qcow2:10 GiB qcow2:0" \
    "overlay100g.qcow2:100 GiB qcow2 overlay:1"; do
    f=${spec%%:*}
    rest=${spec#*:}
    label=${rest%:*}
    trusted=${rest##*:}
    set -- $("$W/timing" "$W/$f" "$RUNS" "$trusted")
    med=$1 p99=$2 bytes=$3 verdict=$5
    disk=$(du -k "$W/$f" | cut -f1)
    cli=n/a
    [ "$has_cli" = 1 ] && cli="$(cli_ms "$W/$f") ms"
    ok=yes
    if [ "$(echo "$med $LIMIT_MS" | awk '{print ($1 < $2)}')" != 1 ]; then
        ok="**no**"
        status=1
    fi
    echo "| $label | $disk KiB | $verdict | $bytes | $med ms | $p99 ms | $cli | $ok |"
done
echo
echo "The overlay is inspected as the daemon checks its own clones (\`allow_backing_file\`);"
echo "a client upload of the same file is refused with \`qcow2_backing_file\` just as fast."
[ "$overlay_made" = 1 ] || echo "(\`$STOWAGED qcow2-overlay\` was unavailable: the overlay was made by qemu-img.)"
[ "$has_cli" = 1 ] || echo "(No \`stowaged inspect\` or no hyperfine: process times not measured.)"
echo "The process column includes exec and dynamic linking of the whole daemon binary."
rm -rf "$W"
exit $status
