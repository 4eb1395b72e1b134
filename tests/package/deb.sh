#!/usr/bin/env bash
# The Debian package, as an administrator meets it: built the Debian way
# (dpkg-buildpackage -b, DEB_BUILD_OPTIONS=nocheck: the suite already ran)
# from a copy of the tree, then installed with apt into a clean Debian 12
# root (a container from the local base image, scripts/container-base.sh)
# that has Postfix and systemd's tools but no mailbeacon. Checked there:
# the programs run (--version); the system user; the spool, the state
# directory and the key ring with their owners and modes (keys 0600, never
# readable by others); the milter's directory in Postfix's queue (group
# postfix, set-group-ID); the configuration a conffile with every key
# commented; `check` on the installed configuration as the service user;
# systemd-analyze verify and security of the installed units; a purge
# removes what the install made except the key ring.
# usage: deb.sh            (prints the time each step took)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=$(mktemp -d /tmp/mb-deb.XXXXXX)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
t0=$(date +%s)

bash "$root/scripts/container-base.sh"
t1=$(date +%s)

# the package, from the files git knows (committed or not, never ignored ones)
mkdir "$work/src"
(cd "$root" && git ls-files -co --exclude-standard -z | xargs -0 tar -cf - --no-recursion) | tar -xf - -C "$work/src"
(cd "$work/src" && DEB_BUILD_OPTIONS=nocheck dpkg-buildpackage -b -uc -us > "$work/build.log" 2>&1) ||
  { tail -30 "$work/build.log" >&2; fail "dpkg-buildpackage"; }
deb=$(ls "$work"/mailbeacon_*_*.deb | grep -v dbgsym)
[ -f "$deb" ] || fail "no package built"
t2=$(date +%s)
echo "built $(basename "$deb") ($(du -k "$deb" | cut -f1) KiB) in $((t2 - t1)) s"

# installed into a clean root, checked there
cp "$deb" "$work/mailbeacon.deb"
cp "$here/inside.sh" "$work/inside.sh"
podman run --rm --network=host -v "$work:/pkg:ro" localhost/debian:bookworm bash /pkg/inside.sh ||
  fail "the package in a clean Debian 12 root (above)"
t3=$(date +%s)
echo "deb: all checks passed (base image $((t1 - t0)) s, package $((t2 - t1)) s, install and checks $((t3 - t2)) s)"
