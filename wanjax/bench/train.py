"""Train-step throughput of a config: steps/s, tokens/s, FLOP/s, and an MFU estimate.

FLOPs per step are the analytic model FLOPs (wanjax.model.flops; XLA's cost analysis counts a scanned layer
once). The peak is the machine's own: a dense fp32 4096x4096 matmul measured in the same run (on an
accelerator with a known chip, the vendor peak too).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from wanjax.config import Config
from wanjax.model.dit import WanDiT
from wanjax.model.flops import train_step_flops
from wanjax.train.metrics import peak_flops
from wanjax.train.state import init_state, optimizer
from wanjax.train.step import make_train_step


def _median_time(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def matmul_peak(n: int = 4096, runs: int = 5, dtype: str = "float32") -> float:
    """FLOP/s of a jitted dense [n, n] @ [n, n] in `dtype` on one device."""
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.dtype(dtype))
    f = jax.jit(lambda x: x @ x)
    jax.block_until_ready(f(a))
    return 2 * n**3 / _median_time(lambda: f(a), runs)


def step_and_state(cfg: Config, data: dict) -> tuple[Callable, object]:
    """The jitted train step of cfg's model (one device, state donated; fresh weights) and its first state."""
    tx = optimizer(cfg.train)
    graphdef, state = init_state(WanDiT(cfg.model, rngs=nnx.Rngs(0)), tx, 0)
    return make_train_step(graphdef, tx, cfg, None, state, data), state


def step_runner(cfg: Config, data: dict) -> Callable[[], jax.Array]:
    """A call that runs the jitted train step (one device, state donated) once on one batch, compiled and warmed up."""
    step, state = step_and_state(cfg, data)
    holder = [step(state, data)[0]]  # warm-up + compile; the state is donated, so keep the new one

    def one():
        holder[0], metrics = step(holder[0], data)
        return metrics["loss"]

    return one


def step_seconds(cfg: Config, data: dict, runs: int) -> float:
    """Median seconds of the jitted train step (one device, state donated) on one batch, after a compiling call."""
    return _median_time(step_runner(cfg, data), runs)


def brush_clips(cfg: Config, count: int) -> tuple[np.ndarray, list[dict]]:
    """`count` BrushSprites clips at the config's data size: video float32 [count, T, H, W, 3] in [-1, 1], brushes."""
    from wanjax.data.sprites import brush_sprites

    d = cfg.data
    clips = [brush_sprites(i, d.frames, d.height, d.width) for i in range(count)]
    return np.stack([c["video"] for c in clips]).astype(np.float32) / 127.5 - 1.0, [c["brushes"] for c in clips]


def brush_batch(cfg: Config) -> tuple[dict, dict]:
    """A real brush batch of the config's size, encoded as training does (motion tracks, conditioning frame, with
    data.cache_guide the clips' stored warp guides), and host seconds: "host_batch_s" to make it (brushes -> tracks,
    encode: what the input pipeline does beside the step), with data.cache_guide "guide_build_s_per_clip" (computing
    one clip's guide, done once per clip when the set's guide table is built: `wanjax.train.guides`)."""
    from wanjax.model.pixel import make_vae
    from wanjax.train.guides import clip_guides
    from wanjax.train.loop import make_encoder

    video, brushes = brush_clips(cfg, cfg.train.batch_size)
    host = {"video": video, "brushes": brushes}
    seconds = {}
    if cfg.stores_guides:
        clip_guides(cfg, video, brushes)  # compiles
        t0 = time.perf_counter()
        host["guide"] = clip_guides(cfg, video, brushes).astype(np.float32)  # as `with_guide` gives it
        seconds["guide_build_s_per_clip"] = (time.perf_counter() - t0) / len(video)
    encode = make_encoder(cfg, make_vae(cfg.vae, nnx.Rngs(0)))
    jax.block_until_ready(encode(host))  # first call: eager ops compile
    t0 = time.perf_counter()
    data = jax.block_until_ready(encode(host))
    return data, {"host_batch_s": time.perf_counter() - t0} | seconds


def brush_result(cfg: Config, data: dict, host: dict, seconds: float) -> dict:
    """The brush step's figures from its batch, the host seconds around it (`brush_batch`) and the step's seconds."""
    clips = cfg.train.batch_size
    flops = train_step_flops(cfg.model, data)
    return {"batch": clips, "step_s": seconds, "clips_per_s": clips / seconds, "flops_per_s": flops / seconds} | host


def run_brush(cfg: Config, runs: int = 10) -> dict:
    """Clips per second of a brush config's jitted train step at its own batch size (one device, a real brush
    batch), and the host time to make the batch."""
    data, host = brush_batch(cfg)
    return brush_result(cfg, data, host, step_seconds(cfg, data, runs))


