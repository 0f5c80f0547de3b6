"""Where a jitted function's time goes on this backend: every XLA op's self time from a profiler trace, named by the
JAX operation that made it (the compiled HLO's op_name metadata; a fusion carries its root op's) and grouped by the
model's named scopes.

    report = profile(step, state, batch, runs=3)   # {"wall_s", "op_s", "groups": {...}, "ops": [...]}

Self time: an op's duration minus that of the ops nested in it on the same thread (a `while` thunk's own time is
its loop control; its body's ops count on their own). Ops split over several threads count once per part, so
"op_s" can exceed "wall_s" on a multi-core host; on CPU most of a step runs one op at a time.
Groups (per call, seconds): the named scopes in SCOPES ("blocks": the DiT's scan over its blocks), random numbers,
the ops the compiler added itself (no op_name: copies, buffer fills such as the scan's stacked residuals), and
everything else by its JAX primitive. "backward" marks ops of the gradient (a `transpose(...)` in the op_name).
"""

from __future__ import annotations

import collections
import glob
import gzip
import json
import re
import tempfile
import time
from collections.abc import Callable

import jax
import numpy as np

SCOPES = ("blocks", "motion_embed", "warp_guide")  # jax.named_scope names in wanjax.model.dit
RANDOM = ("jit(_normal)", "jit(_uniform)", "random_bits", "threefry")
COMPILER = "compiler-inserted (copies, buffer fills)"


def op_names(hlo_text: str) -> dict[str, str]:
    """Instruction name -> op_name metadata ("" when the compiler made the op itself) of a compiled HLO module."""
    names = {}
    for line in hlo_text.splitlines():
        m = re.match(r"\s*(?:ROOT )?%?([\w.\-]+) = ", line)
        if m:
            meta = re.search(r'metadata=\{op_name="([^"]*)"', line)
            names[m.group(1)] = meta.group(1) if meta else ""
    return names


def group(op_name: str) -> str:
    """The group of an op by its op_name (see the module docstring)."""
    if not op_name:
        return COMPILER
    side = "backward " if "transpose(" in op_name else ""
    parts = re.split(r"[/()]", op_name)
    for scope in SCOPES:
        if scope in parts:
            return side + scope
    if any(r in op_name for r in RANDOM):
        return "random numbers"
    return f"{side}other: {[p for p in parts if p][-1]}"


def self_times(events: list[dict]) -> list[float]:
    """Self time (µs) of each complete event [ph X]: its duration minus its children's on the same thread."""
    own = [float(e.get("dur", 0)) for e in events]
    by_thread = collections.defaultdict(list)
    for i, e in enumerate(events):
        by_thread[(e.get("pid"), e.get("tid"))].append(i)
    for ids in by_thread.values():
        ids.sort(key=lambda i: (events[i]["ts"], -events[i].get("dur", 0)))
        stack = []  # (end, index) of the open events
        for i in ids:
            start = events[i]["ts"]
            while stack and stack[-1][0] <= start:
                stack.pop()
            if stack:
                own[stack[-1][1]] -= events[i].get("dur", 0)
            stack.append((start + events[i].get("dur", 0), i))
    return own


def trace_events(fn: Callable, args: tuple, runs: int) -> list[dict]:
    """The complete events [ph X] of a profiler trace of `runs` calls of fn(*args) (compiled and warm)."""
    with tempfile.TemporaryDirectory() as logdir:
        with jax.profiler.trace(logdir, create_perfetto_trace=True):
            for _ in range(runs):
                jax.block_until_ready(fn(*args))
        (path,) = glob.glob(f"{logdir}/**/perfetto_trace.json.gz", recursive=True)
        with gzip.open(path) as f:
            events = json.load(f)["traceEvents"]
    return [e for e in events if e.get("ph") == "X"]


def profile(fn: Callable, *args, runs: int = 3, donate: bool = False, top: int = 25) -> dict:
    """Profile the jitted `fn` on args: wall seconds per call (median), the ops' summed self time per call, that time
    by group, and the `top` ops [instruction, op_name, seconds per call]. donate: fn donates its first argument and
    returns its replacement first (a train step), so each call gets the last call's output."""
    compiled = fn.lower(*args).compile()  # one program: the one run and the one whose op names are read
    names, held = op_names(compiled.as_text()), [args]

    def call(*_):
        out = compiled(*held[0])
        if donate:
            held[0] = (out[0], *held[0][1:])
        return out

    jax.block_until_ready(call())
    walls = []
    for _ in range(runs):
        t0 = time.perf_counter()
        jax.block_until_ready(call())
        walls.append(time.perf_counter() - t0)
    events = trace_events(call, (), runs)
    seconds, groups = collections.Counter(), collections.Counter()
    for e, own in zip(events, self_times(events), strict=True):
        if e["name"] in names:
            seconds[e["name"]] += own / 1e6 / runs
    for name, s in seconds.items():
        groups[group(names[name])] += s
    return {
        "wall_s": float(np.median(walls)),
        "op_s": float(sum(seconds.values())),
        "groups": dict(groups.most_common()),
        "ops": [[name, names[name], s] for name, s in seconds.most_common(top)],
    }


def markdown(report: dict, least: float = 0.01) -> str:
    """The groups as a Markdown table (ms per call, share of the ops' time); those under `least` in one last row."""
    total = report["op_s"]
    rows = [f"Wall {report['wall_s'] * 1e3:.1f} ms per call; ops' self time {total * 1e3:.1f} ms.", ""]
    rows += ["| group | ms | share |", "|---|---:|---:|"]
    big = {g: s for g, s in report["groups"].items() if s >= least * total}
    rest = total - sum(big.values())
    rows += [f"| {g} | {s * 1e3:.1f} | {s / total:.1%} |" for g, s in big.items()]
    rows += [f"| the rest ({len(report['groups']) - len(big)} groups) | {rest * 1e3:.1f} | {rest / total:.1%} |"]
    return "\n".join(rows)
