"""`wanjax launch`: training as 2 processes × 4 CPU devices equals one process with 8; kill -9 ends the job.

The workers are subprocesses (this process has 8 devices from conftest); every one is ended by pid at teardown.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest
from flax import nnx

from wanjax.config import load_config
from wanjax.data import pipeline
from wanjax.io.weights import load_checkpoint
from wanjax.train.loop import train

TINY = str(Path(__file__).parents[2] / "configs" / "tiny.yaml")
# tests/train/test_loop.py's SMALL: batch over fsdp=4, which spans both processes (2 devices each), heads over
# tensor=2 inside a process.
SMALL = [
    "data.frames=9", "data.height=32", "data.width=32", "data.train_clips=64", "data.eval_clips=8",
    "train.batch_size=4", "mesh.fsdp=4", "mesh.tensor=2", "train.warmup_steps=5", "train.lr=1e-3",
    "train.steps=8", "train.checkpoint_every=2", "train.eval_every=4",
]  # fmt: skip
# The same matmul precision as this process (conftest), so the two runs compute the same thing.
ENV = os.environ | {"JAX_DEFAULT_MATMUL_PRECISION": "highest", "PYTHONUNBUFFERED": "1"}


@pytest.fixture
def launched(tmp_path):
    """Start `wanjax launch ...`, its stdout and stderr going to files (a pipe nobody reads would fill up and stall
    it); at teardown kill each launcher by pid (a launcher kills its processes when it ends)."""
    procs = []

    def start(*args: str) -> tuple[subprocess.Popen, Path, Path]:
        out, err = tmp_path / f"launch{len(procs)}.out", tmp_path / f"launch{len(procs)}.err"
        cmd = [sys.executable, "-m", "wanjax.cli", "launch", *args]
        with out.open("w") as o, err.open("w") as e:
            procs.append(subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=o, stderr=e, env=ENV))
        return procs[-1], out, err

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # the launcher's own clean-up kills its processes by pid
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _train_args(tmp_path: Path) -> list[str]:
    return ["train", TINY, *SMALL, f"data.data_dir={tmp_path / 'data'}", f"train.workdir={tmp_path / 'run'}"]


def _losses(workdir: Path, key: str = "loss") -> dict[int, float]:
    """{step: value} of `key` in metrics.jsonl, for the rows that have it."""
    path = workdir / "metrics.jsonl"
    lines = path.read_text().splitlines(keepends=True) if path.is_file() else []
    rows = [json.loads(line) for line in lines if line.endswith("\n")]  # not a line being written
    return {r["step"]: r[key] for r in rows if key in r}


def _wait_for(predicate, proc: subprocess.Popen, err: Path, timeout: float = 200) -> None:
    t0 = time.time()
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"launcher ended early: {err.read_text()[-2000:]}")
        assert time.time() - t0 < timeout, "timed out"
        time.sleep(0.2)


class _Interleaved:
    """What the 2-process job sees, in one process: process p reads clips p, p+2, … and its rows are the p-th half
    of each global batch (fsdp=4 over devices 0-3 of process 0, then 4-7 of process 1). A stand-in for the Grain
    iterator, checkpointable the same way (get_state / set_state)."""

    def __init__(self, cfg, split: str, monkeypatch):
        self.parts = []
        for p in range(2):
            with monkeypatch.context() as m:
                m.setattr(jax, "process_count", lambda: 2)
                m.setattr(jax, "process_index", lambda p=p: p)
                d = cfg.data  # built by the 2-process run
                size = dict(frames=d.frames, height=d.height, width=d.width, train_clips=d.train_clips)
                args = (d.name, split, d.data_dir, cfg.train.batch_size, cfg.train.seed)
                self.parts.append(pipeline.make_dataset(*args, eval_clips=d.eval_clips, **size))

    def __iter__(self):
        return self

    def __next__(self) -> dict:
        a, b = (next(part) for part in self.parts)
        return {k: np.concatenate([a[k], b[k]]) for k in a}

    def get_state(self) -> bytes:
        return json.dumps([part.get_state() for part in self.parts]).encode()

    def set_state(self, state: bytes) -> None:
        for part, s in zip(self.parts, json.loads(state), strict=True):
            part.set_state(s)

    def start_prefetch(self) -> None:
        pass


def test_two_processes_train_like_one_and_a_killed_process_ends_the_job(tmp_path, launched, monkeypatch):
    job = ["--nproc", "2", "--devices-per-process", "4", "--timeout", "240", "--", *_train_args(tmp_path / "two")]
    run = tmp_path / "two" / "run"

    # kill -9 one process mid-run (after step 3: the step-2 checkpoint is complete on both): the launcher ends the
    # job and names the process.
    first, out, err = launched(*job)
    _wait_for(lambda: 3 in _losses(run), first, err)
    pid = int(re.search(r"\[launch\] process 1 of 2: pid (\d+)", out.read_text())[1])
    os.kill(pid, signal.SIGKILL)
    t0 = time.time()
    first.wait(timeout=30)
    print(f"launcher ended {time.time() - t0:.1f} s after kill -9")
    assert first.returncode != 0
    assert f"process 1 (pid {pid}) was killed by SIGKILL" in err.read_text(), err.read_text()[-2000:]

    # The same command again resumes from the last good checkpoint and finishes.
    second, out, err = launched(*job)
    second.wait(timeout=240)
    assert second.returncode == 0, err.read_text()[-3000:] + out.read_text()[-3000:]
    out = out.read_text()
    summaries = [json.loads(line.split("] ", 1)[1]) for line in out.splitlines() if re.match(r"\[\d\] \{", line)]
    assert len(summaries) == 2 and all(s["status"] == "done" and s["end_step"] == 8 for s in summaries)
    assert summaries[0]["start_step"] in (2, 4, 6)
    state = run / "checkpoints" / "8"
    assert {p.name for p in (state / "state").glob("ocdbt.process_*")} == {"ocdbt.process_0", "ocdbt.process_1"}
    assert {p.name for p in (state / "data_iter").glob("*.json")} == {"process_0-of-2.json", "process_1-of-2.json"}

    # One process, 8 devices, the same global batches.
    cfg = load_config(TINY, [*SMALL, f"data.data_dir={tmp_path / 'two' / 'data'}", f"train.workdir={tmp_path / 'one'}"])
    train(cfg, data=lambda split: _Interleaved(cfg, split, monkeypatch), progress=False)
    for key in ("loss", "eval_loss"):
        two, ref = _losses(run, key), _losses(tmp_path / "one", key)
        assert sorted(two) == sorted(ref) == (list(range(1, 9)) if key == "loss" else [1, 4, 8])
        diff = max(abs(two[s] - ref[s]) for s in ref)
        print(f"max |{key} difference| (2 processes vs 1): {diff:.3g}")
        assert diff <= 1e-5, (two, ref)

    # The export (EMA gathered from both processes, written by process 0) loads and equals the one-process export.
    _, dit2, _ = load_checkpoint(run / "export")
    _, dit1, _ = load_checkpoint(tmp_path / "one" / "export")
    for a, b in zip(jax.tree.leaves(nnx.state(dit2)), jax.tree.leaves(nnx.state(dit1)), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)
