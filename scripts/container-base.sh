#!/usr/bin/env bash
# Makes this machine able to build and run the project's containers with Debian 12's own
# rootful Podman, from nothing, and does nothing (quietly) when all is there:
#   - installs podman runc netavark aardvark-dns iptables podman-compose debootstrap when missing;
#   - writes /etc/containers/containers.conf (runc, cgroupfs, file events, the host's hard limit
#     on open files) when there is none, or when it is the one this script wrote and is stale;
#   - makes the base images ONCE per machine, with debootstrap from this machine's Debian
#     mirror (no registry is reachable here): localhost/debian:bookworm (minbase) and
#     localhost/debian:bookworm-slim (the same without documentation, manual pages and
#     translations, as Debian's -slim images), tagged docker.io/library/debian:bookworm and
#     docker.io/library/debian:bookworm-slim, so that `FROM debian:bookworm` resolves here and
#     nothing is pulled.
# Needs root. Why each setting: /work/shared/notes/containers.md and docs/containers.md.
# usage: bash scripts/container-base.sh        (MB_BASE_REBUILD=1 makes the base images again)
set -euo pipefail

die() {
  echo "container-base: $*" >&2
  exit 1
}
[ "$(id -u)" = 0 ] || die "needs root (rootful Podman, apt-get, debootstrap)"

