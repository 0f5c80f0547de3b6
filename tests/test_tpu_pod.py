"""scripts/tpu_pod.sh in DRY_RUN mode: the exact gcloud commands it would run (no gcloud, no cloud, here)."""

import os
import shlex
import subprocess
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).parents[1]
SCRIPT = REPO / "scripts" / "tpu_pod.sh"
SETTINGS = {"TPU_NAME": "pod1", "ZONE": "europe-west4-a", "ACCELERATOR": "v6e-16", "RUNTIME": "v2-alpha-tpuv6e"}
TPU = ["gcloud", "compute", "tpus", "tpu-vm"]
WHERE = ["--zone=europe-west4-a"]


def dry_run(*args: str, **env: str) -> list[list[str]]:
    """The commands the script prints, each split as the shell would."""
    env = {"PATH": os.environ["PATH"], "DRY_RUN": "1", **SETTINGS, **env}
    out = subprocess.run(["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, check=True)
    return [shlex.split(line) for line in out.stdout.splitlines()]


def test_create():
    assert dry_run("create") == [
        [*TPU, "create", "pod1", *WHERE, "--accelerator-type=v6e-16", "--version=v2-alpha-tpuv6e"]
    ]
    (spot,) = dry_run("create", SPOT="1", PROJECT="proj")
    assert spot == [
        *TPU, "create", "pod1", *WHERE, "--project=proj", "--accelerator-type=v6e-16", "--version=v2-alpha-tpuv6e",
        "--spot",
    ]  # fmt: skip


def test_install_copies_a_wheel_to_every_worker():
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    wheel = f"wanjax-{version}-py3-none-any.whl"
    build, scp, ssh = dry_run("install")
    assert build == ["python3", "-m", "pip", "wheel", "--no-deps", "--wheel-dir", f"{REPO}/dist", str(REPO)]
    assert scp == [*TPU, "scp", f"{REPO}/dist/{wheel}", f"pod1:{wheel}", *WHERE, "--worker=all"]
    assert ssh[:-1] == [*TPU, "ssh", "pod1", *WHERE, "--worker=all"]
    uv, venv = "~/.local/bin/uv", "~/wanjax-venv"
    assert shlex.split(ssh[-1].removeprefix("--command=")) == [
        "curl", "-LsSf", "https://astral.sh/uv/install.sh", "|", "sh",
        "&&", uv, "venv", "--python", "3.12", venv,
        "&&", uv, "pip", "install", "--python", venv, "jax[tpu]", "gcsfs", f"./{wheel}",
    ]  # fmt: skip


def test_install_from_a_git_url():
    (ssh,) = dry_run("install", WANJAX="wanjax @ git+https://github.com/org/wanjax@main")
    remote = shlex.split(ssh[-1].removeprefix("--command="))
    assert remote[-3:] == ["jax[tpu]", "gcsfs", "wanjax @ git+https://github.com/org/wanjax@main"]


def test_train_runs_on_all_workers_with_a_gcs_workdir():
    scp, ssh = dry_run("train", "configs/tiny.yaml", "train.steps=10", BUCKET="bkt")
    assert scp == [*TPU, "scp", "configs/tiny.yaml", "pod1:tiny.yaml", *WHERE, "--worker=all"]
    assert ssh[:-1] == [*TPU, "ssh", "pod1", *WHERE, "--worker=all"]
    assert shlex.split(ssh[-1].removeprefix("--command=")) == [
        "~/wanjax-venv/bin/wanjax", "train", "tiny.yaml", "train.workdir=gs://bkt/runs/pod1",
        "data.data_dir=gs://bkt/data", "train.steps=10",
    ]  # fmt: skip


def test_delete():
    assert dry_run("delete") == [[*TPU, "delete", "pod1", *WHERE, "--quiet"]]


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [(["train", "configs/tiny.yaml"], {}, "set BUCKET"), (["train"], {"BUCKET": "b"}, "usage"), (["nope"], {}, "ZONE")],
)
def test_bad_use_fails_with_a_message(args, env, message):
    full = {"PATH": os.environ["PATH"], "DRY_RUN": "1", **env}
    out = subprocess.run(["bash", str(SCRIPT), *args], env=full, capture_output=True, text=True)
    assert out.returncode != 0 and out.stdout == "" and message in out.stderr
