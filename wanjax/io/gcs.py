"""Upload files to gs://BUCKET/PREFIX with google-cloud-storage: whole objects only, verified, bounded.

* Nothing partial appears under a final name: GCS creates an object only when its upload completes. Files up to
  8 MiB go in one request (the library's cutoff); bigger ones as a resumable upload in `chunk_size` pieces whose
  session carries the file's crc32c, so GCS itself refuses to create an object from corrupted bytes.
* Each object's size and crc32c are read back and compared with the local file.
* Retries stop after `deadline_s`; what a user can fix (missing bucket, credentials, unreachable endpoint) is a
  one-line WanjaxError. `STORAGE_EMULATOR_HOST` (honoured by google-cloud-storage) points it at an emulator.

google-cloud-storage is imported inside the functions: the emulator's environment must be set before it is used.
"""

from __future__ import annotations

import base64
import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from wanjax.errors import WanjaxError

CHUNK_SIZE = 16 * 2**20  # resumable chunks must be multiples of 256 KiB
DEADLINE_S = 30.0  # give up retrying one request after this long: a dead endpoint fails in ~30 s, not minutes
TIMEOUT_S = (10.0, 60.0)  # (connect, read) per HTTP request


def split_url(url: str) -> tuple[str, str]:
    """'gs://bucket/a/b/' -> ('bucket', 'a/b')."""
    bucket, _, prefix = url.removeprefix("gs://").partition("/")
    if not url.startswith("gs://") or not bucket:
        raise WanjaxError(f"{url!r} is not a GCS location; use gs://BUCKET or gs://BUCKET/PREFIX")
    return bucket, prefix.strip("/")


def crc32c(path: Path) -> str:
    """base64 of the big-endian CRC32C of a file: the form GCS reports in object metadata."""
    import google_crc32c

    checksum = google_crc32c.Checksum()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(2**20), b""):
            checksum.update(block)
    return base64.b64encode(checksum.digest()).decode()


def upload_files(
    files: list[Path], url: str, *, chunk_size: int = CHUNK_SIZE, deadline_s: float = DEADLINE_S
) -> list[str]:
    """Upload `files` to `url`/NAME one by one (each whole or not at all). Returns the gs:// URLs written."""
    from google.cloud.storage.retry import DEFAULT_RETRY

    bucket_name, prefix = split_url(url)
    retry = DEFAULT_RETRY.with_timeout(deadline_s)
    written = []
    with _user_errors(bucket_name, deadline_s):
        bucket = _client().bucket(bucket_name)
        for path in files:
            name = f"{prefix}/{path.name}" if prefix else path.name
            _upload_verified(bucket.blob(name, chunk_size=chunk_size), Path(path), retry)
            written.append(f"gs://{bucket_name}/{name}")
    return written


def _client():
    from google.cloud import storage

    # Object uploads need no project; None skips project inference, which fails on machines that have
    # credentials but no default project.
    return storage.Client(project=None)


def _upload_verified(blob, path: Path, retry) -> None:
    size, crc = path.stat().st_size, crc32c(path)
    blob.upload_from_filename(str(path), checksum="crc32c", crc32c_checksum_value=crc, timeout=TIMEOUT_S, retry=retry)
    blob.reload(timeout=TIMEOUT_S, retry=retry)  # what GCS now serves under the final name
    if (blob.size, blob.crc32c) != (size, crc):
        blob.delete(timeout=TIMEOUT_S, retry=retry)
        raise WanjaxError(
            f"gs://{blob.bucket.name}/{blob.name} came back as {blob.size} bytes, crc32c {blob.crc32c}, but {path} "
            f"is {size} bytes, crc32c {crc}; the object was deleted: run the export again"
        )


@contextlib.contextmanager
def _user_errors(bucket: str, deadline_s: float) -> Iterator[None]:
    """Turn the storage stack's exceptions for fixable problems into one-line WanjaxErrors."""
    import requests
    from google.api_core import exceptions as api
    from google.auth import exceptions as auth
    from google.cloud.storage.exceptions import DataCorruption

    endpoint = os.environ.get("STORAGE_EMULATOR_HOST", "https://storage.googleapis.com")
    login = "run `gcloud auth application-default login`, or set GOOGLE_APPLICATION_CREDENTIALS to a key file"
    try:
        yield
    except api.NotFound as e:
        raise WanjaxError(
            f"bucket gs://{bucket} does not exist (or these credentials cannot see it): create it with "
            f"`gcloud storage buckets create gs://{bucket} --location=REGION`, or fix the bucket name"
        ) from e
    except (api.Unauthorized, auth.DefaultCredentialsError, auth.RefreshError) as e:
        raise WanjaxError(f"no usable Google Cloud credentials ({type(e).__name__}: {_first_line(e)}); {login}") from e
    except api.Forbidden as e:
        raise WanjaxError(
            f"these credentials may not write gs://{bucket} ({_first_line(e)}): grant them "
            f"roles/storage.objectUser on the bucket, or {login} as an account that may"
        ) from e
    except (api.RetryError, requests.ConnectionError, requests.Timeout, auth.TransportError) as e:
        raise WanjaxError(
            f"cannot reach GCS at {endpoint} (gave up after {deadline_s:g} s: {_first_line(e)}); check the network "
            "or proxy, or STORAGE_EMULATOR_HOST if you meant an emulator"
        ) from e
    except DataCorruption as e:
        raise WanjaxError(f"an upload to gs://{bucket} arrived corrupted ({_first_line(e)}): run it again") from e


def _first_line(e: Exception) -> str:
    return str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
