#!/usr/bin/env bash
# Make sure headless Chromium (Debian's package) is at /usr/bin/chromium for the browser
# tests: install it with apt-get when it is missing and we are root. Playwright drives this
# browser; `playwright install` (which downloads a browser build of its own) is never used.
set -euo pipefail
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
if [ -x "$CHROMIUM" ]; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "Chromium: not installed; installing Debian's chromium..." >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null 2>&1 || {
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
  }
  exit 0
fi
echo "Chromium is not installed at $CHROMIUM and we are not root: the browser test will be skipped" \
     "(install it with: sudo apt-get install chromium)" >&2
exit 0
