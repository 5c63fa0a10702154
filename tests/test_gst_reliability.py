"""Reliability of the GStreamer element ``rmbg``: any text typed for any property, and a pipeline stopped mid-stream.

GStreamer runs in a worker process that this module starts once and keeps (a gst-launch-1.0
per case would cost seconds): a Python application as a user writes one, importing Gst before
the element imports torch, in the environment the README gives, with a registry of its own.
(Not in pytest's own process: with torch imported before Gst, and ONNX Runtime after, any C++
exception crossing pybind11 aborts the process, an ONNX export's included.) The worker sets
properties from text as gst-launch-1.0 does (``Gst.util_set_object_arg``), on the deterministic
test weights at model sizes 32 and 64; a case never loads an engine outside a small pool (a load
costs seconds), so most take a few hundredths of a second.
"""

from __future__ import annotations

import json
import select
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import fuzzing
import numpy as np
import onnx
import pytest
from hosts import gst_environment
from hypothesis import assume, given
from hypothesis import strategies as st
from onnx import TensorProto, helper
from pictures import picture
from PIL import Image

from rmbg_filter.compositing import parse_output
from rmbg_filter.errors import OptionError
from rmbg_filter.options import ModelOptions, OptionSpec, all_specs, split_keywords

#: the engines cases may load: each distinct set of model options loads once per process; the full run adds
#: ONNX Runtime (an export of the network each, about 15 s here)
ENGINES = [ModelOptions(device="cpu", runtime="torch", model_size=32),
           ModelOptions(device="cpu", runtime="torch", dtype="bfloat16", batch_size=2, model_size=64)]
if fuzzing.FULL:
    ENGINES += [ModelOptions(model_size=32), ModelOptions(device="cpu", runtime="onnxruntime", batch_size=2,
                                                          model_size=32)]
FORMATS = ["RGB", "BGR", "RGBA", "BGRA", "RGBx", "BGRx"]
#: what GStreamer prints on every Python element made in the process that defines it (gst-python's
#: bindings, not the element): the one CRITICAL line a case may print
FLOATING = "The created element should be floating"
#: seconds a case may take to end; the first case of an engine loads it (torch, an ONNX export)
CASE_SECONDS = 120

#: Sets the element of a pipeline from text, reads back what it holds, plays the pipeline to EOS or its first
#: error and sets it to NULL: one JSON request and one JSON reply a line. Also lists the element's threads left.
WORKER = """
import json, sys, threading, warnings
import gi
gi.require_version("Gst", "1.0")
from gi.repository import Gst
Gst.init(None)
OWN_THREADS = ("rmbg-gst", "rmbg-read", "rmbg-infer")

def count(seen):
    def probe(pad, info):
        seen.append(info.get_buffer().pts)
        return Gst.PadProbeReturn.OK
    return probe

for line in sys.stdin:
    request = json.loads(line)
    if request["op"] == "set":
        pipeline = Gst.parse_launch(request["pipeline"])
        element, seen = pipeline.get_by_name("rmbg"), []
        element.get_static_pad("src").add_probe(Gst.PadProbeType.BUFFER, count(seen))
        with warnings.catch_warnings():  # GLib's, for values it refuses (out of range, not a number)
            warnings.simplefilter("ignore")
            for name, text in request["settings"]:
                Gst.util_set_object_arg(element, name, text)
        held = {spec.name: element.get_property(spec.name) for spec in element.list_properties()
                if spec.owner_type == element.__gtype__}  # the word choices are GEnums: their words
        reply = {"held": {name: getattr(value, "value_nick", value) for name, value in held.items()}}
    else:
        pipeline.set_state(Gst.State.PLAYING)
        message = pipeline.get_bus().timed_pop_filtered(request["seconds"] * Gst.SECOND,
                                                        Gst.MessageType.EOS | Gst.MessageType.ERROR)
        null = pipeline.set_state(Gst.State.NULL).value_nick
        kind = "none" if message is None else "eos" if message.type == Gst.MessageType.EOS else "error"
        reply = {"kind": kind, "buffers": len(seen), "null": null,
                 "text": message.parse_error()[0].message if kind == "error" else "",
                 "source": message.src.get_name() if kind == "error" else "",
                 "threads": [thread.name for thread in threading.enumerate() if thread.name in OWN_THREADS]}
    print(json.dumps(reply), flush=True)
    sys.stderr.flush()
"""


