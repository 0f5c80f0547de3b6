"""`wanjax bench` runs each part in a fresh process with its own device count."""

import os

from wanjax.bench import report
from wanjax.bench.ring import ACCEPT


def test_child_env_sets_the_device_count_and_keeps_other_flags(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=8 --xla_cpu_foo=1")
    assert report.child_env(1)["XLA_FLAGS"] == "--xla_cpu_foo=1 --xla_force_host_platform_device_count=1"
    assert os.environ["XLA_FLAGS"].endswith("foo=1")  # the parent's environment is left alone


def test_ring_part_runs_apart_on_8_devices():
    rows = report.measure_apart("ring", 4096)
    assert [(r["tokens"], r["mask"], r["ring_devices"]) for r in rows] == [(4096, "full", 8), (4096, "causal", 8)]
    for r in rows:
        assert r["ring_mem_per_device_bytes"] > 0 and r["ratio_ring_to_dense_n8"] <= ACCEPT
