"""Brush-following metrics of brush models on the BrushSprites eval split -> JSON (README "Motion brushes").

    python scripts/eval_motion.py --ckpt wanjax/assets/demo --clips 200 --json bench/motion.json
    python scripts/eval_motion.py --ckpt A --ckpt B ... guidance_motion=1.0   # several models; sample settings

For each checkpoint: samples with the brushes, and (for a brush model) with the brushes dropped. Sample settings
are the checkpoint's config.yaml `sample:` section, changed by any `field=value` given.
"""

import argparse
import json
import sys

from wanjax.config import parse_overrides
from wanjax.eval.brushsprites import evaluate_checkpoint, evaluate_copy
from wanjax.io.export import write_json


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ckpt", action="append", required=True, help="checkpoint folder (repeatable)")
    p.add_argument("--clips", type=int, default=200)
    p.add_argument("--batch", type=int, default=20)
    p.add_argument("--json", help="write the results here")
    p.add_argument("--reference", action="store_true", help="also score frame 0 held for the whole clip")
    p.add_argument("sample", nargs="*", metavar="field=value", help="sample settings, e.g. guidance_motion=3.0")
    args = p.parse_args(argv)
    overrides = parse_overrides(args.sample)
    results = {"sample": overrides}
    if args.reference:
        results["copy_first_frame"] = evaluate_copy(args.clips)
        print(json.dumps({"copy_first_frame": results["copy_first_frame"]}, indent=1), flush=True)
    for ckpt in args.ckpt:
        kw = {"batch": args.batch, "overrides": overrides}
        runs = {"brushes": evaluate_checkpoint(ckpt, args.clips, **kw)}
        if runs["brushes"]["motion"] != "none":
            runs["dropped"] = evaluate_checkpoint(ckpt, args.clips, brushes=False, **kw)
        results[ckpt] = runs
        print(json.dumps({ckpt: runs}, indent=1), flush=True)
    if args.json:
        write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