@dataclass(frozen=True)
class Files:
    """The model and background files the cases name: one set of good ones, the rest bad."""

    model: Path
    picture: Path
    bad_models: dict[str, Path]
    bad_pictures: dict[str, Path]


@dataclass(frozen=True)
class Outcome:
    """How a pipeline ended: ``kind`` eos, error or none (no end in time), the buffers that left the
    element, the error's text and source (empty for EOS), what setting it to NULL returned, the element's
    threads still there after, and what the worker wrote on stderr meanwhile."""

    kind: str
    buffers: int
    text: str
    source: str
    null: str
    threads: list[str]
    stderr: str


class Worker:
    """The GStreamer process the cases run in; started again after a case that killed it or hung."""

    def __init__(self, env: dict[str, str], stderr: Path) -> None:
        self.env, self.stderr_path = env, stderr
        stderr.touch()
        self.process: subprocess.Popen[str] | None = None
        self.stderr = stderr.open()  # a reader of its own: the worker appends

    def ask(self, request: dict[str, Any], seconds: float) -> dict[str, Any]:
        """The worker's reply to ``request``; Hang when none comes within ``seconds``, AssertionError when it
        died (a crash)."""
        if self.process is None:
            with self.stderr_path.open("a") as stderr:
                self.process = subprocess.Popen([sys.executable, "-c", WORKER], env=self.env, stdin=subprocess.PIPE,
                                                stdout=subprocess.PIPE, stderr=stderr, text=True)
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        ready, _, _ = select.select([self.process.stdout], [], [], seconds)
        line = self.process.stdout.readline() if ready else ""
        if not line:
            died = self.process.poll()
            self.close()
            if died is None:
                raise fuzzing.Hang(f"no reply within {seconds} s to {request}: {self.written()[-3000:]}")
            raise AssertionError(f"the worker died (status {died}) on {request}: {self.written()[-3000:]}")
        return json.loads(line)

    def written(self) -> str:
        """What the worker wrote on stderr since the last call."""
        return self.stderr.read()

    def close(self) -> None:
        """End the worker (it is started again on the next request)."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def case(self, settings: list[tuple[str, str]], pipeline: str) -> dict[str, Any]:
        """Make ``pipeline`` (its element named rmbg) and set the element from text: the values it holds."""
        self.written()
        return self.ask({"op": "set", "settings": settings, "pipeline": pipeline}, CASE_SECONDS)["held"]

    def run(self) -> Outcome:
        """Play the pipeline of the last ``case`` to its end (bounded) and set it to NULL."""
        reply = self.ask({"op": "run", "seconds": CASE_SECONDS}, CASE_SECONDS + 30)
        return Outcome(**reply, stderr=self.written())


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory, checkpoints: dict[str, Path]) -> Iterator[Worker]:
    """The GStreamer worker, in the environment of a user who followed the README, with a registry of its own.

    No RMBG_MODEL, and the Hub offline: an empty ``model`` is refused at once rather than fetched.
    """
    folder = tmp_path_factory.mktemp("gst")
    env = {name: value for name, value in gst_environment(folder, checkpoints["safetensors"]).items()
           if name != "RMBG_MODEL"}
    running = Worker(env, folder / "stderr.txt")
    yield running
    running.close()
    running.stderr.close()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, checkpoints: dict[str, Path], onnx_checkpoint: Path) -> Files:
    """The test weights and a background picture, and bad ones: a missing file, an empty one, random bytes
    named .onnx, a truncated ONNX export, a valid ONNX of a wrong graph, a folder with no weights."""
    root = tmp_path_factory.mktemp("bad-files")
    (root / "empty.safetensors").write_bytes(b"")
    (root / "random.onnx").write_bytes(np.random.default_rng(12).bytes(4096))
    with onnx_checkpoint.open("rb") as export:
        (root / "truncated.onnx").write_bytes(export.read(onnx_checkpoint.stat().st_size // 3))
    onnx.save(wrong_graph(), root / "wrong-graph.onnx")
    (root / "no-weights").mkdir()
    (root / "no-weights" / "config.json").write_text("{}")
    Image.fromarray(picture(20, 30)).save(root / "background.png")
    (root / "background.txt").write_text("not a picture")
    return Files(model=checkpoints["safetensors"], picture=root / "background.png",
                 bad_models={"missing": root / "missing.safetensors", "empty": root / "empty.safetensors",
                             "random-bytes": root / "random.onnx", "truncated": root / "truncated.onnx",
                             "wrong-graph": root / "wrong-graph.onnx", "no-weights": root / "no-weights"},
                 bad_pictures={"missing": root / "missing.png", "not-a-picture": root / "background.txt",
                               "folder": root})


def wrong_graph() -> onnx.ModelProto:
    """A valid ONNX model with RMBG-1.4's input, one 3x3 convolution and a sigmoid: not the network."""
    weight = helper.make_tensor("weight", TensorProto.FLOAT, [1, 3, 3, 3], np.full(27, 0.1, np.float32).tolist())
    graph = helper.make_graph(
        [helper.make_node("Conv", ["input", "weight"], ["mask"], pads=[1, 1, 1, 1]),
         helper.make_node("Sigmoid", ["mask"], ["output"])], "wrong",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 64, 64])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 1, 64, 64])], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model


