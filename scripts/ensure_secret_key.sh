#!/usr/bin/env bash
# Write a secret key for this checkout into .secret_key (ignored by git; read by config/settings.py
# when DJANGO_SECRET_KEY is not set), unless one is there already. Called by `make install`.
set -euo pipefail
cd "$(dirname "$0")/.."
KEY_FILE=.secret_key
if [ -s "$KEY_FILE" ]; then
  exit 0
fi
umask 077
tmp=$(mktemp "$KEY_FILE.XXXXXX")
trap 'rm -f "$tmp"' EXIT
"${PYTHON:-python3}" -c 'import secrets; print(secrets.token_urlsafe(50))' > "$tmp"
mv -n "$tmp" "$KEY_FILE"  # never replaces a key another run wrote meanwhile
echo "secret key in $KEY_FILE" >&2
