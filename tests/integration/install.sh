#!/usr/bin/env bash
# cmake --install into a staging prefix: the programs in PREFIX/sbin and
# runnable from there, the shipped configuration and the classifier's rules
# in PREFIX/etc/mailbeacon (a package configures SYSCONFDIR /etc), the
# documentation in PREFIX/share/doc/mailbeacon, the systemd units in
# PREFIX/lib/systemd/system; the installed programs read the installed
# configuration; systemd-analyze rates every unit's exposure "OK" or better.
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
units=$stage/usr/lib/systemd/system
for u in mailbeacon-edge.service mailbeacon-batcher.service mailbeacon-api.service mailbeacon-milter.service \
  mailbeacon-maintain.service mailbeacon-maintain.timer; do
  [ -f "$units/$u" ] || fail "$u not installed"
done
grep -q '^ExecStart=/.*/mailbeacon-server --config /.*/mailbeacon/mailbeacon.conf --role edge$' \
  "$units/mailbeacon-edge.service" || fail "the edge unit: $(grep ExecStart "$units/mailbeacon-edge.service")"
grep -q '^ExecReload=/bin/kill -USR1 \$MAINPID$' "$units/mailbeacon-milter.service" ||
  fail "the milter unit does not reload with SIGUSR1"
if command -v systemd-analyze > /dev/null; then
  for u in "$units"/mailbeacon-*.service; do
    line=$(systemd-analyze security --offline=true --no-pager "$u" 2>&1 | grep 'Overall exposure level') ||
      fail "systemd-analyze security $(basename "$u"): $(systemd-analyze security --offline=true "$u" 2>&1 | tail -3)"
    echo "$line"
    [[ $line =~ ' '(SAFE|OK)' ' ]] || fail "$(basename "$u") is not rated OK or better: $line"
  done
else
  echo "NOTE: no systemd-analyze here: the units' exposure not rated"
fi
echo "install: all checks passed"
