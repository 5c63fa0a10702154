"""``rmbg-filter batch`` in one process (no Ray): outputs, the manifest, reruns, refusals, interrupts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from cli_helpers import CLI, ffmpeg, one_error_line, read_manifest, run_cli

from rmbg_filter import ModelOptions
from rmbg_filter.cli.batch import Manifest, plan
from rmbg_filter.cli.batch_jobs import BatchSettings, fingerprint
from rmbg_filter.cli.batch_ray import worker_resources
from rmbg_filter.cli.safe_output import atomic_output, remove_stale_temporaries
from rmbg_filter.cli.video import VideoOptions
from rmbg_filter.compositing import parse_output

FAST = ("--model-size", "64", "-q")


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two clips (one with audio), a corrupt .mp4, and a note that is not a video."""
    root = tmp_path_factory.mktemp("library")
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=97x65:rate=25", "-f", "lavfi", "-i", "sine=frequency=440",
           "-frames:v", "5", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest",
           str(root / "a.mp4"))
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=64x48:rate=30", "-frames:v", "4", "-c:v", "ffv1", str(root / "b.mkv"))
    (root / "broken.mp4").write_bytes(os.urandom(2000))
    (root / "notes.txt").write_text("not a video")
    return root


def statuses(records: list[dict]) -> dict[str, str]:
    return {Path(record["input"]).name: record["status"] for record in records}


def test_a_folder_its_manifest_and_reruns(folder: Path, tmp_path: Path, checkpoints) -> None:
    out = tmp_path / "out"
    model = checkpoints["safetensors"]
    done = run_cli("batch", folder, "--out-dir", out, *FAST, model=model)
    assert done.returncode == 1, done.stderr
    assert done.stderr.splitlines()[-1] == (
        f"rmbg-filter batch: error: 1 of 3 inputs failed (2 done, 0 skipped, 1 failed); see {out}/manifest.jsonl")
    assert f"rmbg-filter batch: failed: {folder / 'broken.mp4'}: cannot read" in done.stderr
    assert "Traceback" not in done.stderr
    first = read_manifest(out)
    assert statuses(first) == {"a.mp4": "done", "b.mkv": "done", "broken.mp4": "failed"}
    by_name = {Path(record["input"]).name: record for record in first}
    assert by_name["a.mp4"]["output"] == str(out / "a.mov") and by_name["a.mp4"]["frames"] == 5
    assert by_name["a.mp4"]["error"] is None and by_name["a.mp4"]["seconds"] > 0
    assert by_name["broken.mp4"]["frames"] == 0 and by_name["broken.mp4"]["error"].startswith("cannot read")
    assert sorted(p.name for p in out.iterdir()) == ["a.mov", "b.mov", "manifest.jsonl"]

    alone = tmp_path / "a.mov"  # the same job as `rmbg-filter video`, audio included
    assert run_cli("video", folder / "a.mp4", alone, *FAST, model=model).returncode == 0
    assert alone.read_bytes() == (out / "a.mov").read_bytes()

    made = (out / "a.mov").stat().st_mtime_ns
    again = run_cli("batch", folder, "--out-dir", out, *FAST, model=model)
    assert again.returncode == 1
    assert statuses(read_manifest(out)[3:]) == {"a.mp4": "skipped", "b.mkv": "skipped", "broken.mp4": "failed"}
    assert (out / "a.mov").stat().st_mtime_ns == made

    # other settings redo the files (the manifest made them, so they are replaced)
    radius = run_cli("batch", folder / "a.mp4", "--out-dir", out, *FAST, "--temporal-radius", "1", model=model)
    assert radius.returncode == 0, radius.stderr
    assert radius.stderr.strip() == f"rmbg-filter batch: 1 done, 0 skipped, 0 failed; manifest {out}/manifest.jsonl"
    assert read_manifest(out)[-1]["status"] == "done" and (out / "a.mov").stat().st_mtime_ns != made


