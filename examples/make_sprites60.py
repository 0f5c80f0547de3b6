# Regenerate the Sprites60 example first frame (deterministic):
#     .venv/bin/python examples/make_sprites60.py
"""Write examples/sprites60.png: the first frame (32×32) of `sprites60(7)`, a fresh clip in neither the training nor
the eval split (those draw their seeds through `clip_seed`). `wanjax sample configs/sprites60.yaml --image
examples/sprites60.png --out out/s60` continues it for 60 s with the bundled long-video model.
"""

from pathlib import Path

import imageio.v3 as iio

from wanjax.data.sprites import sprites60

HERE = Path(__file__).parent
SEED = 7

if __name__ == "__main__":
    iio.imwrite(HERE / "sprites60.png", sprites60(SEED, frames=5)["video"][0])
