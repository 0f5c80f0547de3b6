"""`wanjax bench --suite accel` / `make bench-accel`: Wan2.1-1.3B on whatever accelerator JAX sees -> JSON + table.

The real 1.3B shape (`ModelConfig.wan21_t2v_1_3b()`, random weights, bf16 compute) at 81 frames of 480x832 (latent
[1, 21, 60, 104, 16], 32,760 tokens; 512 text tokens of 4096):

  forward    the jitted DiT forward, bf16 parameters, mesh.attention auto (GPU: sdpa, cuDNN's flash attention;
             TPU: dense, XLA's fusion); against diffusers' WanTransformer3DModel on the same device when torch sees
             a GPU (the same bf16 tensors through our converter, alternating runs, medians, max relative error)
  train      one real train step (init_state, optimizer, make_train_step): fp32 master parameters, bf16 compute,
             model.remat=full (dots would keep ~1.3 GB of bf16 matmul outputs per layer, 39 GB in all, beside the
             ~21 GB of parameters, EMA and Adam moments), AdamW + EMA, batch 1
  sampling   `generate`, STEPS UniPC steps with text CFG (2 branches per DiT call): the denoising loop only, the VAE
             decode skipped (the real Wan VAE at 81x480x832 is a benchmark of its own)

Each: 1 warm-up (compiles) then RUNS timed runs, the median; analytic model FLOPs (`wanjax.model.flops`: forward
283 TFLOP, train step 849, sampling 5,660) per second and MFU against the chip's vendor bf16 peak
(`wanjax.train.metrics.PEAK_FLOPS`), else against a bf16 matmul measured in the run. A part the device has no
memory for is reported as failed and the others still run. Estimated, not measured, for one H100 at ~350 TFLOP/s
(forward ~0.8 s, train step ~3.2 s with the remat recompute, sampling ~16 s): ~40 s to build and convert the
weights and import torch, ~2-3 min of compiles, ~1.5 min of timed runs: ~5 min, within 8. `--tiny` runs the same
code end to end at a tiny fp32 config (320 tokens, 2 steps; diffusers on CPU when importable): ~45 s on 2 busy
CPU cores, mostly compiling.
"""

from __future__ import annotations

import dataclasses
import datetime
import gc
import os
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from wanjax.bench.dit import _alternate
from wanjax.bench.train import _median_time, matmul_peak, step_seconds
from wanjax.config import Config, MeshConfig, ModelConfig, SampleConfig
from wanjax.diffusion.samplers import guidance_weights
from wanjax.errors import WanjaxError
from wanjax.io.export import write_json
from wanjax.model.dit import AttnSpec, WanDiT
from wanjax.model.flops import dit_flops, tokens, train_step_flops
from wanjax.train.metrics import peak_flops

RUNS, STEPS, TIMESTEP = 3, 10, 500.0


@dataclasses.dataclass(frozen=True)
class Setup:
    """What one suite measures: the model, the video (frames, height, width) and its latent (F, H, W), text tokens,
    sampling steps, the side of the timing matmul."""

    model: ModelConfig
    video: tuple[int, int, int]
    latent: tuple[int, int, int]
    text_tokens: int
    steps: int
    matmul_n: int


FULL = Setup(
    dataclasses.replace(ModelConfig.wan21_t2v_1_3b(), dtype="bfloat16", param_dtype="bfloat16", remat="full"),
    (81, 480, 832), (21, 60, 104), 512, STEPS, 8192,
)  # fmt: skip
# Every part of the full suite at a CPU size: dim 64 (2 heads), 2 layers, 5 x 8 x 8 = 320 tokens, fp32 so that the
# diffusers comparison can be held to 1e-3.
TINY = Setup(
    ModelConfig(dim=64, ffn_dim=128, num_heads=2, num_layers=2, text_dim=32, freq_dim=32, remat="full"),
    (17, 128, 128), (5, 16, 16), 8, 2, 512,
)  # fmt: skip


