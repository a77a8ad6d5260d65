#!/bin/sh
# deps.sh run|check|bench — install the Debian packages a target needs, only the missing ones.
set -eu
mode=${1:-run}

build="build-essential cmake pkg-config libmicrohttpd-dev libjansson-dev libsqlite3-dev
       libblkid-dev libglusterfs-dev uuid-dev libgnutls28-dev libcurl4-gnutls-dev zlib1g-dev
       libbz2-dev liblzma-dev librados-dev librbd-dev glusterfs-cli xfsprogs util-linux"
check="$build libcmocka-dev python3 python3-pytest python3-requests python3-yaml glusterfs-server
       clang libclang-rt-14-dev qemu-utils qemu-block-extra mdadm python3-cinderclient procps
       ceph-mon ceph-osd ceph-mgr ceph-common uuid-runtime iproute2"
bench="$build wrk hyperfine nginx-light qemu-utils qemu-block-extra glusterfs-server glusterfs-client python3 procps"

case "$mode" in
run) want=$build ;;
check) want=$check ;;
bench) want=$bench ;;
*) echo "usage: $0 run|check|bench" >&2; exit 2 ;;
esac

missing=""
for p in $want; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
    echo "missing Debian packages:$missing — run as root or install them" >&2
    exit 1
fi
echo "installing:$missing"
# Packages such as glusterfs-server or ceph-mon would start their daemons on install; tests start
# their own. A temporary policy-rc.d (only if none exists) keeps services stopped.
guard=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    guard=1
fi
trap '[ -n "$guard" ] && rm -f /usr/sbin/policy-rc.d' EXIT
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing
