"""`wanjax studio` on the command line: its options, and the one-line errors it gives before serving anything."""

import re
import socket
from pathlib import Path

import pytest

from wanjax.cli import main

ROOT = Path(__file__).parents[2]


def test_help_lists_every_option(capsys):
    with pytest.raises(SystemExit) as done:
        main(["studio", "--help"])
    assert done.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for option in ("[CONFIG]", "[--ckpt DIR]", "[--port N]", "--host", "--share", "(default: 127.0.0.1)"):
        assert option in text


@pytest.mark.timeout(120)  # a bug here would serve forever
def test_a_model_without_brushes_is_refused(capsys):
    assert main(["studio", str(ROOT / "configs" / "sprites60.yaml")]) == 2  # the bundled long-video model
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no motion input" in err and "configs/brushsprites.yaml" in err


@pytest.mark.timeout(120)
def test_a_taken_port_is_one_line_and_leaves_no_files(capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["studio", "--port", str(port)]) == 2
    out, err = capsys.readouterr()
    assert len(err.strip().splitlines()) == 1 and f"127.0.0.1:{port}" in err and "another --port" in err
    assert not Path(re.search(r"temporary files in (\S+)", out).group(1)).exists()
