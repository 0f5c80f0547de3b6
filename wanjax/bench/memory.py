"""Will a 14B fine-tune fit a pod? The real train step compiled ahead of time from abstract shapes, on a fake CPU
mesh of the slice's size, and its per-device memory read from XLA (issue #19, "Memory that fits a pod").

    python -m wanjax.bench.memory --json bench/memory.json        # make bench-memory: 18 rows, 16 min on 2 cores
    python -m wanjax.bench.memory --only 'lora.*full' model.num_layers=4    # some rows, with overrides

Nothing is allocated: the model, its LoRA adapters and the train state are built under `nnx.eval_shape` by the
training code itself (`build_model`, `init_state` with the `trainable` filter), the batch is `ShapeDtypeStruct`s,
and `make_train_step(...).lower(state, batch).compile()` is the jit the training loop runs (explicit in/out
shardings, state donated). `memory_analysis()` gives the per-device program's argument, output, temp and alias
(outputs written over donated arguments) bytes; a device needs argument + output - alias + temp (MaxText's sum).

Each row is a list of config overrides on top of the base config (configs/wan2.1-i2v-14b-480p.yaml) and OVERRIDES:
a mesh, a way of training (full fine-tune or LoRA), and model.remat. The batch is one clip per FSDP group (global
batch = data x fsdp) of sample.frames x height x width video (81 x 480 x 832: latents [B, 21, 60, 104, 16],
32,760 tokens), the text context [B, 512, text_dim], the I2V condition channels and CLIP image tokens.
"""

from __future__ import annotations

import argparse
import gc
import re
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
from flax import nnx

from wanjax.config import Config, load_config
from wanjax.errors import WanjaxError
from wanjax.io.export import write_json

REPO = Path(__file__).resolve().parents[2]
BASE = REPO / "configs" / "wan2.1-i2v-14b-480p.yaml"
DEVICES = 64  # a v5p-128 slice (64 chips)
HBM_GB = 95.0  # one v5p chip's HBM
GB = 1e9
TEXT_TOKENS = 512  # Wan's UMT5 context length
IMAGE_TOKENS = 257  # CLIP ViT-H/14 tokens of one image (FLF2V: two images, model.pos_embed_seq_len)
# mesh.attention=ring on every mesh: ring attention runs inside shard_map, each device attending its own clips
# (batch over data x fsdp) in tiles of <= 512 tokens; with ring=1 that is blockwise attention per device. 'auto'
# would pick dense on a pod mesh without a ring axis ([32,760²] scores per head), and flash attention (lax.map over
# batch x heads), traced outside shard_map, makes XLA gather the whole batch onto every device (286 GB of temp for
# one layer).
OVERRIDES = ["mesh.attention=ring", "mesh.data=1", "mesh.tensor=1"]
MESHES = {"fsdp64": ["mesh.fsdp=64", "mesh.ring=1"], "fsdp8xring8": ["mesh.fsdp=8", "mesh.ring=8"]}
TRAINING = {
    "full": [],
    # rank 64 on every attention (self, text, image) and FFN projection: TrainConfig's default lora_targets
    "lora64": ["train.lora_rank=64", "train.lora_alpha=64"],
    "lora64-bf16": ["train.lora_rank=64", "train.lora_alpha=64", "model.param_dtype=bfloat16"],
}
REMATS = ("none", "dots", "full")


def rows(meshes: dict[str, list[str]] = MESHES) -> dict[str, list[str]]:
    """Every table row: {name: overrides}, one per (mesh, training, remat); bf16 frozen weights only with LoRA (a
    full fine-tune keeps an fp32 master copy of every parameter whatever model.param_dtype says)."""
    return {
        f"{mesh}/{train}/remat={remat}": [*m, *t, f"model.remat={remat}"]
        for mesh, m in meshes.items()
        for train, t in TRAINING.items()
        for remat in REMATS
    }


