"""`wanjax studio` in a real browser: headless Chromium (Debian's `chromium`, installed here when missing; no browser
download) driven through Playwright's Python API. Upload a picture, paint a box, make it a path brush, click a
two-point path, watch the overlay, generate with the bundled model, download the brush file and the video, load a
malformed brush file. A screenshot of every state goes to tmp_path/shots (look at them when the page changes).
"""

import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from wanjax.errors import WanjaxError
from wanjax.motion import compile_brushes, load_brushes
from wanjax.motion.draw import overlay_brushes
from wanjax.studio.canvas import display_scale
from wanjax.studio.engine import VIDEO_SCALE, fit_frame

ROOT = Path(__file__).parents[2]
CHROMIUM = "/usr/bin/chromium"
# What Chromium needs on a closed network (no sandbox as root; no background connections that would be refused).
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip
SIZE, FRAMES, FPS = (64, 64), 17, 16  # configs/brushsprites.yaml
BOX, PATH = [10, 12, 20, 24], [[15, 18], [40, 30]]  # source pixels: what the test clicks
APT_TIMEOUT_S = 600
# The studio subprocess and Playwright's driver start with fork + exec from this process, where JAX's threads run; the
# children exec at once, so the deadlock RuntimeWarning does not apply.
pytestmark = pytest.mark.filterwarnings(r"ignore:os\.fork\(\) was called:RuntimeWarning")


def _apt(*args: str) -> subprocess.CompletedProcess:
    env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
    try:
        return subprocess.run(["apt-get", *args], env=env, capture_output=True, text=True, timeout=APT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"`apt-get {' '.join(args)}` took over {APT_TIMEOUT_S} s; install chromium by hand")


