"""`wanjax demo|sample|train|convert|lora|export|bench|launch|studio|tracks|data`: one entry point over the library.

User errors (`WanjaxError`) print as one line with the fix; `--debug` shows the traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from wanjax.errors import WanjaxError

REPO = Path(__file__).resolve().parents[1]
REPO_CONFIGS = REPO / "configs"


class _Help(argparse.RawDescriptionHelpFormatter):
    """Each option's default after its help (options without one say what happens instead); the settings epilog
    printed as written."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default in (None, False, argparse.SUPPRESS) or action.required or "%(default)" in action.help:
            return action.help
        return f"{action.help} (default: %(default)s)"


def _settings(*sections: str) -> str:
    from wanjax.config import settings_help

    return "settings (key=value after the other arguments; the defaults below, then CONFIG's values, then yours):\n" + (
        settings_help(sections)
    )


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="wanjax", description=__doc__.splitlines()[0], formatter_class=_Help)
    p.add_argument("--debug", action="store_true", help="show full tracebacks instead of one-line errors")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    command = lambda name, help, **kw: sub.add_parser(name, help=help, description=help, formatter_class=_Help, **kw)  # noqa: E731

    demo = command("demo", "bundled brush model + example brush -> OUT/demo.{mp4,gif,png,npz,json}, OUT/demo_overlay.*")
    demo.add_argument("--out", default="out", help="output folder or gs://bucket/prefix")

    s = command("sample", "generate a video with the config's sample settings", epilog=_settings("sample", "mesh"))
    s.add_argument("config", help="YAML config, e.g. configs/tiny.yaml")
    s.add_argument("--ckpt", help="wanjax checkpoint or diffusers Wan pipeline folder (None: sample.checkpoint's)")
    s.add_argument("--image", help="first frame PNG (image-to-video); its size sets sample.height/width")
    s.add_argument(
        "--last-image", help="last frame PNG, --image's size (first-last-frame: Wan2.1-FLF2V/I2V, Wan2.2-I2V-A14B)"
    )
    s.add_argument("--brush", help="motion brush JSON (needs --image); its frame count sets sample.frames")
    s.add_argument("--prompt", help="text prompt (needs a checkpoint with text_encoder/ + tokenizer/)")
    s.add_argument("--seed", type=int, help="noise seed (None: sample.seed)")
    s.add_argument(
        "--lora", action="append", default=[], metavar="FILE[:SCALE]",
        help="LoRA file folded into the DiT at SCALE (default 1); repeatable (diffusers/PEFT, kohya, Wan layouts)",
    )  # fmt: skip
    s.add_argument("--out", required=True, help="output folder or gs://bucket/prefix")
    s.add_argument("overrides", nargs="*", metavar="key=value", help="settings, e.g. sample.steps=8 (see below)")

    t = command(
        "train",
        "train a model (checkpoints, TensorBoard, metrics.jsonl under train.workdir); resumes where it stopped",
        epilog=_settings("train", "data", "mesh", "model", "vae"),
    )
    t.add_argument("config", help="YAML config, e.g. configs/brushsprites.yaml")
    t.add_argument("overrides", nargs="*", metavar="key=value", help="settings, e.g. train.steps=100 (see below)")

    c = command("convert", "diffusers Wan pipeline folder <-> wanjax checkpoint (direction from SRC)")
    c.add_argument("src", help="a diffusers Wan pipeline folder (transformer/, vae/, ...) or a wanjax checkpoint")
    c.add_argument("dst", help="the folder to write (atomically)")

    lo = command("lora", "LoRA adapters: export a run's in diffusers' Wan layout, or fold LoRA files into a checkpoint")
    lsub = lo.add_subparsers(dest="lora_command", required=True, metavar="ACTION")
    lx = lsub.add_parser("export", help="a LoRA run's EMA adapters (latest checkpoint) -> OUT.safetensors")
    lx.add_argument("run", help="the run's train.workdir")
    lx.add_argument("out", help="the .safetensors file to write (diffusers' load_lora_weights reads it)")
    lm = lsub.add_parser("merge", help="fold LoRA files into a checkpoint's DiT -> a wanjax checkpoint OUT")
    lm.add_argument("ckpt", help="a wanjax checkpoint or a diffusers Wan pipeline folder")
    lm.add_argument("loras", nargs="+", metavar="LORA[:SCALE]", help="LoRA files, each at SCALE (default 1)")
    lm.add_argument("out", help="the checkpoint folder to write (atomically)")

    e = command("export", "copy a sample folder to a local path or gs://bucket/prefix")
    e.add_argument("src", help="the --out folder of `wanjax sample`")
    e.add_argument("dst", help="a local folder or gs://bucket/prefix")

    b = command("bench", "every benchmark (DiT vs diffusers, train, sampler, compile cache, ring attention) -> JSON")
    b.add_argument("--json", help="where to write results (None: bench/results.json; --suite accel: bench/accel.json)")
    b.add_argument("--max-tokens", type=int, default=65536, help="longest ring-attention sequence")
    b.add_argument("--readme", default=None, help="also rewrite this README's benchmark block (make bench: README.md)")
    b.add_argument("--only", nargs="+", default=(), metavar="PART", help="re-measure these parts, keep the others")
    b.add_argument(
        "--suite", choices=("default", "accel"), default="default",
        help="default: the benchmarks named above; accel: Wan2.1-1.3B forward, train step, sampling (and "
        "diffusers) on the GPU or TPU that JAX sees (wanjax/bench/accel.py)",
    )  # fmt: skip
    b.add_argument("--tiny", action="store_true", help="--suite accel at a tiny config, on CPU too (a smoke run)")

    st = command("studio", "the brush studio: paint motion brushes on a first frame in a browser, generate the video")
    st.add_argument("config", nargs="?", metavar="CONFIG", help="brush model YAML (None: configs/brushsprites.yaml)")
    st.add_argument("--ckpt", metavar="DIR", help="checkpoint folder (None: sample.checkpoint's, as `wanjax sample`)")
    st.add_argument("--port", type=int, metavar="N", help="port to serve on (None: 7860, or the next free one)")
    st.add_argument("--host", default="127.0.0.1", help="address to bind; 0.0.0.0 exposes the studio to the network")
    st.add_argument("--share", action="store_true", help="also open a public gradio.live link (needs the internet)")

    tr = command("tracks", "point tracks of a video -> a brush file (mode tracks) that `sample --brush` replays")
    tr.add_argument("video", help="the clip whose motion to copy, e.g. clip.mp4")
    tr.add_argument("--out", required=True, help="brush JSON to write")
    tr.add_argument("--points", type=int, default=256, help="trajectories, started on a grid over frame 0")
    tr.add_argument("--mask", help="JSON brush mask: track only inside it, e.g. '{\"box\": [10, 12, 40, 50]}'")
    tr.add_argument("--frames", type=int, help="frames to track, 4k+1 (None: as many as the clip has)")
    tr.add_argument("--method", default="dis", choices=("dis", "dis-fast", "farneback"), help="optical flow")

    da = command("data", "real-video training data")
    db = da.add_subparsers(dest="action", required=True, metavar="ACTION").add_parser(
        "build", help="clips + captions -> latents, text states, point tracks (resumable)", formatter_class=_Help,
        description="clips + captions (clip.mp4 + clip.txt; or train/ and eval/ folders of them) -> the "
        "video_latents set under data.data_dir: VAE latents, UMT5 states, point tracks; a rerun skips finished clips",
        epilog=_settings("data"),
    )  # fmt: skip
    db.add_argument("config", help="YAML config with data.name: video_latents")
    db.add_argument("--clips", required=True, help="folder of clips and their captions")
    db.add_argument("--ckpt", help="diffusers Wan folder with vae/, text_encoder/, tokenizer/ (None: train.init)")
    db.add_argument("overrides", nargs="*", metavar="key=value", help="settings, e.g. data.frames=17 (see below)")

    la = command("launch", "run a wanjax COMMAND as N local processes of one JAX job (a pod job on one machine)")
    la.add_argument("--nproc", type=int, required=True, help="number of processes")
    la.add_argument("--devices-per-process", type=int, help="CPU devices per process (None: JAX's default devices)")
    la.add_argument("--timeout", type=float, help="seconds after which all processes are killed (None: no limit)")
    la.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- COMMAND ...", help="e.g. -- train configs/tiny.yaml")
    return p


