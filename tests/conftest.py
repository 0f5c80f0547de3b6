"""Test setup: 8 fake CPU devices and fp32 matmuls, set before JAX is imported anywhere."""

import os

# On 2 busy cores one fake device's thread can reach a collective more than XLA's default 40 s after the others,
# and XLA then aborts the process; wait longer (the training subprocesses inherit the flag).
FLAGS = " --xla_force_host_platform_device_count=8 --xla_cpu_collective_call_terminate_timeout_seconds=600"
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + FLAGS).strip()
# XLA's CPU client runs each device's part of a program on a pool of max(cores, devices) = 8 threads, and a
# collective holds all 8 at once; a dispatch waiting for an in-flight slot can hold one too, and then nothing moves.
# 8 spare threads make that impossible (the training and sampling loops also keep at most one step queued).
os.environ.setdefault("PJRT_NPROC", "16")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ["WANJAX_COMPILATION_CACHE"] = "off"  # hermetic: no compiled programs shared between tests or runs

import jax  # noqa: E402

jax.config.update("jax_default_matmul_precision", "highest")

assert jax.device_count() == 8, f"tests need 8 fake CPU devices, got {jax.device_count()}"


# The longest tests (minutes each; `pytest --durations`), started first: with two workers, one of them last in the
# queue would run alone at the end while the other worker idles.
LONGEST_FIRST = (
    "tests/multiproc/test_multiprocess_train.py::test_two_processes_train_like_one",
    "tests/train/test_loop.py::test_exact_resume_after_kill_9",
    "tests/test_readme.py::test_readme_training_command_runs_in_an_empty_folder",
    "tests/train/test_finetune.py::test_init_with_a_motion_branch_is_the_pretrained_model_at_step_0",
)


def _rank(item) -> int:
    return next((i for i, s in enumerate(LONGEST_FIRST) if item.nodeid.startswith(s)), len(LONGEST_FIRST))


def pytest_collection_modifyitems(config, items):
    items.sort(key=_rank)  # stable: every other test keeps its place
