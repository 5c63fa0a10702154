"""Measure the GStreamer element's QoS on a live source faster than inference: a table, qos off and on.

    GST_PLUGIN_PATH=plugins/gstreamer VIRTUAL_ENV=$PWD/.venv /usr/bin/python3 scripts/gst_qos.py \\
        --model ~/.cache/rmbg-filter/imgly-background-removal-data-1.4.5/isnet-small.onnx

A live ``videotestsrc`` at ``--fps`` feeds ``rmbg`` into a synchronised fakesink.
Each setting runs in its own process (the system Python, as gst-launch-1.0 would).
Columns: frames the network ran and frames given the last alpha (from the
element's QoS messages), frames the sink rendered and dropped as late, how far
the most the live source fell behind the clock (it is held back while the
element's queue is full), the pipeline's latency at the end (the element re-posts it as it grows; the
application recalculates it, as gst-launch-1.0 does) and the wall time of the
process (model load included).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

RUN = """
import json, sys
sys.path.insert(0, sys.argv[2])
from gst_bus import Gst, latency, play
Gst.init(None)
pipeline = Gst.parse_launch(sys.argv[1])
reused, lag = [0], [0]


def arriving(pad, info):
    # how far behind the clock the live source delivered this buffer (it falls behind when held back)
    now = pipeline.get_clock().get_time() - pipeline.get_base_time()
    lag[0] = max(lag[0], now - info.get_buffer().pts)
    return Gst.PadProbeReturn.OK


def counted(message):
    if message.type == Gst.MessageType.QOS and message.src.get_name() == "rmbg":
        reused[0] = message.parse_qos_stats()[2]


def report():
    stats = pipeline.get_by_name("sink").get_property("stats")
    print(json.dumps({"reused": reused[0], "rendered": stats.get_value("rendered"),
                      "dropped": stats.get_value("dropped"), "latency": latency(pipeline) / Gst.SECOND,
                      "lag": lag[0] / Gst.SECOND}))


pipeline.get_by_name("rmbg").get_static_pad("sink").add_probe(Gst.PadProbeType.BUFFER, arriving)
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
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "unknown CPU")
    print(f"live videotestsrc {args.size} at {args.fps} fps, {args.frames} frames, "
          f"rmbg model-size={args.model_size} on {cpu}")
    print(f"{'qos':>4} {'network':>8} {'reused':>7} {'rendered':>9} {'dropped':>8} {'latency s':>10} "
          f"{'source lag s':>13} {'wall s':>7}")
    for qos in ("false", "true"):
        pipeline = (f"videotestsrc is-live=true num-buffers={args.frames} pattern=ball "
                    f"! video/x-raw,format=RGB,width={width},height={height},framerate={args.fps}/1 "
                    f"! rmbg name=rmbg model={args.model} model-size={args.model_size} qos={qos} "
                    "! fakesink name=sink sync=true qos=true max-lateness=20000000")
        started = time.monotonic()
        done = subprocess.run(["/usr/bin/python3", "-c", RUN, pipeline, str(Path(__file__).parent)],
                              capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            sys.exit(f"qos={qos}: {done.stderr.strip().splitlines()[-1]}")
        row = json.loads(done.stdout.strip().splitlines()[-1])
        network = args.frames - row["reused"]
        print(f"{qos:>4} {network:>8} {row['reused']:>7} {row['rendered']:>9} {row['dropped']:>8} "
              f"{row['latency']:>10.2f} {row['lag']:>13.2f} {time.monotonic() - started:>7.1f}")


if __name__ == "__main__":
    main()
