"""benchlib.py — the helpers the bench/*_bench.py scripts share: progress on stderr, a
dropped page cache, and what /proc tells of a process (its resident memory, its CPU time).
Importing it runs nothing."""

import os
import sys


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def waiting_for_glusterd():
    """start_when_free's waiting callback: says why nothing happens for a while."""
    log("gluster: another glusterd runs on this host; waiting")


def drop_caches(required=False):
    """Sync, then drop the page cache, so that what follows reads from the disk. Without
    the right to (not root) the drop is skipped, unless required: then the OSError is the
    caller's, as a cold figure measured warm would be wrong."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    except OSError:
        if required:
            raise


def rss_kib(pid):
    """The resident set of a process, in KiB."""
    with open("/proc/%d/status" % pid) as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def cpu_seconds(pid):
    """User + system CPU seconds the process has used so far: what a piece of work cost
    it, whatever else the machine (possibly shared) was doing; wall times include waiting
    for a core, CPU times do not."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
