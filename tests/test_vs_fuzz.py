"""vsrmbg.mask and vsrmbg.rmbg under argument fuzzing: any call gives a working clip or one clear vs.Error line.

VapourSynth needs Python 3.12, so the fuzz loop runs in VapourSynth's Python (``hosts.vs_python()``): the
test runs this file there as a script, with the case count, derandomize flag and example database of
``fuzzing.cases`` in the environment, and reads back how many cases ran. Each case draws a clip (RGB or YUV
of many depths, subsamplings and odd sizes, GRAY, more than 16 bits, variable format or size, or no clip at
all), a model (the test's weights, missing, empty, random bytes, the wrong type), a matrix and any of the
ModelOptions and QualityOptions keywords (valid, out of range, of the wrong type, unknown ones too).

The oracle knows which drawn arguments are faults: a case with one must be refused by a vs.Error (from the
call, or at the latest from a frame) whose message is one line starting with ``vsrmbg.mask:`` or
``vsrmbg.rmbg:``; a case without one must give a clip of the documented format whose first and last frames
come within CASE_SECONDS. Any other exception, or a hang, fails the test.
"""

from __future__ import annotations

import math
import os
import random
import subprocess
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from fuzzing import FULL, Hang, at_most, cases
from hosts import vs_python
from hypothesis import Phase, given, settings
from hypothesis import strategies as st
from hypothesis.database import DirectoryBasedExampleDatabase

from rmbg_filter.options import ModelOptions, OptionSpec, QualityOptions, specs

if TYPE_CHECKING:  # VapourSynth's Python, which runs this file too, has no pytest
    import pytest

FULL_CASES, SLICE_CASES = 2000, 50
#: the longest a case may take, engine load and frames included (a hang past it ends the run)
CASE_SECONDS = 60.0
#: valid model options: each a distinct engine, loaded once in the fuzzing process (1-7 s each)
ENGINES: tuple[dict[str, Any], ...] = (
    {"model_size": 32, "runtime": "torch"},
    {"model_size": 64, "runtime": "torch", "device": "cpu", "compile": False},
    {"model_size": 32, "dtype": "bfloat16", "batch_size": 4},
    {"model_size": 32, "runtime": "onnxruntime", "batch_size": 2, "dtype": "float32"},
)
#: matrix= values that convert YUV to RGB by themselves: zimg's names, H.273 codes and vstools' spellings
MATRICES = ("709", "170m", "470bg", "240m", "fcc", "ycgco", "2020ncl", 1, 5, 9, "bt709", "BT2020_NCL", "st170_m")
#: zimg's other matrix names: they need more colorimetry than a clip without frame properties has
PARTIAL_MATRICES = ("rgb", "unspec", "2020cl", "chromacl", "chromancl", "ictcp")
#: the arguments a faulty case gets wrong (the options twice as often: they have the most values to try)
FAULTS = ("clip", "model", "matrix", "model option", "model option", "engine", "quality option", "quality option",
          "unknown option")
#: valid model options that no engine can serve together
BAD_ENGINES: tuple[dict[str, Any], ...] = ({"runtime": "onnxruntime", "dtype": "bfloat16"},
                                           {"runtime": "onnxruntime", "dtype": "float16"},
                                           {"runtime": "onnxruntime", "compile": True})
NON_CLIPS = ("None", "path", "int", "bytes", "list", "audio", "frame", "array", "core")
ENV_CASES, ENV_DERANDOMIZE, ENV_DATABASE, ENV_MODEL = ("VSFUZZ_CASES", "VSFUZZ_DERANDOMIZE", "VSFUZZ_DATABASE",
                                                       "VSFUZZ_MODEL")


@dataclass(frozen=True)
class Arg:
    """One drawn argument: the value passed and, when it must be refused, what the refusal names ('' if fine)."""

    value: Any
    fault: str = ""