# ---- packages
packages=(podman runc netavark aardvark-dns iptables podman-compose debootstrap)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "container-base: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# ---- containers.conf
# Without it nothing runs here: crun cannot set Podman's default RLIMIT_NOFILE above the host's
# hard limit, and crun refuses this machine's hybrid cgroups ("drop all controllers from cgroupv2").
conf=/etc/containers/containers.conf
marker="# written by mailbeacon's scripts/container-base.sh"
hard=$(ulimit -Hn)
[ "$hard" = unlimited ] && hard=1048576
want="$marker (the reasons: docs/containers.md)
[containers]
default_ulimits = [\"nofile=$hard:$hard\", \"nproc=32768:32768\"]
[engine]
runtime = \"runc\"
cgroup_manager = \"cgroupfs\"
events_logger = \"file\"
[network]
network_backend = \"netavark\""
if [ ! -e "$conf" ] || { head -1 "$conf" | grep -qF "$marker" && [ "$(cat "$conf")" != "$want" ]; }; then
  mkdir -p /etc/containers
  printf '%s\n' "$want" > "$conf"
  echo "container-base: wrote $conf"
elif ! head -1 "$conf" | grep -qF "$marker"; then
  grep -q '^runtime *= *"runc"' "$conf" && grep -q '^cgroup_manager *= *"cgroupfs"' "$conf" \
    || echo "container-base: warning: $conf is not ours and may lack runtime = \"runc\", cgroup_manager = \"cgroupfs\" and default_ulimits (docs/containers.md)" >&2
fi

# ---- the base images, once per machine (one run at a time makes them)
full=localhost/debian:bookworm
slim=localhost/debian:bookworm-slim
have_base() { podman image exists "$full" && podman image exists "$slim"; }
tag_base() {
  podman image exists docker.io/library/debian:bookworm || podman tag "$full" docker.io/library/debian:bookworm
  podman image exists docker.io/library/debian:bookworm-slim || podman tag "$slim" docker.io/library/debian:bookworm-slim
}
if [ "${MB_BASE_REBUILD:-}" != 1 ] && have_base; then
  tag_base
  exit 0
fi
exec 9> /run/lock/mailbeacon-container-base.lock
flock 9
if [ "${MB_BASE_REBUILD:-}" != 1 ] && have_base; then # another run made them while we waited
  tag_base
  exit 0
fi

# This machine's Debian mirrors: the first URI of its bookworm sources, and of its security ones.
sources() {
  cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v '^[[:space:]]*#' || true
}
mirror=$(sources | grep -oE 'https?://[^ ]+/debian/?( |$)' | head -1 | tr -d ' ')
security=$(sources | grep -oE 'https?://[^ ]+/debian-security/?( |$)' | head -1 | tr -d ' ')
mirror=${mirror:-http://deb.debian.org/debian}
security=${security:-http://deb.debian.org/debian-security}

start=$(date +%s)
work=$(mktemp -d /var/tmp/mb-base.XXXXXX)
rootfs=$work/rootfs
cleanup() {
  # debootstrap mounts proc and sys in the target while it runs; never delete through a mount
  local m
  for m in $(findmnt -rn -o TARGET | grep -F "$rootfs" | sort -r); do umount -l "$m" 2>/dev/null || true; done
  findmnt -rn -o TARGET | grep -qF "$rootfs" || rm -rf "$work"
}
trap cleanup EXIT
echo "container-base: making $full and $slim with debootstrap from $mirror (a few minutes, once per machine)"
if ! debootstrap --variant=minbase bookworm "$rootfs" "$mirror" > "$work/debootstrap.log" 2>&1; then
  tail -30 "$work/debootstrap.log" >&2
  tail -30 "$rootfs/debootstrap/debootstrap.log" >&2 2>/dev/null || true
  die "debootstrap failed (log above)"
fi
cat > "$rootfs/etc/apt/sources.list" << EOF
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb $security bookworm-security main
EOF
# apt in an image: no package caches, no translations (as Debian's own images); and this
# machine's view of Release files' dates (its mirror may serve a snapshot)
cat > "$rootfs/etc/apt/apt.conf.d/docker-clean" << 'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
echo 'Acquire::Languages "none";' > "$rootfs/etc/apt/apt.conf.d/docker-no-languages"
echo 'Apt::AutoRemove::SuggestsImportant "false";' > "$rootfs/etc/apt/apt.conf.d/docker-autoremove-suggests"
apt-config dump | grep -E '^Acquire::Check-(Valid-Until|Date) ' > "$rootfs/etc/apt/apt.conf.d/99host-dates" || true
[ -s "$rootfs/etc/apt/apt.conf.d/99host-dates" ] || rm -f "$rootfs/etc/apt/apt.conf.d/99host-dates"
# what belongs to this machine or to the run, not to an image (never through a mount that
# debootstrap left: in a container it binds the host's device nodes into the target's /dev)
if findmnt -rn -o TARGET | grep -qF "$rootfs"; then die "mounts left under $rootfs: $(findmnt -rn -o TARGET | grep -F "$rootfs" | tr '\n' ' ')"; fi
rm -rf "${rootfs:?}"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/* \
  "$rootfs"/tmp/* "$rootfs"/debootstrap "${rootfs:?}"/dev/* "$rootfs"/etc/resolv.conf "$rootfs"/etc/hostname
: > "$rootfs/etc/machine-id"

import() { # import ROOTFS NAME
  tar -C "$1" --numeric-owner -c . | podman import -q \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["/bin/bash"]' - "$2" > /dev/null
}
podman rmi -f "$full" "$slim" docker.io/library/debian:bookworm docker.io/library/debian:bookworm-slim > /dev/null 2>&1 || true
import "$rootfs" "$full"
# -slim: Debian's recipe (debuerreotype's slimify): keep the copyright files, drop the rest of
# /usr/share/doc, the manual pages, info and translations, and tell dpkg not to install them again
cat > "$rootfs/etc/dpkg/dpkg.cfg.d/docker" << 'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
EOF
find "$rootfs/usr/share/doc" -mindepth 1 -not -type d -not -name copyright -delete
find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
rm -rf "$rootfs"/usr/share/man/* "$rootfs"/usr/share/groff/* "$rootfs"/usr/share/info/* \
  "$rootfs"/usr/share/locale/* "$rootfs"/usr/share/lintian/* "$rootfs"/usr/share/linda/*
import "$rootfs" "$slim"
tag_base
echo "container-base: made $full ($(podman image inspect -f '{{.Size}}' "$full" | numfmt --to=si --round=nearest)B) and $slim ($(podman image inspect -f '{{.Size}}' "$slim" | numfmt --to=si --round=nearest)B) in $(($(date +%s) - start)) s"
