"""Screenshot of the `facelivt serve` page after a verify of two real photos, in headless Chromium.

    python scripts/page_screenshot.py docs/images/serve_page.png            # starts the server on the test weights
    python scripts/page_screenshot.py shot.png --url http://127.0.0.1:8000  # a server already running

The photos (two of one CelebA identity of ../shared/data/celeba_subset, unless --photos) are blurred in the
screenshot by default: those images are for research use only and must not be copied into the repository
(../shared/data/README.md); the face boxes, score and verdict stay sharp. Needs Debian's chromium
(/usr/bin/chromium) and the playwright package; downloads nothing.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
WEIGHTS = REPO / "tests" / "deploy" / "weights" / "facelivt_s_celeba.fp16.safetensors"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--headless=new", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
BLUR = ".frame { overflow: hidden; } .frame img { filter: blur(12px); }"


def default_photos(identity: str = "7201") -> list[Path]:
    """The first two photos of ``identity`` in which the reference detector found one sizeable face."""
    reference = json.loads((SHARED / "reference" / "celeba_subset_mtcnn.json").read_text())
    keys = [k for k in sorted(reference) if k.startswith(identity + "/") and len(reference[k]) == 1
            and reference[k][0]["box"][2] - reference[k][0]["box"][0] > 60]
    return [SHARED / "data" / "celeba_subset" / k for k in keys[:2]]


@contextmanager
def served(url: str | None):
    """The URL of a running server: ``url``, or `facelivt serve` on the test weights started here."""
    if url:
        yield url
        return
    with tempfile.TemporaryDirectory(prefix="facelivt-page-") as work:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
        proc = subprocess.Popen([sys.executable, "-m", "facelivt", "serve", "--model", "facelivt_s", "--weights",
                                 str(WEIGHTS), "--gallery", str(Path(work) / "galleries"), "--keys", str(Path(work) / "keys.sqlite"),
                                 "--port", "0", "--json"],
                                cwd=work, env=env, stdout=subprocess.PIPE, text=True)
        try:
            line = proc.stdout.readline()
            if not line:
                sys.exit(f"page_screenshot: the server exited with code {proc.wait()} before listening")
            yield json.loads(line)["url"]
        finally:
            proc.terminate()
            proc.wait(timeout=60)


def screenshot(url: str, photos: list[Path], out: Path, blur: bool) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 960, "height": 760})
        page.set_default_timeout(120_000)
        page.goto(url + "/")
        page.get_by_test_id("identities-note").filter(has_text="gallery").wait_for()
        if blur:
            page.add_style_tag(content=BLUR)
        page.get_by_label("First photo").set_input_files(photos[0])
        page.get_by_label("Second photo").set_input_files(photos[1])
        page.get_by_test_id("verify-submit").click()
        page.locator("#verify-result:not([hidden])").wait_for()
        for img in page.locator("#verify-photos img").all():
            img.evaluate("i => i.decode()")
        out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out))
        browser.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="PNG file to write")
    parser.add_argument("--url", help="a running server (default: start `facelivt serve` on the test weights)")
    parser.add_argument("--photos", nargs=2, type=Path, help="the two photos to verify (default: two of CelebA 7201)")
    parser.add_argument("--no-blur", dest="blur", action="store_false", help="show the photos unblurred")
    args = parser.parse_args(argv)
    photos = args.photos or default_photos()
    with served(args.url) as url:
        screenshot(url, photos, args.out, args.blur)
    print(f"page_screenshot: wrote {args.out} ({args.out.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
