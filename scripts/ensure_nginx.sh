#!/usr/bin/env bash
# Print the path of Debian's nginx binary, installing the package (and openssl) first when missing and we
# are root (without letting the package start a server of its own: the tests start theirs, on
# ports of their own). Exits 1 with the reason on stderr when neither is possible.
set -euo pipefail
find_nginx() { command -v nginx 2>/dev/null || { [ -x /usr/sbin/nginx ] && echo /usr/sbin/nginx; } || true; }
found=$(find_nginx)
if [ -z "$found" ]; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "nginx is not installed and this is not root with apt-get: sudo apt-get install nginx" >&2
    exit 1
  fi
  echo "nginx: not installed; installing Debian's nginx..." >&2
  policy=/usr/sbin/policy-rc.d
  added=""
  if [ ! -e "$policy" ]; then  # no service started by the package (invoke-rc.d asks this first)
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && added=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq nginx >/dev/null 2>&1 || { apt-get update -qq >/dev/null; apt-get install -y -qq nginx >/dev/null; } || true
  [ -n "$added" ] && rm -f "$policy"
  found=$(find_nginx)
  [ -n "$found" ] || { echo "nginx: installing Debian's package failed" >&2; exit 1; }
fi
# the tests make a self-signed certificate for the site with openssl
if ! command -v openssl >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >/dev/null 2>&1 || true
fi
command -v openssl >/dev/null 2>&1 || { echo "openssl is not installed: sudo apt-get install openssl" >&2; exit 1; }
echo "$found"