def _inputs(s: Setup) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Latents float32 [1, F, H, W, C], timestep [1], text [1, M, text_dim]."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, *s.latent, s.model.in_channels), np.float32)
    ctx = rng.standard_normal((1, s.text_tokens, s.model.text_dim), np.float32)
    return x, np.full((1,), TIMESTEP, np.float32), ctx


def _ours(model: WanDiT, attn: AttnSpec, x, t, ctx):
    """(timed callable, forward output float32 [1, F, H, W, C]) of the jitted WanDiT forward."""
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    args = (params, *(jnp.asarray(a) for a in (x, t, ctx)))
    # compiled here, so that the untimed first call of `_alternate` is a run like the others
    fwd = jax.jit(lambda p, *a: nnx.merge(graphdef, p, rest)(*a, attn=attn)).lower(*args).compile()
    return lambda: jax.block_until_ready(fwd(*args)), lambda: np.asarray(fwd(*args), np.float32)


def _theirs(model: WanDiT, x, t, ctx, tiny: bool):
    """(timed callable, output float32 [1, F, H, W, C], what) of diffusers' forward on our weights; or the reason it
    is skipped. Full suite: a GPU only (bf16 on a CPU is no comparison); --tiny: torch's GPU, else its CPU."""
    try:
        import torch
        from diffusers import WanTransformer3DModel
    except ImportError as e:
        return f"skipped: {e.name} is not installed (pip install --no-deps its wheel to compare)"
    if not (tiny or torch.cuda.is_available()):
        return "skipped: torch sees no GPU (install a CUDA build of torch to compare)"
    from wanjax.io.dit_params import save_dit

    device, dtype = ("cuda" if torch.cuda.is_available() else "cpu"), getattr(torch, model.cfg.dtype)
    with tempfile.TemporaryDirectory() as folder:
        save_dit(model, folder)
        ref = WanTransformer3DModel.from_pretrained(folder, torch_dtype=dtype).to(device).eval()
    cast = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(device)  # noqa: E731
    args = (cast(x.transpose(0, 4, 1, 2, 3)).to(dtype), cast(t), cast(ctx).to(dtype))
    sync = torch.cuda.synchronize if device == "cuda" else lambda: None

    def forward():
        with torch.no_grad():
            out = ref(*args, return_dict=False)[0]
        sync()
        return out

    output = lambda: forward().float().cpu().numpy().transpose(0, 2, 3, 4, 1)  # noqa: E731
    return forward, output, f"diffusers {device} {model.cfg.dtype}"


def measure_forward(model: WanDiT, s: Setup, tiny: bool) -> tuple[dict, dict]:
    """(forward, diffusers): median seconds of our jitted forward and, unless skipped, diffusers' on the same
    weights and inputs, alternating; the max relative error of its output against ours."""
    x, t, ctx = _inputs(s)
    attn = AttnSpec.from_config(MeshConfig(), None)
    fwd, out = _ours(model, attn, x, t, ctx)
    theirs = _theirs(model, x, t, ctx, tiny)
    fns = {"wanjax": fwd} if isinstance(theirs, str) else {"wanjax": fwd, "diffusers": theirs[0]}
    secs = _alternate(fns, RUNS, pause=0.0)  # no idle pause: on an accelerator no host threads spin between calls
    forward = {"seconds": secs["wanjax"], "flops": dit_flops(s.model, *s.latent, s.text_tokens)["forward"]}
    if isinstance(theirs, str):
        return forward, {"status": theirs}
    a, b = out(), theirs[1]()
    return forward, {"status": "measured", "what": theirs[2], "seconds": secs["diffusers"], "flops": forward["flops"],
                     "speedup": secs["diffusers"] / secs["wanjax"],
                     "max_rel_error": float(np.abs(a - b).max() / np.abs(b).max())}  # fmt: skip