def _run(args: argparse.Namespace) -> None:
    if args.command == "launch":
        from wanjax.launch import launch

        launch(args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd, args.nproc, args.devices_per_process, args.timeout)
        return
    if args.command in ("demo", "sample", "train", "studio"):
        from wanjax.compile_cache import enable_compilation_cache

        enable_compilation_cache()  # a second run with the same shapes skips compiling (WANJAX_COMPILATION_CACHE)
    if args.command == "studio":
        try:
            from wanjax.studio.app import launch as studio
        except ModuleNotFoundError as e:  # gradio: the optional `studio` extra
            raise WanjaxError(f"wanjax studio needs {e.name}: pip install 'wanjax[studio]' (or '.[studio]')") from None
        studio(args.config or REPO_CONFIGS / "brushsprites.yaml", args.ckpt, port=args.port, host=args.host,
               share=args.share)  # fmt: skip
        return
    if args.command == "demo":
        from wanjax.sample import run_sample

        example = REPO / "examples" / "sprites"
        paths = run_sample(
            REPO_CONFIGS / "brushsprites.yaml", args.out, image=f"{example}.png", brush=f"{example}.json", name="demo"
        )
        print("\n".join(str(p) for p in paths.values()))
    elif args.command == "sample":
        from wanjax.io.lora_params import parse_lora_arg
        from wanjax.sample import run_sample

        paths = run_sample(
            args.config, args.out, ckpt=args.ckpt, seed=args.seed, prompt=args.prompt, image=args.image,
            brush=args.brush, overrides=args.overrides, last_image=args.last_image,
            loras=[parse_lora_arg(a) for a in args.lora],
        )  # fmt: skip
        print("\n".join(str(p) for p in paths.values()))
    elif args.command == "train":
        from wanjax.config import load_config
        from wanjax.train.loop import train

        summary = train(load_config(args.config, args.overrides))
        print(json.dumps(summary))
    elif args.command == "tracks":
        from wanjax.io.export import atomic_write
        from wanjax.motion.tracking import video_brush

        mask = None
        if args.mask is not None:
            try:
                mask = json.loads(args.mask)
            except json.JSONDecodeError as e:
                raise WanjaxError(
                    f"--mask {args.mask!r} is not JSON ({e.msg}); write e.g. '{{\"box\": [0, 0, 9, 9]}}'"
                ) from None
        brush = video_brush(args.video, args.points, mask, args.frames, args.method)
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        print(atomic_write(out, lambda p: p.write_text(json.dumps(brush, separators=(",", ":")) + "\n")))
    elif args.command == "data":
        from wanjax.config import load_config
        from wanjax.data.build import build_video_set

        print(json.dumps(build_video_set(load_config(args.config, args.overrides), args.clips, args.ckpt)))
    elif args.command == "convert":
        from wanjax.io.weights import convert

        print(f"{convert(args.src, args.dst)}: {args.dst}")
    elif args.command == "lora":
        from wanjax.io.lora_params import export_lora, merge_loras, parse_lora_arg

        if args.lora_command == "export":
            from wanjax.train.finetune import run_adapters

            cfg, adapters = run_adapters(args.run)
            print(f"{export_lora(adapters, cfg.model, args.out)} tensors ({len(adapters)} adapted layers): {args.out}")
        else:
            print(f"{merge_loras(args.ckpt, [parse_lora_arg(a) for a in args.loras], args.out)} layers: {args.out}")
    elif args.command == "export":
        from wanjax.io.export import export

        print("\n".join(export(args.src, args.dst)))
    elif args.suite == "accel":
        if args.readme or args.only:
            raise WanjaxError("--readme and --only are for --suite default; --suite accel prints its table to paste")
        from wanjax.bench.accel import main as accel

        accel(args.json or "bench/accel.json", args.tiny)
    else:
        if args.tiny:
            raise WanjaxError("--tiny is for --suite accel: add --suite accel")
        from wanjax.bench.report import main as bench

        bench(args.json or "bench/results.json", args.max_tokens, args.readme, tuple(args.only))


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    # key=value overrides may come before or after options (`--out X k=v --seed 1 k2=v2`): collect the rest.
    args, rest = parser.parse_known_args(argv)
    extra = [r for r in rest if "=" in r and not r.startswith("-")]
    if len(extra) != len(rest) or (extra and not hasattr(args, "overrides")):
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if extra:
        args.overrides = [*args.overrides, *extra]
    try:
        _run(args)
    except WanjaxError as e:
        if args.debug:
            raise
        print(f"wanjax {args.command}: error: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # a bug, not bad input: still one line, the traceback on request
        if args.debug:
            raise
        print(f"wanjax {args.command}: internal error: {type(e).__name__}: {e} (rerun with --debug for the "
              "traceback and report it)", file=sys.stderr)  # fmt: skip
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
