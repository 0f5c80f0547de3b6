"""The pod projection's shapes and arithmetic (a FLOP model: its inputs are checked, not its accuracy)."""

from wanjax.bench.projection import ASSUME, CHIPS, MODELS, markdown, project
from wanjax.model.flops import dit_flops


def test_rows_use_the_real_shapes_and_the_stated_assumptions():
    rows = {(r["model"], r["video"], r["seconds"]): r for r in project(chips=64)}
    assert len(rows) == 8
    assert rows["1.3B", "480p", 5]["tokens"] == 32_760  # 81 frames at 480x832: 21 x 30 x 52 (the figure)
    assert rows["14B", "720p", 60]["latent"] == [241, 90, 160] and rows["14B", "720p", 60]["tokens"] == 867_600
    r = rows["14B", "480p", 60]
    forward = dit_flops(MODELS["14B"], 241, 60, 104, ASSUME["text_tokens"])["forward"]
    expected = ASSUME["steps"] * ASSUME["cfg_forwards"] * forward / (64 * CHIPS["v5p"]["peak"] * ASSUME["mfu"])
    assert abs(r["v5p"]["sample_s"] - expected) <= 1e-9 * expected
    assert r["v5p"]["ring_hidden"] and not rows["1.3B", "480p", 5]["v5p"]["ring_hidden"]  # short clips: too little
    assert markdown(list(rows.values())).count("\n") == 9
