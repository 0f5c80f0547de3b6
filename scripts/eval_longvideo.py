"""Long-video metrics of a Sprites60 model in each sampling schedule -> JSON (README "Sampling settings ...").

    python scripts/eval_longvideo.py --ckpt runs/sprites60/export --clips 20 --json bench/longvideo.json
    python scripts/eval_longvideo.py --ckpt CKPT --schedule pyramid steps=8     # one schedule; sample settings
    python scripts/eval_longvideo.py --ckpt CKPT --references   # + the ground truth and frame 0 held still

Sample settings are the checkpoint's config.yaml `sample:` section, changed by any `field=value` given.
"""

import argparse
import json
import sys
from pathlib import Path

from wanjax.config import parse_overrides
from wanjax.diffusion.schedules import SCHEDULES
from wanjax.eval.sprites60 import evaluate_checkpoint


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ckpt", required=True, help="checkpoint folder")
    p.add_argument("--clips", type=int, default=20)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--schedule", action="append", choices=SCHEDULES, help="repeatable; default: all three")
    p.add_argument("--json", help="write the results here")
    p.add_argument(
        "--references", action="store_true", help="also score the ground truth and frame 0 held still (no model)"
    )
    p.add_argument("sample", nargs="*", metavar="field=value", help="sample settings, e.g. steps=8")
    args = p.parse_args(argv)
    overrides = parse_overrides(args.sample)
    schedules = tuple(args.schedule or SCHEDULES)
    results = evaluate_checkpoint(
        args.ckpt, args.clips, schedules=schedules, batch=args.batch, overrides=overrides, references=args.references
    )
    summary = {s: {k: v for k, v in r.items() if k != "per_clip"} for s, r in results.items()}
    print(json.dumps(summary, indent=1), flush=True)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"ckpt": args.ckpt, "sample": overrides} | results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
