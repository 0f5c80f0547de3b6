"""The Wan2.1 diffusion transformer (diffusers `WanTransformer3DModel`), channels-last, in flax.nnx.

    v = WanDiT(cfg, rngs=nnx.Rngs(0))(x, t, context)
    x [B, F, H, W, C] latents, t [B] or [B, F] (one timestep per latent frame), context [B, M, text_dim]
    -> velocity [B, F, H, W, C]

Tokens are patches (1, 2, 2) in time-major order (frame, row, column), L = F * S with S = H/2 * W/2 tokens
per latent frame; adaLN modulation is computed per latent frame and broadcast to that frame's tokens.
Blocks are created once with `nnx.vmap` and applied with `lax.scan` (model.scan_layers=false: a Python loop),
optionally rematerialised.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from wanjax.config import MeshConfig, ModelConfig
from wanjax.diffusion.flow import NUM_TRAIN_TIMESTEPS
from wanjax.errors import WanjaxError
from wanjax.model.attention import attention, dot_attention
from wanjax.model.flash import RESIDUALS
from wanjax.model.guide import warp_guide
from wanjax.model.layers import (
    FeedForward,
    ImageEmbedder,
    LayerNorm,
    RMSNorm,
    TextEmbedder,
    TimeEmbedder,
    dense,
    layer_norm,
    modulate,
)
from wanjax.model.motion import Motion, MotionEmbed
from wanjax.model.pixel import subframe_ramp
from wanjax.model.rope import apply_rope, rope_angles, rope_tables
from wanjax.parallel.mesh import check_divisible
from wanjax.parallel.partition import constrain

FRAMES_LAYOUT = ("batch", "frames", None, "act_embed")  # activations [B, F, S, D]


@dataclasses.dataclass(frozen=True)
class AttnSpec:
    """How self-attention runs for one forward: keyword arguments of `wanjax.attention` except q, k, v.

    With a mesh, activations are also constrained to it: batch over (data, fsdp), latent frames over ring.
    """

    impl: str = "dense"
    mask: str = "full"
    window: int | None = None
    sink_frames: int = 0
    segment_frames: int = 1
    mesh: jax.sharding.Mesh | None = None

    @classmethod
    def from_config(cls, mcfg: MeshConfig, mesh: jax.sharding.Mesh | None, **mask) -> AttnSpec:
        """impl from mesh.attention. 'auto': ring when the mesh has a ring axis > 1, or on an accelerator mesh of
        several devices (with a ring of 1 that is blockwise attention on each device's own tokens: dense, flash or
        sdpa traced outside shard_map materialise the scores, or gather the batch onto every device: 286 GB per
        device for Wan2.1-14B at 480p on 64 chips, `wanjax.bench.memory`); else, on one CPU device, flash for the
        full mask and blockwise for the others (the fastest there: 5,376 tokens full, grad 0.63 s vs 2.5 s dense;
        3,856 tokens causal, 0.31 s vs 0.54 s); else, on one GPU, sdpa for the full mask (cuDNN's flash
        attention); else dense (XLA fuses it: the small CPU test meshes)."""
        impl = mcfg.attention
        if impl == "auto":
            backend, full = jax.default_backend(), mask.get("mask", "full") == "full"
            several = mesh is not None and mesh.size > 1
            if (mesh is not None and mesh.shape["ring"] > 1) or (several and backend != "cpu"):
                impl = "ring"
            elif backend == "cpu" and (mesh is None or mesh.size == 1):
                impl = "flash" if full else "blockwise"
            elif backend == "gpu" and full and not several:
                impl = "sdpa"
            else:
                impl = "dense"
        return cls(impl=impl, segment_frames=mcfg.segment_frames, mesh=mesh, **mask)

    def check(self, cfg: ModelConfig) -> None:
        # Any frame count works: ring attention pads the frames the ring cannot split, and the activation
        # constraints over a frame count the ring does not divide are padded by XLA (uneven shards).
        if self.mesh is not None:
            check_divisible("model.num_heads", cfg.num_heads, self.mesh, "tensor")

    def __call__(self, q: jax.Array, k: jax.Array, v: jax.Array, tokens_per_frame: int, cache=None) -> jax.Array:
        return attention(
            q, k, v, tokens_per_frame=tokens_per_frame, segment_frames=self.segment_frames, mask=self.mask,
            window=self.window, sink_frames=self.sink_frames, impl=self.impl, mesh=self.mesh, cache=cache,
        )  # fmt: skip


class Attention(nnx.Module):
    """Multi-head attention with RMS-normed q/k (over all heads). Self-attention when `context` is None. image:
    also attend to the image tokens (Wan2.1-I2V's cross-attention) through their own key/value projections."""

    def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs, image: bool = False):
        d = cfg.dim
        self.num_heads = cfg.num_heads
        self.to_q = dense(cfg, d, d, ("embed", "heads"), rngs)
        self.to_k = dense(cfg, d, d, ("embed", "heads"), rngs)
        self.to_v = dense(cfg, d, d, ("embed", "heads"), rngs)
        self.to_out = dense(cfg, d, d, ("heads", "embed"), rngs)
        self.norm_q = RMSNorm(d, cfg.eps, cfg)
        self.norm_k = RMSNorm(d, cfg.eps, cfg)
        if image:
            self.add_k_proj = dense(cfg, cfg.added_kv_proj_dim, d, ("embed", "heads"), rngs)
            self.add_v_proj = dense(cfg, cfg.added_kv_proj_dim, d, ("embed", "heads"), rngs)
            self.norm_added_k = RMSNorm(d, cfg.eps, cfg)

    def __call__(self, x: jax.Array, context: jax.Array | None = None, rope=None, attend=None, image=None):
        """x [B, L, D], context [B, M, D] -> [B, L, D]. rope = (cos, sin) [L, K/2]; attend(q, k, v) self-attn;
        image [B, I, D] embedded image tokens, attended to apart from the text and the two results added."""
        src = x if context is None else context
        heads = lambda a: a.reshape(*a.shape[:2], self.num_heads, -1)  # noqa: E731  [B, L, D] -> [B, L, N, K]
        q = heads(self.norm_q(self.to_q(x)))
        k = heads(self.norm_k(self.to_k(src)))
        v = heads(self.to_v(src))
        if context is None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
            out = attend(q, k, v)
        else:
            out = dot_attention(q, k, v)
        if image is not None:
            out = out + dot_attention(
                q, heads(self.norm_added_k(self.add_k_proj(image))), heads(self.add_v_proj(image))
            )
        return self.to_out(out.reshape(x.shape))