# -- what a user may type ----------------------------------------------------------------------------------

#: any text but NUL (a C string ends there) and lone surrogates (not UTF-8): random words, unicode, empty
TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=16)
#: numbers and near-numbers as typed: out of range, huge, floats for ints, hex, locale commas
NUMBERS = st.one_of(st.integers().map(str), st.floats().map(str),
                    st.sampled_from(["-1", "0", "1e309", "-1e309", "NaN", "+inf", "0x20", "1_000", "1,5", "3.5",
                                     "2147483648", "-2147483649", "99999999999999999999", " 2", "2 "]))
JUNK = st.one_of(TEXT, NUMBERS)
#: devices as typed: the two every machine has, and others it may lack or that are no device
DEVICES = ["cpu", "auto", "CPU", "gpu", "cuda", "cuda:0", "cuda:99", "cuda:-1", "cuda:x", "mps", ""]
#: output words, good and near misses (the image: ones come from the files fixture)
OUTPUTS = ["rgba", "alpha", "green", "blur", "color:#00ff00", "color:#ABCDEF", "color:#12345", "color:red",
           "color:", "image:", "RGBA", "purple", "image"]


def typed(spec: OptionSpec) -> st.SearchStrategy[str]:
    """What a user may type for ``spec``'s property: its valid values, near misses and junk."""
    if spec.type is bool:
        valid = st.sampled_from(["true", "false", "TRUE", "yes", "no", "1", "0", "t", "on", "off"])
    elif spec.type is int:
        valid = st.integers(int(spec.minimum) - 2, int(spec.maximum) + 2).map(str)
    elif spec.type is float:
        valid = st.one_of(st.floats(spec.minimum, spec.maximum).map(str),
                          st.floats(-2 * spec.maximum, 2 * spec.maximum).map(str))
    elif spec.choices:
        valid = st.sampled_from([*spec.choices, *(choice.upper() for choice in spec.choices)])
    else:  # device (model has its own: the bad files)
        valid = st.sampled_from(DEVICES)
    return st.one_of(valid, JUNK)


def engine_settings(engine: ModelOptions, files: Files) -> list[tuple[str, str]]:
    """Every model property of ``engine`` as text, with the test weights."""
    values = {field.name: getattr(engine, field.name) for field in fields(ModelOptions)} | {"model": files.model}
    return [(name.replace("_", "-"), str(value).lower() if isinstance(value, bool) else str(value))
            for name, value in values.items()]


def assignments(data: st.DataObject, files: Files) -> list[tuple[str, str]]:
    """An engine of the pool set in full, then up to six property assignments of any text, in any order."""
    base = engine_settings(data.draw(st.sampled_from(ENGINES), label="engine"), files)
    images = [f"image:{path}" for path in (files.picture, *files.bad_pictures.values())]
    strategies = {spec.name.replace("_", "-"): typed(spec) for spec in all_specs()}
    strategies["model"] = st.one_of(st.sampled_from([str(path) for path in files.bad_models.values()]), JUNK)
    strategies["output"] = st.one_of(st.sampled_from(OUTPUTS + images), JUNK)
    strategies["qos"] = typed(OptionSpec("qos", bool, True, ""))
    chosen = st.sampled_from(sorted(strategies)).flatmap(lambda name: st.tuples(st.just(name), strategies[name]))
    return base + data.draw(st.lists(chosen, max_size=6), label="assignments")


# -- judging a case ----------------------------------------------------------------------------------------

