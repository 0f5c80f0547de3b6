# Regenerate the BrushSprites example of `wanjax demo` (deterministic):
#     .venv/bin/python examples/make_sprites.py
"""Write examples/sprites.png (a BrushSprites first frame, 64×64) and examples/sprites.json (its brush file: a
drag along a path, a sway, a pinned sprite and a flowing stream) — the kind of scene the bundled model learned.

It is `brush_sprites(152)`: a fresh clip, in neither the training nor the eval split (those draw their seeds
through `clip_seed`).
"""

import json
from pathlib import Path

import imageio.v3 as iio

from wanjax.data.sprites import brush_sprites

HERE = Path(__file__).parent
SEED = 152

if __name__ == "__main__":
    clip = brush_sprites(SEED)
    iio.imwrite(HERE / "sprites.png", clip["video"][0])
    (HERE / "sprites.json").write_text(json.dumps(clip["brushes"], indent=1) + "\n")
