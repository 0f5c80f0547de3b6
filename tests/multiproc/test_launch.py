"""`wanjax launch` itself, with a command that fails at once (each case takes seconds)."""

import io
import re

import pytest

from wanjax.errors import WanjaxError
from wanjax.launch import launch, process_env


def test_each_process_gets_its_place_in_the_job():
    env = process_env(1, 2, 4321, 4)
    assert env["JAX_COORDINATOR_ADDRESS"] == "127.0.0.1:4321"
    assert (env["JAX_NUM_PROCESSES"], env["JAX_PROCESS_ID"], env["JAX_NUM_CPU_DEVICES"]) == ("2", "1", "4")
    assert "JAX_NUM_CPU_DEVICES" not in process_env(0, 2, 4321, None)  # JAX's own devices (TPU, GPU)


def test_a_failed_process_is_named_with_its_last_line(tmp_path):
    out = io.StringIO()
    with pytest.raises(WanjaxError) as e:
        launch(["export", str(tmp_path / "missing"), str(tmp_path / "dst")], 2, out=out)
    failed = re.match(
        r"process ([01]) \(pid \d+\) exited with status 2; ended the other 1\. Its last line: (.*)$", str(e.value)
    )
    error = f"wanjax export: error: {tmp_path / 'missing'} is not a sample folder"
    assert failed and failed[2].startswith(error), str(e.value)
    assert re.findall(r"^\[launch\] process (\d) of 2: pid \d+$", out.getvalue(), re.M) == ["0", "1"]
    assert f"[{failed[1]}] {error}" in out.getvalue()  # each output line prefixed with its process


def test_a_job_past_its_timeout_is_ended(tmp_path):
    with pytest.raises(WanjaxError, match=r"the job ran past --timeout 0.01 s; killed all 2 processes"):
        launch(["export", str(tmp_path / "missing"), str(tmp_path / "dst")], 2, timeout=0.01, out=io.StringIO())


@pytest.mark.parametrize(
    ("command", "nproc", "message"), [(["train", "c.yaml"], 0, "--nproc 0"), ([], 2, "no command to launch")]
)
def test_bad_arguments(command, nproc, message):
    with pytest.raises(WanjaxError, match=message):
        launch(command, nproc)
