"""`wanjax launch`: training as 2 processes × 4 CPU devices equals one process with 8; checkpoints move between
process counts; kill -9 ends the job; SIGTERM to one process saves one step everywhere.

The workers are subprocesses (this process has 8 devices from conftest); every one is ended by pid at teardown.
"""

import json
import os
import re
import shutil
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
    it); at teardown kill each launcher by pid (a launcher kills its processes when it ends). The launches share the
    test session's compilation cache (conftest), as a relaunched pod job does: the same job again reads its
    programs from it."""
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


def _train_args(workdir: Path, data_dir: Path) -> list[str]:
    return ["train", TINY, *SMALL, f"data.data_dir={data_dir}", f"train.workdir={workdir}"]


def _losses(workdir: Path, key: str = "loss") -> dict[int, float]:
    """{step: value} of `key` in metrics.jsonl, for the rows that have it."""
    path = workdir / "metrics.jsonl"
    lines = path.read_text().splitlines(keepends=True) if path.is_file() else []
    rows = [json.loads(line) for line in lines if line.endswith("\n")]  # not a line being written
    return {r["step"]: r[key] for r in rows if key in r}


def _wait_for(predicate, proc: subprocess.Popen, err: Path, timeout: float = 450) -> None:
    """Poll until `predicate()`; bounds a hang, not a speed (a compile on 2 busy CI cores can take minutes)."""
    t0 = time.time()
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"launcher ended early: {err.read_text()[-2000:]}")
        assert time.time() - t0 < timeout, f"timed out after {timeout} s: {err.read_text()[-2000:]}"
        time.sleep(0.2)


def _summaries(out: Path) -> list[dict]:
    """The JSON summary each process printed, in process order."""
    lines = out.read_text().splitlines()
    return [json.loads(line.split("] ", 1)[1]) for line in lines if re.match(r"\[\d\] \{", line)]


def _same_losses(run: Path, ref: Path, after: int) -> None:
    for key in ("loss", "eval_loss"):
        got, want = _losses(run, key), _losses(ref, key)
        steps = [s for s in want if s > after]
        assert steps and set(steps) <= set(got), (key, got, want)
        diff = max(abs(got[s] - want[s]) for s in steps)
        print(f"{run.name}: max |{key} difference| after step {after} vs one process: {diff:.3g}")
        assert diff <= 1e-5, (key, got, want)


def test_two_processes_train_like_one_resume_across_process_counts_and_survive_kill_and_sigterm(
    tmp_path, launched, monkeypatch
):  # fmt: skip
    """One process (8 devices) is the reference. Its step-4 checkpoint resumes as 2 processes × 4 devices (fsdp over
    both), kill -9 of one ends the job, the same command resumes and finishes with the reference's losses. A fresh
    2-process run with the ring spanning both processes (both read the same rows) gets SIGTERM on ONE process: both
    save the same step and exit 0, and that checkpoint resumes in one process with the reference's losses."""
    start = time.time()
    data = tmp_path / "data"
    ref = tmp_path / "one"
    train(load_config(TINY, _train_args(ref, data)[2:]), progress=False)
    print(f"{time.time() - start:.0f} s: one process trained 8 steps")  # the phases' times, for a slow CI run

    # 1 -> 2 processes: the reference's checkpoint of step 4 (its later steps removed) resumes on two.
    run = tmp_path / "two"
    shutil.copytree(ref / "checkpoints" / "4", run / "checkpoints" / "4")
    launch = ["--nproc", "2", "--devices-per-process", "4", "--timeout", "540", "--"]
    job = [*launch, *_train_args(run, data)]
    first, out, err = launched(*job)
    _wait_for(lambda: 5 in _losses(run), first, err)
    print(f"{time.time() - start:.0f} s: two processes resumed to step 5")
    pid = int(re.search(r"\[launch\] process 1 of 2: pid (\d+)", out.read_text())[1])
    os.kill(pid, signal.SIGKILL)
    t0 = time.time()
    first.wait(timeout=30)
    print(f"launcher ended {time.time() - t0:.1f} s after kill -9")
    assert first.returncode != 0
    assert f"process 1 (pid {pid}) was killed by SIGKILL" in err.read_text(), err.read_text()[-2000:]

    # The same command again resumes from the last good checkpoint (4 or 6) and finishes like the reference.
    second, out, err = launched(*job)
    second.wait(timeout=540)
    assert second.returncode == 0, err.read_text()[-3000:] + out.read_text()[-3000:]
    summaries = _summaries(out)
    assert len(summaries) == 2 and all(s["status"] == "done" and s["end_step"] == 8 for s in summaries)
    assert summaries[0]["start_step"] in (4, 6)
    print(f"{time.time() - start:.0f} s: two processes resumed again and finished")
    _same_losses(run, ref, 4)
    state = run / "checkpoints" / "8"
    assert {p.name for p in (state / "state").glob("ocdbt.process_*")} == {"ocdbt.process_0", "ocdbt.process_1"}
    assert {p.name for p in (state / "data_iter").glob("*.json")} == {"process_0-of-2.json", "process_1-of-2.json"}
    # The export (EMA gathered from both processes, written by process 0) equals the one-process export.
    _, dit2, _ = load_checkpoint(run / "export")
    _, dit1, _ = load_checkpoint(ref / "export")
    for a, b in zip(jax.tree.leaves(nnx.state(dit2)), jax.tree.leaves(nnx.state(dit1)), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)

    # SIGTERM to process 1 only, the ring across both processes: both save the same step and exit 0.
    ring = ["mesh.fsdp=2", "mesh.ring=2", "mesh.tensor=1", "mesh.dcn_ring=2"]
    run = tmp_path / "ring"
    third, out, err = launched(*launch, *_train_args(run, data), *ring)
    _wait_for(lambda: 2 in _losses(run), third, err)
    print(f"{time.time() - start:.0f} s: the ring across two processes reached step 2")
    pid = int(re.search(r"\[launch\] process 1 of 2: pid (\d+)", out.read_text())[1])
    os.kill(pid, signal.SIGTERM)
    third.wait(timeout=60)
    assert third.returncode == 0, err.read_text()[-3000:]
    summaries = _summaries(out)
    assert [s["status"] for s in summaries] == ["preempted", "preempted"], summaries
    saved = summaries[0]["end_step"]
    assert summaries[1]["end_step"] == saved and 2 <= saved < 8 and (run / "checkpoints" / str(saved)).is_dir()
    # 2 -> 1 process: the preempted run resumes on one process (fsdp=4, tensor=2) and finishes like the reference.
    summary = train(load_config(TINY, _train_args(run, data)[2:]), progress=False)
    print(f"{time.time() - start:.0f} s: one process resumed the ring's checkpoint and finished")
    assert summary["start_step"] == saved and summary["status"] == "done"
    _same_losses(run, ref, 0)
