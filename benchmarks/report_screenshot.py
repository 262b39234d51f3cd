"""Pictures of a report for the README: the top of index.html and the explorer after a click, taken
in headless Chromium (Debian's `chromium`) through Playwright.

    .venv/bin/python benchmarks/report_screenshot.py demo-output docs/
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("report", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--width", type=int, default=1100)
    ap.add_argument("--height", type=int, default=1300)
    ap.add_argument("--row", type=int, default=0, help="Explorer image to click.")
    args = ap.parse_args()
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        sys.exit("no Chromium here: apt-get install chromium")
    if not (args.report / "index.html").is_file():
        sys.exit(f"{args.report}: no index.html (run denoiserlens report first)")
    args.out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": args.width, "height": args.height})
        page.goto((args.report / "index.html").resolve().as_uri())
        page.wait_for_load_state("load")
        page.screenshot(path=str(args.out / "report.png"))
        page.goto((args.report / "explorer.html").resolve().as_uri())
        page.wait_for_load_state("load")
        page.click(f"#grid img[data-row='{args.row}']")
        page.wait_for_selector("#phi-neighbours img")
        page.screenshot(path=str(args.out / "explorer.png"))
        browser.close()
    print(f"report.png and explorer.png in {args.out}")


if __name__ == "__main__":
    main()
