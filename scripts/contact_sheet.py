"""A contact sheet (PNG) of a sample folder's video: chosen frames side by side, upscaled, with the brush overlay
below them when the sample had brushes. What the README shows.

    wanjax demo --out out && python scripts/contact_sheet.py out/demo --frames 0 4 8 12 16 --png docs/demo.png
    python scripts/contact_sheet.py out/s60/sample --seconds 0 10 20 30 40 50 60 --png docs/sprites60.png
"""

import argparse
import json
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np

GAP = 2  # px of white between frames


def sheet(rows: list[np.ndarray]) -> np.ndarray:
    """rows of frames uint8 [N, H, W, 3] (equal shapes) -> one image, frames in a row, rows stacked, white gaps."""
    n, h, w, _ = rows[0].shape
    out = np.full((len(rows) * (h + GAP) - GAP, n * (w + GAP) - GAP, 3), 255, np.uint8)
    for r, frames in enumerate(rows):
        for i, frame in enumerate(frames):
            out[r * (h + GAP) : r * (h + GAP) + h, i * (w + GAP) : i * (w + GAP) + w] = frame
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("sample", help="OUT/NAME of a `wanjax sample` / `wanjax demo` output (NAME.npz, NAME.json)")
    pick = p.add_mutually_exclusive_group(required=True)
    pick.add_argument("--frames", type=int, nargs="+", help="frame indices")
    pick.add_argument("--seconds", type=float, nargs="+", help="times in seconds (at the sample's fps)")
    p.add_argument("--scale", type=int, default=4, help="pixel upscale of each frame")
    p.add_argument("--png", required=True, help="where to write the sheet")
    args = p.parse_args(argv)
    frames = np.load(f"{args.sample}.npz")["frames"]
    meta = json.loads(Path(f"{args.sample}.json").read_text())
    fps = meta["config"]["sample"]["fps"]
    index = args.frames or [min(round(s * fps), len(frames) - 1) for s in args.seconds]
    rows = [np.repeat(np.repeat(frames[index], args.scale, axis=1), args.scale, axis=2)]
    if meta.get("brushes"):
        from wanjax.motion import compile_brushes
        from wanjax.motion.draw import overlay_video

        tracks = compile_brushes(meta["brushes"], max_tracks=meta["config"]["sample"]["max_tracks"])
        rows.append(overlay_video(frames, tracks, args.scale)[index])
    Path(args.png).parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(args.png, sheet(rows))
    print(args.png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
