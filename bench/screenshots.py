"""The README's screenshots of the overview, taken from the real `make run` on the demo data.

    python -m bench.screenshots [--minutes 4] [--port 8124] [--out docs/images]
    make screenshots

Starts `make run` in a fresh folder (its own SQLite database and broker, like bench/soak.py), waits
--minutes for the demo to fill the screens (metrics polled, SLOs judged, pools sized, dead letters
mirrored), logs in as the admin `make run` created (its password from the folder's
admin-password.txt) and saves with Chromium (the one on PATH, as the browser tests use):
- overview.png: the overview on a laptop, 1440x900, the first screen;
- overview-phone.png: the overview on a phone, 390x844, the first screen.
Then stops `make run` as Ctrl-C does. Nothing here is imported by the product.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from bench.soak import BASE_DIR, _free_port, stop_make_run

VIEWPORTS = {"overview.png": (1440, 900), "overview-phone.png": (390, 844)}
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-gpu", "--disable-dev-shm-usage"]


def _wait_until_up(url: str, make: subprocess.Popen, log_path: Path, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if make.poll() is not None:
            raise SystemExit(f"make run exited with {make.returncode}; see {log_path}")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=5):  # our own local server
                return
        except OSError:
            time.sleep(2)
    raise SystemExit(f"make run did not answer at {url} within {timeout:.0f} s; see {log_path}")


def _shoot(url: str, password: str, out: Path) -> list[Path]:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("Chromium not found on PATH: apt-get install -y chromium")
    saved = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        for name, (width, height) in VIEWPORTS.items():
            context = browser.new_context(
                base_url=url, viewport={"width": width, "height": height}, color_scheme="light", locale="en-GB"
            )
            page = context.new_page()
            page.goto("/accounts/login/?next=/")
            page.get_by_label("Username").fill("admin")
            page.get_by_label("Password").fill(password)
            page.get_by_role("button", name="Log in").click()
            page.wait_for_url(url + "/")
            page.wait_for_selector("#fleet-rows")
            page.wait_for_load_state("networkidle")
            path = out / name
            page.screenshot(path=str(path))  # the first screen, as someone opening it sees it
            saved.append(path)
            context.close()
        browser.close()
    return saved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=4.0, help="how long the demo runs before the shots")
    parser.add_argument("--port", type=int, default=0, help="default: a free port")
    parser.add_argument("--out", type=Path, default=BASE_DIR / "docs" / "images")
    parser.add_argument("--var-dir", type=Path, default=None, help="default: a fresh folder under var/")
    args = parser.parse_args(argv)
    port = args.port or _free_port()
    (BASE_DIR / "var").mkdir(exist_ok=True)
    var_dir = args.var_dir or Path(tempfile.mkdtemp(prefix="screenshots-", dir=BASE_DIR / "var"))
    log_path = var_dir / "make-run.log"
    env = {**os.environ, "PORT": str(port), "VAR_DIR": str(var_dir)}
    env.pop("DATABASE_URL", None)  # `make run` on its own SQLite database, as a user runs it
    env.pop("CELERY_BROKER_URL", None)
    url = f"http://127.0.0.1:{port}"
    with log_path.open("w") as log:
        make = subprocess.Popen(
            ["make", "run", f"PORT={port}", f"VAR_DIR={var_dir}"],
            cwd=BASE_DIR,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_until_up(url, make, log_path)
        print(f"make run is up at {url}; letting the demo fill the screens for {args.minutes:g} min")
        time.sleep(args.minutes * 60)
        password = (var_dir / "admin-password.txt").read_text().strip()
        args.out.mkdir(parents=True, exist_ok=True)
        for path in _shoot(url, password, args.out):
            print(f"saved {path.relative_to(BASE_DIR) if path.is_relative_to(BASE_DIR) else path}")
    finally:
        stop_make_run(make, var_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
