# Regenerate the willow example (deterministic; no randomness beyond a fixed seed):
#     .venv/bin/python examples/make_willow.py
"""Paint examples/willow.png (64×64 RGB) and write examples/willow.json, a version-1 brush file for it.

The scene: a pale sky, a trunk in the middle under a dark crown, curtains of drooping branches left and right, a
blue stream in the bottom-right corner and a red lantern hung on the trunk. The brushes sway the two curtains in
opposite directions (hinged at the top), let the stream flow along its banks and pin the trunk with its lantern.
"""

import json
from pathlib import Path

import imageio.v3 as iio
import numpy as np

SIZE, FRAMES = 64, 17
HERE = Path(__file__).parent
# The stream runs from the right edge down to the bottom edge; its banks are parallel to this unit vector.
STREAM_DIR = np.array([-0.8, 0.6])


def _paint() -> np.ndarray:
    """The scene, uint8 [64, 64, 3]."""
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[:SIZE, :SIZE].astype(np.float64)
    img = np.empty((SIZE, SIZE, 3))
    t = yy / (SIZE - 1)
    img[:] = (1 - t)[..., None] * [196, 222, 242] + t[..., None] * [232, 238, 226]  # sky: blue above, haze below

    ground = yy >= 52 + 1.5 * np.sin(xx / 7)
    img[ground] = [118, 146, 78]

    # The stream: a band whose banks run along STREAM_DIR through the bottom-right corner.
    across = (xx - 63) * -STREAM_DIR[1] + (yy - 44) * STREAM_DIR[0]  # signed distance from the upper bank
    stream = (across <= 0) & (across >= -11)
    ripple = 0.5 + 0.5 * np.sin(((xx - 63) * STREAM_DIR[0] + (yy - 44) * STREAM_DIR[1]) * 1.3 + across)
    img[stream] = np.array([52, 108, 196]) + ripple[stream, None] * [40, 50, 40]

    trunk = (np.abs(xx - 32) <= 2.5 + np.maximum(yy - 46, 0) * 0.4) & (yy >= 12) & ~stream
    img[trunk] = [96, 70, 46] + rng.uniform(-10, 10, (trunk.sum(), 1))

    crown = ((xx - 32) / 22) ** 2 + ((yy - 9) / 8) ** 2 <= 1
    img[crown] = [52, 104, 52] + rng.uniform(-12, 12, (crown.sum(), 1))

    # Drooping strands: one every 2 px on either side of the trunk, hanging from the crown to ragged tips.
    for x0, x1 in ((4, 28), (37, 61)):
        for x in range(x0, x1, 2):
            tip = int(rng.integers(34, 46))
            shade = np.array([78, 150, 62]) + rng.uniform(-18, 18)
            img[8:tip, x : x + 2] = shade + rng.uniform(-8, 8, (tip - 8, 1, 1))

    # High on the trunk, clear of the pin that the overlay draws at the static box's centre.
    lantern = (xx - 32) ** 2 + ((yy - 25) / 1.3) ** 2 <= 3.2**2
    img[lantern] = [212, 36, 36]
    img[22:29, 32] = [250, 200, 60]  # the glowing seam
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def _brushes() -> dict:
    """The brush file: masks are polygons / boxes inside the frame; numbers in pixels and frames."""
    sway = {"amplitude": 2.5, "period": 16, "phase": 0.0, "anchor": "top"}
    return {
        "version": 1,
        "size": [SIZE, SIZE],
        "frames": FRAMES,
        "brushes": [
            {"mode": "sway", "mask": {"polygon": [[3, 8], [28, 8], [28, 46], [3, 46]]}, "direction": [1, 0]} | sway,
            {"mode": "sway", "mask": {"polygon": [[36, 8], [61, 8], [61, 46], [36, 46]]}, "direction": [-1, 0]} | sway,
            {
                "mode": "flow",
                "mask": {"polygon": [[63, 44], [63, 58], [56, 63], [38, 63]]},
                "direction": STREAM_DIR.tolist(),
                "speed": 1.0,
            },
            {"mode": "static", "mask": {"box": [29, 18, 35, 50]}},
        ],
    }


def main() -> None:
    iio.imwrite(HERE / "willow.png", _paint())
    spec = _brushes()
    # One brush a line, as in DESIGN.md, so the file reads (and diffs) brush by brush.
    head = json.dumps({k: v for k, v in spec.items() if k != "brushes"})[:-1]
    lines = ",\n  ".join(json.dumps(b) for b in spec["brushes"])
    (HERE / "willow.json").write_text(f'{head},\n "brushes": [\n  {lines}\n ]}}\n')


if __name__ == "__main__":
    main()
