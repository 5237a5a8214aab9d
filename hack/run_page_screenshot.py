"""Redo the README's picture of a run page: `python -m hack.run_page_screenshot`.

Starts a local control plane and the delivery stack (as `make demo` does), pushes a small app,
has the receiver preview a pull request that changes it (`world.runpage`), and saves headless
Chromium's screenshot of the preview's run page as docs/run-page.png. Needs /usr/bin/chromium.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from world.cluster import LocalCluster
from world.runpage import push_then_preview, screenshot
from world.stack import DeliveryStack

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "docs" / "run-page.png"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hack.run_page_screenshot", description=__doc__)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to save the PNG")
    parser.add_argument("--width", type=int, default=1100)
    parser.add_argument("--height", type=int, default=2100)
    args = parser.parse_args(argv)
    with (
        tempfile.TemporaryDirectory(prefix="hooksync-run-page-") as folder,
        LocalCluster() as cluster,
        DeliveryStack(cluster, Path(folder), target="shop") as stack,
    ):
        pages = push_then_preview(stack)
        screenshot(pages.preview_url, args.out, args.width, args.height)
    print(f"saved {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