def _guard(part, *args):
    """part(*args)'s result, or {"status": "failed: ..."} when the device ran out of memory: a chip too small for one
    part (the train step's ~21 GB of fp32 state on a 16 GB TPU v5e) still reports the others. Other errors raise."""
    try:
        return part(*args)
    except Exception as e:
        if "RESOURCE_EXHAUSTED" not in str(e) and "out of memory" not in str(e).lower():
            raise
        return {"status": f"failed: out of memory ({type(e).__name__})"}


def _release() -> None:
    """Free what the last part left: JAX buffers, and torch's cached GPU blocks, before the train step's ~30 GB."""
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


class _NoDecode:
    """The VAE stand-in `generate` decodes with: one black pixel per video, so only the denoising loop is timed."""

    def decode(self, z: jax.Array) -> np.ndarray:
        return np.zeros((z.shape[0], 1, 1, 1, 3), np.float32)


def measure_sampling(model: WanDiT, s: Setup) -> dict:
    """Median seconds of `generate` over s.steps UniPC steps with text CFG (a random, non-zero text: both branches
    in one DiT call of batch 2), the decode skipped."""
    from wanjax.sample import generate

    frames, height, width = s.video
    cfg = Config(model=s.model, sample=SampleConfig(frames=frames, height=height, width=width, steps=s.steps))
    context = jnp.asarray(_inputs(s)[2])
    branches = len(guidance_weights(True, False, cfg.sample.guidance_text, cfg.sample.guidance_motion))
    run = lambda: generate(model, _NoDecode(), cfg, 0, context, progress=False)  # noqa: E731
    run()  # compiles the sampler step
    seconds = _median_time(run, RUNS)
    flops = s.steps * dit_flops(s.model, *s.latent, s.text_tokens, batch=branches)["forward"]
    return {"seconds": seconds, "seconds_per_step": seconds / s.steps, "flops": flops, "cfg_branches": branches}


def measure_train(s: Setup) -> dict:
    """Median seconds of one real train step (batch 1) at the setup's shape."""
    x, _, ctx = _inputs(s)
    data = {"latents": jnp.asarray(x), "context": jnp.asarray(ctx)}
    return {"seconds": step_seconds(Config(model=s.model), data, RUNS), "flops": train_step_flops(s.model, data)}


def _versions() -> dict:
    import jaxlib

    found = {"jax": jax.__version__, "jaxlib": jaxlib.__version__}
    for name in ("torch", "diffusers"):
        try:
            found[name] = __import__(name).__version__
        except ImportError:
            found[name] = None
    return found


def run(json_path: str | Path = "bench/accel.json", tiny: bool = False) -> dict:
    """Measure the suite (TINY with `tiny`, else FULL) on jax.devices()[0], write `json_path`, return the result:
    seconds, FLOPs, TFLOP/s and MFU of forward, train and sampling; the diffusers comparison or why it is skipped."""
    # Before JAX starts its GPU backend: grow its memory as needed instead of taking 75 % up front, so that
    # diffusers fits beside it on the same GPU.
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    if jax.default_backend() == "cpu" and not tiny:
        raise WanjaxError(
            "--suite accel measures Wan2.1-1.3B at 480x832x81 and needs a GPU or TPU (JAX sees only the CPU); "
            "add --tiny for the CPU smoke run"
        )
    start, s = time.perf_counter(), TINY if tiny else FULL
    model = WanDiT(s.model, rngs=nnx.Rngs(0))
    both = _guard(measure_forward, model, s, tiny)
    forward, diffusers = (both, {"status": "skipped: the forward failed"}) if isinstance(both, dict) else both
    _release()
    sampling = _guard(measure_sampling, model, s)
    del model
    _release()
    train = _guard(measure_train, s)
    vendor = peak_flops(1)
    peak = vendor or matmul_peak(s.matmul_n, RUNS, s.model.dtype)
    for part in (p for p in (forward, sampling, train, diffusers) if "seconds" in p):
        part |= {"tflops_per_s": part["flops"] / part["seconds"] / 1e12, "mfu": part["flops"] / part["seconds"] / peak}
    m = s.model
    result = {
        "suite": "accel", "tiny": tiny, "date": datetime.date.today().isoformat(),
        "device": jax.devices()[0].device_kind, "platform": jax.default_backend(), "versions": _versions(),
        "model": {"dim": m.dim, "ffn_dim": m.ffn_dim, "heads": m.num_heads, "layers": m.num_layers,
                  "text_dim": m.text_dim, "dtype": m.dtype, "params": m.param_dtype, "train_params": "float32",
                  "remat": m.remat, "attention": AttnSpec.from_config(MeshConfig(), None).impl},
        "video": list(s.video), "latent": [1, *s.latent, m.in_channels], "tokens": tokens(m, *s.latent),
        "text_tokens": s.text_tokens, "runs": RUNS, "sampling_steps": s.steps, "solver": SampleConfig().solver,
        "peak_flops_per_s": peak, "peak_source": "vendor bf16" if vendor else f"measured {m.dtype} matmul",
        "forward": forward, "train_step": train, "sampling": sampling, "diffusers": diffusers,
        "total_seconds": time.perf_counter() - start,
    }  # fmt: skip
    write_json(json_path, result)
    return result


