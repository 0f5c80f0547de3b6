"""`wanjax bench` / `make bench`: every benchmark in one run -> bench/results.json and Markdown tables.

  dit        wanjax vs diffusers DiT forward and forward+backward, same weights and inputs, alternating runs
  train      the train step of configs/tiny.yaml: steps/s, tokens/s, FLOP/s vs a dense matmul
  train_brush the shipped brush config's train step (real brush batch) vs its recipe before 2026-12-05: clips/s
  sampler    `generate` at configs/tiny.yaml's sample settings: frames of video per second
  compile    cold compile vs warm start with the persistent compilation cache (two fresh processes)
  ring       ring attention over 8 devices vs dense: per-device memory and time
  projection Wan2.1 1.3B / 14B on TPU slices from the FLOP model (a projection, not a measurement)

Each measured part runs in a fresh process of its own: `python -m wanjax.bench.report PART OUT_JSON MAX_TOKENS`.
The one-device parts see one CPU device; ring attention sees 8 (on a CPU host faked through XLA_FLAGS, which
must be set before JAX starts). A process with 8 fake devices slows one-device work by ~10 % (they share the
host's thread pool), and a fresh process keeps one part's memory and compiled programs out of the next.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from wanjax.errors import WanjaxError
from wanjax.io.export import write_json

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "configs" / "tiny.yaml"
BRUSH = REPO / "configs" / "brushsprites.yaml"


PARTS = ("dit", "train_tiny", "train_brush", "sampler_tiny", "compile", "ring")
DEVICES = {"ring": 8}  # fake CPU devices of a part's process; the others get one
DEVICE_FLAG = "--xla_force_host_platform_device_count"


def child_env(devices: int) -> dict:
    """os.environ with XLA_FLAGS asking for `devices` CPU devices (any other count there replaced)."""
    flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if not f.startswith(DEVICE_FLAG)]
    return os.environ | {"XLA_FLAGS": " ".join([*flags, f"{DEVICE_FLAG}={devices}"])}


def measure(part: str, max_tokens: int):
    """One part's results, in this process."""
    from wanjax.bench import compile, dit, ring, sampler, train
    from wanjax.config import load_config

    runs = {
        "dit": dit.run,
        "train_tiny": lambda: train.run(load_config(TINY)),
        "train_brush": lambda: train.run_brush_pair(str(BRUSH)),
        "sampler_tiny": lambda: sampler.run(load_config(TINY)),
        "compile": lambda: compile.run(TINY),
        "ring": lambda: ring.run(max_tokens),
    }
    return runs[part]()


def measure_apart(part: str, max_tokens: int):
    """One part's results, measured in a fresh process with the part's device count."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / f"{part}.json"
        command = [sys.executable, "-m", "wanjax.bench.report", part, str(out), str(max_tokens)]
        done = subprocess.run(command, env=child_env(DEVICES.get(part, 1)), cwd=REPO)
        if done.returncode:
            raise WanjaxError(
                f"benchmark part {part!r} failed (exit {done.returncode}); rerun it alone: {' '.join(command)}"
            )
        return json.loads(out.read_text())


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
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def run(json_path: str | Path, max_tokens: int = 65536, only: tuple[str, ...] = ()) -> dict:
    """Run every benchmark (or, with `only`, just those parts, the others kept from `json_path`), write `json_path`
    (atomically) and return the results. Each part records the date it was measured in `dates`."""
    from wanjax.bench import projection

    unknown = set(only) - set(PARTS)
    if unknown:
        raise WanjaxError(f"no benchmark part {', '.join(sorted(unknown))}; the parts are {', '.join(PARTS)}")
    path = Path(json_path)
    if only and not path.is_file():
        raise WanjaxError(f"--only needs the results of a full run in {path}; run `make bench` once first")
    start = time.perf_counter()
    result = json.loads(path.read_text()) if only else {}
    dates = result.setdefault("dates", {})
    for part in PARTS if only else ():  # kept parts: measured when the earlier run's machine says
        dates.setdefault(part, result["machine"]["date"])
    result["machine"] = machine()
    for part in only or PARTS:
        began = time.perf_counter()
        result[part] = measure_apart(part, max_tokens)
        dates[part] = result["machine"]["date"]
        print(f"{part}: {time.perf_counter() - began:.0f} s", flush=True)
    result["projection"] = {"assumptions": projection.ASSUME, "chips": projection.CHIPS, "rows": projection.project()}
    result["total_seconds"] = time.perf_counter() - start
    write_json(path, result)
    return result


def _guide_text(b: dict) -> str:
    """What the brush step's stored warp guides (data.cache_guide) save and cost, when the result has them."""
    if "guide_in_step_seconds" not in b:
        return ""
    return (
        f" Its warp guides are read with the clips (`data.cache_guide`): computed in the step they would add "
        f"{1000 * b['guide_in_step_seconds']:.0f} ms; computed once per clip when the set's guide table is built, "
        f"{1000 * b['shipped']['guide_build_s_per_clip']:.1f} ms a clip."
    )