def test_changed_content_is_redone_and_a_missing_output_remade(folder: Path, tmp_path: Path, checkpoints) -> None:
    source = tmp_path / "in" / "clip.mkv"
    source.parent.mkdir()
    source.write_bytes((folder / "b.mkv").read_bytes())
    out = tmp_path / "out"
    model = checkpoints["safetensors"]
    assert run_cli("batch", source, "--out-dir", out, *FAST, model=model).returncode == 0
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=64x48:rate=30", "-frames:v", "3", "-c:v", "ffv1", str(source))
    (out / "other.mov").write_bytes(b"")  # not this batch's: left alone
    again = run_cli("batch", str(tmp_path / "in" / "*.mkv"), "--out-dir", out, *FAST, model=model)  # a glob
    assert again.returncode == 0, again.stderr
    assert read_manifest(out)[-1]["status"] == "done" and read_manifest(out)[-1]["frames"] == 3
    (out / "clip.mov").unlink()
    assert run_cli("batch", source, "--out-dir", out, *FAST, model=model).returncode == 0
    assert read_manifest(out)[-1]["status"] == "done" and (out / "clip.mov").is_file()
    assert (out / "other.mov").read_bytes() == b""


def test_an_output_the_manifest_did_not_make_is_kept_unless_overwrite(folder: Path, tmp_path: Path,
                                                                       checkpoints) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "b.mov").write_bytes(b"mine")
    done = run_cli("batch", folder / "b.mkv", "--out-dir", out, *FAST, model=checkpoints["safetensors"])
    assert done.returncode == 1
    (record,) = read_manifest(out)
    assert record["status"] == "failed"
    assert record["error"] == f"{out / 'b.mov'} already exists and this batch's manifest did not make it; remove it " \
                              "or pass --overwrite (or -y)"
    assert (out / "b.mov").read_bytes() == b"mine"
    forced = run_cli("batch", folder / "b.mkv", "--out-dir", out, "-y", *FAST, model=checkpoints["safetensors"])
    assert forced.returncode == 0, forced.stderr
    assert (out / "b.mov").read_bytes() != b"mine"


def test_png_makes_a_folder_per_input_replaced_whole(folder: Path, tmp_path: Path, checkpoints) -> None:
    out = tmp_path / "out"
    model = checkpoints["safetensors"]
    done = run_cli("batch", folder / "b.mkv", "--out-dir", out, "--format", "png", "--output", "alpha", *FAST,
                   model=model)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (out / "b").iterdir()) == [f"{n:05d}.png" for n in range(1, 5)]
    assert read_manifest(out)[0]["output"] == str(out / "b" / "%05d.png")
    (out / "b" / "00009.png").write_bytes(b"stale")  # a redo replaces the folder: nothing stale survives
    redo = run_cli("batch", folder / "b.mkv", "--out-dir", out, "--format", "png", *FAST, model=model)
    assert redo.returncode == 0, redo.stderr
    assert sorted(p.name for p in (out / "b").iterdir()) == [f"{n:05d}.png" for n in range(1, 5)]
    assert sorted(p.name for p in out.iterdir()) == ["b", "manifest.jsonl"]


@pytest.mark.parametrize(("words", "message"), [
    (["{folder}", "--out-dir", "{out}", "--workers", "2"], "--workers needs --ray"),
    (["{folder}", "--out-dir", "{out}", "--ray", "auto", "--workers", "0"], "--workers must be at least 1, got 0"),
    (["{missing}", "--out-dir", "{out}"], "input not found: {missing}"),
    (["{folder}/*.avi", "--out-dir", "{out}"], "{folder}/*.avi matches no file"),
    (["{empty}", "--out-dir", "{out}"], "no video file in the inputs given"),
    (["{folder}/a.mp4", "{other}/a.mkv", "--out-dir", "{out}"], "would both be written as {out}/a.mov"),
    (["{folder}/a.mp4", "--out-dir", "{folder}"], "is inside --out-dir"),
    (["{folder}/a.mp4", "--out-dir", "{folder}/notes.txt/out"], "cannot write {folder}/notes.txt/out/manifest.jsonl"),
    (["{folder}/b.mkv", "--out-dir", "{out}", "--ray", "127.0.0.1:1"], "no Ray cluster answers at "),
])
def test_usage_errors_are_one_line_and_exit_2(words: list[str], message: str, folder: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "a.mkv").write_bytes((folder / "b.mkv").read_bytes())
    names = {"missing": tmp_path / "nope.mp4", "folder": folder, "empty": tmp_path / "empty",
             "other": tmp_path / "other", "out": tmp_path / "out"}
    done = run_cli("batch", *(word.format(**names) for word in words), "-q")
    assert done.returncode == 2, done.stderr
    assert message.format(**names) in one_error_line(done)


