"""Benchmarks: ring attention on 8 devices (fake CPU devices unless XLA_FLAGS already says otherwise) and the
train-step throughput of configs/tiny.yaml. `make bench` runs this.

    .venv/bin/python scripts/bench.py [--max-tokens 65536] [--json bench/results.json]

Writes the results with machine info as JSON and prints Markdown tables.
"""

import os

# Before JAX is imported: the device count is fixed when the CPU backend starts.
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import pathlib  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402

from wanjax.bench import ring, train  # noqa: E402
from wanjax.config import load_config  # noqa: E402

COLUMNS = (
    ("tokens", "N", "{}"),
    ("mask", "mask", "{}"),
    ("ring_time_s", "ring 8-dev time (s)", "{:.3f}"),
    ("ring_mem_per_device_bytes", "ring mem/dev (MiB)", "MiB"),
    ("dense_n8_time_s", "dense N/8 time (s)", "{:.3f}"),
    ("dense_n8_mem_bytes", "dense N/8 mem (MiB)", "MiB"),
    ("dense_n_mem_bytes", "dense N mem (MiB, compiled only)", "MiB"),
    ("ratio_ring_to_dense_n8", "ring / dense N/8", "{:.2f}"),
    ("accept", f"≤ {ring.ACCEPT}", "{}"),
)


def _cell(value, fmt: str) -> str:
    return f"{value / 2**20:.1f}" if fmt == "MiB" else fmt.format(value)


def markdown(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(title for _, title, _ in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_cell(r[key], fmt) for key, _, fmt in COLUMNS) + " |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-tokens", type=int, default=65536)
    parser.add_argument("--json", type=pathlib.Path, default=pathlib.Path("bench/results.json"))
    args = parser.parse_args()
    start = time.perf_counter()
    rows = ring.run(args.max_tokens)
    tiny = load_config(pathlib.Path(__file__).parents[1] / "configs" / "tiny.yaml")
    throughput = train.run(tiny)
    result = {
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "jax_version": jax.__version__,
            "backend": jax.default_backend(),
            "devices": jax.device_count(),
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        },
        "memory_fields": "temp_size_in_bytes + argument_size_in_bytes + output_size_in_bytes",
        "total_seconds": time.perf_counter() - start,
        "rows": rows,
        "train_tiny": throughput,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(rows))
    t = throughput
    print(
        f"\ntrain step (tiny): {t['steps_per_s']:.2f} steps/s, {t['tokens_per_s']:.0f} tokens/s, "
        f"{t['flops_per_s'] / 1e9:.2f} GFLOP/s = {100 * t['mfu_vs_matmul_peak']:.1f} % of a "
        f"{t['matmul_peak_flops_per_s'] / 1e9:.0f} GFLOP/s fp32 matmul"
    )
    print(f"\n{result['total_seconds']:.0f} s on {result['machine']['cpu_count']} CPUs; JSON in {args.json}")


if __name__ == "__main__":
    main()
