"""The brush studio's page (Gradio): a first frame, brushes clicked onto it, their tracks, and the video they make.

Every handler is a thin shell over the pure edits in `draft.py` and the rendering in `canvas.py`; `view` turns a
(frame, draft) pair into what every component shows. Problems with the brushes are the validator's one-line message
in the box under the brush; other user errors show the same way next to what caused them, never a traceback.
"""

from __future__ import annotations

import dataclasses
import html
import json
import signal
import sys
import threading
import time
from pathlib import Path

import gradio as gr
import numpy as np

from wanjax.errors import WanjaxError
from wanjax.motion import load_brushes, mask_pixels
from wanjax.motion.brush import ANCHORS, EASINGS, MODES
from wanjax.motion.draw import COLORS
from wanjax.sample_inputs import read_image
from wanjax.studio import draft as edit
from wanjax.studio.canvas import PAINT, check, display_scale, paint_layers, preview
from wanjax.studio.engine import MAX_STEPS, Engine, fit_frame
from wanjax.studio.workdir import Workdir

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"  # a checkout's example frames + brushes (not installed)
MAX_UPLOAD = "10mb"
MAX_JSON = 1 << 20  # bytes of a brush file
PAINT_COLOR = ("#ffffff", PAINT[3] / 255)  # the paint brush: as the layer shows a region (canvas.PAINT)
TOOLS = [("▭ Box", "box"), ("◯ Circle", "circle"), ("⬠ Polygon", "polygon"), ("➜ Path / arrow", "arrow")]
HINTS = {
    "box": "Click two opposite corners.",
    "circle": "Click the centre, then a point on the edge.",
    "polygon": "Click the corners; click the first one again to finish.",
    "arrow": "path: click points along the path · sway / flow / camera: click the tail, then the head "
    "(where things go over the whole clip).",
}
CSS = """
#canvas img { image-rendering: pixelated; cursor: crosshair; }
.msg { padding: 0.5em 0.75em; border-radius: 8px; border: 1px solid #ddd; }
.msg.error { background: #fde8e8; color: #9b1c1c; border-color: #f8b4b4; }
.msg.ok { background: #e8f7ee; color: #03543f; border-color: #a6e3bf; }
.legend span { display: inline-block; padding: 0 0.5em; margin-right: 0.3em; border-radius: 4px; color: #111;
  font-weight: 600; border: 1px solid #999; }
video { image-rendering: pixelated; }
"""


def _legend() -> str:
    chips = "".join(f'<span style="background: rgb{COLORS[m]}">{m}</span>' for m in MODES)
    return f'<div class="legend">{chips}</div>'


def _examples() -> list[list[str]]:
    """[png, json] pairs of the checkout's examples that have both."""
    pairs = [(p, p.with_suffix(".json")) for p in sorted(EXAMPLES.glob("*.png"))]
    return [[str(p), str(j)] for p, j in pairs if j.is_file()]


