"""The Orbax Checkpointer saves to and restores from gs:// (a local GCS emulator): save, keep-N, restore.

The check runs in a fresh Python process: tensorstore, fsspec and gcsfs read their endpoint/credential
environment once per process, and must not keep emulator settings for the other test modules.
"""

import importlib.util
import os
import subprocess
import sys
import textwrap
import uuid
import warnings
from pathlib import Path

import pytest
from gcs_emulator import client_env, running

BUCKET = "wanjax-ckpt"
REPO = Path(__file__).parents[2]

CHECK = textwrap.dedent("""
    import sys
    from pathlib import Path

    import jax.numpy as jnp
    import numpy as np
    from google.cloud import storage

    from wanjax.train.checkpoint import Checkpointer, abstract_like

    url = sys.argv[1]
    bucket, prefix = url.removeprefix("gs://").split("/", 1)
    state = {"w": jnp.arange(12.0).reshape(3, 4), "b": {"n": jnp.ones((5,), jnp.int32)}}
    ckpt = Checkpointer(url, keep=2)
    for step in (1, 2, 3):
        ckpt.save(step, {"w": state["w"] * step, "b": state["b"]}, meta={"lr": 0.5})
        ckpt.wait()
    assert ckpt.steps() == [2, 3], ckpt.steps()
    step, restored, meta = ckpt.restore(abstract_like(state))
    assert step == 3 and meta["lr"] == 0.5, (step, meta)
    np.testing.assert_array_equal(restored["w"], np.arange(12.0).reshape(3, 4) * 3)
    np.testing.assert_array_equal(restored["b"]["n"], np.ones(5, np.int32))
    _, older, _ = ckpt.restore(abstract_like(state), step=2)
    np.testing.assert_array_equal(older["w"], np.arange(12.0).reshape(3, 4) * 2)
    ckpt.close()
    names = [b.name for b in storage.Client().list_blobs(bucket, prefix=prefix + "/")]
    assert any(n.startswith(prefix + "/3/") for n in names), names
    assert not any(n.startswith(prefix + "/1/") for n in names), "keep=2 should have deleted step 1"
    assert not Path("gs:").exists(), "wrote to a local folder named gs: instead of the bucket"
""")


@pytest.fixture(scope="session")
def emulator(tmp_path_factory):
    with running(BUCKET, tmp_path_factory.mktemp("gcs") / "emulator.log") as url:
        yield url


def _check(url: str, emulator: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, **client_env(emulator), "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(REPO)}
    env.pop("XLA_FLAGS", None)  # one CPU device is enough here
    cmd = [sys.executable, "-c", CHECK, url]
    return subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(
    importlib.util.find_spec("gcsfs") is None,
    reason="Orbax reaches gs:// through etils.epath, which needs gcsfs (or TensorFlow): pip install gcsfs",
)
def test_checkpointer_round_trip_on_gcs(emulator, tmp_path):
    # The emulator has dropped an OCDBT write now and then (BrokenPipe in its log, see NOTES.md): one retry on a
    # fresh prefix, reported, rather than a looser check.
    first = _check(f"gs://{BUCKET}/ckpt-{uuid.uuid4().hex}", emulator, tmp_path)
    if first.returncode != 0:
        warnings.warn(f"GCS checkpoint check failed once, retrying:\n{first.stderr[-2000:]}", stacklevel=1)
        second = _check(f"gs://{BUCKET}/ckpt-{uuid.uuid4().hex}", emulator, tmp_path)
        assert second.returncode == 0, second.stderr[-4000:]
