"""Cold compile vs warm start with the persistent compilation cache: the same job in two fresh processes sharing
one empty cache folder. The job traces and compiles the train step of a config and runs its sampler once.

    python -m wanjax.bench.compile CONFIG CACHE_DIR   # one job, JSON on stdout (what `run` starts twice)
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def job(config: str, cache_dir: str) -> dict:
    """Seconds to trace (lower) and compile the train step, and for a 2-step sample (compiling its programs)."""
    from wanjax.compile_cache import enable_compilation_cache

    enable_compilation_cache(cache_dir, min_compile_seconds=0.0)
    import jax
    import jax.numpy as jnp
    from flax import nnx

    from wanjax.config import load_config
    from wanjax.model.dit import WanDiT
    from wanjax.model.pixel import make_vae
    from wanjax.sample import generate
    from wanjax.train.state import init_state, optimizer
    from wanjax.train.step import make_train_step

    cfg = load_config(config, ["sample.steps=2", "sample.frames=9", "sample.height=32", "sample.width=32"])
    tx = optimizer(cfg.train)
    dit = WanDiT(cfg.model, rngs=nnx.Rngs(0))
    graphdef, state = init_state(dit, tx, 0)
    m = cfg.model
    batch = {"latents": jnp.zeros((2, 3, 8, 8, m.in_channels)), "context": jnp.zeros((2, 1, m.text_dim))}
    t0 = time.perf_counter()
    lowered = make_train_step(graphdef, tx, cfg, None, state, batch).lower(state, batch)
    t1 = time.perf_counter()
    lowered.compile()
    t2 = time.perf_counter()
    context = jnp.zeros((1, 1, cfg.model.text_dim))
    jax.block_until_ready(generate(dit, make_vae(cfg.vae, nnx.Rngs(1)), cfg, 0, context, progress=False))
    t3 = time.perf_counter()
    return {"train_trace_s": t1 - t0, "train_compile_s": t2 - t1, "sample_first_call_s": t3 - t2}


def run(config: str | Path) -> dict:
    """The job cold (empty cache) then warm (a second process, same cache): times and warm / cold ratios."""
    with tempfile.TemporaryDirectory(prefix="wanjax-jax-cache-") as cache:
        cold, warm = (
            json.loads(subprocess.run([sys.executable, "-m", __name__, str(config), cache], check=True,
                                      capture_output=True, text=True).stdout.splitlines()[-1])
            for _ in range(2)
        )  # fmt: skip
        entries = len(list(Path(cache).iterdir()))
    total = {k: v["train_compile_s"] + v["sample_first_call_s"] for k, v in (("cold", cold), ("warm", warm))}
    return {"config": str(config), "cold": cold, "warm": warm, "cache_entries": entries,
            "train_compile_ratio": warm["train_compile_s"] / cold["train_compile_s"],
            "warm_over_cold": total["warm"] / total["cold"]}  # fmt: skip


if __name__ == "__main__":
    print(json.dumps(job(sys.argv[1], sys.argv[2])))
