"""`barrier`: a process that reaches a collective long after the other still joins it. On CPU, JAX's collectives
between processes (gloo) give a late process 30 s, and then kill the one waiting; one host may build the data set or
compile for minutes longer than another. Two real processes on 127.0.0.1, ended by pid."""

import os
import subprocess
import sys

from wanjax.launch import free_port, process_env

LATE_S = 36  # more than gloo's 30 s
SCRIPT = """
import sys, time
import jax, numpy as np
from wanjax.parallel.distributed import barrier, to_host
from wanjax.parallel.mesh import maybe_initialize_distributed

maybe_initialize_distributed()
if jax.process_index() == 1:
    time.sleep(float(sys.argv[1]))  # a host that builds the data or compiles for longer
barrier("late host")
mesh = jax.sharding.Mesh(np.array(jax.devices()), ("x",))
rows = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("x"))
x = jax.make_array_from_process_local_data(rows, np.full((1,), jax.process_index() + 1.0, np.float32), (2,))
print("gathered", to_host(x).tolist())  # a collective across both processes
"""


def test_a_process_late_by_more_than_the_collective_timeout_still_joins(tmp_path):
    port, procs = free_port(), []
    try:
        for i in range(2):
            env = os.environ | process_env(i, 2, port, 1)
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-c", SCRIPT, str(LATE_S)],
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                )  # fmt: skip
            )
        outs = [p.communicate(timeout=LATE_S + 120)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, out in zip(procs, outs, strict=True):
        assert p.returncode == 0, out[-3000:]
        assert "gathered [1.0, 2.0]" in out.splitlines(), out[-3000:]