class Block(nnx.Module):
    """adaLN-modulated self-attention, cross-attention to text (and image), GELU FFN (diffusers
    `WanTransformerBlock`)."""

    def __init__(self, cfg: ModelConfig, rngs: nnx.Rngs):
        self.eps = cfg.eps
        self.attn1 = Attention(cfg, rngs)
        self.attn2 = Attention(cfg, rngs, image=cfg.image_dim is not None)
        self.norm2 = LayerNorm(cfg.dim, cfg.eps, cfg) if cfg.cross_attn_norm else None
        self.ffn = FeedForward(cfg, rngs)
        table = jax.random.normal(rngs.params(), (6, cfg.dim), jnp.dtype(cfg.param_dtype)) / cfg.dim**0.5
        self.scale_shift_table = nnx.Param(table, logical_axes=(None, "embed"))

    def __call__(self, x, context, mod, rope, attend, image=None) -> jax.Array:
        """x [B, F, S, D], context [B, M, D], mod [B, F, 6, D], image [B, I, D] or None -> [B, F, S, D]."""
        B, F, S, D = x.shape
        flat = lambda a: a.reshape(B, F * S, D)  # noqa: E731
        frames = lambda a: a.reshape(B, F, S, D)  # noqa: E731
        mod = self.scale_shift_table[...].astype(jnp.float32) + mod.astype(jnp.float32)
        shift, scale, gate, c_shift, c_scale, c_gate = (mod[:, :, i, None] for i in range(6))
        h = (layer_norm(x, self.eps) * (1 + scale) + shift).astype(x.dtype)
        x = (x + frames(self.attn1(flat(h), rope=rope, attend=attend)) * gate).astype(x.dtype)
        h = x if self.norm2 is None else self.norm2(x).astype(x.dtype)
        x = x + frames(self.attn2(flat(h), context, image=image))
        h = (layer_norm(x, self.eps) * (1 + c_scale) + c_shift).astype(x.dtype)
        return (x + self.ffn(h) * c_gate).astype(x.dtype)


