"""`wanjax bench` / `make bench`: every benchmark in one run -> bench/results.json and Markdown tables.

  dit        wanjax vs diffusers DiT forward and forward+backward, same weights and inputs, alternating runs
  train      the train step of configs/tiny.yaml: steps/s, tokens/s, FLOP/s vs a dense matmul
  sampler    `generate` at configs/tiny.yaml's sample settings: frames of video per second
  compile    cold compile vs warm start with the persistent compilation cache (two fresh processes)
  ring       ring attention over 8 devices vs dense: per-device memory and time
  projection Wan2.1 1.3B / 14B on TPU slices from the FLOP model (a projection, not a measurement)

Ring attention needs 8 devices: on a CPU host `configure_devices` fakes them (XLA_FLAGS), before JAX starts.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "configs" / "tiny.yaml"


def configure_devices(count: int = 8) -> None:
    """Ask for `count` fake CPU devices unless XLA_FLAGS already sets a count (call before JAX starts)."""
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_force_host_platform_device_count" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={count}".strip()


def machine() -> dict:
    import jax
    import torch

    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "jax_version": jax.__version__,
        "torch_version": torch.__version__,
        "backend": jax.default_backend(),
        "device_kind": jax.devices()[0].device_kind,
        "devices": jax.device_count(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def run(json_path: str | Path, max_tokens: int = 65536) -> dict:
    """Run every benchmark, write `json_path` (atomically) and return the results."""
    from wanjax.bench import compile, dit, projection, ring, sampler, train
    from wanjax.config import load_config
    from wanjax.io.export import atomic_write

    start = time.perf_counter()
    tiny = load_config(TINY)
    result = {"machine": machine()}
    result["dit"] = dit.run()
    result["train_tiny"] = train.run(tiny)
    result["sampler_tiny"] = sampler.run(tiny)
    result["compile"] = compile.run(TINY)
    result["ring"] = ring.run(max_tokens)
    result["projection"] = {"assumptions": projection.ASSUME, "chips": projection.CHIPS, "rows": projection.project()}
    result["total_seconds"] = time.perf_counter() - start
    path = Path(json_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda p: p.write_text(json.dumps(result, indent=2) + "\n"))
    return result


def markdown(result: dict) -> str:
    """The README's benchmark section body from a results dict."""
    from wanjax.bench import dit, projection, ring

    m, t, s, c = result["machine"], result["train_tiny"], result["sampler_tiny"], result["compile"]
    head = (
        f"Measured {m['date'][:10]} on {m['processor']} ({m['cpu_count']} cores, {m['platform']}), jax "
        f"{m['jax_version']} ({m['backend']}, {m['devices']} devices), torch {m['torch_version']}."
    )
    train = (
        f"Train step of `configs/tiny.yaml` (one device, batch 2 x 80 tokens): {t['steps_per_s']:.1f} steps/s, "
        f"{t['tokens_per_s']:,.0f} tokens/s, {t['flops_per_s'] / 1e9:.1f} GFLOP/s = "
        f"{100 * t['mfu_vs_matmul_peak']:.1f} % of a {t['matmul_peak_flops_per_s'] / 1e9:.0f} GFLOP/s fp32 matmul."
    )
    sample = (
        f"Sampler (`generate`, tiny, {s['frames']} frames at {s['height']}x{s['width']}, {s['steps']} "
        f"{s['solver']} steps, VAE decode included): {s['seconds_per_video']:.2f} s per video = "
        f"{s['frames_per_s']:.1f} frames/s."
    )
    cache = (
        f"Compilation (`configs/tiny.yaml`, persistent cache): train step {c['cold']['train_compile_s']:.1f} s "
        f"cold, {c['warm']['train_compile_s']:.2f} s warm ({100 * c['train_compile_ratio']:.1f} %); train step + "
        f"first sample {100 * c['warm_over_cold']:.1f} % of cold."
    )
    return "\n\n".join([
        head,
        "DiT, wanjax vs diffusers (fp32, same weights and inputs, alternating runs, medians):\n\n"
        + dit.markdown(result["dit"]),
        f"{train} {sample}",
        cache,
        "Ring attention vs dense (8 devices):\n\n" + ring.markdown(result["ring"]),
        "Projection (not a measurement; assumptions in bench/results.json `projection`; * = a ring K/V pass takes "
        "longer than the attention it overlaps):\n\n" + projection.markdown(result["projection"]["rows"]),
    ])  # fmt: skip


def main(json_path: str | Path = "bench/results.json", max_tokens: int = 65536) -> int:
    configure_devices()
    result = run(json_path, max_tokens)
    print(markdown(result))
    print(f"\n{result['total_seconds']:.0f} s; JSON in {json_path}")
    return 0