class Studio:
    """The page's handlers over one loaded Engine and one Workdir."""

    def __init__(self, engine: Engine, workdir: Workdir):
        self.engine, self.workdir = engine, workdir
        self.max_tracks = engine.cfg.sample.max_tracks
        self.examples = _examples()
        self.empty = edit.Draft(engine.size, engine.cfg.sample.frames)  # no brushes yet
        self.view_size = 0  # the number of components `view` updates (set by `build`)

    def first_frame(self) -> np.ndarray:
        """The frame the page opens with: the first example's picture, or mid grey."""
        if self.examples:
            return fit_frame(read_image(self.examples[0][0]), self.engine.size)
        width, height = self.engine.size
        return np.full((height, width, 3), 128, np.uint8)

    def view(self, frame: np.ndarray, draft: edit.Draft, problem: str | None = None) -> tuple:
        """What VIEW shows for (frame, draft); `problem` (e.g. an unreadable upload) replaces the validator's
        verdict in the status box."""
        canvas, error = preview(frame, draft, self.max_tracks)
        error = problem or error
        spec = check(draft)[0]  # an upload refused (problem) leaves the draft, and its download, as they were
        download = None
        if spec is not None and spec["brushes"]:
            download = self.workdir.new("brush") / "brushes.json"
            download.write_text(json.dumps(spec, indent=1) + "\n")
        if error:
            status = f'<div class="msg error">⚠ {html.escape(error)}</div>'
        elif not draft.brushes:
            status = '<div class="msg">No brushes yet: pick a tool and click on the frame.</div>'
        else:
            status = f'<div class="msg ok">✓ {len(draft.brushes)} brush(es), valid</div>'
        brush = draft.brush or {}
        mode = brush.get("mode")
        return (
            draft,
            canvas,
            status,
            gr.update(choices=edit.labels(draft), value=draft.current if draft.brush else None),
            gr.update(value=mode if mode in MODES else None),
            *(gr.update(visible=mode == m) for m in ("path", "sway", "flow", "camera")),
            gr.update(visible=mode in ("sway", "flow")),
            gr.update(visible=mode not in (None, "camera")),
            *self._fields(brush),
            gr.update(value=draft.frames),
            json.dumps(edit.brush_file(draft), indent=1),
            gr.update(value=download, interactive=download is not None),
        )

    @staticmethod
    def _fields(brush: dict) -> list:
        """The field controls' values for the current brush (FIELDS order)."""
        d = brush.get("direction", [1.0, 0.0])
        pan = brush.get("pan", [0.0, 0.0])
        mode, speed = brush.get("mode"), brush.get("speed", 0.0)
        values = [brush.get("easing", "linear"), speed if mode == "path" else 0.0, brush.get("strength", 1.0),
                  brush.get("amplitude", 3.0), brush.get("period", 16.0), brush.get("phase", 0.0),
                  brush.get("anchor", "none"), speed if mode == "flow" else 1.0, d[0], d[1], pan[0], pan[1],
                  brush.get("zoom", 1.0)]  # fmt: skip
        return [gr.update(value=v) for v in values]

    # Handlers: (inputs...) -> VIEW (+ extra outputs).
    def on_click(self, frame, draft, tool, evt: gr.SelectData):
        xy = edit.snap(evt.index, display_scale(draft.size), draft.size)
        return self.view(frame, edit.click(draft, tool, xy))

    def on_paint_tab(self, frame, draft):
        return paint_layers(frame, draft, self.max_tracks)

    def on_paint(self, frame, draft, value):
        """A stroke of the brush or eraser: the current brush's region is what the layer now covers."""
        layers = (value or {}).get("layers") or []
        mask = edit.painted_mask(layers[0][..., 3], display_scale(draft.size)) if layers else None
        brush = draft.brush or {}
        unchanged = mask is None or ("mask" in brush and np.array_equal(mask, mask_pixels(brush["mask"], draft.size)))
        if unchanged:  # the editor also reports its value as it was set: keep a shape a shape, redraw nothing
            return tuple(gr.skip() for _ in range(self.view_size))
        return self.view(frame, edit.set_mask(draft, mask))

    def on_mode(self, frame, draft, mode):
        draft = edit.set_mode(draft, mode)
        tool = "arrow" if mode != "static" and ("mask" in draft.brush or mode == "camera") else gr.update()
        return (*self.view(frame, draft), tool)

    def on_fields(self, frame, draft, easing, path_speed, strength, amplitude, period, phase, anchor, flow_speed,
                  dx, dy, pan_x, pan_y, zoom):  # fmt: skip
        mode = (draft.brush or {}).get("mode")
        fields = {"strength": strength}
        if mode == "path":
            fields |= {"easing": easing, "speed": path_speed}
        elif mode == "sway":
            fields |= {
                "amplitude": amplitude,
                "period": period,
                "phase": phase,
                "anchor": anchor,
                "direction": [dx, dy],
            }
        elif mode == "flow":
            fields |= {"speed": flow_speed, "direction": [dx, dy]}
        elif mode == "camera":
            fields = {"pan": [pan_x, pan_y], "zoom": zoom}
        return self.view(frame, edit.set_fields(draft, fields))

    def on_frame(self, image, frame, draft):
        """A new first frame (upload): the brushes stay, drawn on it; a refused picture leaves the old frame."""
        problem = None
        try:
            frame = fit_frame(image, draft.size)
        except WanjaxError as e:
            problem = f"picture: {e}"
        return (frame, *self.view(frame, draft, problem))

    def on_example(self, evt: gr.SelectData):
        """An example's picture and its brushes (which must fit the model's frame size)."""
        png, brushes = self.examples[evt.index]
        frame, draft, problem = fit_frame(read_image(png), self.empty.size), self.empty, None
        try:
            draft = edit.from_file(load_brushes(Path(brushes).read_text(), size=draft.size))
        except WanjaxError as e:
            problem = f"{Path(brushes).name}: {e}"
        return (frame, *self.view(frame, draft, problem))

    def on_frames(self, frame, draft, frames):
        """A clip length typed or picked; one that is not a whole number is refused with the validator's words."""
        text = str(frames).strip()
        if text.isdigit():
            return self.view(frame, edit.set_frames(draft, int(text)))
        return self.view(frame, draft, check(dataclasses.replace(draft, frames=text))[1])

    def on_load(self, frame, draft, path):
        """A brush file uploaded for editing; a bad one leaves the draft as it was and shows why."""
        problem = None
        raw = Path(path).read_bytes()[: MAX_JSON + 1]
        text = raw.decode("utf-8", errors="replace")
        if len(raw) > MAX_JSON:
            problem = f"brush JSON: over {MAX_JSON >> 20} MB; a brush file is a few kB"
        elif text.lstrip()[:1] != "{":
            problem = 'brush JSON: not a JSON object; upload a brush file ({"version": 1, "size": ..., ...})'
        else:
            try:
                draft = edit.from_file(load_brushes(text, size=draft.size))
            except WanjaxError as e:
                problem = str(e)
        return self.view(frame, draft, problem)

    def on_generate(self, frame, draft, seed, steps, progress=gr.Progress(track_tqdm=True)):  # noqa: B008
        spec, error = check(draft)
        if error:
            return None, None, None, f"⚠ Fix the brushes first: {error}"
        t0 = time.perf_counter()
        try:
            video, tracks = self.engine.generate(frame, spec, int(seed), int(steps))
        except WanjaxError as e:
            return None, None, None, f"⚠ {e}"
        paths = self.engine.write(self.workdir.new("video"), video, tracks)
        frames, height, width = video.shape[:3]
        info = (f"{frames} frames · {width}×{height} px · {self.engine.cfg.sample.fps} fps · {int(steps)} step(s) · "
                f"seed {int(seed)} · {time.perf_counter() - t0:.1f} s")  # fmt: skip
        return str(paths["shown"]), str(paths.get("tracks")) if tracks else None, str(paths["video"]), info


def build(engine: Engine, workdir: Workdir) -> gr.Blocks:
    """The page over a loaded model."""
    studio = Studio(engine, workdir)
    frame0, draft0 = studio.first_frame(), studio.empty
    steps0, seed0 = engine.cfg.sample.steps, engine.cfg.sample.seed
    with gr.Blocks(title="wanjax brush studio", analytics_enabled=False, delete_cache=(600, 3600)) as page:
        frame, draft = gr.State(frame0), gr.State(draft0)
        gr.Markdown(
            "# wanjax brush studio\nPaint regions of the first frame, say how each moves, see the tracks they make, "
            f"then generate the video. Model: `{engine.name}`, {engine.size[0]}×{engine.size[1]} px."
        )
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=220):
                upload = gr.Image(label="First frame", sources=["upload", "clipboard"], type="numpy",
                                  height=220, elem_id="upload")  # fmt: skip
                gallery = gr.Gallery([(png, Path(png).stem) for png, _ in studio.examples], columns=3, height=150,
                                     label="Examples (click: the frame with its brushes)", allow_preview=False,
                                     visible=bool(studio.examples), elem_id="examples")  # fmt: skip
                frames = gr.Dropdown([4 * k + 1 for k in range(1, 21)], label="Frames (4k+1)", value=draft0.frames,
                                     allow_custom_value=True, elem_id="frames")  # fmt: skip
                load = gr.UploadButton("⤒ Load brush JSON", file_types=[".json"], elem_id="load-json", size="sm")
                download = gr.DownloadButton("⤓ Download brush JSON", elem_id="download-json", size="sm")
            with gr.Column(scale=3, min_width=360):
                with gr.Tabs():
                    with gr.Tab("Shapes and arrows", elem_id="shapes-tab") as shapes_tab:
                        canvas = gr.Image(label="Brushes and tracks — click to draw", interactive=False,
                                          format="png", elem_id="canvas", buttons=[], height=520)  # fmt: skip
                        tool = gr.Radio(TOOLS, value="box", label="Tool", elem_id="tool")
                        hint = gr.Markdown(HINTS["box"])
                    with gr.Tab("Paint", elem_id="paint-tab") as paint_tab:
                        painter = gr.ImageEditor(label="Paint the current brush's region (brush / eraser)",
                                                 type="numpy", sources=[], transforms=[], layers=False,
                                                 brush=gr.Brush(24, colors=[PAINT_COLOR], color_mode="fixed"),
                                                 eraser=gr.Eraser(default_size=24), canvas_size=(512, 512),
                                                 fixed_canvas=True, height=560, elem_id="painter")  # fmt: skip
                gr.HTML(_legend())
            with gr.Column(scale=2, min_width=300):
                picker = gr.Radio([], label="Brushes", elem_id="picker")
                with gr.Row():
                    new = gr.Button("+ New brush", size="sm", elem_id="new-brush")
                    delete = gr.Button("Delete brush", size="sm", variant="stop", elem_id="delete-brush")
                    clear = gr.Button("Clear path", size="sm", elem_id="clear-path")
                mode = gr.Radio(list(MODES), label="Mode", elem_id="mode")
                with gr.Group(visible=False) as path_box:
                    easing = gr.Dropdown(list(EASINGS), label="Easing (timing along the path)")
                    path_speed = gr.Slider(0, 8, step=0.1, label="Speed, px/frame (0: spread over the clip)")
                with gr.Group(visible=False) as sway_box:
                    amplitude = gr.Slider(0, 20, step=0.1, label="Amplitude, px")
                    period = gr.Slider(1, 81, step=0.5, label="Period, frames")
                    phase = gr.Slider(0, 6.28, step=0.01, label="Phase, radians")
                    anchor = gr.Dropdown(list(ANCHORS), label="Anchor (edge that stays put)")
                with gr.Group(visible=False) as flow_box:
                    flow_speed = gr.Slider(0, 8, step=0.01, label="Speed, px/frame")
                with gr.Row(visible=False) as direction_row:
                    dx, dy = gr.Number(label="Direction x"), gr.Number(label="Direction y")
                with gr.Group(visible=False) as camera_box:
                    pan_x = gr.Slider(-4, 4, step=0.01, label="Pan x, px/frame")
                    pan_y = gr.Slider(-4, 4, step=0.01, label="Pan y, px/frame")
                    zoom = gr.Slider(0.9, 1.1, step=0.001, label="Zoom per frame")
                with gr.Group(visible=False) as strength_box:
                    strength = gr.Slider(0, 2, step=0.05, label="Strength")
                status = gr.HTML(elem_id="brush-status")
                with gr.Accordion("Brush file (JSON)", open=False):
                    code = gr.Code(language="json", interactive=False, elem_id="brush-json")
        gr.Markdown("## Generate")
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=220):
                steps = gr.Slider(1, MAX_STEPS, step=1, value=steps0, label="Sampler steps", elem_id="steps")
                seed = gr.Number(seed0, label="Seed", precision=0, elem_id="seed")
                go = gr.Button("Generate", variant="primary", elem_id="generate")
                info = gr.Markdown(elem_id="video-info")
                mp4 = gr.DownloadButton("⤓ Download video (mp4)", elem_id="download-video", size="sm")
            video = gr.Video(label="Video", autoplay=True, loop=True, elem_id="video", scale=2, height=360)
            tracks = gr.Video(label="Tracks on the video", autoplay=True, loop=True, elem_id="tracks", scale=2,
                              height=360)  # fmt: skip

        fields = [easing, path_speed, strength, amplitude, period, phase, anchor, flow_speed, dx, dy, pan_x, pan_y,
                  zoom]  # fmt: skip
        boxes = [path_box, sway_box, flow_box, camera_box, direction_row, strength_box]
        view = [draft, canvas, status, picker, mode, *boxes, *fields, frames, code, download]  # Studio.view's order
        studio.view_size = len(view)

        def keep(fn):  # a handler whose output is VIEW, for an edit of the draft
            return lambda f, d, *a: studio.view(f, fn(d, *a))

        # Edits run one at a time, in order (one queue for all of them): each reads the draft the last one wrote.
        edits = {"concurrency_limit": 1, "concurrency_id": "edit"}

        def repaint(event):  # the Paint tab shows the current brush of the current frame
            event.then(studio.on_paint_tab, [frame, draft], painter, **edits)

        canvas.select(studio.on_click, [frame, draft, tool], view, **edits)
        paint_tab.select(studio.on_paint_tab, [frame, draft], painter, **edits)
        painter.input(studio.on_paint, [frame, draft, painter], view, **edits)
        shapes_tab.select(studio.view, [frame, draft], view, **edits)
        tool.change(lambda t: HINTS[t], tool, hint)
        tool.input(keep(edit.drop_clicks), [frame, draft], view, **edits)
        repaint(mode.input(studio.on_mode, [frame, draft, mode], [*view, tool], **edits))
        repaint(picker.input(keep(edit.select), [frame, draft, picker], view, **edits))
        repaint(new.click(keep(edit.add_brush), [frame, draft], view, **edits))
        repaint(delete.click(keep(edit.delete_brush), [frame, draft], view, **edits))
        clear.click(keep(edit.clear_path), [frame, draft], view, **edits)
        frames.input(studio.on_frames, [frame, draft, frames], view, **edits)
        for control in fields:
            control.input(studio.on_fields, [frame, draft, *fields], view, **edits)
        repaint(upload.upload(studio.on_frame, [upload, frame, draft], [frame, *view], **edits))
        repaint(gallery.select(studio.on_example, None, [frame, *view], **edits))
        repaint(load.upload(studio.on_load, [frame, draft, load], view, **edits))
        go.click(studio.on_generate, [frame, draft, seed, steps], [video, tracks, mp4, info], concurrency_limit=1,
                 concurrency_id="generate")  # fmt: skip
        page.load(studio.view, [frame, draft], view, **edits)
    return page