REMAT_POLICIES = {
    "full": None,  # save nothing: recompute the whole block in backward
    # Matmul outputs, and flash / ring attention's output and log-sum-exp (flash.RESIDUALS): without them,
    # backward would run the whole attention forward again (for ring attention, a second pass round the ring).
    "dots": jax.checkpoint_policies.save_from_both_policies(
        jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
        jax.checkpoint_policies.save_only_these_names(RESIDUALS),
    ),
}


class WanDiT(nnx.Module):
    def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
        cfg.validate()
        self.cfg = cfg
        patch_in = (
            int(np.prod(cfg.patch_size)) * cfg.in_channels * (1 + cfg.first_frame_concat + (cfg.residual == "warp"))
        )
        self.patch_embedding = dense(cfg, patch_in, cfg.dim, (None, "embed"), rngs)
        self.time_embedder = TimeEmbedder(cfg, rngs)
        self.text_embedder = TextEmbedder(cfg, rngs)
        self.image_embedder = nnx.data(ImageEmbedder(cfg, rngs) if cfg.image_dim is not None else None)

        @nnx.split_rngs(splits=cfg.num_layers)
        @nnx.vmap(in_axes=(0,), out_axes=0)
        def make_blocks(rngs: nnx.Rngs) -> Block:
            return Block(cfg, rngs)

        self.blocks = make_blocks(rngs)
        table = jax.random.normal(rngs.params(), (2, cfg.dim), jnp.dtype(cfg.param_dtype)) / cfg.dim**0.5
        self.scale_shift_table = nnx.Param(table, logical_axes=(None, "embed"))
        patch_out = int(np.prod(cfg.patch_size)) * cfg.out_channels
        self.proj_out = dense(cfg, cfg.dim, patch_out, ("embed", None), rngs, zero=cfg.residual != "none")
        if cfg.motion != "none":  # created last: the other parameters are those of the same model without it
            self.motion_embed = MotionEmbed(cfg, rngs)
            motion_in = int(np.prod(cfg.patch_size)) * MotionEmbed.channels(cfg)
            self.motion_proj = dense(cfg, motion_in, cfg.dim, (None, "embed"), rngs, zero=True)

    def __call__(
        self,
        x: jax.Array,
        t: jax.Array,
        context: jax.Array,
        motion: Motion | None = None,
        *,
        attn: AttnSpec = AttnSpec(),
        frame_offset: int = 0,
        kv_cache: tuple[jax.Array, jax.Array, jax.Array | int] | None = None,
        return_kv: bool = False,
        image_context: jax.Array | None = None,
        first_frame: jax.Array | None = None,
        guide: jax.Array | None = None,
    ) -> jax.Array | tuple[jax.Array, tuple[jax.Array, jax.Array]]:
        """Velocity [B, F, H, W, C] for latents x [B, F, H, W, C] at timesteps t [B] or [B, F].

        context [B, M, text_dim]; frame_offset shifts the RoPE time positions (a window of a longer clip).
        motion: brush tracks (wanjax.model.motion.Motion); their map is sampled from x's first latent frame (the
        clean image in image-to-video) and added to the patch tokens through the zero-initialised motion_proj.
        kv_cache: (K, V, start) with the self-attention K, V [layers, B, Lc, N, K] of the clip's first `start`
        latent frames (pyramid sampling: the finished segments; start may be traced, rows after them are
        ignored); x's frames are then frames start … of the clip, in RoPE and mask. return_kv: also return x's
        own (K, V) [layers, B, L, N, K], to be cached.
        first_frame: the clip's latent frame 0 [B, 1, H, W, C] when x starts later (a K/V cache window), for
        model.residual=first_frame (None: x's own frame 0).
        guide: model.residual=warp's guide [B, F, H, W, C], computed beforehand from the same clean frame 0 and
        motion (`wanjax.train.guides`: once per clip of a data set); None: computed here (wanjax.model.guide).
        """
        cfg = self.cfg
        if kv_cache is not None and (motion is not None or cfg.first_frame_concat or cfg.residual == "warp"):
            raise WanjaxError(
                "a K/V cache needs the clip's first frame among x's frames: not with brushes, "
                "model.first_frame_concat or model.residual=warp (sample with the cache off)"
            )
        if kv_cache is not None and cfg.residual == "first_frame" and first_frame is None:
            raise WanjaxError(
                "model.residual=first_frame with a K/V cache: pass first_frame (the clip's latent frame 0)"
            )
        if guide is not None and cfg.residual != "warp":
            raise WanjaxError(f"a warp guide was given, but model.residual={cfg.residual}: only a warp model reads one")
        if motion is not None and cfg.motion == "none":
            raise WanjaxError(
                "this model has no motion input (model.motion=none); brushes need a model trained with "
                "model.motion=splat, e.g. configs/brushsprites.yaml and its checkpoint"
            )
        if (image_context is None) != (cfg.image_dim is None):
            raise WanjaxError(
                "this model takes CLIP image tokens (model.image_dim is set): pass image_context [B, 257, image_dim]"
                if image_context is None
                else "image_context given, but the model has no image branch (model.image_dim is not set)"
            )
        tokens, (Fp, Hp, Wp) = patchify(x, cfg.patch_size, cfg.in_channels)
        if cfg.first_frame_concat:
            first, _ = patchify(jnp.broadcast_to(x[:, :1], x.shape), cfg.patch_size, cfg.in_channels)
            tokens = jnp.concatenate([tokens, first], axis=-1)
        base = self.residual_base(x, motion, first_frame) if guide is None else guide.astype(x.dtype)
        if cfg.residual == "warp":
            tokens = jnp.concatenate([tokens, patchify(base, cfg.patch_size, cfg.in_channels)[0]], axis=-1)
        B, S = x.shape[0], Hp * Wp
        attn.check(cfg)
        t = frame_timesteps(t, B, Fp)
        temb, mod = self.time_embedder(t)  # [B, F, D], [B, F, 6, D]
        ctx = self.text_embedder(context.astype(jnp.dtype(cfg.dtype)))
        img = None if image_context is None else self.image_embedder(image_context.astype(jnp.dtype(cfg.dtype)))
        h = self.patch_embedding(tokens.astype(jnp.dtype(cfg.dtype))).reshape(B, Fp, S, cfg.dim)
        if motion is not None:
            # the clean first frame: latent frame 0, or with condition channels the image latent (the last ones)
            with jax.named_scope("motion_embed"):  # named scopes: what wanjax.bench.profile groups by
                m = self.motion_embed(motion, x[:, 0, ..., -cfg.out_channels :])  # [B, F, H, W, C_m]: as the latent
                m, _ = patchify(m, cfg.patch_size, m.shape[-1])
                m = self.motion_proj(m.astype(jnp.dtype(cfg.dtype))).reshape(B, Fp, S, cfg.dim)
            h = h + m * motion.strength.astype(h.dtype)[:, None, None, None]
        h = constrain(h, FRAMES_LAYOUT, attn.mesh)
        if kv_cache is None:
            angles, cache = rope_angles(np.arange(Fp) + frame_offset, Hp, Wp, cfg.head_dim, cfg.rope_theta), None
            rope = rope_tables(angles)
        else:  # the RoPE rows of frames start … start + Fp - 1 among those of the cache and x
            ck, cv, start = kv_cache
            frames = np.arange(ck.shape[2] // S + Fp) + frame_offset
            rope = rope_tables(rope_angles(frames, Hp, Wp, cfg.head_dim, cfg.rope_theta))
            rope = tuple(jax.lax.dynamic_slice_in_dim(r, start * S, Fp * S) for r in rope)
            cache = (ck, cv, jnp.broadcast_to(start * S, (cfg.num_layers,)))
        rope = tuple(constrain(r, ("tokens", None), attn.mesh) for r in rope)
        graphdef, params = nnx.split(self.blocks)

        def body(h, layer):
            p, cache = layer
            kv = []

            def attend(q, k, v):
                kv.append((k, v))
                return attn(q, k, v, tokens_per_frame=S, cache=cache)

            h = nnx.merge(graphdef, p)(h, ctx, mod, rope, attend, img)
            return constrain(h, FRAMES_LAYOUT, attn.mesh), kv[0] if return_kv else None

        if cfg.remat != "none":
            body = jax.checkpoint(body, policy=REMAT_POLICIES[cfg.remat])
        with jax.named_scope("blocks"):
            h, new_kv = (jax.lax.scan if cfg.scan_layers else _loop)(body, h, (params, cache))

        head = self.scale_shift_table[...].astype(jnp.float32) + temb.astype(jnp.float32)[:, :, None]
        h = modulate(layer_norm(h, cfg.eps), head[:, :, 0], head[:, :, 1]).astype(h.dtype)
        out = unpatchify(self.proj_out(h), (Fp, Hp, Wp), cfg.patch_size, cfg.out_channels)
        if base is not None:
            out = out + base.astype(out.dtype)
        if cfg.subframe_ramp:
            out = subframe_ramp(out, x[..., : cfg.out_channels], t == 0, cfg.motion_subframes)
        if cfg.prediction == "sample":
            out = velocity_from_sample(x[..., : cfg.out_channels], out, t / NUM_TRAIN_TIMESTEPS)  # not the condition
        return (out, new_kv) if return_kv else out

    def residual_base(
        self, x: jax.Array, motion: Motion | None, first_frame: jax.Array | None = None
    ) -> jax.Array | None:
        """What model.residual adds to the clean-sample head: None, latent frame 0 (first_frame [B, 1, H, W, C],
        else x's own) on every frame of x [B, F, H, W, C], or frame 0 warped along the motion tracks
        (wanjax.model.guide)."""
        cfg = self.cfg
        if cfg.residual == "none":
            return None
        if cfg.residual == "first_frame":
            return jnp.broadcast_to(x[:, :1] if first_frame is None else first_frame, x.shape)
        with jax.named_scope("warp_guide"):
            return warp_guide(x[:, 0], motion, cfg.guide_pixel_size, cfg.motion_subframes, x.shape[1])


def _loop(body, carry, xs):
    """`lax.scan(body, carry, xs)` as a Python loop: the same carry and stacked outputs."""
    ys = []
    for i in range(len(jax.tree.leaves(xs)[0])):
        carry, y = body(carry, jax.tree.map(lambda a, i=i: a[i], xs))
        ys.append(y)
    return carry, jax.tree.map(lambda *a: jnp.stack(a), *ys)


def velocity_from_sample(x: jax.Array, x0: jax.Array, sigma: jax.Array, floor: float = 0.05) -> jax.Array:
    """The flow velocity (x_t - x0) / sigma implied by a clean-sample prediction x0 at x_t = x; x, x0 [B, F, H, W, C],
    sigma [B, F]. sigma is floored (JiT's clip) so nearly clean frames do not blow the velocity up."""
    s = jnp.maximum(sigma, floor)[:, :, None, None, None]
    return ((x.astype(jnp.float32) - x0.astype(jnp.float32)) / s).astype(x0.dtype)


def frame_timesteps(t: jax.Array, batch: int, frames: int) -> jax.Array:
    """t [B] or [B, F] -> [B, F] (one timestep per latent frame)."""
    t = jnp.asarray(t)
    if t.ndim == 1 and t.shape[0] == batch:
        return jnp.broadcast_to(t[:, None], (batch, frames))
    if t.shape == (batch, frames):
        return t
    raise WanjaxError(f"timesteps have shape {t.shape}; expected [B]=({batch},) or [B, F]=({batch}, {frames})")


def patchify(x: jax.Array, patch: tuple[int, int, int], channels: int) -> tuple[jax.Array, tuple[int, int, int]]:
    """x [B, F, H, W, C] -> patches [B, L, pt*ph*pw*C] in time-major order, and the token grid (F', H', W')."""
    if x.ndim != 5 or x.shape[-1] != channels:
        raise WanjaxError(f"latents have shape {x.shape}; expected [B, F, H, W, {channels}] (channels-last)")
    B, F, H, W, C = x.shape
    pt, ph, pw = patch
    for name, size, p in (("frames", F, pt), ("height", H, ph), ("width", W, pw)):
        if size % p:
            raise WanjaxError(
                f"latent {name} {size} is not divisible by the patch size {p}; use {size // p * p or p} or "
                f"{(size // p + 1) * p} (pixels: x8 for the VAE)"
            )
    grid = (F // pt, H // ph, W // pw)
    x = x.reshape(B, grid[0], pt, grid[1], ph, grid[2], pw, C).transpose(0, 1, 3, 5, 2, 4, 6, 7)
    return x.reshape(B, int(np.prod(grid)), pt * ph * pw * C), grid


def unpatchify(y: jax.Array, grid: tuple[int, int, int], patch: tuple[int, int, int], channels: int) -> jax.Array:
    """y [B, ..., pt*ph*pw*C] with L = F'*H'*W' tokens -> [B, F'*pt, H'*ph, W'*pw, C]."""
    (F, H, W), (pt, ph, pw) = grid, patch
    y = y.reshape(y.shape[0], F, H, W, pt, ph, pw, channels).transpose(0, 1, 4, 2, 5, 3, 6, 7)
    return y.reshape(y.shape[0], F * pt, H * ph, W * pw, channels)
