"""`wanjax launch --nproc 2 -- sample ... mesh.ring=8`: one 60-s clip (241 latent frames) sampled with its frames
sharded over both processes' devices equals the one-process sample; only process 0 writes."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from wanjax.cli import main

TINY = str(Path(__file__).parents[2] / "configs" / "tiny.yaml")
LONG = ["sample.frames=961", "sample.height=16", "sample.width=16", "sample.steps=2", "mesh.ring=8"]


def test_two_processes_sample_one_clip_like_one_process(tmp_path):
    two = tmp_path / "two"
    cmd = [sys.executable, "-m", "wanjax.cli", "launch", "--nproc", "2", "--devices-per-process", "4", "--timeout",
           "200", "--", "sample", TINY, "--out", str(two), *LONG]  # fmt: skip
    done = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=230)
    assert done.returncode == 0, done.stderr[-3000:]
    written = [line for line in done.stdout.splitlines() if line.endswith("sample.npz")]
    assert written == [f"[0] {two / 'sample.npz'}"]  # process 1 takes part in sampling but writes nothing

    assert main(["sample", TINY, "--out", str(tmp_path / "one"), *LONG]) == 0  # this process: 8 devices
    a, b = (np.load(tmp_path / d / "sample.npz")["latents"] for d in ("one", "two"))
    assert a.shape == (241, 4, 4, 192)
    rel = np.abs(b - a).max() / np.abs(a).max()
    print(f"2 processes vs 1: max relative latent difference {rel:.3g}")
    assert rel <= 1e-4
    assert json.loads((two / "sample.json").read_text())["mesh"]["ring"] == 8