def markdown(r: dict) -> str:
    """The README table of one result: a row per measurement, then the device, versions, date and setup."""
    d, m, v = r["diffusers"], r["model"], r["versions"]
    num = lambda x: f"{x:,.1f}" if x >= 0.1 else f"{x:.2g}"  # noqa: E731  tiny runs are far below 0.1 TFLOP

    def row(name: str, p: dict) -> str:
        if "seconds" not in p:
            return f"| {name} | {p['status']} | | | |"
        return f"| {name} | {p['seconds']:.3f} | {num(p['flops'] / 1e12)} | {num(p['tflops_per_s'])} | {p['mfu']:.1%} |"

    lines = [
        "| measurement | seconds | TFLOP | TFLOP/s | MFU |", "|---|---|---|---|---|",
        row(f"DiT forward ({m['attention']} attention)", r["forward"]),
        row(f"train step (batch 1, remat {m['remat']}, AdamW + EMA)", r["train_step"]),
        row(f"sampling, {r['sampling_steps']} {r['solver']} steps with text CFG (decode skipped)", r["sampling"]),
    ]  # fmt: skip
    if d["status"] == "measured":
        lines.append(row(f"{d['what']} forward, same weights and inputs", d))
        lines.append(f"\nForward {d['speedup']:.2f}× as fast as diffusers' (alternating runs); max relative error of "
                     f"its output against ours {d['max_rel_error']:.1e}.")  # fmt: skip
    else:
        lines.append(f"| diffusers forward | {d['status']} | | | |")
    lines.append(
        f"\n{r['device']} ({r['platform']}), jax {v['jax']}, jaxlib {v['jaxlib']}, {r['date']}. dim {m['dim']}, "
        f"{m['layers']} layers, {m['dtype']} compute, {m['params']} parameters (train: {m['train_params']} master "
        f"copy); video "
        f"{'x'.join(map(str, r['video']))} -> latent {r['latent']}, {r['tokens']:,} tokens, {r['text_tokens']} text "
        f"tokens; median of {r['runs']} runs after a warm-up; MFU against {r['peak_flops_per_s'] / 1e12:,.1f} "
        f"TFLOP/s ({r['peak_source']}); torch {v['torch']}, diffusers {v['diffusers']}; {r['total_seconds']:.0f} s in "
        "all."
    )
    return "\n".join(lines)


def main(json_path: str | Path = "bench/accel.json", tiny: bool = False) -> int:
    """`wanjax bench --suite accel`: run, write the JSON, print the table."""
    print(markdown(run(json_path, tiny)))
    print(f"\nJSON in {json_path}")
    return 0
