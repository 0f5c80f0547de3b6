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
