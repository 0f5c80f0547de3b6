"""The README's picture of the brush studio: the page with the sprites example loaded and its video generated,
in headless Chromium (Debian's `chromium`; `apt-get install -y chromium`).

    python scripts/studio_screenshot.py --png docs/studio.png
"""

import argparse
import socket
import sys
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
# What Chromium needs on a closed network (no sandbox as root; no background connections that would be refused).
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip
AT_S = 0.75  # the moment of the looping videos the picture shows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--png", required=True, help="where to write the screenshot")
    p.add_argument("--width", type=int, default=1400, help="browser window width, CSS px")
    args = p.parse_args(argv)

    from playwright.sync_api import sync_playwright

    from wanjax.studio.app import launch

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    page = launch(Path(__file__).parents[1] / "configs" / "brushsprites.yaml", port=port, block=False)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            ui = browser.new_page(viewport={"width": args.width, "height": 1000})
            ui.goto(page.local_url)
            ui.locator("#examples img").first.click()
            ui.locator("#brush-status").filter(has_text="4 brush(es), valid").wait_for(timeout=60_000)
            ui.locator("#generate").click()
            ui.locator("#video-info").filter(has_text="frames").wait_for(timeout=120_000)
            for video in ("#video video", "#tracks video"):
                ui.wait_for_function(f"() => document.querySelector('{video}')?.readyState >= 2", timeout=30_000)
                ui.locator(video).evaluate(f"v => {{ v.pause(); v.currentTime = {AT_S}; }}")
            ui.wait_for_timeout(500)  # the seek paints
            ui.screenshot(path=args.png, full_page=True)
            browser.close()
    finally:
        page.close()
    print(args.png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
