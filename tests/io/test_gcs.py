"""Export to gs:// against a local GCS emulator: round trip, whole-object uploads, errors with the fix."""

import json
import os
import time
import uuid

import numpy as np
import pytest
import requests
from gcs_emulator import client_env, free_port, running
from google.auth.transport.requests import AuthorizedSession

from wanjax.cli import main
from wanjax.errors import WanjaxError
from wanjax.io.export import export, write_sample
from wanjax.io.gcs import upload_files

BUCKET = "wanjax-test"


@pytest.fixture(scope="session")
def emulator(tmp_path_factory):
    with running(BUCKET, tmp_path_factory.mktemp("gcs") / "emulator.log") as url:
        yield url


@pytest.fixture
def bucket(emulator, monkeypatch):
    """The emulator's bucket, with the environment pointing at it for this test only."""
    for key, value in client_env(emulator).items():
        monkeypatch.setenv(key, value)
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    return storage.Client(project="test", credentials=AnonymousCredentials()).bucket(BUCKET)


@pytest.fixture(scope="module")
def sample_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("sample")
    frames = np.random.default_rng(0).integers(0, 256, (5, 16, 24, 3), dtype=np.uint8)
    write_sample(out, frames, fps=16, meta={"seed": 7, "prompt": "a red square"}, latents=np.ones((2, 2, 3, 16)))
    return out


def _names(bucket, prefix):
    return sorted(b.name.removeprefix(prefix) for b in bucket.client.list_blobs(bucket, prefix=prefix))


def test_export_round_trip(bucket, sample_dir):
    prefix = f"rt-{uuid.uuid4().hex}/"
    urls = export(sample_dir, f"gs://{BUCKET}/{prefix}")
    expected = sorted(f.name for f in sample_dir.iterdir())
    assert expected == [f"sample.{ext}" for ext in ("gif", "json", "mp4", "npz", "png")]
    assert urls == [f"gs://{BUCKET}/{prefix}{name}" for name in expected]
    assert _names(bucket, prefix) == expected
    for name in expected:
        assert bucket.blob(prefix + name).download_as_bytes() == (sample_dir / name).read_bytes(), name
    meta = json.loads(bucket.blob(prefix + "sample.json").download_as_text())
    assert meta == {"seed": 7, "prompt": "a red square"}


def test_missing_bucket_names_it_and_the_fix(bucket, sample_dir):
    with pytest.raises(WanjaxError, match=r"gs://no-such-bucket does not exist.*gcloud storage buckets create"):
        export(sample_dir, "gs://no-such-bucket/x")


def test_interrupted_upload_leaves_nothing_under_the_final_name(bucket, tmp_path, monkeypatch):
    # > 8 MiB, so it goes as a resumable upload: 9 chunks of 1 MiB; the connection dies after 2 of them.
    big = tmp_path / "big.npz"
    big.write_bytes(np.random.default_rng(1).bytes(9 * 2**20))
    prefix = f"cut-{uuid.uuid4().hex}"
    chunks = []
    send = AuthorizedSession.request

    def flaky(self, method, url, *args, **kwargs):
        if method == "PUT" and "upload_id=" in url:
            chunks.append(kwargs.get("headers", {}).get("content-range"))
            if len(chunks) > 2:
                raise requests.ConnectionError("connection reset (injected by the test)")
        return send(self, method, url, *args, **kwargs)

    monkeypatch.setattr(AuthorizedSession, "request", flaky)
    with pytest.raises(WanjaxError, match="cannot reach GCS"):
        upload_files([big], f"gs://{BUCKET}/{prefix}", chunk_size=2**20, deadline_s=1.0)
    assert chunks[:2] == ["bytes 0-1048575/9437184", "bytes 1048576-2097151/9437184"]  # 2 MiB reached the server
    assert _names(bucket, prefix + "/") == []
    monkeypatch.setattr(AuthorizedSession, "request", send)  # the same upload, uninterrupted, lands whole
    assert upload_files([big], f"gs://{BUCKET}/{prefix}", chunk_size=2**20) == [f"gs://{BUCKET}/{prefix}/big.npz"]
    assert bucket.blob(f"{prefix}/big.npz").download_as_bytes() == big.read_bytes()


def test_unreachable_endpoint_fails_fast_with_the_fix(sample_dir, monkeypatch):
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    t0 = time.monotonic()
    with pytest.raises(WanjaxError, match="cannot reach GCS at http://127.0.0.1.*STORAGE_EMULATOR_HOST"):
        upload_files(sorted(sample_dir.iterdir()), f"gs://{BUCKET}/x", deadline_s=1.0)
    assert time.monotonic() - t0 < 10


def test_missing_credentials_say_how_to_log_in(sample_dir, tmp_path, monkeypatch):
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing-key.json"))
    # Were credentials found after all, requests would go to this dead loopback port, never to Google.
    monkeypatch.setenv("API_ENDPOINT_OVERRIDE", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(WanjaxError, match="no usable Google Cloud credentials.*gcloud auth application-default login"):
        upload_files(sorted(sample_dir.iterdir()), f"gs://{BUCKET}/x", deadline_s=1.0)


def test_cli_sample_lands_in_the_bucket(bucket):
    fast = ["sample.frames=5", "sample.height=32", "sample.width=32", "sample.steps=2"]
    tiny = os.path.join(os.path.dirname(__file__), "..", "..", "configs", "tiny.yaml")
    assert main(["sample", tiny, "--out", f"gs://{BUCKET}/run1", *fast]) == 0
    assert _names(bucket, "run1/") == [f"sample.{ext}" for ext in ("gif", "json", "mp4", "npz", "png")]
    meta = json.loads(bucket.blob("run1/sample.json").download_as_text())
    assert meta["config"]["sample"]["frames"] == 5