def markdown(result: dict) -> str:
    """The README's benchmark section body from a results dict."""
    from wanjax.bench import dit, projection, ring

    m, t, s, c = result["machine"], result["train_tiny"], result["sampler_tiny"], result["compile"]
    dates = sorted({d[:10] for d in result.get("dates", {}).values()} or {m["date"][:10]})
    head = (
        f"Measured {' and '.join(dates)} (each part's date in bench/results.json `dates`) on {m['processor']} "
        f"({m['cpu_count']} cores, {m['platform']}), jax {m['jax_version']} ({m['backend']}), torch "
        f"{m['torch_version']}; each part in a process of its own."
    )
    train = (
        f"Train step of `configs/tiny.yaml` (one device, batch 2 x 80 tokens): {t['steps_per_s']:.1f} steps/s, "
        f"{t['tokens_per_s']:,.0f} tokens/s, {t['flops_per_s'] / 1e9:.1f} GFLOP/s = "
        f"{100 * t['mfu_vs_matmul_peak']:.1f} % of a {t['matmul_peak_flops_per_s'] / 1e9:.0f} GFLOP/s fp32 matmul."
    )
    b = result["train_brush"]
    brush = (
        f"Train step of `configs/brushsprites.yaml` (one device, batch {b['shipped']['batch']} of real brush clips): "
        f"{b['shipped']['clips_per_s']:.1f} clips/s ({b['shipped']['flops_per_s'] / 1e9:.1f} GFLOP/s = "
        f"{100 * b['shipped_vs_matmul_peak']:.1f} % of the matmul peak), vs {b['before']['clips_per_s']:.1f} clips/s "
        f"for its recipe before 2026-12-05 (`{' '.join(b['before']['overrides'])}`): {b['speedup']:.2f}x; making a "
        f"batch on the host (brushes -> tracks, encode) takes {1000 * b['shipped']['host_batch_s']:.0f} ms. Of its "
        f"{1000 * b['shipped']['step_s']:.0f} ms step, "
        + ", ".join(f"{k.replace('_', ' ')} {1000 * v:.0f} ms" for k, v in b.get("part_seconds", {}).items())
        + " (the step without each; a block: the step with one more)."
        + _guide_text(b)
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
        f"{train} {brush} {sample}",
        cache,
        "Ring attention vs dense (8 devices):\n\n" + ring.markdown(result["ring"]),
        "Projection (not a measurement; assumptions in bench/results.json `projection`; * = a ring K/V pass takes "
        "longer than the attention it overlaps):\n\n" + projection.markdown(result["projection"]["rows"]),
    ])  # fmt: skip


BEGIN, END = "<!-- bench results: begin (make bench writes this block) -->", "<!-- bench results: end -->"


def readme_block(text: str) -> str:
    """The generated part of the README's benchmark section (between BEGIN and END)."""
    if BEGIN not in text or END not in text:
        raise WanjaxError(f"README has no benchmark block: put the lines {BEGIN!r} and {END!r} where it goes")
    return text[text.index(BEGIN) + len(BEGIN) : text.index(END)].strip("\n")


def update_readme(readme: str | Path, result: dict) -> None:
    """Replace the README's benchmark block with `markdown(result)` (atomically)."""
    from wanjax.io.export import atomic_write

    path = Path(readme)
    text = path.read_text()
    readme_block(text)  # checks the markers
    head, tail = text[: text.index(BEGIN) + len(BEGIN)], text[text.index(END) :]
    atomic_write(path, lambda p: p.write_text(f"{head}\n{markdown(result)}\n{tail}"))


def main(
    json_path: str | Path = "bench/results.json",
    max_tokens: int = 65536,
    readme: str | Path | None = None,
    only: tuple[str, ...] = (),
) -> int:
    """Run everything (or the parts in `only`), write `json_path`, print the tables; with `readme`, also rewrite its
    benchmark block."""
    result = run(json_path, max_tokens, only)
    if readme is not None:
        update_readme(readme, result)
    print(markdown(result))
    print(f"\n{result['total_seconds']:.0f} s; JSON in {json_path}" + (f"; tables in {readme}" if readme else ""))
    return 0


if __name__ == "__main__":  # one part, in the process `measure_apart` starts
    part, out, max_tokens = sys.argv[1:]
    Path(out).write_text(json.dumps(measure(part, int(max_tokens)), indent=2) + "\n")
