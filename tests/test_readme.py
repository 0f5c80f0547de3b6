"""The README's Python quickstart runs as written."""

import re
from pathlib import Path

README = Path(__file__).parents[1] / "README.md"


def test_python_quickstart_runs(tmp_path, monkeypatch):
    code = re.search(r"## Quickstart \(Python\)\n\n```python\n(.*?)```", README.read_text(), re.S).group(1)
    # The last lines load a real Wan folder, which tests do not have: run them on a tiny saved one instead.
    head, tail = code.split("dit = wanjax.load_dit(", 1)
    monkeypatch.chdir(Path(__file__).parents[1])
    scope: dict = {}
    exec(head, scope)
    assert scope["v"].shape == (1, 5, 8, 8, 16)
    assert scope["z"].shape == (1, 5, 8, 8, 16) and scope["video"].shape == (1, 17, 64, 64, 3)
    scope["wanjax"].save_dit(scope["dit"], tmp_path / "transformer")
    back = scope["wanjax"].load_dit(tmp_path / "transformer")
    assert back.cfg == scope["dit"].cfg


def test_brush_file_example_is_valid_and_compiles():
    from wanjax.motion import compile_brushes, load_brushes

    text = re.search(r"## Motion brushes\n.*?```json\n(.*?)```", README.read_text(), re.S).group(1)
    spec = load_brushes(text)
    assert [b["mode"] for b in spec["brushes"]] == ["path", "sway", "flow", "static", "camera"]
    tracks = compile_brushes(spec)
    assert tracks.xy.shape == (256, 17, 2) and set(tracks.brush_id[tracks.valid]) == {0, 1, 2, 3, 4}


def test_benchmark_block_is_bench_results_json():
    """The README's benchmark tables are exactly what `make bench` wrote to bench/results.json."""
    import json

    from wanjax.bench.report import markdown, readme_block

    result = json.loads((README.parent / "bench" / "results.json").read_text())
    assert readme_block(README.read_text()) == markdown(result)


def test_readme_training_command_runs_in_an_empty_folder(tmp_path):
    """The README's training example, as written (fewer steps), in a fresh folder: it builds the data set with the
    default settings (a TFDS config equal to the builder's own once failed here) and trains."""
    import json
    import os
    import subprocess
    import sys

    command = re.search(r"`(wanjax train configs/tiny\.yaml train\.steps=200)`", README.read_text()).group(1).split()
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "tiny.yaml").write_text((README.parent / "configs" / "tiny.yaml").read_text())
    args = [*command[1:-1], "train.steps=2", "train.eval_every=0", "train.checkpoint_every=0"]
    env = os.environ | {"XLA_FLAGS": ""}  # one CPU device, as a newcomer's machine
    out = subprocess.run(
        [sys.executable, "-m", "wanjax.cli", *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["status"] == "done" and result["end_step"] == 2
    assert (tmp_path / "data" / "brushsprites" / "t17_64x64_n2000-200_s0").is_dir()
