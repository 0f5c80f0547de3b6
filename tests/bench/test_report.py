"""`wanjax bench` runs each part in a fresh process with its own device count."""

import json
import os

import pytest

from wanjax.bench import report
from wanjax.bench.ring import ACCEPT
from wanjax.errors import WanjaxError


def test_child_env_sets_the_device_count_and_keeps_other_flags(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=8 --xla_cpu_foo=1")
    assert report.child_env(1)["XLA_FLAGS"] == "--xla_cpu_foo=1 --xla_force_host_platform_device_count=1"
    assert os.environ["XLA_FLAGS"].endswith("foo=1")  # the parent's environment is left alone


def test_ring_part_runs_apart_on_8_devices():
    rows = report.measure_apart("ring", 4096)
    assert [(r["tokens"], r["mask"], r["ring_devices"]) for r in rows] == [(4096, "full", 8), (4096, "causal", 8)]
    for r in rows:
        assert r["ring_mem_per_device_bytes"] > 0 and r["ratio_ring_to_dense_n8"] <= ACCEPT


def test_update_readme_rewrites_only_the_block(tmp_path):
    result = json.loads((report.REPO / "bench" / "results.json").read_text())
    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n\ntext\n{report.BEGIN}\n{report.END}\n\nafter\n")
    report.update_readme(readme, result)
    report.update_readme(readme, result)  # a second run replaces the block, it does not add another
    text = readme.read_text()
    assert text.startswith("# title\n\ntext\n") and text.endswith(f"{report.END}\n\nafter\n")
    assert report.readme_block(text) == report.markdown(result) and text.count(report.BEGIN) == 1
    readme.write_text("# no block\n")
    with pytest.raises(WanjaxError, match="README has no benchmark block"):
        report.update_readme(readme, result)
