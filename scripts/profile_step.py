"""Where a config's train step spends its time, op by op, grouped by the model's parts (wanjax.bench.profile).

    .venv/bin/python scripts/profile_step.py configs/brushsprites.yaml [key=value ...] [--json OUT]

A brush config (data.name=brushsprites) steps on a real brush batch of its own size, as `make bench` does; any other
on random latents of its sample size, batch train.batch_size. One device, fresh weights, state donated.
"""

import argparse
import pathlib

from wanjax.bench.profile import markdown, profile
from wanjax.bench.train import brush_batch, random_batch, step_and_state
from wanjax.config import load_config
from wanjax.io.export import write_json

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", type=pathlib.Path)
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--top", type=int, default=20, help="ops listed one by one")
    parser.add_argument("--json", type=pathlib.Path, default=None)
    args = parser.parse_args()
    cfg = load_config(args.config, args.overrides)
    if cfg.data.name == "brushsprites":
        data = brush_batch(cfg)[0]
    else:
        from wanjax.sample import latent_shape

        data = random_batch(cfg, cfg.train.batch_size, *latent_shape(cfg.sample, cfg)[:3])
    step, state = step_and_state(cfg, data)
    report = profile(step, state, data, runs=args.runs, donate=True, top=args.top)
    print(markdown(report))
    print("\n| op | JAX operation | ms |\n|---|---|---:|")
    for name, op, s in report["ops"]:
        print(f"| {name} | {op[-90:] or '(compiler)'} | {s * 1e3:.2f} |")
    if args.json:
        write_json(args.json, report)