def launch(
    config: str | Path | None,
    ckpt: str | Path | None = None,
    *,
    port: int | None = None,
    host: str = "127.0.0.1",
    share: bool = False,
    block: bool = True,
) -> gr.Blocks:
    """Load the model once, then serve the studio on host:port (loopback unless told otherwise; port None: 7860 or
    the next free one; share: a public gradio.live link as well). Uploads are capped at MAX_UPLOAD and pictures at
    MAX_SIDE px a side; generations run one at a time from a queue. In a notebook the page shows inline.
    block=False returns the running page (stop it with .close()); its temporary files go when the process exits.
    block=True serves until interrupted (Ctrl-C or SIGTERM), then removes them."""
    engine = Engine(config, ckpt)
    workdir = Workdir()
    print(f"wanjax studio: temporary files in {workdir.root}", flush=True)
    page = build(engine, workdir)
    page.queue(max_size=32)  # edits and generations each run one at a time (build); more wait, up to 32
    try:
        # height: the page's inline height in a notebook
        page.launch(server_name=host, server_port=port, share=share, max_file_size=MAX_UPLOAD, css=CSS,
                    ssr_mode=False, prevent_thread_lock=True, allowed_paths=[str(workdir.root), str(EXAMPLES)],
                    theme=gr.themes.Soft(primary_hue="orange"), footer_links=[], quiet=not block,
                    height=1500)  # fmt: skip
    except OSError as e:  # the port is taken (Gradio says so with an OSError)
        workdir.close()
        raise WanjaxError(f"cannot serve on {host}:{port or 7860} ({e}); pass another --port") from None
    if block:
        if threading.current_thread() is threading.main_thread():  # `kill PID` closes the page and cleans up too
            signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        try:
            page.block_thread()
        finally:
            page.close()
            workdir.close()
    return page
