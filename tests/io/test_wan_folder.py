"""README "Using real Wan2.1 weights", run as written on a tiny random Wan folder: convert, sample with a prompt
(text encoded in JAX), in a fresh process that never imports torch."""

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
from wan_folder import write_wan_folder

REPO = Path(__file__).parents[2]
SMALL = ["sample.frames=5", "sample.height=32", "sample.width=32", "sample.steps=2", "sample.text_tokens=24"]
SCRIPT = """
import json, shlex, sys
from wanjax.cli import main
for line in json.loads(sys.argv[1]):
    assert main(shlex.split(line)[1:]) == 0, line
exec(sys.argv[2])
assert context.shape == (1, 512, 64), context.shape
assert "torch" not in sys.modules, "torch was imported"
print("no torch")
"""


def _section():
    text = (REPO / "README.md").read_text()
    section = re.search(r"## Using real Wan2\.1 weights\n(.*?)\n## ", text, re.S).group(1)
    bash = re.search(r"```bash\n(.*?)```", section, re.S).group(1).strip().splitlines()
    python = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    return bash, python


def test_readme_wan_commands_convert_and_sample_with_a_prompt_without_torch(tmp_path):
    bash, python = _section()
    assert bash[0].startswith("huggingface-cli download Wan-AI/Wan2.1-T2V-1.3B-Diffusers")  # the one we replace
    wan = write_wan_folder(tmp_path / "Wan2.1-T2V-1.3B-Diffusers")
    (tmp_path / "configs").symlink_to(REPO / "configs")  # the commands run from a checkout
    assert {p.name for p in wan.iterdir()} >= {"transformer", "vae", "text_encoder", "tokenizer", "model_index.json"}
    lines = [line + (" " + " ".join(SMALL) if " sample " in line else "") for line in bash[1:]]
    assert [shlex.split(line)[1] for line in lines] == ["sample", "convert", "sample"]
    lines.append(lines[0].replace('"a cat sits on the mat"', '"the dog runs"').replace("out/wan", "out/dog"))
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(lines), python], cwd=tmp_path, capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0 and "no torch" in proc.stdout, proc.stderr[-3000:]
    ckpt = tmp_path / "ckpt" / "wan2.1-t2v-1.3b"
    assert {p.name for p in ckpt.iterdir()} >= {"config.yaml", "dit.safetensors", "text_encoder", "tokenizer"}
    run = {name: np.load(tmp_path / "out" / name / "sample.npz") for name in ("wan", "wan-ckpt", "dog")}
    assert run["wan"]["frames"].shape == (5, 32, 32, 3)
    # the converted checkpoint samples the same video as the Wan folder it came from
    np.testing.assert_allclose(run["wan-ckpt"]["latents"], run["wan"]["latents"], rtol=0, atol=1e-5)
    # and the prompt reaches the DiT: another prompt, another video
    assert np.abs(run["dog"]["latents"] - run["wan"]["latents"]).max() > 1e-2
    meta = json.loads((tmp_path / "out" / "wan" / "sample.json").read_text())
    assert meta["prompt"] == "a cat sits on the mat" and meta["config"]["model"]["text_dim"] == 64
