"""`wanjax demo|sample|train|convert|export|bench`: one entry point over the library.

User errors (`WanjaxError`) print as one line with the fix; `--debug` shows the traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from wanjax.errors import WanjaxError

REPO = Path(__file__).resolve().parents[1]
REPO_CONFIGS = REPO / "configs"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="wanjax", description=__doc__.splitlines()[0])
    p.add_argument("--debug", action="store_true", help="show full tracebacks")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser(
        "demo", help="bundled brush model + example brush -> OUT/demo.{mp4,gif,png,npz,json}, OUT/demo_overlay.*"
    )
    demo.add_argument("--out", default="out", help="output folder (default: out)")

    s = sub.add_parser("sample", help="generate a video with the config's sample settings")
    s.add_argument("config", help="YAML config, e.g. configs/tiny.yaml")
    s.add_argument("--ckpt", help="wanjax checkpoint or diffusers Wan pipeline folder (default: the bundled demo one)")
    s.add_argument("--image", help="first frame PNG (image-to-video)")
    s.add_argument("--brush", help="motion brush JSON")
    s.add_argument("--prompt", help="text prompt")
    s.add_argument("--seed", type=int, help="noise seed (default: sample.seed)")
    s.add_argument("--out", required=True, help="output folder")
    s.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. sample.steps=8")

    t = sub.add_parser("train", help="train a model (checkpoints, TensorBoard, metrics.jsonl under train.workdir)")
    t.add_argument("config")
    t.add_argument("overrides", nargs="*", metavar="key=value")

    c = sub.add_parser("convert", help="diffusers Wan pipeline folder <-> wanjax checkpoint (direction from SRC)")
    c.add_argument("src")
    c.add_argument("dst")

    e = sub.add_parser("export", help="copy a sample folder to a local path or gs://bucket/prefix")
    e.add_argument("src")
    e.add_argument("dst")

    b = sub.add_parser("bench", help="speed benchmarks")
    b.add_argument("--json", default="bench/results.json", help="where to write results (default: %(default)s)")
    return p


def _run(args: argparse.Namespace) -> None:
    if args.command == "demo":
        from wanjax.sample import run_sample

        example = REPO / "examples" / "sprites"
        paths = run_sample(
            REPO_CONFIGS / "brushsprites.yaml", args.out, image=f"{example}.png", brush=f"{example}.json", name="demo"
        )
        print("\n".join(str(p) for p in paths.values()))
    elif args.command == "sample":
        from wanjax.sample import run_sample

        paths = run_sample(
            args.config, args.out, ckpt=args.ckpt, seed=args.seed, prompt=args.prompt, image=args.image,
            brush=args.brush, overrides=args.overrides,
        )  # fmt: skip
        print("\n".join(str(p) for p in paths.values()))
    elif args.command == "train":
        from wanjax.config import load_config
        from wanjax.train.loop import train

        summary = train(load_config(args.config, args.overrides))
        print(json.dumps(summary))
    elif args.command == "convert":
        from wanjax.io.weights import convert

        print(f"{convert(args.src, args.dst)}: {args.dst}")
    elif args.command == "export":
        from wanjax.io.export import export

        print("\n".join(export(args.src, args.dst)))
    else:
        raise WanjaxError("`wanjax bench` lands with issue #9; the ring benchmark runs as `python scripts/bench.py`")


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    # key=value overrides may come before or after options (`--out X k=v --seed 1 k2=v2`): collect the rest.
    args, rest = parser.parse_known_args(argv)
    extra = [r for r in rest if "=" in r and not r.startswith("-")]
    if len(extra) != len(rest) or (extra and not hasattr(args, "overrides")):
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if extra:
        args.overrides = [*args.overrides, *extra]
    try:
        _run(args)
    except WanjaxError as e:
        if args.debug:
            raise
        print(f"wanjax {args.command}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
