#!/usr/bin/env bash
# cmake --install into a staging prefix: the programs in PREFIX/sbin and
# runnable from there, the shipped configuration and the classifier's rules
# in PREFIX/etc/mailbeacon (a package configures SYSCONFDIR /etc), the
# documentation in PREFIX/share/doc/mailbeacon; the installed programs read
# the installed configuration.
# usage: install.sh BUILD_DIR
set -euo pipefail
build=$1
stage=$(mktemp -d /tmp/mb-install.XXXXXX)
trap 'rm -rf "$stage"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
cmake --install "$build" --prefix "$stage/usr" > "$stage.log" 2>&1 || { cat "$stage.log" >&2; fail "cmake --install"; }
rm -f "$stage.log"
for f in usr/sbin/mailbeacon-server usr/sbin/mailbeacon-rewrite; do
  [ -x "$stage/$f" ] || fail "$f not installed"
done
for f in usr/etc/mailbeacon/mailbeacon.conf usr/etc/mailbeacon/mailbeacon.rules usr/share/doc/mailbeacon/README.md \
  usr/share/doc/mailbeacon/privacy.md usr/share/doc/mailbeacon/config.md; do
  [ -f "$stage/$f" ] || fail "$f not installed"
done
"$stage/usr/sbin/mailbeacon-server" --help > /dev/null || fail "mailbeacon-server does not run"
env -i PATH=/usr/bin:/bin "$stage/usr/sbin/mailbeacon-rewrite" --config "$stage/usr/etc/mailbeacon/mailbeacon.conf" \
  --print-config > "$stage/printed" || fail "the installed configuration does not parse"
grep -qx 'ip_truncate = yes' "$stage/printed" || fail "the installed configuration is not the shipped one"
cmp -s "$stage/usr/etc/mailbeacon/mailbeacon.rules" "$(dirname "$0")/../../rules/mailbeacon.rules" ||
  fail "the installed rules differ"
echo "install: all checks passed"
