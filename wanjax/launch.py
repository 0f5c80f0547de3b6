"""`wanjax launch --nproc N [--devices-per-process D] -- COMMAND ...`: one job as N local processes.

    launch(["train", "configs/tiny.yaml", "train.steps=10"], nproc=2, devices_per_process=4)   # -> 0, or raises

Each process runs `python -m wanjax.cli COMMAND ...` with JAX_COORDINATOR_ADDRESS (127.0.0.1 and a free port),
JAX_NUM_PROCESSES, JAX_PROCESS_ID (and JAX_NUM_CPU_DEVICES + JAX_PLATFORMS=cpu with D), exactly as a pod's hosts
start; its output lines come out prefixed with "[i] ". When one process fails, the others are killed at once: they
would otherwise wait in their next collective until JAX's heartbeat timeout (~100 s). This is how a pod job is
rehearsed on one machine, and how the multi-process tests run.
"""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from typing import TextIO

from wanjax.errors import WanjaxError


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def process_env(index: int, nproc: int, port: int, devices_per_process: int | None) -> dict[str, str]:
    """The environment of process `index` of `nproc` (on top of this one's)."""
    env = {
        "JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{port}",
        "JAX_NUM_PROCESSES": str(nproc),
        "JAX_PROCESS_ID": str(index),
        "PYTHONUNBUFFERED": "1",  # lines reach the prefixer as they are printed
    }
    if devices_per_process is not None:
        env |= {"JAX_NUM_CPU_DEVICES": str(devices_per_process), "JAX_PLATFORMS": "cpu"}
        # XLA's CPU client runs a program's per-device parts on a pool of max(cores, devices) threads, and a
        # collective holds one per device: a second program dispatched meanwhile (the checkpoint
        # fingerprint) can take the last thread and stall the job. Spare threads rule that out (tests/conftest.py).
        env["PJRT_NPROC"] = os.environ.get("PJRT_NPROC", str(2 * devices_per_process))
    return env


def _pump(index: int, stream, out: TextIO, tail: deque, lock: threading.Lock) -> None:
    """Copy a process's output to `out` line by line, prefixed with its index; keep its last lines in `tail`."""
    for line in iter(stream.readline, ""):
        tail.append(line.rstrip("\n"))
        with lock:
            out.write(f"[{index}] {line}" if line.endswith("\n") else f"[{index}] {line}\n")
            out.flush()
    stream.close()


def _describe(code: int) -> str:
    return f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with status {code}"


def _kill(proc: subprocess.Popen) -> None:
    """SIGKILL the process and whatever it started (its own process group, by its pid)."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()


def launch(
    command: list[str], nproc: int, devices_per_process: int | None = None, timeout: float | None = None,
    out: TextIO = sys.stdout,
) -> int:  # fmt: skip
    """Run `wanjax COMMAND ...` as `nproc` processes of one JAX job on this machine; return 0 when all succeed.

    Raises WanjaxError naming the first process that failed (its exit status and last output line) once the
    others are killed, or when `timeout` seconds pass."""
    if nproc < 1:
        raise WanjaxError(f"--nproc {nproc}: the number of processes is at least 1")
    if devices_per_process is not None and devices_per_process < 1:
        raise WanjaxError(f"--devices-per-process {devices_per_process}: at least 1 device per process")
    if not command or command[0] == "launch":
        raise WanjaxError("no command to launch: put a wanjax command after --, e.g. -- train configs/tiny.yaml")
    port, lock, exits = free_port(), threading.Lock(), queue.Queue()
    procs, tails, pumps = [], [], []
    try:
        for i in range(nproc):
            proc = subprocess.Popen(
                [sys.executable, "-m", "wanjax.cli", *command],
                env=os.environ | process_env(i, nproc, port, devices_per_process),
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                start_new_session=True,
            )  # fmt: skip
            procs.append(proc)
            tails.append(deque(maxlen=20))
            pumps.append(threading.Thread(target=_pump, args=(i, proc.stdout, out, tails[i], lock), daemon=True))
            pumps[i].start()
            threading.Thread(target=lambda i=i, p=proc: exits.put((i, p.wait())), daemon=True).start()
            with lock:
                out.write(f"[launch] process {i} of {nproc}: pid {proc.pid}\n")
                out.flush()
        deadline = None if timeout is None else time.monotonic() + timeout
        for _ in range(nproc):
            try:
                i, code = exits.get(timeout=None if deadline is None else max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise WanjaxError(f"the job ran past --timeout {timeout:g} s; killed all {nproc} processes") from None
            if code != 0:
                for p in procs:
                    _kill(p)
                pumps[i].join(timeout=2)  # its last lines
                last = next((line for line in reversed(tails[i]) if line.strip()), "(no output)")
                raise WanjaxError(
                    f"process {i} (pid {procs[i].pid}) {_describe(code)}; ended the other {nproc - 1}. "
                    f"Its last line: {last.strip()}"
                )
        for pump in pumps:
            pump.join(timeout=2)
        return 0
    finally:
        for p in procs:
            _kill(p)