@dataclass(frozen=True)
class ClipSpec:
    """A clip to build: ``kind`` 'constant', 'variable-format', 'variable-size', or one of NON_CLIPS.

    A constant clip is a BlankClip of ``family`` (RGB, YUV, GRAY), ``sample`` (integer, float), ``bits``,
    chroma subsampling ``ss`` (log2, width and height), ``width`` x ``height``, ``length`` frames, filled with
    ``shade`` (a fraction of each plane's range).
    """

    kind: str
    family: str = "RGB"
    sample: str = "integer"
    bits: int = 8
    ss: tuple[int, int] = (0, 0)
    width: int = 32
    height: int = 32
    length: int = 1
    shade: tuple[float, float, float] = (0.5, 0.5, 0.5)

    @property
    def fault(self) -> str:
        """What vsrmbg's refusal of this clip names ('clip'), or '' when it takes it."""
        wrong = self.kind != "constant" or self.family == "GRAY" or (self.sample == "integer" and self.bits > 16)
        return "clip" if wrong else ""


@dataclass(frozen=True)
class Case:
    """One call: ``function`` (mask or rmbg) on ``clip``; ``model`` passed positionally (a fault: that place is
    vs-jetpack's ref clip's), by keyword or not at all (None); ``matrix`` when passed; ``options`` the further
    keywords."""

    function: str
    clip: ClipSpec
    model: Arg | None
    model_by_keyword: bool
    matrix: Arg | None
    options: dict[str, Arg]

    @property
    def faults(self) -> list[str]:
        """What a refusal of this call may name: one entry per fault (none: the call must work)."""
        drawn = [self.clip.fault, self.matrix.fault if self.matrix else "", self.model.fault if self.model else "model",
                 *(arg.fault for arg in self.options.values())]
        if self.model is not None and not self.model_by_keyword:  # by position it takes jetpack's ref clip's place
            drawn.append("ref clip")
        runtime = self.options.get("runtime", Arg("auto")).value
        if runtime == "onnxruntime" and self.options.get("dtype", Arg("auto")).value in ("float16", "bfloat16"):
            drawn.append("runtime='onnxruntime'")
        if runtime == "onnxruntime" and self.options.get("compile", Arg(False)).value is True:
            drawn.append("compile=")
        return [fault for fault in drawn if fault]


