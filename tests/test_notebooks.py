"""The notebooks run top to bottom on CPU at their small size (WANJAX_NOTEBOOK_SMALL=1) and make what they say.

Each runs in a fresh ipykernel from the repository root, with one CPU device (conftest's 8 fake devices are dropped
from XLA_FLAGS: a notebook user has one CPU device, and it is faster) and its outputs under tmp_path. The committed
notebooks carry no outputs.
"""

import json
import math
import os
import re
import sys
from pathlib import Path

import imageio.v3 as iio
import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).parents[1]
NOTEBOOKS = ROOT / "notebooks"
CELL_TIMEOUT_S = 300
# jupyter_client starts the kernel with fork + exec from this process, where JAX's threads already run; the child
# execs at once, so the deadlock RuntimeWarning does not apply.
kernel_launch = pytest.mark.filterwarnings(r"ignore:os\.fork\(\) was called:RuntimeWarning")


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    """A "python3" kernelspec running this interpreter, first on JUPYTER_PATH: the notebooks run in this venv's
    ipykernel whatever kernels the machine has installed elsewhere."""
    jupyter = tmp_path_factory.mktemp("jupyter")
    (jupyter / "kernels" / "python3").mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    spec = {"argv": argv, "display_name": "Python 3", "language": "python"}
    (jupyter / "kernels" / "python3" / "kernel.json").write_text(json.dumps(spec))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JUPYTER_PATH", str(jupyter))
        yield


def execute(name: str, out: Path, **env: str) -> nbformat.NotebookNode:
    """Run notebooks/NAME.ipynb in a fresh kernel with the small switch and WANJAX_NOTEBOOK_OUT=out; the executed
    notebook (outputs filled in). A failing cell raises CellExecutionError with its traceback."""
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    flags = re.sub(r"--xla_force_host_platform_device_count=\d+", "", os.environ.get("XLA_FLAGS", "")).split()
    kernel_env = os.environ | {"XLA_FLAGS": " ".join(flags), "WANJAX_NOTEBOOK_SMALL": "1"}
    kernel_env |= {"WANJAX_NOTEBOOK_OUT": str(out), "MPLBACKEND": "module://matplotlib_inline.backend_inline", **env}
    client = NotebookClient(
        nb, kernel_name="python3", timeout=CELL_TIMEOUT_S, startup_timeout=120, resources={"metadata": {"path": ROOT}}
    )
    client.execute(env=kernel_env)
    return nb


def outputs(nb: nbformat.NotebookNode, mime: str) -> list:
    """The `mime` data of every display / result output, in order."""
    return [
        o["data"][mime]
        for cell in nb.cells
        if cell.cell_type == "code"
        for o in cell.outputs
        if o.get("output_type") in ("display_data", "execute_result") and mime in o.get("data", {})
    ]


def gif_frames(path: Path) -> np.ndarray:
    return iio.imread(path, index=None)[..., :3]  # [T, H, W, 3] (GIF frames may come back as RGBA)


@pytest.mark.parametrize("name", ["quickstart", "long_video"])
def test_committed_notebooks_are_valid_and_clean(name):
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.outputs == [] and c.execution_count is None for c in code), "commit notebooks unexecuted"
    assert "WANJAX_NOTEBOOK_SMALL" in code[0].source and "%pip install" in code[0].source


@pytest.fixture(scope="module")
def gcs(tmp_path_factory):
    from gcs_emulator import running

    with running("notebook", tmp_path_factory.mktemp("gcs") / "emulator.log") as url:
        yield url


@kernel_launch
def test_quickstart(tmp_path, kernel, gcs, monkeypatch):
    """Mesh, bundled checkpoint, brush overlay, sample, training with a loss plot, export to gs:// through the
    emulator with nothing but STORAGE_EMULATOR_HOST set, as the notebook's note says."""
    nb = execute("quickstart", tmp_path, WANJAX_NOTEBOOK_EXPORT="gs://notebook/quickstart", STORAGE_EMULATOR_HOST=gcs)
    out = tmp_path / "quickstart"
    assert len(outputs(nb, "image/png")) >= 2  # the brush overlay and the loss plot, inline
    html = outputs(nb, "text/html")
    assert len(html) >= 1 and html[0].count("data:image/gif;base64,") == 2  # the sample and its tracks

    assert iio.imread(out / "brush_overlay.png").shape == (256, 256, 3)
    sample = out / "sample"
    assert np.load(sample / "sample.npz")["frames"].shape == (17, 64, 64, 3)
    assert gif_frames(sample / "sample.gif").shape == (17, 64, 64, 3)
    assert gif_frames(sample / "sample_overlay.gif").shape == (17, 256, 256, 3)
    assert json.loads((sample / "sample.json").read_text())["config"]["sample"]["steps"] == 4

    rows = [json.loads(line) for line in (out / "train" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 11))
    assert all(math.isfinite(r["loss"]) for r in rows)
    evals = [r["eval_loss"] for r in rows if "eval_loss" in r]
    assert len(evals) == 3 and all(math.isfinite(x) for x in evals)  # steps 1, 5, 10
    assert (out / "train" / "export" / "dit.safetensors").is_file()
    assert iio.imread(out / "loss.png").shape[1] >= 400

    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs)
    bucket = storage.Client(project="test", credentials=AnonymousCredentials()).bucket("notebook")
    exported = {b.name: b for b in bucket.client.list_blobs(bucket, prefix="quickstart/")}
    local = sorted(f.name for f in sample.iterdir())
    assert sorted(name.removeprefix("quickstart/") for name in exported) == local
    assert exported["quickstart/sample.npz"].download_as_bytes() == (sample / "sample.npz").read_bytes()


@kernel_launch
def test_long_video(tmp_path, kernel):
    """Train the toy, sample one Sprites60 clip synchronously, pyramid and chained, drift and seam plots."""
    nb = execute("long_video", tmp_path)
    out = tmp_path / "long_video"
    assert len(outputs(nb, "image/png")) >= 1  # the drift and seam plots
    assert any("data:image/gif;base64," in h for h in outputs(nb, "text/html"))  # the four videos

    rows = [json.loads(line) for line in (out / "sprites60" / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows if "loss" in r]  # every 5th step
    evals = [r["eval_loss"] for r in rows if "eval_loss" in r]  # steps 1, 50, 100
    assert rows[-1]["step"] == 100 and len(losses) == 20 and all(math.isfinite(x) for x in losses)
    assert len(evals) == 3 and all(math.isfinite(x) for x in evals)
    assert (out / "sprites60" / "export" / "dit.safetensors").is_file()

    # 4 clips of 32 px side by side with 2-px gaps, 65 frames (4 s)
    assert gif_frames(out / "side_by_side.gif").shape == (65, 32, 4 * 32 + 3 * 2, 3)
    assert iio.imread(out / "side_by_side.mp4", index=None).shape[0] == 65
    results = json.loads((out / "metrics.json").read_text())
    names = ["ground truth", "synchronous", "pyramid", "chained"]
    assert list(results["metrics"]) == names and list(results["delta_e"]) == names
    for name in names:
        m = results["metrics"][name]
        assert all(math.isfinite(m[k]) for k in ("drift_last", "drift_max", "seam_ratio", "temporal_flickering"))
        assert len(results["delta_e"][name]) == 4 and results["delta_e"][name][0] == 0.0  # seconds, vs second 0
    assert results["metrics"]["ground truth"]["drift_max"] < 2.0  # the reference line is what it claims
    assert iio.imread(out / "drift.png").shape[1] >= 800
