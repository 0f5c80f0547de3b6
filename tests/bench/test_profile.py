"""The step profiler: self times from nested trace events, op_name groups, and a real trace of a jitted function and
of the brush train step, whose parts show under the model's named scopes."""

from pathlib import Path

import jax
import jax.numpy as jnp
import pytest

from wanjax.bench.profile import COMPILER, group, markdown, op_names, profile, self_times
from wanjax.bench.train import brush_batch, step_and_state
from wanjax.config import load_config

BRUSH = Path(__file__).parents[2] / "configs" / "brushsprites.yaml"
SMALL = ["data.frames=9", "data.height=32", "data.width=32", "train.batch_size=2", "model.num_layers=1"]


def test_self_times_subtract_nested_events_per_thread():
    events = [
        {"name": "while.1", "ts": 0, "dur": 100, "pid": 1, "tid": 1},
        {"name": "dot.1", "ts": 10, "dur": 30, "pid": 1, "tid": 1},
        {"name": "add.1", "ts": 50, "dur": 20, "pid": 1, "tid": 1},
        {"name": "mul.1", "ts": 55, "dur": 5, "pid": 1, "tid": 1},  # nested in add.1
        {"name": "dot.2", "ts": 20, "dur": 40, "pid": 1, "tid": 2},  # another thread: not a child of while.1
    ]
    assert self_times(events) == [50.0, 30.0, 15.0, 5.0, 40.0]


@pytest.mark.parametrize(
    ("op_name", "expect"),
    [
        ("jit(step)/jvp(blocks)/while/body/closed_call/dot_general", "blocks"),
        ("jit(step)/transpose(jvp(blocks))/while/body/closed_call/reshape", "backward blocks"),
        ("jit(step)/jvp(motion_embed)/bfkqp,bpc->bfkqc/dot_general", "motion_embed"),
        ("jit(step)/jvp(warp_guide)/vmap()/gather", "warp_guide"),
        ("jit(step)/jvp(jit(_normal))/jit(_normal_real)/erf_inv", "random numbers"),
        ("jit(step)/transpose(jvp(jit(silu)))", "backward other: silu"),
        ("jit(step)/jvp()/concatenate", "other: concatenate"),
        ("", COMPILER),
    ],
)
def test_groups_by_named_scope_then_primitive(op_name, expect):
    assert group(op_name) == expect


def test_op_names_read_the_compiled_metadata():
    text = (
        '  %dot.3 = f32[4,4]{1,0} dot(%a, %b), metadata={op_name="jit(f)/blocks/dot_general" stack_frame_id=2}\n'
        "  %copy.7 = f32[4,4]{1,0} copy(%dot.3)\n"
        '  ROOT %add.1 = f32[4,4]{1,0} add(%copy.7, %a), metadata={op_name="jit(f)/add"}\n'
    )
    assert op_names(text) == {"dot.3": "jit(f)/blocks/dot_general", "copy.7": "", "add.1": "jit(f)/add"}


def test_profile_of_a_jitted_function_finds_its_scoped_matmuls():
    @jax.jit
    def f(x):
        with jax.named_scope("blocks"):
            for _ in range(4):
                x = jnp.tanh(x @ x)
        return x, jnp.cumsum(x[:8], axis=1)  # outside the scope: not fused into the matmuls

    x = jax.random.normal(jax.random.key(0), (384, 384)) / 20
    report = profile(f, x, runs=3)
    assert 0 < report["wall_s"] < 5 and 0.3 * report["wall_s"] < report["op_s"] < 3 * report["wall_s"]
    assert report["groups"]["blocks"] > 0.7 * report["op_s"]  # 4 matmuls of 384² vs a cumsum of 8 rows
    assert report["groups"]["other: reduce_window_sum"] > 0  # how XLA runs cumsum on CPU
    assert abs(sum(report["groups"].values()) - report["op_s"]) < 1e-9
    assert report["ops"][0][1] == "jit(f)/blocks/dot_general"  # the costliest op: a matmul
    assert "| blocks |" in markdown(report)


@pytest.mark.parametrize("stored", [True, False])
def test_the_brush_train_step_shows_its_parts(stored):
    """The shipped brush step reads its warp guide with the batch (data.cache_guide); computed in the step, the guide
    shows as a part of its own, without a gradient."""
    cfg = load_config(BRUSH, [*SMALL, f"data.cache_guide={str(stored).lower()}"])
    data = brush_batch(cfg)[0]
    assert ("guide" in data) == stored
    step, state = step_and_state(cfg, data)
    report = profile(step, state, data, runs=2, donate=True)
    groups = report["groups"]
    for part in ("blocks", "backward blocks", "motion_embed", "backward motion_embed"):
        assert groups.get(part, 0) > 0, (part, sorted(groups))
    assert (groups.get("warp_guide", 0) > 0) != stored, sorted(groups)
    assert "backward warp_guide" not in groups  # the guide is a function of the batch: no gradient
    assert 0.3 * report["wall_s"] < report["op_s"] < 3 * report["wall_s"]
