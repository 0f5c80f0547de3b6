"""Mesh construction, logical axis rules and the errors users see for sizes that cannot work."""

import dataclasses

import jax
import pytest
from jax.sharding import PartitionSpec as P

from wanjax.config import MeshConfig
from wanjax.errors import WanjaxError
from wanjax.parallel.mesh import (
    AXES,
    check_divisible,
    device_grid,
    logical_to_spec,
    make_mesh,
    maybe_initialize_distributed,
    process_count_hint,
)


@dataclasses.dataclass(frozen=True)
class FakeDevice:
    """Just enough of a TPU device for mesh_utils' topology-free path: an id and the slice it sits in."""

    id: int
    slice_index: int
    platform: str = "cpu"
    device_kind: str = "cpu"


@pytest.mark.parametrize(
    ("cfg", "shape"),
    [
        (MeshConfig(), (1, 8, 1, 1)),
        (MeshConfig(data=2, fsdp=1, ring=2, tensor=2), (2, 1, 2, 2)),
        (MeshConfig(fsdp=1, ring=-1, tensor=2), (1, 1, 4, 2)),
    ],
)
def test_make_mesh_sizes(cfg, shape):
    mesh = make_mesh(cfg)
    assert mesh.axis_names == AXES
    assert tuple(mesh.shape.values()) == shape
    assert sorted(d.id for d in mesh.devices.flat) == sorted(d.id for d in jax.devices())


def test_make_mesh_on_some_devices():
    mesh = make_mesh(MeshConfig(fsdp=1, ring=4), jax.devices()[:4])
    assert mesh.shape["ring"] == 4 and mesh.devices.size == 4


def test_hybrid_mesh_stacks_whole_slices_along_dcn():
    devices = [FakeDevice(i, i // 4) for i in range(8)]
    grid = device_grid(MeshConfig(dcn_data=2, fsdp=-1), devices)
    assert grid.shape == (2, 4, 1, 1)
    assert {d.slice_index for d in grid[0].flat} == {0} and {d.slice_index for d in grid[1].flat} == {1}
    grid = device_grid(MeshConfig(fsdp=2, ring=-1, dcn_ring=-1), devices)
    assert grid.shape == (1, 2, 4, 1)
    with pytest.raises(WanjaxError, match=r"multiply to 4, but the devices form 2 slices"):
        device_grid(MeshConfig(dcn_data=4, fsdp=-1), devices)


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        (MeshConfig(data=3, fsdp=1), r"data=3 fsdp=1 ring=1 tensor=1 needs 3 devices, but there are 8"),
        (MeshConfig(data=2, fsdp=2, ring=4, tensor=2), r"needs 32 devices, but there are 8"),
        (MeshConfig(data=-1, fsdp=-1), r"mesh.data and mesh.fsdp are both -1"),
        (MeshConfig(data=3, fsdp=-1), r"mesh.fsdp=-1 cannot fill: the other ICI sizes multiply to 3"),
        (MeshConfig(tensor=0), r"mesh.tensor=0: mesh sizes are positive"),
    ],
)
def test_mesh_errors_name_sizes_and_device_count(cfg, message):
    with pytest.raises(WanjaxError, match=message):
        make_mesh(cfg)


def test_logical_to_spec():
    assert logical_to_spec(("batch", "tokens", "heads", "kv")) == P(("data", "fsdp"), "ring", "tensor", None)
    assert logical_to_spec(("embed", "mlp")) == P("fsdp", "tensor")
    assert logical_to_spec(("layers", None, "act_embed")) == P(None, None, None)
    with pytest.raises(WanjaxError, match=r"logical axis 'pixels' has no sharding rule"):
        logical_to_spec(("batch", "pixels"))
    with pytest.raises(WanjaxError, match=r"map mesh axis 'fsdp' twice"):
        logical_to_spec(("batch", "embed"))


def test_divisibility_errors_say_what_works():
    mesh = make_mesh(MeshConfig(fsdp=1, tensor=8))
    check_divisible("model.num_heads", 16, mesh, "tensor")
    with pytest.raises(WanjaxError, match=r"model.num_heads=12 is not divisible by .*tensor = 8.*1, 2, 3, 4, 6, 12"):
        check_divisible("model.num_heads", 12, mesh, "tensor")


def test_distributed_init_is_a_no_op_on_one_host():
    assert process_count_hint({}) == 1
    assert process_count_hint({"TPU_WORKER_HOSTNAMES": "t1v-0"}) == 1
    assert process_count_hint({"TPU_WORKER_HOSTNAMES": "a,b,c,d", "MEGASCALE_NUM_SLICES": "2"}) == 4
    assert process_count_hint({"SLURM_NTASKS": "16"}) == 16
    assert maybe_initialize_distributed({}) is False
    assert not jax.distributed.is_initialized()
