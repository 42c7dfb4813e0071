#!/usr/bin/env python3
"""Make the screenshots in docs/img/ in headless Chromium, from the real system.

The browser tests that take them run the real thing (a live server, real queue workers, the
real broker and database): the stock page after a count and goods received, and the dashboard
with a message parked by a worker and a worker frozen with SIGSTOP. This runs those tests and
copies their pictures from .run/artifacts/ into docs/img/:

    docs/img/stock.png           <- tests/warehouse/test_browser_stock.py
    docs/img/dashboard.png       <- tests/observability/test_browser_trouble.py
    docs/img/tracking-phone.png  <- tests/observability/test_browser.py (the tracking page on a phone)
    docs/img/mail.png            <- tests/support/test_browser_mail.py

Run it as ``make screenshots`` (which provides PostgreSQL, RabbitMQ and Chromium as ``make test``
does), or with DATABASE_URL and RABBITMQ_URL (a test vhost, never ``/``) already set.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / ".run" / "artifacts"
DOCS_IMG = ROOT / "docs" / "img"
SHOTS = {
    "tests/warehouse/test_browser_stock.py": ("stock.png", "stock.png"),
    "tests/observability/test_browser_trouble.py": ("dashboard-trouble.png", "dashboard.png"),
    "tests/observability/test_browser.py": ("tracking-phone.png", "tracking-phone.png"),
    "tests/support/test_browser_mail.py": ("mail.png", "mail.png"),
}


def main() -> int:
    missing = [name for name in ("DATABASE_URL", "RABBITMQ_URL") if not os.environ.get(name)]
    if missing:
        print(f"screenshots: {', '.join(missing)} not set; run `make screenshots`", file=sys.stderr)
        return 2
    if not os.access("/usr/bin/chromium", os.X_OK):
        print("screenshots: /usr/bin/chromium is missing (scripts/ensure_chromium.sh installs it)", file=sys.stderr)
        return 2
    started = time.time()
    # -rs: a skipped test (no Chromium, no Playwright) is said, and then nothing is copied
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", *SHOTS],
                            cwd=ROOT, check=False)
    if result.returncode != 0:
        print("screenshots: the browser tests failed; docs/img/ left as it was", file=sys.stderr)
        return result.returncode
    DOCS_IMG.mkdir(parents=True, exist_ok=True)
    for test, (artifact, target) in SHOTS.items():
        source = ARTIFACTS / artifact
        if not source.exists() or source.stat().st_mtime < started:
            print(f"screenshots: {test} took no new {artifact}", file=sys.stderr)
            return 1
        shutil.copyfile(source, DOCS_IMG / target)
        print(f"screenshots: docs/img/{target} ({source.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
