"""Render a dicsbi report.html in headless Chromium: screenshot it and check that it renders without errors.

Chromium (Debian package ``chromium``) loads the page from disk with the network closed, so the page must be
self-contained.  Checks: Chromium exits 0, logs no console or page error, and the rendered DOM holds every
embedded figure (``data:image/png``) of the file; the screenshot is written for a person to look at.

    python experiments/screenshot_report.py results/report.html --out results/report.png

Ends with one line: images=<n> console_errors=<n> screenshot=<path>
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars"]


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def render(page: Path, png: Path, width: int = 1100, height: int = 4000) -> dict:
    exe = chromium()
    if exe is None:
        raise SystemExit("no Chromium found (apt-get install chromium)")
    url = page.resolve().as_uri()
    with tempfile.TemporaryDirectory() as profile:
        base = [exe, *FLAGS, f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0"]
        shot = subprocess.run([*base, f"--screenshot={png.resolve()}", f"--window-size={width},{height}", url],
                              capture_output=True, text=True, timeout=120)
        dom = subprocess.run([*base, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    logs = shot.stderr + dom.stderr
    errors = [ln for ln in logs.splitlines() if re.search(r"CONSOLE|Uncaught|Failed to load|net::ERR", ln)]
    expected = page.read_text().count("data:image/png;base64,")
    rendered = len(re.findall(r"<img[^>]+src=\"data:image/png;base64,", dom.stdout))
    return {"returncode": max(shot.returncode, dom.returncode), "errors": errors, "expected_images": expected,
            "rendered_images": rendered, "screenshot": png, "title": re.search(r"<h1>(.*?)</h1>", dom.stdout)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("page", type=Path)
    ap.add_argument("--out", type=Path, default=None, help="screenshot PNG (default: next to the page)")
    ap.add_argument("--height", type=int, default=4000)
    args = ap.parse_args()
    png = args.out or args.page.with_suffix(".png")
    r = render(args.page, png, height=args.height)
    for e in r["errors"]:
        print("error:", e)
    print(f"chromium exit {r['returncode']}; {r['rendered_images']} of {r['expected_images']} figures in the "
          f"rendered page; screenshot {png} ({png.stat().st_size / 1e3:.0f} kB)")
    ok = r["returncode"] == 0 and not r["errors"] and r["rendered_images"] == r["expected_images"] > 0
    print(f"images={r['rendered_images']} console_errors={len(r['errors'])} screenshot={png}")
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