def test_ctrl_c_leaves_the_finished_files_and_no_partial_one(folder: Path, tmp_path: Path, checkpoints) -> None:
    library = tmp_path / "in"
    library.mkdir()
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-frames:v", "400", "-c:v", "libx264",
           "-pix_fmt", "yuv420p", str(library / "long.mp4"))
    (library / "a.mp4").write_bytes((folder / "a.mp4").read_bytes())
    out = tmp_path / "out"
    env = {**os.environ, "RMBG_MODEL": str(checkpoints["safetensors"])}
    process = subprocess.Popen([str(CLI), "batch", str(library), "--out-dir", str(out), *FAST], env=env,
                               stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None and not (
            out.is_dir() and list(out.glob(".long.*.partial.mov"))):
        time.sleep(0.1)
    assert list(out.glob(".long.*.partial.mov")), "long.mp4 was never being written: the interrupt tests nothing"
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert stderr.strip() == "rmbg-filter batch: interrupted"
    assert sorted(p.name for p in out.iterdir()) == ["a.mov", "manifest.jsonl"]
    assert statuses(read_manifest(out)) == {"a.mp4": "done"}


def test_stale_temporaries_of_one_output_only(tmp_path: Path) -> None:
    destination = tmp_path / "a.mov"
    with pytest.raises(KeyError), atomic_output(destination, overwrite=False) as temporary:
        assert remove_stale_temporaries([destination]) == [temporary]  # the name the writer really uses
        raise KeyError  # a killed writer: its temporary is gone already, nothing to rename
    stale = [tmp_path / name for name in (".a.rmbg-abcd_f9h.partial.mov", ".a.mov.rmbg-abcdefgh.partial",
                                          ".a.mov.rmbg-abcdefgh.old")]
    stale[0].write_bytes(b"")
    for folder in stale[1:]:
        (folder / "00001.png").parent.mkdir()
        (folder / "00001.png").write_bytes(b"")
    kept = [tmp_path / name for name in (".a.b.rmbg-abcdefgh.partial.mov", ".a.rmbg-abcdefgh.partial.mkv", "a.mov",
                                         ".a.mov", ".a.rmbg-abcdefg.partial.mov", "a.rmbg-abcdefgh.partial.mov",
                                         ".a.abcdefgh.partial.mov", ".a.mov.20240101.old")]
    for path in kept:
        path.write_bytes(b"")
    assert sorted(remove_stale_temporaries([destination])) == sorted(stale)
    assert all(path.exists() for path in kept) and not any(path.exists() for path in stale)


def _settings(out: Path, **video: object) -> BatchSettings:
    return BatchSettings(out, "mov", VideoOptions(parse_output("rgba"), **video), ModelOptions())


def _done(settings: BatchSettings, source: Path) -> dict:
    size, sha256 = fingerprint(source)
    return {"input": str(source), "output": str(settings.output_of(source)), "status": "done", "frames": 1,
            "seconds": 1.0, "error": None, "size": size, "sha256": sha256, "settings": settings.digest}


def test_plan_skips_only_what_this_input_made_with_these_settings(tmp_path: Path) -> None:
    one, two = tmp_path / "a" / "clip.mp4", tmp_path / "b" / "clip.mp4"
    for path, content in ((one, b"one"), (two, b"two")):
        path.parent.mkdir()
        path.write_bytes(content)
    out = tmp_path / "out"
    out.mkdir()
    settings = _settings(out)
    (out / "clip.mov").write_bytes(b"made")
    made = _done(settings, one)

    def planned(records: list, path: Path = one, settings: BatchSettings = settings, overwrite: bool = False):
        tasks, decided = plan([path], settings, records, overwrite=overwrite)
        return [task.input for task in tasks], [record["status"] for record in decided]

    assert planned([made]) == ([], ["skipped"])
    assert planned([made], settings=_settings(out, crf=30)) == ([str(one)], [])  # other settings: redone
    assert planned([made, {**made, "status": "failed"}]) == ([str(one)], [])  # its last run failed: retried
    assert planned([made, _done(settings, two)]) == ([], ["failed"])  # another input wrote there since
    assert planned([made, _done(settings, two)], path=two) == ([], ["skipped"])
    assert planned([]) == ([], ["failed"])  # not this batch's file: refused ...
    refusal = plan([one], settings, [], overwrite=False)[1]
    assert refusal[0]["refused"] is True and "this batch's manifest did not make it" in refusal[0]["error"]
    assert planned(refusal) == ([], ["failed"])  # ... and still refused next time
    assert planned(refusal, overwrite=True) == ([str(one)], [])
    other = plan([two], settings, [made], overwrite=False)[1]  # another input with the same name: refused
    assert other[0]["error"] == f"{out / 'clip.mov'} already exists and it was made from {one}; remove it or pass " \
                                "--overwrite (or -y)"
    one.write_bytes(b"new")  # same size, other content
    assert planned([made]) == ([str(one)], [])


def test_plan_passes_over_records_it_cannot_read(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    good = {"input": "/x/a.mp4", "output": str(out / "a.mov"), "status": "done"}
    (out / "manifest.jsonl").write_bytes(b"\n".join([
        json.dumps(good).encode(), b'{"input": "/x/b.mp4"}', b'{"input": 1, "output": "o", "status": "done"}',
        b"[1, 2]", b'{"input": "/x/c.mp4", "output": "o", "status": "maybe"}', b"\xff\xfe not utf-8",
        b'{"input": "/x/d.mp4", "outp']))
    assert Manifest(out).records() == [good]
    with Manifest(out).appending() as append:  # the cut line is ended before the next record
        append({**good, "input": "/x/e.mp4"})
    assert [record["input"] for record in Manifest(out).records()] == ["/x/a.mp4", "/x/e.mp4"]


def test_a_second_batch_on_the_same_folder_is_refused(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with Manifest(out).appending():
        done = run_cli("batch", folder / "b.mkv", "--out-dir", out, "-q")
    assert done.returncode == 2
    assert one_error_line(done) == (f"rmbg-filter batch: error: another rmbg-filter batch is writing to {out}; "
                                    "wait for it to finish or give another --out-dir")


def test_a_format_that_cannot_hold_the_output_is_one_usage_error(folder: Path, tmp_path: Path) -> None:
    done = run_cli("batch", folder, "--out-dir", tmp_path / "out", "--format", "mkv", "--crf", "10", "-q")
    assert done.returncode == 2
    assert one_error_line(done) == "rmbg-filter batch: error: --crf does not apply to ffv1; it is for libx264 and " \
                                   "libvpx-vp9"
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("nodes", "workers", "device", "expected"), [
    ([{"CPU": 1}, {"CPU": 1}], None, "auto", (2, {"num_cpus": 1})),
    ([{"CPU": 16}], 4, "auto", (4, {"num_cpus": 4})),
    ([{"CPU": 0}, {"CPU": 8}, {"CPU": 8}], None, "auto", (2, {"num_cpus": 8})),  # a head without CPUs for work
    ([{"CPU": 16}, {"CPU": 2}], None, "auto", (2, {"num_cpus": 2})),  # every worker fits somewhere
    ([{"CPU": 16, "GPU": 2}, {"CPU": 16, "GPU": 2}], None, "auto", (4, {"num_gpus": 1.0})),
    ([{"CPU": 16, "GPU": 2}], 4, "cuda:1", (4, {"num_gpus": 0.5})),
    ([{"CPU": 16, "GPU": 2}], None, "cpu", (1, {"num_cpus": 16})),
])
def test_worker_resources(nodes: list, workers: int | None, device: str, expected: tuple) -> None:
    listed = [{"Alive": True, "Resources": resources} for resources in nodes] + [{"Alive": False, "Resources": {}}]
    assert worker_resources(listed, workers, device) == expected
