"""Motion brushes: brush files (`brush.py`) compiled to point tracks with static shapes (`tracks.py`); numpy only."""

from wanjax.motion.brush import load_brushes, mask_pixels
from wanjax.motion.tracks import KINDS, Tracks, compile_brushes

__all__ = ["KINDS", "Tracks", "compile_brushes", "load_brushes", "mask_pixels"]
