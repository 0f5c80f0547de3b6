"""Test setup: 8 fake CPU devices and fp32 matmuls, set before JAX is imported anywhere."""

import os
import shutil
import tempfile

# On 2 busy cores one fake device's thread can reach a collective more than XLA's default 40 s after the others,
# and XLA then aborts the process; wait longer (the training subprocesses inherit the flags). LLVM without
# optimisation: compiling is most of a test's time and running tiny programs is not (a 6-step tiny train run
# 55 -> 31 s, its losses equal to every digit).
FLAGS = (
    " --xla_force_host_platform_device_count=8 --xla_cpu_collective_call_terminate_timeout_seconds=600"
    " --xla_backend_optimization_level=0"
)
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + FLAGS).strip()
# XLA's CPU client runs each device's part of a program on a pool of max(cores, devices) = 8 threads, and a
# collective holds all 8 at once; a dispatch waiting for an in-flight slot can hold one too, and then nothing moves.
# 8 spare threads make that impossible (the training and sampling loops also keep at most one step queued).
os.environ.setdefault("PJRT_NPROC", "16")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# One compilation cache per test session, shared by its workers and the processes tests start (the environment
# is inherited), never between sessions: the tests compile the same tiny programs many times over.
if "WANJAX_COMPILATION_CACHE" not in os.environ:
    SESSION_CACHE = os.environ["WANJAX_COMPILATION_CACHE"] = tempfile.mkdtemp(prefix="wanjax-test-jax-cache-")
os.environ.setdefault("WANJAX_COMPILATION_CACHE_MIN_S", "0.2")

import jax  # noqa: E402

from wanjax.compile_cache import enable_compilation_cache  # noqa: E402

jax.config.update("jax_default_matmul_precision", "highest")
enable_compilation_cache()

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


def pytest_unconfigure(config):
    if "SESSION_CACHE" in globals():  # the process that made the session's cache (not a worker) removes it
        shutil.rmtree(SESSION_CACHE, ignore_errors=True)
