"""Orbax checkpoints of the whole training run: state (params, EMA, optimizer, step, RNG), the Grain data
iterator, and a JSON record with a fingerprint of the state.

* async saves, keep-N, local paths and gs:// alike (Orbax/tensorstore handle both);
* restore onto any mesh and any number of processes: the target is an abstract state carrying the new shardings,
  and the data position is the same in every process (`wanjax.data.batches.process_batches`);
* never loads garbage: a step whose files are missing/truncated fails to restore, and a step whose arrays
  parse but do not match the fingerprint saved beside them is rejected too; restore then falls back to
  the previous step and says which one it skipped and why.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from etils import epath

from wanjax.errors import WanjaxError

log = logging.getLogger(__name__)


def fingerprint(tree: Any) -> list[float]:
    """Two float64 numbers per array leaf (sum and sum of squares): cheap, and a corrupted value changes them."""
    leaves = jax.tree.leaves(tree)
    if not leaves:
        return []
    return np.asarray(jax.device_get(_leaf_stats(leaves)), np.float64).ravel().tolist()


@jax.jit
def _leaf_stats(leaves: list) -> jax.Array:
    """[N, 2]: sum and sum of squares (float32) of each of N arrays; one program, not two reductions per leaf."""
    f32 = [x.astype(jnp.float32) for x in leaves]
    return jnp.stack([jnp.stack([jnp.sum(x), jnp.sum(jnp.square(x))]) for x in f32])


def _matches(saved: list[float], restored: list[float]) -> bool:
    a, b = np.asarray(saved), np.asarray(restored)
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=1e-5, atol=1e-6))


class Checkpointer:
    """CheckpointManager over `directory` with items state / data_iter / meta."""

    def __init__(self, directory: str | Path, keep: int, async_save: bool | None = None):
        # Orbax wants absolute paths (a relative train.workdir fails at the first save otherwise).
        self.directory = str(directory) if str(directory).startswith("gs://") else str(Path(directory).absolute())
        if async_save is None:
            # On CPU, a background save's device ops race the next step's cross-device collectives in XLA's
            # in-process communicator, which then deadlocks (seen with 8 fake devices); accelerators are fine.
            async_save = jax.default_backend() != "cpu"
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, enable_async_checkpointing=async_save, create=True)
        self.manager = ocp.CheckpointManager(self.directory, options=options)

    def save(self, step: int, state: Any, data_iter: Any = None, meta: dict | None = None, force: bool = False):
        """Start an (async) save of `state` (+ the data iterator's position) at `step`."""
        import grain

        items = {
            "state": ocp.args.StandardSave(state),
            "meta": ocp.args.JsonSave({"step": step, "fingerprint": fingerprint(state), **(meta or {})}),
        }
        if data_iter is not None:
            items["data_iter"] = grain.checkpoint.CheckpointSave(data_iter)
        return self.manager.save(step, args=ocp.args.Composite(**items), force=force)

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def steps(self) -> list[int]:
        return sorted(self.manager.all_steps())

    def restore(self, abstract_state: Any, data_iter: Any = None, step: int | None = None) -> tuple[int, Any, dict]:
        """(step, state, meta) of `step`, or of the latest good step when None.

        `abstract_state`: jax.ShapeDtypeStructs with the target shardings (any mesh). A requested step that
        is bad raises; with step=None, bad steps are skipped (logged) in favour of the one before.
        """
        import grain

        candidates = [step] if step is not None else list(reversed(self.steps()))
        problems = []
        for s in candidates:
            items = {"state": ocp.args.StandardRestore(abstract_state), "meta": ocp.args.JsonRestore()}
            foreign = None if data_iter is None else self._foreign_iterator(s)
            if data_iter is not None and foreign is None:
                items["data_iter"] = grain.checkpoint.CheckpointRestore(data_iter)
            try:
                out = self.manager.restore(s, args=ocp.args.Composite(**items))
            except Exception as e:  # noqa: BLE001 - any failure to read a step means "this step is bad"
                problems.append(f"step {s} at {self._path(s)} is unreadable ({type(e).__name__}: {str(e)[:200]})")
                log.warning(problems[-1])
                continue
            if not _matches(out.meta["fingerprint"], fingerprint(out.state)):
                problems.append(f"step {s} at {self._path(s)} does not match its saved fingerprint (corrupted)")
                log.warning(problems[-1])
                continue
            if foreign is not None:  # every process is at the same place in the data (data.batches)
                saved = foreign.read_text()
                plain = isinstance(data_iter, grain.DatasetIterator)
                data_iter.set_state(json.loads(saved) if plain else saved.encode())
                data_iter.start_prefetch()  # as Grain's own restore does
                log.warning("step %d was written by another number of processes: data position from %s", s, foreign)
            if problems:
                log.warning("resuming from step %d instead", s)
            return s, out.state, dict(out.meta)
        if not candidates:
            raise WanjaxError(f"no checkpoint in {self.directory}")
        raise WanjaxError("no good checkpoint to restore:\n  " + "\n  ".join(problems))

    def _foreign_iterator(self, step: int) -> epath.Path | None:
        """The data position another process count saved at `step`, when this process count saved none there."""
        folder = epath.Path(self._path(step)) / "data_iter"
        own = folder / f"process_{jax.process_index()}-of-{jax.process_count()}.json"
        if own.exists() or not folder.exists():
            return None
        return next(iter(sorted(folder.glob("process_*-of-*.json"))), None)

    def _path(self, step: int) -> str:
        return f"{self.directory.rstrip('/')}/{step}"

    def close(self) -> None:
        self.manager.close()


def abstract_like(state: Any, shardings: Any = None) -> Any:
    """ShapeDtypeStructs of `state` (with `shardings` when given: restore onto that mesh)."""
    if shardings is None:
        return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), state)
    return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), state, shardings)
