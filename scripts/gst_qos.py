"""Measure the GStreamer element against a live source faster than inference, and on a file: a table.

    GST_PLUGIN_PATH=plugins/gstreamer VIRTUAL_ENV=$PWD/.venv /usr/bin/python3 scripts/gst_qos.py \\
        --model ~/.cache/rmbg-filter/imgly-background-removal-data-1.4.5/isnet-small.onnx

Rows: a live ``videotestsrc`` at ``--fps`` into a fakesink that syncs to the clock
(``max-lateness`` 20 ms, as a display), with ``qos`` off and on; then the same
frames from a file (H.264, decoded) into a fakesink that does not sync, where every
frame must get a fresh alpha. Each row runs in its own process (the system Python,
as gst-launch-1.0 would). Columns: frames the network ran (fresh alphas) and
frames given the last alpha (from the element's QoS messages), frames that reached
the sink, that it rendered and that it dropped as late, the share rendered on time
(n/a for a sink that does not sync: it renders nothing), how far the most the live
source fell behind the clock (it is held back while the element's queue is full),
the pipeline's latency at the end (the element re-posts it as it grows; the
application recalculates it, as gst-launch-1.0 does) and the wall time of the
process (model load included).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # cpu_features: no torch, no venv needed
from rmbg_filter import cpu_features

RUN = """
import json, sys
sys.path.insert(0, sys.argv[2])
from gst_bus import Gst, latency, play
Gst.init(None)
pipeline = Gst.parse_launch(sys.argv[1])
reused, lag, arrived = [0], [0], [0]


def arriving(pad, info):
    # how far behind the clock the live source delivered this buffer (it falls behind when held back)
    clock = pipeline.get_clock()  # none yet while a file prerolls
    if clock is not None:
        lag[0] = max(lag[0], clock.get_time() - pipeline.get_base_time() - info.get_buffer().pts)
    return Gst.PadProbeReturn.OK


def reached(pad, info):
    arrived[0] += 1
    return Gst.PadProbeReturn.OK


def counted(message):
    if message.type == Gst.MessageType.QOS and message.src.get_name() == "rmbg":
        reused[0] = message.parse_qos_stats()[2]


def report():
    stats = pipeline.get_by_name("sink").get_property("stats")
    print(json.dumps({"reused": reused[0], "rendered": stats.get_value("rendered"),
                      "dropped": stats.get_value("dropped"), "arrived": arrived[0],
                      "latency": latency(pipeline) / Gst.SECOND, "lag": lag[0] / Gst.SECOND}))


pipeline.get_by_name("rmbg").get_static_pad("sink").add_probe(Gst.PadProbeType.BUFFER, arriving)
pipeline.get_by_name("sink").get_static_pad("sink").add_probe(Gst.PadProbeType.BUFFER, reached)
play(pipeline, counted, report)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--size", default="320x240")
    parser.add_argument("--model-size", type=int, default=320)
    args = parser.parse_args()
    width, height = args.size.split("x")
    print(f"videotestsrc {args.size} at {args.fps} fps, {args.frames} frames, rmbg model-size={args.model_size}, "
          f"on {cpu_features.detect().describe()}")
    print(f"{'source':<16} {'network':>8} {'reused':>7} {'at sink':>8} {'rendered':>9} {'dropped':>8} "
          f"{'on time':>8} {'latency s':>10} {'source lag s':>13} {'wall s':>7}")
    caps = f"video/x-raw,format=RGB,width={width},height={height},framerate={args.fps}/1"
    element = f"rmbg name=rmbg model={args.model} model-size={args.model_size}"
    with tempfile.TemporaryDirectory() as folder:
        clip = Path(folder) / "clip.mp4"
        subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", f"testsrc2=size={args.size}:rate={args.fps}",
                        "-frames:v", str(args.frames), "-c:v", "libx264", "-pix_fmt", "yuv420p", str(clip)],
                       check=True)
        rows = {
            "live, qos=false": f"videotestsrc is-live=true num-buffers={args.frames} pattern=ball ! {caps} "
                               f"! {element} qos=false ! fakesink name=sink sync=true qos=true max-lateness=20000000",
            "live, qos=true": f"videotestsrc is-live=true num-buffers={args.frames} pattern=ball ! {caps} "
                              f"! {element} qos=true ! fakesink name=sink sync=true qos=true max-lateness=20000000",
            "file, sync=false": f"filesrc location={clip} ! decodebin ! videoconvert ! video/x-raw,format=RGB "
                                f"! {element} ! fakesink name=sink sync=false",
        }
        for name, pipeline in rows.items():
            started = time.monotonic()
            done = subprocess.run(["/usr/bin/python3", "-c", RUN, pipeline, str(Path(__file__).parent)],
                                  capture_output=True, text=True, timeout=900)
            if done.returncode != 0:
                sys.exit(f"{name}: {done.stderr.strip().splitlines()[-1]}")
            row = json.loads(done.stdout.strip().splitlines()[-1])
            network = args.frames - row["reused"]
            live = name.startswith("live")
            on_time = f"{row['rendered'] / args.frames:.0%}" if live else "n/a"
            lag = f"{row['lag']:.2f}" if live else "n/a"
            print(f"{name:<16} {network:>8} {row['reused']:>7} {row['arrived']:>8} {row['rendered']:>9} "
                  f"{row['dropped']:>8} {on_time:>8} {row['latency']:>10.2f} {lag:>13} "
                  f"{time.monotonic() - started:>7.1f}")


if __name__ == "__main__":
    main()
