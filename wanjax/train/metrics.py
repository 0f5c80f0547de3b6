"""Run logging: metrics.jsonl (one JSON object per logged step), TensorBoard events, a console progress bar.

Only process 0 writes. Local and gs:// workdirs alike (etils.epath; tensorboardX writes gs:// itself); on
gs://, which cannot append, metrics.jsonl is rewritten whole at most every FLUSH_S seconds and at close.
On resume, rows and events after the restored step are dropped (they belong to the
interrupted attempt), so the log stays the run's true history.
"""

from __future__ import annotations

import json
import math
import os
import time

import jax
from etils import epath
from tqdm.auto import tqdm

FLUSH_S = 60.0

# Peak dense (no sparsity) bf16 FLOP/s per chip, for the MFU estimate, keyed by a part of jax's device_kind; the
# first match wins, so a variant comes before its family ("TPU v5" would take "TPU v5e"). Vendor figures: Google
# Cloud TPU docs, "TPU versions": v4 275, v5e ("TPU v5 lite") 197, v5p ("TPU v5") 459, v6e ("TPU v6 lite") 918
# TFLOP/s. NVIDIA datasheets quote bf16 with 2:4 sparsity, halved here: H100 SXM 1,979 -> 989, PCIe 1,513 -> 756,
# NVL 1,671 -> 835; H200 SXM 1,979 -> 989, NVL 1,671 -> 835; A100 312 (dense). Unknown devices report no MFU.
PEAK_FLOPS = {
    "TPU v4": 275e12, "TPU v5 lite": 197e12, "TPU v5e": 197e12, "TPU v6 lite": 918e12, "TPU v6e": 918e12,
    "TPU v5": 459e12,
    "H100 PCIe": 756e12, "H100 NVL": 835e12, "H100": 989e12, "H200 NVL": 835e12, "H200": 989e12, "A100": 312e12,
}  # fmt: skip


def peak_flops(devices: int | None = None) -> float | None:
    """Vendor peak of `devices` chips like jax.devices()[0] (None: all of jax.device_count()), or None if unknown."""
    kind = jax.devices()[0].device_kind
    match = [v for k, v in PEAK_FLOPS.items() if kind.startswith(k) or k in kind]
    return match[0] * (jax.device_count() if devices is None else devices) if match else None


class RunLog:
    def __init__(self, workdir: str, start_step: int, total_steps: int, progress: bool = True):
        self.enabled = jax.process_index() == 0
        self.path = epath.Path(workdir) / "metrics.jsonl"
        self.writer = None
        self.bar = None
        if not self.enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.rows = []
        if self.path.exists():
            lines = self.path.read_text().splitlines()
            self.rows = [line for line in lines if line and json.loads(line)["step"] <= start_step]
        self._flush()
        self.flushed = time.monotonic()
        from tensorboardX import SummaryWriter

        self.writer = SummaryWriter(f"{workdir}/tensorboard", purge_step=start_step + 1)
        self.bar = tqdm(total=total_steps, initial=start_step, desc="train", disable=not progress, dynamic_ncols=True)

    def _flush(self) -> None:
        text = "".join(r + "\n" for r in self.rows)
        if str(self.path).startswith("gs://"):
            self.path.write_text(text)  # a GCS object appears whole when its upload completes
        else:
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(text)
            os.replace(tmp, self.path)

    def log(self, step: int, metrics: dict) -> None:
        """Write one row {"step": int, "loss": float, ...}; non-finite values are written as null."""
        if not self.enabled:
            return
        row = {"step": step, **{k: (float(v) if math.isfinite(float(v)) else None) for k, v in metrics.items()}}
        self.rows.append(json.dumps(row))
        if not str(self.path).startswith("gs://"):
            with self.path.open("a") as f:
                f.write(self.rows[-1] + "\n")
        elif time.monotonic() - self.flushed > FLUSH_S:
            self._flush()
            self.flushed = time.monotonic()
        for k, v in row.items():
            if k != "step" and v is not None:
                self.writer.add_scalar(f"train/{k}" if not k.startswith("eval") else k.replace("_", "/", 1), v, step)
        if "loss" in row and row["loss"] is not None:
            self.bar.set_postfix(loss=f"{row['loss']:.4f}", refresh=False)

    def advance(self, n: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.enabled:
            self._flush()
            self.writer.close()
            self.bar.close()
