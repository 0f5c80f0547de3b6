"""The AOT memory table (wanjax.bench.memory) at toy size: the same code path as the 14B table (the real train step
compiled from abstract shapes on a fake mesh, here 4 x 2 of the 8 test devices, with ring attention)."""

from wanjax.bench.memory import BASE, markdown, rows, table

# A tiny Wan2.1-I2V: condition channels, CLIP image branch; 17 frames at 128 x 128 (5 latent frames of 8 x 8 tokens)
TINY = [
    "model.dim=64", "model.ffn_dim=128", "model.num_heads=2", "model.num_layers=2", "model.text_dim=32",
    "model.freq_dim=32", "model.image_dim=16", "model.added_kv_proj_dim=64", "vae.preset=tiny",
    "sample.frames=17", "sample.height=128", "sample.width=128",
]  # fmt: skip
MESH = {"fsdp4xring2": ["mesh.fsdp=4", "mesh.ring=2"]}


def test_memory_table_at_toy_size():
    wanted = ("full/remat=none", "full/remat=full", "lora64/remat=full")
    # rank 4: rank 64 would outweigh a 64-wide toy model's weights
    named = {
        k: [*v, "train.lora_rank=4"] if "lora" in k else v
        for k, v in rows(MESH).items()
        if k.endswith(wanted) and "bf16" not in k
    }
    results = {r["row"].split("/", 1)[1]: r for r in table(BASE, named, TINY, log=lambda _: None)}
    assert set(results) == set(wanted)
    for r in results.values():
        assert r["mesh"] == {"data": 1, "fsdp": 4, "ring": 2, "tensor": 1} and r["batch"] == 4
        assert r["latents"] == [5, 16, 16, 16]
        size = r["bytes"]
        assert min(size.values()) > 0
        assert size["total"] == size["argument"] + size["output"] - size["alias"] + size["temp"]
    full, none, lora = results["full/remat=full"], results["full/remat=none"], results["lora64/remat=full"]
    assert full["bytes"]["temp"] < none["bytes"]["temp"]
    # LoRA: the base weights frozen (no EMA, no Adam moments), so far less state per device
    assert lora["trained_params"] < full["trained_params"] / 2 and lora["frozen_params"] > 0
    assert lora["bytes"]["argument"] < full["bytes"]["argument"]
    table_md = markdown(list(results.values()))
    assert table_md.count("\n") == 4 and "fsdp4xring2/lora64/remat=full" in table_md