def abstract_batch(cfg: Config, rows: int) -> dict[str, jax.ShapeDtypeStruct]:
    """The train step's batch as shapes (fp32, as the loop feeds it): `rows` clips of sample.frames x height x width
    video through the VAE's strides; condition channels and CLIP tokens where the model reads them."""
    m, v, s = cfg.model, cfg.vae, cfg.sample
    grid = ((s.frames - 1) // v.temporal_stride + 1, s.height // v.spatial_stride, s.width // v.spatial_stride)
    shape = lambda *dims: jax.ShapeDtypeStruct(dims, jnp.float32)  # noqa: E731
    batch = {"latents": shape(rows, *grid, m.out_channels), "context": shape(rows, TEXT_TOKENS, m.text_dim)}
    if m.in_channels != m.out_channels:
        batch["condition"] = shape(rows, *grid, m.in_channels - m.out_channels)
    if m.image_dim is not None:
        batch["image_context"] = shape(rows, m.pos_embed_seq_len or IMAGE_TOKENS, m.image_dim)
    return batch


def compile_step(cfg: Config, options: dict | None = None) -> tuple[jax.stages.Compiled, dict]:
    """The train step of `cfg` on a mesh of all devices, compiled from abstract shapes (XLA compiler `options`, if
    any): (compiled, facts) with the parameter counts (trained, frozen), the global batch and the seconds to lower
    and to compile."""
    from wanjax.parallel.mesh import make_mesh
    from wanjax.train.finetune import build_model
    from wanjax.train.state import init_state, optimizer, trainable
    from wanjax.train.step import make_train_step

    mesh = make_mesh(cfg.mesh)
    tx = optimizer(cfg.train)
    graphdef, state = nnx.eval_shape(lambda: init_state(build_model(cfg).dit, tx, cfg.train.seed, trainable(cfg.train)))
    batch = abstract_batch(cfg, mesh.shape["data"] * mesh.shape["fsdp"])
    start = time.perf_counter()
    lowered = make_train_step(graphdef, tx, cfg, mesh, state, batch).lower(state, batch)
    lowered_at = time.perf_counter()
    compiled = lowered.compile(compiler_options=options)
    count = lambda tree: sum(x.size for x in jax.tree.leaves(tree))  # noqa: E731
    facts = {
        "mesh": dict(mesh.shape),
        "batch": batch["latents"].shape[0],
        "latents": list(batch["latents"].shape[1:]),
        "trained_params": count(state.params),
        "frozen_params": count(state.frozen),
        "lower_s": round(lowered_at - start, 1),
        "compile_s": round(time.perf_counter() - lowered_at, 1),
    }
    return compiled, facts


def measure(cfg: Config, options: dict | None = None) -> dict:
    """One row: compile the step and read its per-device memory: argument (state + batch), output (new state),
    alias (output bytes reusing donated argument buffers), temp (activations, gradients, gathered weights), and
    total = argument + output - alias + temp, the HBM one device needs; in bytes, and in GB (rounded)."""
    compiled, facts = compile_step(cfg, options)
    stats = compiled.memory_analysis()
    size = {k: int(getattr(stats, f"{k}_size_in_bytes")) for k in ("argument", "output", "alias", "temp")}
    size["total"] = size["argument"] + size["output"] - size["alias"] + size["temp"]
    del compiled
    gc.collect()
    jax.clear_caches()
    gb = {f"{k}_gb": round(v / GB, 2) for k, v in size.items()}
    return {**gb, "fits": size["total"] <= HBM_GB * GB, "bytes": size, **facts}


def table(
    base: str | Path,
    named: dict[str, list[str]],
    overrides: Sequence[str] = (),
    log: Callable[[str], None] = print,
    options: dict | None = None,
) -> list[dict]:
    """Measure every row of `named` ({name: overrides}) on top of `base` + OVERRIDES + `overrides`, in order.
    options: XLA compiler options (the toy-size test's unoptimised compile: faster, the same buffers there)."""
    out = []
    for name, row in named.items():
        cfg = load_config(base, [*OVERRIDES, *row, *overrides])
        result = {"row": name, "overrides": row, **measure(cfg, options)}
        log(f"{name:36s} total {result['total_gb']:8.2f} GB  temp {result['temp_gb']:8.2f}  argument "
            f"{result['argument_gb']:6.2f}  compile {result['compile_s']:6.1f} s")  # fmt: skip
        out.append(result)
    return out


def markdown(results: list[dict]) -> str:
    """The README table: GB per device for each row (output - alias: what of the output is not written over the
    donated state, ~0), whether it fits a v5p chip, and its compile time."""
    head = ("| mesh / training / remat | argument | temp | output - alias | **total** | fits 95 GB | compile s |\n"
            "|---|---:|---:|---:|---:|:---:|---:|")  # fmt: skip
    lines = [
        f"| {r['row']} | {r['argument_gb']:.1f} | {r['temp_gb']:.1f} | {r['output_gb'] - r['alias_gb']:.1f} | "
        f"**{r['total_gb']:.1f}** | {'yes' if r['fits'] else 'no'} | {r['compile_s']:.0f} |"
        for r in results
    ]
    return "\n".join([head, *lines])


def main(argv: list[str] | None = None) -> None:
    """CLI: measure the rows on DEVICES fake CPU devices, print the table, write JSON."""
    parser = argparse.ArgumentParser(prog="python -m wanjax.bench.memory", description=__doc__.split("\n\n")[0])
    parser.add_argument("overrides", nargs="*", help="config overrides for every row, key=value")
    parser.add_argument("--config", default=str(BASE), help="base config (default: the Wan2.1-I2V-14B 480p one)")
    parser.add_argument("--devices", type=int, default=DEVICES, help="fake CPU devices: the slice's chips")
    parser.add_argument("--only", default="", help="regex: measure the rows whose name it matches")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    from wanjax.parallel.distributed import use_cpu_devices

    use_cpu_devices(args.devices)  # before anything touches a backend
    named = {k: v for k, v in rows().items() if re.search(args.only, k)}
    if not named:
        raise WanjaxError(f"--only {args.only!r} matches no row; rows: {', '.join(rows())}")
    start = time.perf_counter()
    results = table(args.config, named, args.overrides, log=lambda s: print(s, flush=True))
    print(markdown(results))
    if args.json:
        report = {
            "config": args.config, "overrides": [*OVERRIDES, *args.overrides], "devices": args.devices,
            "hbm_gb": HBM_GB, "jax": jax.__version__, "backend": "cpu (fake devices): an estimate of TPU memory",
            "seconds": round(time.perf_counter() - start), "rows": results,
        }  # fmt: skip
        write_json(args.json, report)


if __name__ == "__main__":
    try:
        main()
    except WanjaxError as e:
        sys.exit(f"error: {e}")
