#!/bin/sh
# Installs finance-cache-warmer as a systemd service: the binary, the example production config
# (kept if one is there), an empty Redis password file (kept if there; LoadCredential= needs the
# file to exist) and the unit. DESTDIR installs into another root (the tests do).
#
#   sudo systemd/install.sh [BINARY]     # default: target/release/finance-cache-warmer
set -eu

here=$(dirname "$0")
binary=${1:-$here/../target/release/finance-cache-warmer}
root=${DESTDIR:-}
etc=$root/etc/finance-cache-warmer

if [ ! -x "$binary" ]; then
    echo "install.sh: no binary at $binary; build it first (docs/deployment.md)" >&2
    exit 2
fi
install -D -m 0755 "$binary" "$root/usr/local/bin/finance-cache-warmer"
install -d -m 0755 "$etc"
if [ ! -e "$etc/config.toml" ]; then
    install -m 0644 "$here/../config/production.toml" "$etc/config.toml"
fi
if [ ! -e "$etc/redis-password" ]; then
    install -m 0600 /dev/null "$etc/redis-password"
fi
install -D -m 0644 "$here/finance-cache-warmer.service" \
    "$root/etc/systemd/system/finance-cache-warmer.service"

cat <<NEXT
Installed. Next:
  edit $etc/config.toml (redis.url; uncomment password_file once $etc/redis-password holds it)
  finance-cache-warmer -c /etc/finance-cache-warmer/config.toml check-config --connect
  systemctl daemon-reload && systemctl enable --now finance-cache-warmer
NEXT
