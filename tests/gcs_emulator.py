"""A gcp-storage-emulator subprocess on a free loopback port, and the environment that points GCS clients at it.

Not a test module: test modules that talk to gs:// start it from a fixture. Nothing here reaches the network.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def client_env(url: str) -> dict[str, str]:
    """What google-cloud-storage, tensorstore, gcsfs and Orbax need to use the emulator at `url` (measured, see
    NOTES.md); must be in os.environ before those libraries are first used."""
    return {
        "STORAGE_EMULATOR_HOST": url,
        "TENSORSTORE_GCS_HTTP_URL": url,
        "GOOGLE_AUTH_TOKEN_FOR_TESTING": "dummy",
        "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",  # else gcsfs makes a TLS gRPC call per operation (~60 s hang)
        "FSSPEC_GCS_TOKEN": "anon",
    }


@contextlib.contextmanager
def running(bucket: str, log: Path) -> Iterator[str]:
    """Start an in-memory emulator with `bucket`; yield its URL once it answers; stop it by its PID."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    exe = Path(sys.executable).with_name("gcp-storage-emulator")
    cmd = [str(exe), "start", "--host", "127.0.0.1", "--port", str(port), "--default-bucket", bucket, "--in-memory"]
    with open(log, "wb") as out:
        # close_fds=False lets Python use posix_spawn instead of fork, which JAX (threaded) warns about; our fds
        # are non-inheritable anyway.
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, close_fds=False)
    try:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never via a proxy
        deadline = time.monotonic() + 30
        while True:
            try:
                opener.open(f"{url}/storage/v1/b/{bucket}", timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the GCS emulator did not start:\n{log.read_text()}") from None
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