def tiny_pipeline(fmt: str, width: int, height: int, frames: int) -> str:
    """``frames`` test frames of ``fmt`` at width x height through the element (named rmbg) into a fakesink."""
    return (f"videotestsrc num-buffers={frames} ! video/x-raw,format={fmt},width={width},height={height} "
            "! rmbg name=rmbg ! fakesink")


def core_options(held: dict[str, Any]) -> ModelOptions:
    """The model options of ``held``, checked by the core as the element does; OptionError when it refuses."""
    keywords = {spec.name: held[spec.name.replace("_", "-")] for spec in all_specs()}
    options, _ = split_keywords(keywords | {"model": held["model"] or None})
    parse_output(held["output"])
    return options


def expected(held: dict[str, Any], files: Files) -> str:
    """``error`` when the core refuses the values, ``eos`` when they name the good files and a device this
    machine has, ``either`` otherwise (a bad model file, a device that may be missing, a bad picture)."""
    try:
        core_options(held)
    except OptionError:
        return "error"
    good_output = not held["output"].startswith("image:") or held["output"] == f"image:{files.picture}"
    if held["model"] == str(files.model) and held["device"] in ("cpu", "auto") and good_output:
        return "eos"
    return "either"


def loads_outside_the_pool(held: dict[str, Any], files: Files) -> bool:
    """Whether the values would load the good weights with model options outside ENGINES (seconds each)."""
    try:
        options = core_options(held)
    except OptionError:
        return False
    return options.model == str(files.model) and replace(options, model=None) not in ENGINES


def assert_a_clean_refusal(outcome: Outcome, held: dict[str, Any], settings: list[tuple[str, str]]) -> None:
    """The error comes from the element in one line (but for line breaks the user typed in a value), naming a
    property that was set (``the NAME property`` or ``NAME=...``) or quoting the path of a file that could not
    be used (the model, or the background of ``output=image:PATH``)."""
    assert outcome.source == "rmbg", outcome
    assert outcome.text.startswith("rmbg: "), outcome.text
    text = outcome.text
    for value in (value for value in held.values() if isinstance(value, str) and ("\n" in value or "\r" in value)):
        text = text.replace(value, "")
    assert "\n" not in text and "\r" not in text, outcome.text
    paths = [path for path in (held["model"], held["output"].removeprefix("image:")) if len(path) >= 4]
    named = {name for name, _ in settings}
    assert (any(f"the {name} property" in text or f"{name}=" in text for name in named)
            or any(path in outcome.text for path in paths)), outcome.text


def assert_ended_quietly(outcome: Outcome) -> None:
    """An end in time, NULL at once, no traceback, no CRITICAL but gst-python's own, no thread of the element
    left running."""
    assert outcome.kind != "none", f"neither EOS nor an error within {CASE_SECONDS} s"
    assert outcome.null == "success", outcome
    assert "Traceback" not in outcome.stderr, outcome.stderr
    assert not [line for line in outcome.stderr.splitlines() if "CRITICAL" in line and FLOATING not in line], \
        outcome.stderr
    assert not outcome.threads, outcome


@fuzzing.cases(full=800, slice=30)
@given(data=st.data(), width=st.integers(1, 40), height=st.integers(1, 40), fmt=st.sampled_from(FORMATS),
       frames=st.integers(1, 3))
def test_any_property_text_ends_in_eos_or_a_clean_refusal(worker: Worker, files: Files, data: st.DataObject,
                                                          width: int, height: int, fmt: str, frames: int) -> None:
    """Whatever text each property gets, a tiny pipeline ends in EOS with every frame (when the values are
    good) or in one clean element error naming what was wrong (always when the core refuses a value; GObject
    may refuse one at set time too), never in a traceback, a hang or a crash."""
    settings = assignments(data, files)
    held = worker.case(settings, tiny_pipeline(fmt, width, height, frames))
    assume(not loads_outside_the_pool(held, files))
    outcome = worker.run()
    assert_ended_quietly(outcome)
    verdict = expected(held, files)
    if outcome.kind == "error":
        assert verdict != "eos", outcome
        assert_a_clean_refusal(outcome, held, settings)
    else:
        assert verdict != "error", (held, outcome)
        assert outcome.buffers == frames, outcome


@pytest.mark.parametrize("bad", [*(f"model={label}" for label in ("missing", "empty", "random-bytes", "truncated",
                                                                   "wrong-graph", "no-weights")),
                                 *(f"output={label}" for label in ("missing", "not-a-picture", "folder"))])