def interleaved_seconds(runners: dict[str, Callable[[], jax.Array]], runs: int) -> dict[str, float]:
    """Median seconds per call of each runner, timed in `runs` rounds that call each once in turn: a machine that
    slows down for a while slows every runner alike."""
    times = {name: [] for name in runners}
    for _ in range(runs):
        for name, one in runners.items():
            t0 = time.perf_counter()
            jax.block_until_ready(one())
            times[name].append(time.perf_counter() - t0)
    return {name: float(np.median(t)) for name, t in times.items()}


# configs/brushsprites.yaml's step as it was until 2026-12-05 (the recipe of the model bundled until then, issue #16's
# "today"): four scanned blocks, no warp guide, first frame concatenated, batch 8. `make bench` times it beside the
# shipped config's, in the same process.
BRUSH_BEFORE = (
    "model.residual=none", "train.loss=velocity", "model.num_layers=4", "model.scan_layers=true",
    "model.first_frame_concat=true", "train.batch_size=8", "data.cache_guide=false",
)  # fmt: skip
# Where the shipped step's time goes: the step without one part each (the differences are that part's cost) ...
BRUSH_WITHOUT = {
    "warp_guide": ("model.residual=first_frame",),  # the stored guide read and added (none is stored without it)
    "motion_embedding": ("model.motion=none",),  # the splat (nothing stored; the guide: frame 0 repeated)
}
# ... with one block more (the difference is one block's cost), and with the guide computed in the step instead of
# read from the data (the difference is what data.cache_guide saves).
BRUSH_ONE_MORE_BLOCK = "model.num_layers={}"
BRUSH_GUIDE_IN_STEP = ("data.cache_guide=false",)


def run_brush_pair(path: str, runs: int = 15) -> dict:
    """The shipped brush config's train step and the one before it (BRUSH_BEFORE), the fp32 matmul peak, the
    seconds each part of the shipped step costs (BRUSH_WITHOUT: the shipped step's time minus the time without it;
    one block: the time with one more minus the shipped step's), and what the step would take more with its warp guide
    computed in it (BRUSH_GUIDE_IN_STEP). All variants are timed in interleaved rounds (`interleaved_seconds`)."""
    from wanjax.config import load_config

    more = BRUSH_ONE_MORE_BLOCK.format(load_config(path).model.num_layers + 1)
    variants = {"shipped": (), "before": BRUSH_BEFORE, "one_more_block": (more,), "guide_in_step": BRUSH_GUIDE_IN_STEP}
    variants |= {f"without_{k}": o for k, o in BRUSH_WITHOUT.items()}
    cfgs = {name: load_config(path, list(o)) for name, o in variants.items()}
    batches = {name: brush_batch(cfg) for name, cfg in cfgs.items()}
    seconds = interleaved_seconds({n: step_runner(cfgs[n], batches[n][0]) for n in cfgs}, runs)
    shipped, before = (brush_result(cfgs[n], *batches[n], seconds[n]) for n in ("shipped", "before"))
    peak = matmul_peak()
    parts = {k: seconds["shipped"] - seconds[f"without_{k}"] for k in BRUSH_WITHOUT}
    return {
        "shipped": shipped,
        "before": before | {"overrides": list(BRUSH_BEFORE)},
        "speedup": shipped["clips_per_s"] / before["clips_per_s"],
        "matmul_peak_flops_per_s": peak,
        "shipped_vs_matmul_peak": shipped["flops_per_s"] / peak,
        "part_seconds": parts | {"one_block": seconds["one_more_block"] - seconds["shipped"]},
        "guide_in_step_seconds": seconds["guide_in_step"] - seconds["shipped"],
    }


def random_batch(cfg: Config, batch: int, frames: int, height: int, width: int) -> dict:
    """Random latents [batch, frames, height, width, C] and one text token per example."""
    k = jax.random.split(jax.random.key(1), 2)
    return {
        "latents": jax.random.normal(k[0], (batch, frames, height, width, cfg.model.in_channels)),
        "context": jax.random.normal(k[1], (batch, 1, cfg.model.text_dim)),
    }


def run(cfg: Config, batch: int = 2, frames: int = 5, height: int = 8, width: int = 8, runs: int = 5) -> dict:
    """Time the jitted train step (one device, state donated) on random latents [batch, frames, height, width, C]."""
    data = random_batch(cfg, batch, frames, height, width)
    flops = train_step_flops(cfg.model, data)
    seconds = step_seconds(cfg, data, runs)
    tokens = batch * frames * height * width // int(np.prod(cfg.model.patch_size))
    peak = matmul_peak()
    vendor = peak_flops()
    return {
        "config": {
            "dim": cfg.model.dim,
            "layers": cfg.model.num_layers,
            "batch": batch,
            "tokens_per_example": tokens // batch,
        },
        "step_s": seconds,
        "steps_per_s": 1 / seconds,
        "tokens_per_s": tokens / seconds,
        "flops_per_step": flops,
        "flops_per_s": flops / seconds,
        "matmul_peak_flops_per_s": peak,
        "mfu_vs_matmul_peak": flops / seconds / peak,
        "mfu_vs_vendor_peak": None if vendor is None else flops / seconds / vendor,
    }