@pytest.fixture(scope="session")
def chromium() -> str:
    """/usr/bin/chromium, installed with apt-get (as root, bounded in time) on a machine without it."""
    if not Path(CHROMIUM).is_file():
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            pytest.fail(f"the studio test needs Debian's chromium at {CHROMIUM}: run `apt-get install -y chromium`")
        done = _apt("install", "-y", "chromium")
        if done.returncode:  # stale or missing package lists: refresh them once
            _apt("update")
            done = _apt("install", "-y", "chromium")
        if done.returncode or not Path(CHROMIUM).is_file():
            pytest.fail(f"`apt-get install -y chromium` failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return CHROMIUM


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    """`wanjax studio` as a subprocess on a free loopback port: (url, its temporary folder). Ended by its pid; its
    temporary files, and Gradio's copies of them, must be gone afterwards."""
    tmp = tmp_path_factory.mktemp("studio")
    port = _free_port()
    flags = re.sub(r"--xla_force_host_platform_device_count=\d+", "", os.environ.get("XLA_FLAGS", ""))
    env = os.environ | {"XLA_FLAGS": flags, "GRADIO_TEMP_DIR": str(tmp / "gradio"), "GRADIO_ANALYTICS_ENABLED": "0"}
    log = tmp / "studio.log"
    command = [sys.executable, "-m", "wanjax.cli", "studio", "configs/brushsprites.yaml", "--port", str(port)]
    with log.open("w") as out:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        url, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 120
        while "Running on local URL" not in log.read_text():
            assert proc.poll() is None, f"wanjax studio exited ({proc.returncode}): {log.read_text()[-2000:]}"
            assert time.monotonic() < deadline, f"wanjax studio did not start in 120 s: {log.read_text()[-2000:]}"
            time.sleep(0.2)
        workdir = Path(re.search(r"temporary files in (\S+)", log.read_text()).group(1))
        yield url, workdir
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            pytest.fail(f"wanjax studio ignored SIGTERM for 30 s: {log.read_text()[-2000:]}")
    assert proc.returncode == 0, log.read_text()[-2000:]
    assert not workdir.exists(), "the studio left its temporary files behind"
    # Gradio's copies of what the page showed went too (it keeps the example pictures and a few empty files).
    examples = {p.name for p in (ROOT / "examples").glob("*.png")}
    kept = [p for p in (tmp / "gradio").rglob("*") if p.is_file() and p.stat().st_size and p.name not in examples]
    assert kept == [], kept


def _picture() -> np.ndarray:
    """A 120 x 90 RGB picture (not the model's size or aspect: the studio crops and resizes it)."""
    y, x = np.mgrid[:90, :120]
    return np.stack([x * 2, y * 2, (x + y) % 64 * 4], axis=-1).astype(np.uint8)


class Page:
    """The studio's page with what the test reads off it."""

    def __init__(self, page, shots: Path):
        self.page, self.shots, self.count = page, shots, 0

    def shot(self, name: str) -> None:
        self.count += 1
        self.page.screenshot(path=self.shots / f"{self.count:02d}_{name}.png", full_page=True)

    def canvas_src(self) -> str:
        return self.page.locator("#canvas img").get_attribute("src")

    def canvas(self) -> np.ndarray:
        """The canvas's pixels, as served."""
        return iio.imread(io.BytesIO(self.page.request.get(self.canvas_src()).body()))[..., :3]

    def status(self) -> str:
        return self.page.locator("#brush-status").inner_text()

    def wait_canvas_change(self, before: str | None = None) -> None:
        """Until the canvas shows a picture (other than the one at `before`), loaded."""
        self.page.wait_for_function(
            "src => { const i = document.querySelector('#canvas img');"
            " return i && i.getAttribute('src') !== src && i.complete && i.naturalWidth > 0; }",
            arg=before,
            timeout=30_000,
        )

    def wait_status(self, text: str) -> None:
        self.page.locator("#brush-status").filter(has_text=text).wait_for(timeout=30_000)

    def click_pixel(self, x: float, y: float) -> None:
        """Click the canvas over source pixel (x, y), wherever the page has put and scaled it (object-fit)."""
        self.wait_canvas_change()
        img = self.page.locator("#canvas img")
        box = img.bounding_box()
        width, height, fit = img.evaluate("i => [i.naturalWidth, i.naturalHeight, getComputedStyle(i).objectFit]")
        s = min(box["width"] / width, box["height"] / height)
        s = min(s, 1.0) if fit == "scale-down" else s
        left, top = box["x"] + (box["width"] - width * s) / 2, box["y"] + (box["height"] - height * s) / 2
        k = width / SIZE[0] * s  # CSS px per source pixel
        before = self.canvas_src()
        self.page.mouse.click(left + (x + 0.5) * k, top + (y + 0.5) * k)
        self.wait_canvas_change(before)

    def upload(self, selector: str, path: Path) -> None:
        """Choose `path` in the file dialog that clicking `selector` opens."""
        with self.page.expect_file_chooser(timeout=30_000) as chooser:
            self.page.locator(selector).click()
        chooser.value.set_files(path)

    def download(self, selector: str, to: Path) -> Path:
        with self.page.expect_download(timeout=30_000) as d:
            self.page.locator(selector).click()
        d.value.save_as(to)
        return to


def test_studio_in_a_browser(studio, chromium, tmp_path):
    from playwright.sync_api import sync_playwright

    url, workdir = studio
    shots = tmp_path / "shots"
    shots.mkdir()
    picture = _picture()
    iio.imwrite(tmp_path / "picture.png", picture)
    frame = fit_frame(picture, SIZE)
    scale = display_scale(SIZE)
    by_hand = {"version": 1, "size": list(SIZE), "frames": FRAMES, "brushes": [{"mode": "path", "mask": {"box": BOX}}]}
    by_hand["brushes"][0]["path"] = PATH

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=FLAGS)
        try:
            ui = Page(browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True), shots)
            ui.page.goto(url)
            ui.page.locator("#canvas img").wait_for(timeout=60_000)
            ui.wait_status("No brushes yet")
            ui.shot("opened")

            # Upload: the canvas is the picture, cropped and resized to the model's frame, upscaled.
            before = ui.canvas_src()
            ui.page.locator("#upload input[type=file]").set_input_files(tmp_path / "picture.png")
            ui.wait_canvas_change(before)
            assert np.array_equal(ui.canvas(), np.repeat(np.repeat(frame, scale, 0), scale, 1))
            ui.shot("uploaded")

            # A box (tool Box is the default): two corners make a static brush.
            ui.click_pixel(*BOX[:2])
            ui.click_pixel(*BOX[2:])
            ui.wait_status("1 brush(es), valid")
            pinned = {**by_hand, "brushes": [{"mode": "static", "mask": {"box": BOX}}]}
            assert np.array_equal(ui.canvas(), overlay_brushes(frame, pinned, compile_brushes(pinned), scale))
            ui.shot("box")

            # Mode path: the validator says what is missing, next to the brush.
            before = ui.canvas_src()
            ui.page.locator("#mode").get_by_text("path", exact=True).click()
            ui.wait_canvas_change(before)  # the half-made brush leaves the overlay
            with pytest.raises(WanjaxError) as e:
                load_brushes({**by_hand, "brushes": [{"mode": "path", "mask": {"box": BOX}}]})
            ui.wait_status(str(e.value))
            no_path = ui.canvas()
            ui.shot("path_mode")

            # A two-point path, clicked with the mouse: the overlay is the drawn one for exactly that brush.
            ui.page.locator("#tool").get_by_text("Path / arrow").click()
            ui.click_pixel(*PATH[0])
            ui.click_pixel(*PATH[1])
            ui.wait_status("1 brush(es), valid")
            want = overlay_brushes(frame, by_hand, compile_brushes(by_hand), scale)
            got = ui.canvas()
            assert np.array_equal(got, want) and not np.array_equal(got, no_path)
            ui.shot("path")

            # The brush file, downloaded: valid, and the same tracks as the brush written by hand.
            saved = ui.download("#download-json", tmp_path / "brushes.json")
            spec = load_brushes(saved)
            assert spec == load_brushes(by_hand)
            ours, theirs = compile_brushes(saved), compile_brushes(by_hand)
            for field in ("xy", "visible", "valid", "brush_id", "kind"):
                assert np.array_equal(getattr(ours, field), getattr(theirs, field)), field

            # Generate with the bundled model at 2 steps.
            steps = ui.page.locator("#steps input[type=number]")
            steps.fill("2")
            steps.press("Enter")
            t0 = time.perf_counter()
            ui.page.locator("#generate").click()
            ui.page.locator("#video-info").filter(has_text="frames").wait_for(timeout=120_000)
            generate_s = time.perf_counter() - t0
            assert ui.page.locator("#video-info").inner_text().startswith(f"{FRAMES} frames · 64×64 px · {FPS} fps · 2")
            video = ui.page.locator("#video video")
            video.wait_for(timeout=30_000)
            ui.page.wait_for_function("() => document.querySelector('#video video').readyState >= 1", timeout=30_000)
            duration, width = video.evaluate("v => [v.duration, v.videoWidth]")
            assert abs(duration * FPS - FRAMES) < 1 and width == SIZE[0] * VIDEO_SCALE  # the browser plays it
            body = ui.page.request.get(video.get_attribute("src")).body()
            shown = iio.imread(body, extension=".mp4", index=None)
            assert shown.shape == (FRAMES, SIZE[1] * VIDEO_SCALE, SIZE[0] * VIDEO_SCALE, 3)
            assert ui.page.locator("#tracks video").count() == 1
            mp4 = iio.imread(ui.download("#download-video", tmp_path / "video.mp4"), index=None)
            assert mp4.shape == (FRAMES, SIZE[1], SIZE[0], 3)
            assert list(workdir.glob("video/*/video.mp4"))  # written under the studio's own temporary folder
            ui.shot("video")

            # Malformed brush files: the validator's message, the brush left as it was.
            for name, text in (("syntax", '{"version": 1, "size": [64, 64],, "frames": 17}'),
                               ("mode", json.dumps({**by_hand, "brushes": [{"mode": "wiggle"}]}))):  # fmt: skip
                (tmp_path / f"{name}.json").write_text(text)
                with pytest.raises(WanjaxError) as e:
                    load_brushes(text, size=SIZE)
                ui.upload("#load-json", tmp_path / f"{name}.json")
                ui.wait_status(str(e.value))
                ui.shot(f"bad_json_{name}")
            assert ui.page.locator("#picker").get_by_text("1 · path").count() == 1

            # The downloaded file loads back for editing.
            ui.upload("#load-json", saved)
            ui.wait_status("1 brush(es), valid")
            assert np.array_equal(ui.canvas(), want)
        finally:
            browser.close()
    print(f"screenshots: {shots}; generation {generate_s:.1f} s")
