"""JAX's persistent compilation cache for the command line: a second process with the same shapes reads its
compiled programs from disk instead of compiling them again (minutes for a real model on a pod).

`WANJAX_COMPILATION_CACHE` picks the folder (a local path or gs://...; `off` disables it); unset, it is
`~/.cache/wanjax/jax`, or JAX's own `JAX_COMPILATION_CACHE_DIR` when that is set. Programs that compile in under
`WANJAX_COMPILATION_CACHE_MIN_S` seconds (default 1) are not worth a disk read and are not stored.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax

DEFAULT = Path.home() / ".cache" / "wanjax" / "jax"


def enable_compilation_cache(
    path: str | os.PathLike | None = None, min_compile_seconds: float | None = None
) -> str | None:
    """Turn the cache on at `path` for programs that took at least `min_compile_seconds` to compile (both default
    to the environment, above). Returns the folder, or None when disabled."""
    if min_compile_seconds is None:
        min_compile_seconds = float(os.environ.get("WANJAX_COMPILATION_CACHE_MIN_S", "1.0"))
    if path is None:
        path = os.environ.get("WANJAX_COMPILATION_CACHE") or os.environ.get("JAX_COMPILATION_CACHE_DIR") or DEFAULT
    path = str(path)
    if path.lower() in ("off", "0", "none", "false"):
        return None
    if not path.startswith("gs://"):
        Path(path).mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", min_compile_seconds)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path
