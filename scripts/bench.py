"""Every benchmark in one run (`make bench`, the same as `wanjax bench`): bench/results.json + Markdown tables.

    .venv/bin/python scripts/bench.py [--max-tokens 65536] [--json bench/results.json] [--readme README.md]
    .venv/bin/python scripts/bench.py --only train_brush --readme README.md   # one part again, the rest kept

See wanjax/bench/report.py for what is measured.
"""

import argparse
import pathlib
import sys

from wanjax.bench.report import main

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-tokens", type=int, default=65536, help="longest ring-attention sequence")
    parser.add_argument("--json", type=pathlib.Path, default=pathlib.Path("bench/results.json"))
    parser.add_argument("--readme", type=pathlib.Path, default=None, help="rewrite this README's benchmark block")
    parser.add_argument("--only", nargs="+", default=(), metavar="PART", help="re-measure these parts, keep the rest")
    args = parser.parse_args()
    sys.exit(main(args.json, args.max_tokens, args.readme, tuple(args.only)))
