"""`wanjax bench --suite accel --tiny`: the accelerator suite's whole code path at a tiny config on CPU."""

import json
import math

import pytest

from wanjax.bench import accel
from wanjax.cli import main

TIMED = ("forward", "train_step", "sampling")
NUMBERS = ("seconds", "flops", "tflops_per_s", "mfu")


def test_tiny_suite_writes_every_number_and_a_table_naming_the_device(tmp_path, capsys):
    path = tmp_path / "accel.json"
    assert main(["bench", "--suite", "accel", "--tiny", "--json", str(path)]) == 0
    r = json.loads(path.read_text())
    assert r["tiny"] and r["tokens"] == 320 and r["latent"] == [1, 5, 16, 16, 16] and r["sampling_steps"] == 2
    for part in TIMED:
        for key in NUMBERS:
            value = r[part][key]
            assert isinstance(value, float) and math.isfinite(value) and value > 0, (part, key, value)
    assert r["peak_flops_per_s"] > 0 and r["model"]["attention"] == "flash" and r["sampling"]["cfg_branches"] == 2
    assert r["train_step"]["flops"] == pytest.approx(3 * r["forward"]["flops"], rel=0.05)  # backward ≈ 2 × forward
    table = capsys.readouterr().out
    assert table == accel.markdown(r) + f"\n\nJSON in {path}\n" and r["device"] in table
    d = r["diffusers"]
    if d["status"] == "measured":  # torch is importable here: our converter's weights give diffusers our forward
        assert d["max_rel_error"] <= 1e-3 and all(d[k] > 0 for k in (*NUMBERS, "speedup"))
        assert "diffusers cpu float32 forward" in table
    else:
        assert d["status"].startswith("skipped: ") and d["status"] in table


def test_full_suite_on_cpu_asks_for_an_accelerator_or_tiny(capsys):
    assert main(["bench", "--suite", "accel"]) == 2
    err = capsys.readouterr().err.strip()
    assert "needs a GPU or TPU" in err and "--tiny" in err and "\n" not in err
    assert main(["bench", "--tiny"]) == 2 and "add --suite accel" in capsys.readouterr().err
