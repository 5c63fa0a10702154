"""The GStreamer element ``rmbg``, run for real with ``gst-launch-1.0`` and ``gst-inspect-1.0``.

The element is found through ``GST_PLUGIN_PATH=<repo>/plugins/gstreamer`` and
imports the core from the venv that ``VIRTUAL_ENV`` names, as the README tells users.
Raw frames go in and out through files; GStreamer pads rows to 4 bytes, which
the helpers here do too, so odd widths test the element's stride handling.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import gst_qos
import numpy as np
import pytest
from hosts import SCRIPTS, gst_environment
from pictures import picture
from PIL import Image

from rmbg_filter import load
from rmbg_filter.compositing import GREEN, composite, parse_output


@pytest.fixture(scope="module")
def gst_env(tmp_path_factory: pytest.TempPathFactory, checkpoints: dict[str, Path]) -> dict[str, str]:
    """The environment of a user who followed the README, with a registry of its own."""
    return gst_environment(tmp_path_factory.mktemp("gst"), checkpoints["safetensors"])


@pytest.fixture(scope="module")
def engine(checkpoints: dict[str, Path]):
    """The core engine with the element's settings below (model size 64, runtime auto)."""
    return load(checkpoints["safetensors"], device="cpu", model_size=64)


def stride(width: int, channels: int) -> int:
    """GStreamer's default row stride: the row's bytes rounded up to 4."""
    return (width * channels + 3) // 4 * 4


def to_rows(frames: np.ndarray) -> bytes:
    """Frames (N,H,W,C) uint8 as GStreamer lays them out, rows padded to the stride."""
    count, height, width, channels = frames.shape
    rows = np.zeros((count, height, stride(width, channels)), np.uint8)
    rows[:, :, :width * channels] = frames.reshape(count, height, -1)
    return rows.tobytes()


def from_rows(data: bytes, height: int, width: int, channels: int) -> np.ndarray:
    """The inverse of ``to_rows``: (N,H,W,C) uint8."""
    rows = np.frombuffer(data, np.uint8).reshape(-1, height, stride(width, channels))
    return rows[:, :, :width * channels].reshape(-1, height, width, channels)