def valid_values(spec: OptionSpec) -> st.SearchStrategy[Any]:
    """Values of an option that its declaration accepts (ints stand for floats)."""
    if spec.choices:
        return st.sampled_from(spec.choices)
    if spec.type is bool:
        return st.booleans()
    if spec.type is int:
        step = spec.multiple or 1
        return st.integers(int(spec.minimum) // step, int(spec.maximum) // step).map(lambda k: k * step)
    if spec.type is float:
        return st.floats(spec.minimum, spec.maximum) | st.integers(math.ceil(spec.minimum), math.floor(spec.maximum))
    raise AssertionError(f"no valid values for {spec.name} of type {spec.type.__name__}")


def invalid_values(spec: OptionSpec) -> list[Any]:
    """Values of an option that its declaration refuses: wrong types, out of range, not a choice."""
    wrong_type = {str: [1, b"auto"], int: ["1", 1.0, True], float: ["0.5", True, 1j], bool: [1, 0, "True"]}
    values: list[Any] = [None, [spec.default], *wrong_type[spec.type]]
    if spec.choices:
        values += ["", spec.choices[0].upper(), spec.choices[0] + " ", "nonsense"]
    if spec.minimum is not None:
        values += [spec.minimum - 1, spec.maximum + 1, -(2 ** 70), 2 ** 70]
        if spec.multiple:
            values += [spec.minimum + 1, spec.maximum - spec.multiple // 2]
        if spec.type is float:
            values += [math.nan, math.inf, -math.inf, spec.maximum * 1.5]
    return values


def bad_devices() -> list[str | int | None]:
    """device= values no torch on this machine can use: unknown words, other backends, absent GPUs."""
    import torch

    values: list[str | int | None] = ["", "gpu", "CPU", "cpu:-1", "cuda:x", "meta", "xla", "vulkan", "hpu", "ipu",
                                      0, None]
    if not torch.cuda.is_available():
        values += ["cuda", "cuda:0", "cuda:99"]
    if not torch.backends.mps.is_available():
        values.append("mps")
    return values


def option_faults() -> dict[str, list[Any]]:
    """Per model option, the refused values to try (the valid ones come from ENGINES only)."""
    faults = {spec.name: invalid_values(spec) for spec in specs(ModelOptions) if spec.name not in ("model", "device")}
    faults["device"] = bad_devices()
    return faults


@st.composite
def clip_specs(draw: st.DrawFn, faulty: bool) -> ClipSpec:
    """A clip vsrmbg takes (RGB or YUV, 8 to 16 bits or float), or when ``faulty`` one it refuses."""
    kind = draw(st.sampled_from(("constant", "variable-format", "variable-size", *NON_CLIPS))) if faulty \
        else "constant"
    family = draw(st.sampled_from(("RGB", "YUV", "GRAY") if faulty else ("RGB", "YUV")))
    sample = draw(st.sampled_from(("integer", "float")))
    integer_bits = (8, 9, 10, 12, 14, 16) if family == "GRAY" or not faulty or kind != "constant" else (17, 24, 32)
    bits = draw(st.sampled_from((16, 32) if sample == "float" else integer_bits))
    ss = (draw(st.integers(0, 2)), draw(st.integers(0, 2))) if family == "YUV" else (0, 0)
    width = draw(st.integers(1, 96 >> ss[0])) << ss[0]
    height = draw(st.integers(1, 64 >> ss[1])) << ss[1]
    shade = draw(st.tuples(*[st.floats(0, 1)] * 3))
    spec = ClipSpec(kind, family, sample, bits, ss, width, height, draw(st.integers(1, 4)), shade)
    if faulty and not spec.fault:  # a float RGB/YUV clip: make it gray
        spec = ClipSpec(kind, "GRAY", sample, bits, (0, 0), width >> ss[0], height >> ss[1], spec.length, shade)
    return spec


def models(faulty: bool, valid: str) -> st.SearchStrategy[Arg | None]:
    """The test's weights, or when ``faulty`` a model that cannot load (files made by make_scraps) or none."""
    if not faulty:
        return st.just(Arg(valid))
    unloadable = [Arg(name, "model") for name in ("", "\x00", "no-weights")]
    unloadable += [Arg(name, name) for name in ("missing/model.safetensors", "owner/name", "empty.safetensors",
                                                "random.pth", "random.onnx", "random.safetensors", "notes.txt",
                                                "random-dir")]
    wrong_type = [Arg(value, "model=") for value in (5, 2.5, b"model.safetensors", Path(valid), [valid])]
    return st.sampled_from([*unloadable, *wrong_type, None])


def matrices(faulty: bool, clip: ClipSpec) -> st.SearchStrategy[Arg | None]:
    """A matrix= argument (None: not passed), or when ``faulty`` one the clip cannot use: no name at all, or
    for YUV a name zimg cannot convert to RGB by itself."""
    if not faulty:
        return st.sampled_from([None, *(Arg(name) for name in MATRICES)])
    names = [*PARTIAL_MATRICES, "bogus", "709 "] if clip.family == "YUV" and clip.kind == "constant" else []
    return st.sampled_from([Arg(value, "matrix=") for value in ("", 709, None, b"709", ["709"], *names)])


@st.composite
def fuzz_cases(draw: st.DrawFn, valid_model: str, model_faults: dict[str, list[Any]]) -> Case:
    """A call of vsrmbg.mask or vsrmbg.rmbg: half of them with no fault (so they must work), the others with one
    or two, each in a different argument."""
    faulty = draw(st.lists(st.sampled_from(FAULTS), min_size=1, max_size=2, unique=True)) if draw(st.booleans()) \
        else []
    clip = draw(clip_specs("clip" in faulty))
    options = {name: Arg(value) for name, value in draw(st.sampled_from(ENGINES)).items()}
    if "model option" in faulty:
        name = draw(st.sampled_from(sorted(model_faults)))
        options[name] = Arg(draw(st.sampled_from(model_faults[name])), f"{name}=")
    if "engine" in faulty:
        options.update({name: Arg(value) for name, value in draw(st.sampled_from(BAD_ENGINES)).items()})
    bad_quality = draw(st.sampled_from(specs(QualityOptions))).name if "quality option" in faulty else None
    for spec in specs(QualityOptions):
        if spec.name == bad_quality:
            options[spec.name] = Arg(draw(st.sampled_from(invalid_values(spec))), f"{spec.name}=")
        elif draw(st.booleans()):
            options[spec.name] = Arg(draw(valid_values(spec)))
    if "unknown option" in faulty:
        name = draw(st.sampled_from(("colour", "model-size", "modelsize", "Matrix", "radius", "", "_alpha")))
        options[name] = Arg(draw(st.integers(0, 3)), "unknown option")
    # by position, the model takes the place of vs-jetpack's ref clip: a fault, drawn with the model's faults
    by_keyword = draw(st.booleans()) if "model" in faulty else True
    return Case(draw(st.sampled_from(("mask", "rmbg"))), clip, draw(models("model" in faulty, valid_model)),
                by_keyword, draw(matrices("matrix" in faulty, clip)), options)


def make_scraps(folder: Path) -> None:
    """The broken models that ``models`` names, in ``folder`` (the fuzzing process's working directory)."""
    noise = random.Random(12).randbytes(4096)
    (folder / "empty.safetensors").write_bytes(b"")
    for name in ("random.pth", "random.onnx", "random.safetensors", "notes.txt"):
        (folder / name).write_bytes(noise)
    (folder / "no-weights").mkdir()
    (folder / "random-dir").mkdir()
    (folder / "random-dir" / "model.safetensors").write_bytes(noise)


class Fuzzer:
    """Runs cases in VapourSynth's Python and counts them; imports vapoursynth and vsrmbg when made."""

    def __init__(self) -> None:
        import vapoursynth as vs

        import vsrmbg

        self.vs, self.vsrmbg, self.core = vs, vsrmbg, vs.core
        self.ran = self.accepted = 0
        self.refusals: dict[str, int] = {}

    def clip(self, spec: ClipSpec) -> Any:
        """The clip (or non-clip) ``spec`` describes."""
        vs, core = self.vs, self.core
        rgb = core.std.BlankClip(format=vs.RGB24, width=34, height=18, length=2)
        others = {"None": None, "path": "clip.mp4", "int": 3, "bytes": b"\x00" * 12, "list": [rgb],
                  "audio": core.std.BlankAudio(), "frame": rgb.get_frame(0), "array": bytearray(34 * 18 * 3),
                  "core": core}
        if spec.kind in others:
            return others[spec.kind]
        if spec.kind == "variable-format":
            return core.std.Splice([rgb, core.std.BlankClip(rgb, format=vs.YUV444P8)], mismatch=True)
        if spec.kind == "variable-size":
            return core.std.Splice([rgb, core.std.BlankClip(rgb, width=20)], mismatch=True)
        family = {"RGB": vs.RGB, "YUV": vs.YUV, "GRAY": vs.GRAY}[spec.family]
        sample = vs.FLOAT if spec.sample == "float" else vs.INTEGER
        fmt = core.query_video_format(family, sample, spec.bits, *spec.ss)
        planes = spec.shade[:fmt.num_planes]
        if sample == vs.INTEGER:
            color = [round(shade * ((1 << spec.bits) - 1)) for shade in planes]
        else:
            color = [shade - (0.5 if family == vs.YUV and index else 0) for index, shade in enumerate(planes)]
        return core.std.BlankClip(format=fmt.id, width=spec.width, height=spec.height, length=spec.length,
                                  color=color)

    def run(self, case: Case) -> None:
        """Call vsrmbg as ``case`` says and hold the outcome to the oracle (see the module's docstring)."""
        vs = self.vs
        self.ran += 1
        clip = self.clip(case.clip)
        keywords = {name: arg.value for name, arg in case.options.items()}
        if case.matrix is not None:
            keywords["matrix"] = case.matrix.value
        positional: list[Any] = [clip]
        if case.model is not None:
            if case.model_by_keyword:
                keywords["model"] = case.model.value
            else:
                positional.append(case.model.value)
        function = getattr(self.vsrmbg, case.function)
        faults = case.faults
        try:
            with at_most(CASE_SECONDS):
                out = function(*positional, **keywords)
                frames = [out.get_frame_async(n).result() for n in sorted({0, out.num_frames - 1})]
        except vs.Error as error:
            message = str(error)
            assert "\n" not in message.strip() and message.startswith(f"vsrmbg.{case.function}: "), \
                f"refused without one vsrmbg.{case.function} line: {message!r}"
            assert faults, f"refused a call with no fault: {message}"
            assert any(fault in message for fault in faults), f"{message!r} names none of the faults {faults}"
            reason = message.split(": ", 2)[1].split(" ", 3)[:3]
            self.refusals[" ".join(reason)] = self.refusals.get(" ".join(reason), 0) + 1
            return
        except Hang:
            print(f"HANG after {CASE_SECONDS} s: {case!r}", flush=True)
            os._exit(3)
        assert not faults, f"accepted a call with faults: {faults}"
        self.accepted += 1
        self.check(case.function, clip, out, frames)

    def check(self, function: str, clip: Any, out: Any, frames: list[Any]) -> None:
        """``out`` is what ``function`` documents for ``clip``: mask a GRAY clip in the clip's sample type and
        depth with alphas in range, rmbg the clip in its own format with a GRAY ``_Alpha`` on every frame."""
        vs = self.vs
        assert (out.width, out.height, out.num_frames) == (clip.width, clip.height, clip.num_frames)
        if function == "rmbg":
            assert out.format.id == clip.format.id
            frames = [frame.props["_Alpha"] for frame in frames]
        for alpha in frames:
            fmt = alpha.format
            assert fmt.color_family == vs.GRAY, fmt.name
            assert (fmt.sample_type, fmt.bits_per_sample) == (clip.format.sample_type, clip.format.bits_per_sample)
            assert (alpha.width, alpha.height) == (clip.width, clip.height)
            assert alpha.props["_Range"] == vs.RANGE_FULL
            values = np.asarray(alpha[0])
            peak = 1.0 if fmt.sample_type == vs.FLOAT else (1 << fmt.bits_per_sample) - 1
            assert np.isfinite(values).all() and values.min() >= 0 and values.max() <= peak, (values.min(),
                                                                                              values.max())


def fuzz_main() -> int:
    """The fuzz loop in VapourSynth's Python: prints ``cases N accepted A`` and the refusals seen; 1 on a failure."""
    database = os.environ.get(ENV_DATABASE)
    # no shrinking: a failing case may cost a model load (and keep it), and shrinking one ran out of memory
    chosen = settings(cases(FULL_CASES, SLICE_CASES), max_examples=int(os.environ[ENV_CASES]),
                      derandomize=os.environ.get(ENV_DERANDOMIZE) == "1",
                      database=DirectoryBasedExampleDatabase(database) if database else None,
                      phases=(Phase.explicit, Phase.reuse, Phase.generate))
    make_scraps(Path.cwd())
    fuzzer = Fuzzer()

    @chosen
    @given(fuzz_cases(os.environ[ENV_MODEL], option_faults()))
    def vsrmbg_arguments(case: Case) -> None:
        fuzzer.run(case)

    try:
        vsrmbg_arguments()
    except Exception:
        traceback.print_exc(file=sys.stdout)
        return 1
    finally:
        print(f"cases {fuzzer.ran} accepted {fuzzer.accepted}")
        for reason, count in sorted(fuzzer.refusals.items(), key=lambda item: -item[1]):
            print(f"refused {count:5d} {reason}")
    return 0


def test_vsrmbg_takes_any_arguments_or_refuses_them_in_one_line(tmp_path: Path, checkpoints: dict[str, Path],
                                                                  request: pytest.FixtureRequest) -> None:
    chosen = cases(FULL_CASES, SLICE_CASES)
    env = {name: value for name, value in os.environ.items() if name not in ("RMBG_MODEL", "PYTHONPATH")}
    env.update({"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), ENV_MODEL: str(checkpoints["safetensors"]),
                ENV_CASES: str(chosen.max_examples), ENV_DERANDOMIZE: "1" if chosen.derandomize else "0",
                ENV_DATABASE: str(getattr(chosen.database, "path", ""))})
    done = subprocess.run([str(vs_python()), __file__], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=CASE_SECONDS * 10 + chosen.max_examples)
    report = done.stdout + done.stderr[-3000:]
    assert done.returncode == 0, report
    counts = next(line.split() for line in done.stdout.splitlines() if line.startswith("cases "))
    ran, accepted = int(counts[1]), int(counts[3])
    print(f"\n{request.node.nodeid} fuzz cases: {ran}, {accepted} accepted")  # for scripts/fuzz_summary.py
    assert ran >= chosen.max_examples, report
    # both sides of the oracle were exercised: calls that work, and (in the full run) refusals of each kind
    assert ran // 5 <= accepted <= ran - ran // 5, report
    for reason in ("clip must", "model", "unknown option", "matrix=", "device=", "refine_eps=") if FULL else ():
        assert any(line.startswith("refused") and reason in line for line in done.stdout.splitlines()), report


if __name__ == "__main__":
    sys.exit(fuzz_main())
