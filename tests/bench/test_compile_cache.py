"""The command line's persistent compilation cache: a second `wanjax sample` with the same shapes finds every
program it needs on disk (compiles nothing new) and gives the same video."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).parents[2]
ARGS = ["sample", str(REPO / "configs" / "tiny.yaml"), "sample.frames=5", "sample.height=32", "sample.width=32",
        "sample.steps=2"]  # fmt: skip


def test_second_run_reads_the_cache_and_gives_the_same_video(tmp_path):
    # every program cached, however fast it compiles (the default skips those under 1 s: machine-dependent)
    env = os.environ | {"WANJAX_COMPILATION_CACHE": str(tmp_path / "cache"), "WANJAX_COMPILATION_CACHE_MIN_S": "0"}
    entries = []
    for run in ("cold", "warm"):
        cmd = [sys.executable, "-m", "wanjax.cli", *ARGS, "--out", str(tmp_path / run)]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-2000:]
        entries.append(sorted(p.name for p in (tmp_path / "cache").iterdir()))
    assert entries[0], "the cold run cached nothing"
    assert entries[1] == entries[0]  # the warm run compiled nothing new: every program came from the cache
    cold, warm = (np.load(tmp_path / run / "sample.npz")["latents"] for run in ("cold", "warm"))
    np.testing.assert_array_equal(cold, warm)


def test_off_disables_it(tmp_path, monkeypatch):
    from wanjax.compile_cache import enable_compilation_cache

    monkeypatch.setenv("WANJAX_COMPILATION_CACHE", "off")
    assert enable_compilation_cache() is None