def launch(pipeline: str, env: dict[str, str], cwd: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["gst-launch-1.0", *flags, *pipeline.split()], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def run_frames(frames: np.ndarray, fmt: str, element: str, env: dict[str, str], cwd: Path,
               *flags: str) -> subprocess.CompletedProcess[str]:
    """Feed ``frames`` in caps format ``fmt`` through ``element``; its output lands in cwd/out.raw."""
    _, height, width, _ = frames.shape
    (cwd / "in.raw").write_bytes(to_rows(frames))
    return launch(f"filesrc location=in.raw ! rawvideoparse format={fmt.lower()} width={width} height={height} "
                  f"framerate=25/1 ! {element} ! filesink location=out.raw", env, cwd, *flags)


def test_an_onnx_export_serves_as_model(gst_env: dict[str, str], tmp_path: Path, onnx_checkpoint: Path,
                                       engine) -> None:
    rgb = np.stack([picture(36, 50)] * 2)
    done = run_frames(rgb, "RGB", f"rmbg model={onnx_checkpoint} model-size=64 output=alpha", gst_env, tmp_path)
    assert done.returncode == 0, done.stderr
    for alpha in from_rows((tmp_path / "out.raw").read_bytes(), 36, 50, 1)[..., 0]:
        assert np.abs(alpha.astype(int) - engine(rgb[0])).max() <= 1


def test_inspect_documents_every_property(gst_env: dict[str, str]) -> None:
    done = subprocess.run(["gst-inspect-1.0", "rmbg"], env=gst_env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    for name in ("model", "output", "device", "dtype", "runtime", "batch-size", "model-size", "compile"):
        assert re.search(rf"^  {name} +: \S", done.stdout, re.MULTILINE), name
    assert "GRAY8" in done.stdout and "BGRx" in done.stdout


@pytest.mark.parametrize(("fmt", "order"), [("RGB", [0, 1, 2]), ("BGR", [2, 1, 0]), ("BGRx", [2, 1, 0, 3]),
                                            ("RGBA", [0, 1, 2, 3])])
def test_alpha_of_every_input_format_equals_the_core(fmt: str, order: list[int], tmp_path: Path,
                                                     gst_env: dict[str, str], engine) -> None:
    rgb = np.stack([picture(45, 67), picture(45, 67)[::-1]])
    with_fourth = np.concatenate([rgb, np.full((2, 45, 67, 1), 200, np.uint8)], axis=3)
    done = run_frames(with_fourth[..., order], fmt, "rmbg model-size=64 output=alpha", gst_env, tmp_path)
    assert done.returncode == 0, done.stderr
    alphas = from_rows((tmp_path / "out.raw").read_bytes(), 45, 67, 1)[..., 0]
    assert alphas.shape == (2, 45, 67)
    assert np.abs(alphas.astype(int) - engine(rgb)).max() <= 1


def test_rgba_keeps_the_pixels_and_green_composites(tmp_path: Path, gst_env: dict[str, str], engine) -> None:
    rgb = picture(31, 53)[None]
    alpha = engine(rgb)[0]
    done = run_frames(rgb, "RGB", "rmbg model-size=64", gst_env, tmp_path)
    assert done.returncode == 0, done.stderr
    rgba = from_rows((tmp_path / "out.raw").read_bytes(), 31, 53, 4)[0]
    np.testing.assert_array_equal(rgba[..., :3], rgb[0])
    assert np.abs(rgba[..., 3].astype(int) - alpha).max() <= 1

    done = run_frames(rgb, "RGB", "rmbg model-size=64 output=green", gst_env, tmp_path)
    assert done.returncode == 0, done.stderr
    composited = from_rows((tmp_path / "out.raw").read_bytes(), 31, 53, 3)[0]
    expected = composite(rgb[0], alpha, parse_output("green"))
    assert np.abs(composited.astype(int) - expected).max() <= 2
    background = alpha == 0  # the min-max postprocess leaves at least one pixel at 0
    assert background.any()
    assert np.abs(composited[background].astype(int) - GREEN).max() <= 2  # green shows where alpha is 0


def test_timestamps_and_frame_count_survive(tmp_path: Path, gst_env: dict[str, str]) -> None:
    done = launch("videotestsrc num-buffers=7 pattern=ball ! video/x-raw,width=96,height=64,framerate=30000/1001 "
                  "! videoconvert ! rmbg model-size=64 batch-size=3 ! identity silent=false ! fakesink",
                  gst_env, tmp_path, "-v")
    assert done.returncode == 0, done.stderr
    chains = re.findall(r"chain.*\(identity0:sink\).*pts: (\d+:\d+:\d+\.\d+)", done.stdout)
    assert len(chains) == 7, done.stdout[-2000:]
    assert chains[0] == "0:00:00.000000000" and chains[6] == "0:00:00.200200000"  # 6 * 1001/30000 s
    assert "format=(string)RGBA, width=(int)96, height=(int)64" in done.stdout


def test_a_long_clip_into_a_real_encoder(tmp_path: Path, gst_env: dict[str, str]) -> None:
    done = launch("videotestsrc num-buffers=40 pattern=smpte ! video/x-raw,width=80,height=48,framerate=25/1 "
                  "! videoconvert ! rmbg model-size=64 output=alpha ! videoconvert ! pngenc ! "
                  "multifilesink location=alpha-%03d.png", gst_env, tmp_path)
    assert done.returncode == 0, done.stderr
    assert len(list(tmp_path.glob("alpha-*.png"))) == 40


@pytest.mark.parametrize(("element", "message"), [
    ("rmbg model=missing/model.safetensors",
     "rmbg: model not found: missing/model.safetensors is neither a file, a directory nor a Hub repo id; "
     "pass a local directory or weights file with model=PATH or RMBG_MODEL=PATH"),
    ("rmbg output=purple", "rmbg: the output property must be rgba, alpha, green, color:#RRGGBB, blur or image:PATH"),
    ("rmbg output=image:missing.png", "rmbg: input not found: missing.png"),
])
def test_bad_settings_fail_the_pipeline_with_an_element_error(element: str, message: str, tmp_path: Path,
                                                              gst_env: dict[str, str]) -> None:
    done = launch(f"videotestsrc num-buffers=2 ! videoconvert ! {element} ! fakesink", gst_env, tmp_path)
    assert done.returncode != 0  # gst-launch-1.0 exits 255 when the pipeline cannot start
    errors = [line for line in done.stderr.splitlines() if line.startswith("ERROR: from element")]
    assert errors and errors[0].startswith("ERROR: from element /GstPipeline:pipeline0/GstRmbg:rmbg0: "), errors
    assert message in errors[0]
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(("setting", "words"), [
    ("dtype=float64", "auto, fast, float32, float16, bfloat16, int8"), ("runtime=onnx", "torch, onnxruntime"),
    ("refine=guide", "none, guided"), ("normalize=max", "minmax, none")])
def test_a_word_choice_is_a_genum_and_a_typo_is_refused_at_once(setting: str, words: str, tmp_path: Path,
                                                                gst_env: dict[str, str]) -> None:
    """dtype, runtime, refine and normalize are GEnums: gst-inspect-1.0 lists their words, and gst-launch-1.0
    refuses a word that is not one before the pipeline starts (it was a string found wrong at READY to PAUSED)."""
    name, value = setting.split("=")
    done = launch(f"videotestsrc num-buffers=2 ! videoconvert ! rmbg {setting} ! fakesink", gst_env, tmp_path)
    assert done.returncode != 0
    assert f'could not set property "{name}" in element "rmbg" to "{value}"' in done.stderr
    assert "ERROR: from element" not in done.stderr  # refused while parsing: no model was loaded
    inspected = subprocess.run(["gst-inspect-1.0", "rmbg"], env=gst_env, capture_output=True, text=True, timeout=60)
    listed = re.search(rf"^  {name}\s+:.*?(?=^  [a-z]|\Z)", inspected.stdout, flags=re.M | re.S).group(0)
    enum = f'Enum "GstRmbg{name.title()}"'
    assert enum in listed and all(f"): {word} " in listed for word in words.split(", ")), listed


def test_without_the_venv_the_element_says_how_to_find_the_core(tmp_path: Path, gst_env: dict[str, str]) -> None:
    env = {name: value for name, value in gst_env.items() if name != "VIRTUAL_ENV"}
    done = launch("videotestsrc num-buffers=2 ! videoconvert ! rmbg ! fakesink", env, tmp_path)
    assert done.returncode != 0
    assert "rmbg: cannot import rmbg_filter (No module named 'rmbg_filter'); activate the venv" in done.stderr
    # a property of the core's: gst-launch refuses it at parse time, after the line that says why it is missing
    done = launch("videotestsrc num-buffers=2 ! videoconvert ! rmbg model-size=64 ! fakesink", env, tmp_path)
    assert done.returncode != 0
    said = done.stderr.index("rmbg: cannot import rmbg_filter (No module named 'rmbg_filter'): the element is "
                             "registered without its model and quality properties; activate the venv")
    assert said < done.stderr.index('no property "model-size" in element')


SEEK_SCRIPT = """
import sys
import gi
gi.require_version("Gst", "1.0")
from gi.repository import Gst
Gst.init(None)
pipeline = Gst.parse_launch("videotestsrc num-buffers=60 ! video/x-raw,width=64,height=48,framerate=10/1 "
                            "! videoconvert ! rmbg model-size=64 output=alpha temporal-radius=" + sys.argv[1]
                            + " ! appsink name=sink sync=false")
sink = pipeline.get_by_name("sink")
pipeline.set_state(Gst.State.PLAYING)
before = [sink.emit("pull-sample").get_buffer().pts for _ in range(3)]
assert pipeline.seek_simple(Gst.Format.TIME, Gst.SeekFlags.FLUSH | Gst.SeekFlags.ACCURATE, 3 * Gst.SECOND)
after = []
while (sample := sink.emit("pull-sample")) is not None:
    after.append(sample.get_buffer().pts)
pipeline.set_state(Gst.State.NULL)
print(" ".join(str(pts // 100_000_000) for pts in before), "|", " ".join(str(pts // 100_000_000) for pts in after))
"""


@pytest.mark.parametrize("radius", [0, 2])
def test_a_flushing_seek_restarts_the_stream_at_the_new_position(radius: int, tmp_path: Path,
                                                                 gst_env: dict[str, str]) -> None:
    """With a temporal window, the frames held for it before the seek are dropped, not pushed after it,
    and EOS drains the last ones: every frame from the new position comes once, in order, to the end."""
    done = subprocess.run([sys.executable, "-c", SEEK_SCRIPT, str(radius)], env=gst_env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    before, after = (part.split() for part in done.stdout.split("|"))
    assert before == ["0", "1", "2"]
    # frames from 3 s on, each once, in order, then EOS
    # (videotestsrc counts num-buffers from its start, so how many follow the seek varies)
    assert len(after) >= 10 and after == [str(t) for t in range(30, 30 + len(after))], after


def test_a_size_change_mid_stream_renegotiates(tmp_path: Path, gst_env: dict[str, str], engine) -> None:
    pictures = [picture(41, 61), picture(30, 50), picture(41, 61)[::-1].copy()]
    for index, pixels in enumerate(pictures):
        Image.fromarray(pixels).save(tmp_path / f"{index}.png")
    done = launch("multifilesrc location=%d.png index=0 stop-index=2 caps=image/png,framerate=1/1 ! pngdec "
                  "! videoconvert ! rmbg model-size=64 output=alpha batch-size=2 ! videoconvert ! pngenc "
                  "! multifilesink location=out-%d.png", gst_env, tmp_path)
    assert done.returncode == 0, done.stderr
    for index, pixels in enumerate(pictures):
        alpha = np.asarray(Image.open(tmp_path / f"out-{index}.png").convert("L"))
        assert alpha.shape == pixels.shape[:2]
        assert np.abs(alpha.astype(int) - engine(pixels)).max() <= 1


def test_interrupting_gst_launch_ends_it_promptly(tmp_path: Path, gst_env: dict[str, str]) -> None:
    pipeline = "videotestsrc ! video/x-raw,width=64,height=48 ! videoconvert ! rmbg model-size=64 ! fakesink"
    process = subprocess.Popen(["gst-launch-1.0", *pipeline.split()], env=gst_env, cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while "Setting pipeline to PLAYING" not in (line := process.stdout.readline()):
            assert line and time.monotonic() < deadline, "the pipeline never started"
        time.sleep(2)  # frames are flowing through the worker
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
    finally:
        process.kill()
    assert "Interrupt: Stopping pipeline" in process.stdout.read()
    assert "Traceback" not in process.stderr.read()


LIVE_SCRIPT = """
import sys
import gi
gi.require_version("Gst", "1.0")
from gi.repository import Gst
Gst.init(None)
pipeline = Gst.parse_launch("videotestsrc is-live=true num-buffers=12 ! video/x-raw,width=64,height=48,framerate=10/1 "
                            "! videoconvert ! rmbg model-size=64 batch-size=2 temporal-radius=" + sys.argv[1]
                            + " ! fakesink name=sink sync=true qos=true max-lateness=20000000")
pipeline.set_state(Gst.State.PLAYING)
message = pipeline.get_bus().timed_pop_filtered(60 * Gst.SECOND, Gst.MessageType.EOS | Gst.MessageType.ERROR)
assert message is not None and message.type == Gst.MessageType.EOS, message
query = Gst.Query.new_latency()
assert pipeline.query(query)
live, minimum, _ = query.parse_latency()
stats = pipeline.get_by_name("sink").get_property("stats")
print(live, minimum, stats.get_value("rendered"), stats.get_value("dropped"))
pipeline.set_state(Gst.State.NULL)
"""


@pytest.mark.serial
@pytest.mark.parametrize("radius", [0, 2])
def test_a_live_source_gets_the_elements_latency_and_no_frame_is_dropped(radius: int, tmp_path: Path,
                                                                         gst_env: dict[str, str]) -> None:
    """The latency covers the wait for a batch's second frame and for the R frames a temporal window needs
    after each frame (at 10 fps), plus the inference: a sink that syncs to the clock drops nothing."""
    done = subprocess.run([sys.executable, "-c", LIVE_SCRIPT, str(radius)], env=gst_env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    live, minimum, rendered, dropped = done.stdout.split()
    assert live == "True"
    assert int(minimum) >= (1 + radius) * 100_000_000
    assert (rendered, dropped) == ("12", "0")


def test_inspecting_the_element_loads_no_torch(gst_env: dict[str, str]) -> None:
    done = subprocess.run(["gst-inspect-1.0", "rmbg"], env={**gst_env, "PYTHONPROFILEIMPORTTIME": "1"},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    imported = {line.rsplit("|", 1)[1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert "rmbg_filter.options" in imported  # the embedded Python reported its imports
    assert not {"torch", "transformers"} & imported


def test_a_size_asked_downstream_is_asked_of_upstream(tmp_path: Path, gst_env: dict[str, str], engine) -> None:
    done = launch("videotestsrc num-buffers=2 pattern=smpte ! video/x-raw,width=320,height=240 ! videoconvert "
                  "! videoscale ! rmbg model-size=64 output=alpha ! video/x-raw,width=160,height=120 "
                  "! filesink location=out.raw", gst_env, tmp_path)
    assert done.returncode == 0, done.stderr
    alphas = from_rows((tmp_path / "out.raw").read_bytes(), 120, 160, 1)
    assert alphas.shape == (2, 120, 160, 1)


CAPS_SCRIPT = """
import re
import gi
gi.require_version("Gst", "1.0")
from gi.repository import Gst
Gst.init(None)
for output in ("rgba", "alpha", "green", "purple"):
    element = Gst.ElementFactory.make("rmbg")
    element.set_property("output", output)
    caps = element.get_static_pad("src").query_caps(None).to_string()
    listed = re.findall(r"format=\\(string\\)(?:\\{ *([^}]*)\\}|(\\w+))", caps)
    print(output, *sorted({f.strip() for group in listed for f in ",".join(group).split(",") if f.strip()}))
"""


def test_the_source_pad_offers_only_the_format_output_makes(tmp_path: Path, gst_env: dict[str, str]) -> None:
    done = subprocess.run(["/usr/bin/python3", "-c", CAPS_SCRIPT], env=gst_env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["rgba RGBA", "alpha GRAY8", "green RGB", "purple GRAY8 RGB RGBA"]


FAILING_START_SCRIPT = """
import sys
import gi
gi.require_version("Gst", "1.0")
from gi.repository import Gst
Gst.init(None)
import torch
from rmbg_filter import engine

def fail(options):  # what loading raised on a full disk or a full GPU
    raise {"oserror": OSError(28, "No space left on device"),
           "oom": torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")}[sys.argv[1]]

engine.shared_engine = fail
pipeline = Gst.parse_launch("videotestsrc num-buffers=2 ! videoconvert ! rmbg ! fakesink")
print(pipeline.set_state(Gst.State.PLAYING).value_nick)
message = pipeline.get_bus().timed_pop_filtered(60 * Gst.SECOND, Gst.MessageType.ERROR)
print(message.src.get_name(), message.parse_error()[0].message)
pipeline.set_state(Gst.State.NULL)
"""


@pytest.mark.parametrize(("failure", "message"), [
    ("oserror", "rmbg: cannot start: OSError: [Errno 28] No space left on device"),
    ("oom", "rmbg: cannot start: OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"),
])
def test_any_failure_at_start_is_an_element_error(failure: str, message: str, tmp_path: Path,
                                                   gst_env: dict[str, str]) -> None:
    done = subprocess.run([sys.executable, "-c", FAILING_START_SCRIPT, failure], env=gst_env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["failure", f"rmbg0 {message}"]
    assert "Traceback" not in done.stderr


@pytest.mark.serial
def test_a_live_source_stays_on_time_with_reused_alphas_and_a_file_gets_every_alpha_fresh(
        tmp_path: Path, gst_env: dict[str, str]) -> None:
    """A live source at 30 fps, a network at model size 512 far slower than that (about 0.3 s a frame here), into
    a sink that syncs as a display does. Without QoS every frame runs and the source falls behind; with it the
    network runs on the newest frames and the frames between leave at once with the last alpha: at least 90% reach
    the sink on time. The same frames from a file into a sink that does not sync all get a fresh alpha."""
    frames = 30
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=96x64:rate=30", "-frames:v",
                    str(frames), "-c:v", "libx264", "-pix_fmt", "yuv420p", "clip.mp4"], cwd=tmp_path, check=True)
    live = (f"videotestsrc is-live=true num-buffers={frames} ! video/x-raw,format=RGB,width=96,height=64,"
            "framerate=30/1 ! rmbg name=rmbg model-size=512 qos={} "
            "! fakesink name=sink sync=true qos=true max-lateness=20000000")
    pipelines = {"false": live.format("false"), "true": live.format("true"),
                 "file": "filesrc location=clip.mp4 ! decodebin ! videoconvert ! video/x-raw,format=RGB "
                         "! rmbg name=rmbg model-size=512 ! fakesink name=sink sync=false"}
    runs = {}
    for name, pipeline in pipelines.items():
        done = subprocess.run(["/usr/bin/python3", "-c", gst_qos.RUN, pipeline, str(SCRIPTS)], env=gst_env,
                              cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        runs[name] = json.loads(done.stdout.splitlines()[-1])
        assert runs[name]["arrived"] == frames, name  # every frame leaves the element, with an alpha
    assert runs["false"]["reused"] == 0
    assert runs["false"]["lag"] > 3  # every frame ran: the source was held back for most of the network's time
    assert runs["true"]["reused"] >= 10
    assert frames - runs["true"]["reused"] >= 2  # the network went on running on the newest frames
    assert runs["true"]["lag"] < 0.5
    assert runs["true"]["rendered"] >= 0.9 * frames, runs["true"]
    assert runs["file"]["reused"] == 0
    assert runs["file"]["rendered"] == frames


LATENCY_SCRIPT = """
import sys
sys.path.insert(0, sys.argv[1])
from gst_bus import Gst, latency, play
Gst.init(None)
small, large = ("video/x-raw,format=RGB,width=64,height=48,framerate=5/1",
                "video/x-raw,format=RGB,width=1920,height=1080,framerate=5/1")
pipeline = Gst.parse_launch(f"videotestsrc is-live=true num-buffers=12 ! capsfilter name=size caps={small} "
                            "! rmbg name=rmbg model-size=32 ! fakesink sync=true")
reported, seen = [], [0]

def count(pad, info):
    seen[0] += 1
    if seen[0] == 4:  # the source renegotiates: 1080p frames cost more to resize than the first ones
        pipeline.get_by_name("size").set_property("caps", Gst.Caps.from_string(large))
    if seen[0] == 3:
        reported.append(latency(pipeline))
    return Gst.PadProbeReturn.OK

def followed(message):
    if message.type == Gst.MessageType.LATENCY and message.src.get_name() == "rmbg":
        reported.append(latency(pipeline))

pipeline.get_by_name("rmbg").get_static_pad("sink").add_probe(Gst.PadProbeType.BUFFER, count)
play(pipeline, followed)
print(*reported)
"""


@pytest.mark.serial
def test_the_latency_follows_the_measured_batches(tmp_path: Path, gst_env: dict[str, str]) -> None:
    """Frames grow from 64x48 to 1080p mid-stream: their batches take longer, the element posts latency
    messages, and the pipeline's latency grows with them."""
    done = subprocess.run(["/usr/bin/python3", "-c", LATENCY_SCRIPT, str(SCRIPTS)], env=gst_env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    reported = [int(value) for value in done.stdout.split()]
    assert len(reported) >= 2, "no latency message came from the element"
    assert reported[-1] > reported[0] > 0


def test_frames_too_large_for_memory_are_refused_at_negotiation(tmp_path: Path, gst_env: dict[str, str]) -> None:
    done = launch("videotestsrc num-buffers=1 ! video/x-raw,format=RGB,width=16384,height=10922 ! rmbg "
                  "model-size=32 batch-size=64 temporal-radius=8 ! fakesink", gst_env, tmp_path)
    assert done.returncode != 0
    # the element has run its timed batch by then: the network's share is this process's already, not charged
    assert re.search(r"rmbg: frames of 16384x10922 need about 367\.3 GiB of memory, more than the [\d.]+ GiB "
                     r"available; scale them down, or lower the batch-size property or the temporal-radius property",
                     done.stdout + done.stderr)


ERROR_CODES_SCRIPT = """
import gi
gi.require_version("Gst", "1.0")
from gi.repository import Gst
Gst.init(None)
caps = "video/x-raw,format=RGB,width=8,height=6,framerate=25/1"
for element in ("rmbg model-size=64", "rmbg model=missing/model.safetensors"):
    pipeline = Gst.parse_launch(f"appsrc name=source format=time caps={caps} ! {element} ! fakesink")
    pipeline.set_state(Gst.State.PLAYING)
    short = Gst.Buffer.new_wrapped(bytes(10))  # 8x6 RGB needs 6 rows of 24 bytes
    short.pts, short.duration = 0, Gst.SECOND // 25
    pipeline.get_by_name("source").emit("push-buffer", short)
    pipeline.get_by_name("source").emit("end-of-stream")
    message = pipeline.get_bus().timed_pop_filtered(120 * Gst.SECOND, Gst.MessageType.ERROR | Gst.MessageType.EOS)
    error = message.parse_error()[0] if message.type == Gst.MessageType.ERROR else None
    print(error.domain if error else "eos", error.code if error else "", error.message if error else "", sep="|")
    pipeline.set_state(Gst.State.NULL)
"""


def test_a_short_buffer_and_a_missing_model_are_element_errors_with_their_codes(tmp_path: Path,
                                                                                 gst_env: dict[str, str]) -> None:
    """A buffer smaller than its caps is a STREAM/FORMAT error in one line (it was a Python traceback and a
    silently dropped frame); a model that is not there is RESOURCE/NOT_FOUND, as filesrc says of a missing file."""
    done = subprocess.run(["/usr/bin/python3", "-c", ERROR_CODES_SCRIPT], env=gst_env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    short, missing = (line.split("|") for line in done.stdout.strip().splitlines())
    assert short == ["gst-stream-error-quark", "11",  # GST_STREAM_ERROR_FORMAT
                     "rmbg: a buffer of 10 bytes is smaller than a 8x6 RGB frame of its caps (144 bytes); check the "
                     "element before rmbg"]
    assert missing[:2] == ["gst-resource-error-quark", "3"]  # GST_RESOURCE_ERROR_NOT_FOUND
    assert missing[2].startswith("rmbg: model not found: missing/model.safetensors")


METADATA_SCRIPT = """
import gi
gi.require_version("Gst", "1.0")
from gi.repository import Gst
Gst.init(None)
caps = "video/x-raw,format=RGB,width=8,height=6,framerate=25/1"
pipeline = Gst.parse_launch(f"appsrc name=source format=time caps={caps} ! rmbg model-size=64 output=alpha "
                            "! appsink name=sink sync=false emit-signals=false")
source, sink = pipeline.get_by_name("source"), pipeline.get_by_name("sink")
pipeline.set_state(Gst.State.PLAYING)
F = Gst.BufferFlags
pushed = [(F.DELTA_UNIT | F.MARKER, bytes(144)), (F.GAP, None), (F.HEADER | F.DISCONT, bytes(144)), (0, bytes(144))]
for index, (flags, data) in enumerate(pushed):
    buffer = Gst.Buffer.new() if data is None else Gst.Buffer.new_wrapped(data)  # a GAP may carry no memory
    buffer.pts, buffer.duration = index * Gst.SECOND // 25, Gst.SECOND // 25
    buffer.offset, buffer.offset_end = 10 + index, 11 + index
    buffer.set_flags(flags)
    source.emit("push-buffer", buffer)
source.emit("end-of-stream")
for _ in pushed:
    buffer = sink.emit("try-pull-sample", 120 * Gst.SECOND).get_buffer()
    wanted = F.DELTA_UNIT | F.MARKER | F.GAP | F.HEADER | F.DISCONT
    alpha = buffer.extract_dup(0, buffer.get_size())
    print(buffer.offset, buffer.offset_end, int(buffer.get_flags() & wanted), len(alpha), max(alpha), sep="|")
message = pipeline.get_bus().timed_pop_filtered(60 * Gst.SECOND, Gst.MessageType.ERROR | Gst.MessageType.EOS)
print(message.type.first_value_nick)
pipeline.set_state(Gst.State.NULL)
"""


def test_offsets_and_flags_pass_through_and_a_gap_gets_no_network_run(tmp_path: Path,
                                                                       gst_env: dict[str, str]) -> None:
    """offset_end and the DELTA_UNIT, MARKER, HEADER, DISCONT and GAP flags reach the output buffers (offset_end was
    NONE and the flags but DISCONT dropped); a GAP buffer, here one without memory, is not run through the network:
    its alpha is 0, where the same black frame without the flag gets the network's alpha."""
    done = subprocess.run(["/usr/bin/python3", "-c", METADATA_SCRIPT], env=gst_env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    *buffers, end = done.stdout.strip().splitlines()
    rows = [line.split("|") for line in buffers]
    flags = [int(row[2]) for row in rows]
    assert [row[:2] for row in rows] == [["10", "11"], ["11", "12"], ["12", "13"], ["13", "14"]]
    delta_unit, marker, gap, header, discont = 8192, 512, 2048, 1024, 64  # GstBufferFlags
    assert flags == [delta_unit | marker | discont, gap, header | discont, 0]  # appsrc marks its first DISCONT
    assert all(row[3] == str(8 * 6) for row in rows)  # GRAY8 rows of 8 bytes
    assert rows[1][4] == "0"  # the gap: an alpha of 0, no network run
    assert rows[0][4] != "0" and rows[3][4] != "0"  # the same black frames, run: the network's alpha
    assert end == "eos"


def test_an_installed_wheel_carries_the_element_and_says_where_it_is(tmp_path: Path, gst_env: dict[str, str]) -> None:
    """pip wheel, installed into a fresh venv of the system Python (with its site packages): ``rmbg-filter
    gst-plugin-path`` prints the
    wheel's plugin folder, and gst-inspect-1.0 finds the element there with every property (the core found in
    the activated venv). Only the wheel's dependencies come from the test venv, through a .pth file (the wheel
    is installed without them: no network, no 3 GB torch)."""
    root = Path(__file__).resolve().parents[1]
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", str(root), "--no-deps", "--no-build-isolation",
                            "-q", "-w", str(tmp_path / "dist")], capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "dist").glob("rmbg_filter-*.whl")
    fresh = tmp_path / "fresh"
    # --system-site-packages, as the docs say: the plugin loader's embedded Python takes the activated venv's
    # python3 from PATH as its home, and without the system's packages it has no gi ("pygobject initialization
    # failed", and no element)
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--system-site-packages", str(fresh)], check=True, timeout=120)
    installed = subprocess.run([str(fresh / "bin" / "pip"), "install", "-q", "--no-deps", "--no-index", str(wheel)],
                               capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stderr
    (site_packages,) = (fresh / "lib").glob("python3.*/site-packages")
    (site_packages / "test-dependencies.pth").write_text(next(p for p in sys.path if p.endswith("site-packages")))
    env = {**gst_env, "VIRTUAL_ENV": str(fresh), "PATH": f"{fresh / 'bin'}:{gst_env['PATH']}",
           "GST_REGISTRY": str(tmp_path / "registry.bin")}
    printed = subprocess.run(["rmbg-filter", "gst-plugin-path"], env=env, capture_output=True, text=True,
                             timeout=120)
    assert printed.returncode == 0, printed.stderr
    folder = Path(printed.stdout.strip())
    assert folder == site_packages / "rmbg_gstreamer" and (folder / "python" / "rmbg.py").is_file()
    inspected = subprocess.run(["gst-inspect-1.0", "rmbg"], env={**env, "GST_PLUGIN_PATH": str(folder)},
                               capture_output=True, text=True, timeout=120)
    assert inspected.returncode == 0, inspected.stderr
    assert "model-size" in inspected.stdout and "temporal-radius" in inspected.stdout
    assert str(root) not in inspected.stdout


ALPHA_SOURCE = "videotestsrc num-buffers=3 pattern=ball ! video/x-raw,width=64,height=48,framerate=25/1 ! videoconvert"
#: each route from the element's RGBA to a file that keeps the alpha, as the docs give them
ALPHA_ROUTES = {
    "png": "rmbg model-size=64 ! pngenc ! multifilesink location=out-%d.png",
    "prores": "rmbg model-size=64 ! videoconvert ! video/x-raw,format=A444_10LE ! avenc_prores_ks profile=4444 "
              "! qtmux ! filesink location=out.mov",
    "ffv1": "rmbg model-size=64 ! videoconvert ! video/x-raw,format=BGRA ! avenc_ffv1 ! matroskamux "
            "! filesink location=out.mkv",
}


@pytest.mark.parametrize("route", ALPHA_ROUTES)
def test_the_documented_alpha_routes_keep_the_alpha(route: str, tmp_path: Path, gst_env: dict[str, str]) -> None:
    """PNG, ProRes 4444 (A444_10LE into avenc_prores_ks) and FFV1 (BGRA named before avenc_ffv1): ffprobe finds an
    alpha format, and the alpha ffmpeg decodes is the element's own (output=alpha): exactly, or within 2 levels
    for ProRes."""
    done = launch(f"{ALPHA_SOURCE} ! rmbg model-size=64 output=alpha ! filesink location=alpha.raw", gst_env, tmp_path)
    assert done.returncode == 0, done.stderr
    wanted = np.frombuffer((tmp_path / "alpha.raw").read_bytes(), np.uint8).reshape(3, 48, 64)
    done = launch(f"{ALPHA_SOURCE} ! {ALPHA_ROUTES[route]}", gst_env, tmp_path)
    assert done.returncode == 0, done.stderr
    output = "out-%d.png" if route == "png" else next(tmp_path.glob("out.*")).name
    first = "out-0.png" if route == "png" else output
    probe = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=pix_fmt", "-of", "csv=p=0", first],
                           cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert probe.stdout.strip() in {"png": ("rgba",), "prores": ("yuva444p12le", "yuva444p10le"),
                                    "ffv1": ("bgra",)}[route]
    decoded = subprocess.run(["ffmpeg", "-v", "error", "-i", output, "-vf", "alphaextract", "-f", "rawvideo",
                              "-pix_fmt", "gray", "-"], cwd=tmp_path, capture_output=True, timeout=60)
    alphas = np.frombuffer(decoded.stdout, np.uint8).reshape(-1, 48, 64)
    assert len(alphas) == 3 and wanted.max() == 255 and wanted.min() < 128
    # PNG and FFV1 hold the 8 bits as they are; ProRes holds the alpha in its 4444 profile's own depth, a
    # conversion each way (8 -> 10 bits for A444_10LE, then the encoder's)
    assert np.abs(alphas.astype(int) - wanted).max() <= (2 if route == "prores" else 0)


def test_ffv1_without_named_caps_and_vp9_lose_the_alpha_as_the_docs_say(tmp_path: Path,
                                                                         gst_env: dict[str, str]) -> None:
    """Why the docs name BGRA before avenc_ffv1, and say VP9 cannot carry alpha here: without the caps,
    videoconvert picks yuv420p; this GStreamer's vp9enc takes no format with alpha."""
    done = launch(f"{ALPHA_SOURCE} ! rmbg model-size=64 ! videoconvert ! avenc_ffv1 ! matroskamux "
                  "! filesink location=plain.mkv", gst_env, tmp_path)
    assert done.returncode == 0, done.stderr
    probe = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=pix_fmt", "-of", "csv=p=0",
                            "plain.mkv"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert probe.stdout.strip() == "yuv420p"
    inspected = subprocess.run(["gst-inspect-1.0", "vp9enc"], env=gst_env, capture_output=True, text=True, timeout=60)
    sink_formats = inspected.stdout.split("SINK template")[1].split("SRC template")[0]
    assert "I420" in sink_formats and not re.search(r"\bA4[24][024]|\bAYUV|RGBA|BGRA", sink_formats)


@pytest.mark.parametrize(("fmt", "colorimetry"), [("I420", "bt601"), ("NV12", "bt709"), ("I420", "bt2020"),
                                                  ("NV12", "jpeg")])
def test_yuv_input_is_converted_with_its_caps_colorimetry(fmt: str, colorimetry: str, tmp_path: Path,
                                                          gst_env: dict[str, str]) -> None:
    """I420 and NV12 need no videoconvert before rmbg: made from a known RGB picture (odd size) with each matrix
    and range (jpeg: BT.601, full range), the element's RGB is as close to the picture as videoconvert's own
    conversion back (a matrix or range ignored would be far from it), and its alpha that of videoconvert's RGB."""
    frames = np.stack([picture(49, 65), picture(49, 65)[::-1].copy()])
    (tmp_path / "in.raw").write_bytes(to_rows(frames))
    yuv = (f"filesrc location=in.raw ! rawvideoparse format=rgb width=65 height=49 framerate=25/1 ! videoconvert "
           f"! video/x-raw,format={fmt},colorimetry={colorimetry}")
    outputs = {}
    for name, converted in (("ours", yuv), ("videoconvert", f"{yuv} ! videoconvert ! video/x-raw,format=RGB")):
        done = launch(f"{converted} ! rmbg model-size=64 ! filesink location={name}.raw", gst_env, tmp_path)
        assert done.returncode == 0, done.stderr
        outputs[name] = from_rows((tmp_path / f"{name}.raw").read_bytes(), 49, 65, 4).astype(int)
    ours, theirs = (np.abs(outputs[name][..., :3] - frames).mean() for name in ("ours", "videoconvert"))
    assert ours <= theirs + 0.5, (ours, theirs)
    alpha = np.abs(outputs["ours"][..., 3] - outputs["videoconvert"][..., 3])
    assert alpha.mean() < 1.5, alpha.mean()


def test_yuv_with_a_matrix_it_cannot_convert_is_a_format_error(tmp_path: Path, gst_env: dict[str, str]) -> None:
    (tmp_path / "in.raw").write_bytes(bytes(64 * 48 * 3 // 2 * 2))
    done = launch("filesrc location=in.raw ! rawvideoparse format=i420 width=64 height=48 framerate=25/1 "
                  "colorimetry=smpte240m ! rmbg model-size=64 ! fakesink", gst_env, tmp_path)
    assert done.returncode != 0
    assert ("rmbg: YUV input with the colour matrix smpte240m is not taken (only BT.601, BT.709, BT.2020); put "
            "videoconvert before rmbg") in done.stderr


def test_the_yuv_bench_prints_its_table(tmp_path: Path, gst_env: dict[str, str], checkpoints) -> None:
    """make gst-yuv's slice: both settings, each run in gst-launch-1.0, and the CPU's flags in the table."""
    done = subprocess.run([sys.executable, str(SCRIPTS / "gst_yuv.py"), "--model", str(checkpoints["safetensors"]),
                           "--size", "64x48", "--frames", "3", "--rounds", "1", "--model-size", "64"],
                          env=gst_env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("CPU: ") and "avx2" in done.stdout.splitlines()[0]
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ") and "s/frame" not in line]
    assert [row.split(" | ")[0] for row in rows] == ["| videoconvert ! rmbg (RGB in)", "| rmbg (I420 in)"]
    for row in rows:  # at 64x48 the frames cost less than the runs' noise: a number, not its sign
        float(row.split(" | ")[1])