def test_each_bad_file_is_refused_in_a_line_that_names_it(worker: Worker, files: Files, bad: str) -> None:
    """Every kind of bad model file (missing, empty, random bytes named .onnx, a truncated ONNX export, a valid
    ONNX of another graph, a folder without weights) and of bad background picture fails the start with one
    clean element error that names the file, and no frame."""
    name, label = bad.split("=")
    path = files.bad_models[label] if name == "model" else files.bad_pictures[label]
    settings = [*engine_settings(ENGINES[0], files), (name, str(path) if name == "model" else f"image:{path}")]
    held = worker.case(settings, tiny_pipeline("RGB", 21, 13, 2))
    outcome = worker.run()
    assert_ended_quietly(outcome)
    assert (outcome.kind, outcome.buffers) == ("error", 0)
    assert_a_clean_refusal(outcome, held, settings)
    assert str(path) in outcome.text


# -- NULL mid-stream ---------------------------------------------------------------------------------------

#: Plays a pipeline of an endless source until 8 frames have left the element, sets it to NULL (timed), and
#: plays it again with a source of 9 frames; prints what it saw as JSON.
NULL_SCRIPT = """
import json, sys, threading, time
import gi
gi.require_version("Gst", "1.0")
from gi.repository import Gst
Gst.init(None)
pipeline = Gst.parse_launch("videotestsrc name=source num-buffers=100000 ! video/x-raw,format=RGB,width=40,"
                            "height=30,framerate=25/1 ! rmbg name=rmbg " + sys.argv[1] + " ! fakesink")
seen = []

def count(pad, info):
    seen.append(info.get_buffer().pts)
    return Gst.PadProbeReturn.OK

pipeline.get_by_name("rmbg").get_static_pad("src").add_probe(Gst.PadProbeType.BUFFER, count)
bus = pipeline.get_bus()
pipeline.set_state(Gst.State.PLAYING)
deadline = time.monotonic() + 120
while len(seen) < 8 and time.monotonic() < deadline:
    error = bus.timed_pop_filtered(10 * Gst.MSECOND, Gst.MessageType.ERROR)
    assert error is None, error.parse_error()[0].message
started = time.monotonic()
null = pipeline.set_state(Gst.State.NULL).value_nick
seconds = time.monotonic() - started
threads = [t.name for t in threading.enumerate() if t.name in ("rmbg-gst", "rmbg-read", "rmbg-infer")]
playing = len(seen)
time.sleep(0.5)
report = {"playing": playing, "null": null, "seconds": seconds, "state": pipeline.get_state(0)[1].value_nick,
          "after_null": len(seen) - playing, "threads": threads}
pipeline.get_by_name("source").set_property("num-buffers", 9)
seen.clear()
pipeline.set_state(Gst.State.PLAYING)
message = bus.timed_pop_filtered(120 * Gst.SECOND, Gst.MessageType.EOS | Gst.MessageType.ERROR)
report["again"] = "none" if message is None else "eos" if message.type == Gst.MessageType.EOS else "error"
report["pts"] = list(seen)
pipeline.set_state(Gst.State.NULL)
print(json.dumps(report))
"""


@pytest.mark.parametrize(("batch_size", "radius"), [(1, 0), (2, 2)])
def test_null_mid_stream_stops_at_once_and_the_pipeline_plays_again(worker: Worker, files: Files, batch_size: int,
                                                                   radius: int) -> None:
    """An application sets a streaming pipeline to NULL: the change completes within seconds, the element's
    threads end, no buffer follows, and the same pipeline played again runs a finite clip to EOS with every
    frame, in order. With a batch of 2 and a temporal window, frames are held inside when it stops."""
    element = (f"model={files.model} model-size=32 device=cpu runtime=torch batch-size={batch_size} "
               f"temporal-radius={radius}")
    done = subprocess.run([sys.executable, "-c", NULL_SCRIPT, element], env=worker.env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    report = json.loads(done.stdout)
    assert report["playing"] >= 8, report
    assert (report["null"], report["state"]) == ("success", "null"), report
    assert report["seconds"] < 5, report
    assert report["after_null"] == 0, report
    assert report["threads"] == [], report
    assert report["again"] == "eos", report
    assert report["pts"] == [index * 1_000_000_000 // 25 for index in range(9)], report
