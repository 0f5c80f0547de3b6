"""wanjax: Wan-architecture video diffusion transformers in JAX/Flax NNX."""
