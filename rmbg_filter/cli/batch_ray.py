"""``rmbg-filter batch --ray``: the files of a batch as a Ray Data job, one whole file per task.

``from_items`` over the tasks (one block each, so one file is the unit of
scheduling and of retry), then ``map_batches`` with ``FileWorker``: an actor
that loads the model once and converts one file per call (``batch_size=1``).
Each worker asks for one GPU where the cluster has GPUs, otherwise a share of
the CPUs. Ray restarts an actor that dies (a SIGKILL, a lost node) and retries
its file, up to ``ATTEMPTS`` tries; ``batch_jobs.convert`` first clears what the dead
writer left. The records stream back to this process, which alone writes the
manifest.

Ray is imported only here (``pip install 'rmbg-filter[ray]'``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import signal
import socket
import threading
import warnings
from collections.abc import Generator
from typing import Any

import numpy as np

from ..errors import InputError, first_line
from .batch_jobs import BatchSettings, Record, Task, convert, failed_record
from .engine_loading import load_engine
from .progress import BatchProgress

__all__ = ["ATTEMPTS", "FileWorker", "check_cluster", "run_on_ray", "worker_resources"]


#: the terminal colour codes Ray puts in its messages
_COLOURS = re.compile(r"\x1b\[[0-9;]*m")
#: how long the cluster's address may take to answer before --ray gives up
CONNECT_SECONDS = 5
#: tries a file gets when its worker dies on it (a crash, the OOM killer, a SIGKILL, a lost node)
ATTEMPTS = 3


class FileWorker:
    """A Ray Data actor: the model, loaded once; each call converts the files of a batch (one, here)."""

    def __init__(self, settings: BatchSettings) -> None:
        options = settings.model
        if options.device.startswith("cuda:"):  # Ray gives each worker one GPU: CUDA_VISIBLE_DEVICES numbers it 0
            options = dataclasses.replace(options, device="cuda")
        self.settings = settings
        self.remover = load_engine(options)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[str]]:
        """``batch``: columns ``input`` and ``output`` (paths); returns the column ``record`` (JSON text)."""
        tasks = [Task(str(source), str(output)) for source, output in zip(batch["input"], batch["output"], strict=True)]
        return {"record": [json.dumps(convert(self.remover, task, self.settings)) for task in tasks]}


def worker_resources(nodes: list[dict[str, Any]], workers: int | None, device: str) -> tuple[int, dict[str, float]]:
    """How many workers, and what each asks Ray for, on a cluster of ``nodes`` (``ray.nodes()``).

    With GPUs (and ``device`` not cpu): one worker per GPU by default, each ``num_gpus=1`` (a share
    of one when more workers than GPUs are asked for). Otherwise, over the nodes that have CPUs:
    one worker per node by default, each asking ``num_cpus`` = the smallest such node's CPUs over
    the workers a node must hold, so that every worker fits somewhere. torch in a worker uses that
    many threads (Ray sets OMP_NUM_THREADS to it; to 1 for a GPU worker).
    """
    alive = [node.get("Resources", {}) for node in nodes if node.get("Alive")]
    gpus = sum(int(resources.get("GPU", 0)) for resources in alive)
    if gpus and (device in ("auto", "cuda") or device.startswith("cuda:")):
        count = workers or gpus
        return count, {"num_gpus": min(1.0, gpus / count)}
    cpus = [int(resources.get("CPU", 0)) for resources in alive if resources.get("CPU", 0) >= 1] or [1]
    count = workers or len(cpus)
    per_node = -(-count // len(cpus))
    return count, {"num_cpus": max(1, min(cpus) // per_node)}


def check_cluster(address: str) -> None:
    """Raise InputError unless Ray is installed and a cluster answers at ``address`` (``auto``: the one
    ``ray start`` last recorded on this machine, or $RAY_ADDRESS): ``ray.init`` would instead retry a
    dead address for minutes, printing a warning every few seconds. ``local`` and ``ray://``
    addresses are not probed. Cheap: run it before anything is written."""
    try:
        import ray  # noqa: F401
    except ImportError as error:
        raise InputError("--ray needs Ray: pip install 'rmbg-filter[ray]'") from error
    if address == "local" or address.startswith("ray://"):
        return
    from ray._private.services import canonicalize_bootstrap_address

    try:
        resolved = canonicalize_bootstrap_address(address)
    except (ConnectionError, ValueError) as error:
        raise InputError(f"--ray {address}: {first_line(error)}") from error
    if resolved is None:
        raise InputError(f"--ray {address}: no Ray cluster is running here; start one with `ray start --head`, "
                         "or use --ray local")
    host, _, port = resolved.rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_SECONDS).close()
    except (OSError, ValueError) as error:
        raise InputError(f"--ray {address}: no Ray cluster answers at {resolved} ({first_line(error)}); start one "
                         "with `ray start --head`, or use --ray local") from error


def run_on_ray(tasks: list[Task], settings: BatchSettings, address: str, workers: int | None,
               progress: BatchProgress) -> Generator[Record, None, None]:
    """Run the tasks on the cluster at ``address`` (``auto``, ``local`` or ``host:port``); records as files finish.

    Every task gets one record: a file that Ray dropped (its worker died ``ATTEMPTS`` times), or
    that the job never reached because the job itself failed, gets a failed one. The model is
    loaded here once first (a ModelLoadError is the usage error); raises InputError when
    ``ray.init`` cannot join the cluster (``check_cluster`` comes first).
    """
    if not tasks:
        return
    import ray
    import ray.data

    from ..loading import load_network

    # a model that cannot load is one usage error here, not a traceback from every worker's start
    load_network(settings.model.model)

    # Ray's own chatter (start-up notes, the executor's lines, a dropped file's traceback) stays in the
    # session's log files; this command's lines are the per-file failures and the summary
    logging.getLogger("ray.data").setLevel(logging.CRITICAL)
    terminate = signal.getsignal(signal.SIGTERM)
    try:
        ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False,
                 include_dashboard=False if address == "local" else None)
    except (ConnectionError, ValueError, RuntimeError) as error:
        raise InputError(f"--ray {address}: cannot join a Ray cluster ({first_line(error)})") from error
    finally:
        if terminate is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, terminate)  # ray.init's handler exits 15 without cleaning up
    reported: set[str] = set()
    failure = (f"Ray dropped it: its worker died on it {ATTEMPTS} times (a crash, or killed: out of memory?) or Ray "
               "failed its task; Ray's logs say which")
    try:
        count, asks = worker_resources(ray.nodes(), workers, settings.model.device)
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        context.print_on_execution_start = False
        context.execution_no_progress_timeout_s = -1  # one file may take hours: that is not a stall
        context.max_errored_blocks = -1  # a file given up on is a failed record, not the end of the job
        items = [{"input": task.input, "output": task.output} for task in tasks]
        pool = ray.data.ActorPoolStrategy(size=min(count, len(tasks)), max_tasks_in_flight_per_actor=1)
        with warnings.catch_warnings():
            # max_task_retries has no named parameter yet: Ray 2.60 warns that extra remote arguments go in
            # 2.64 (pyproject keeps Ray below it); without it a file that kills its worker is retried forever
            warnings.filterwarnings("ignore", message="`ray_remote_args` is deprecated")
            rows = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
                FileWorker, batch_size=1, compute=pool, fn_constructor_kwargs={"settings": settings},
                max_task_retries=ATTEMPTS - 1, **asks).iter_rows()
        for row in rows:
            record = json.loads(row["record"])
            if record["input"] in reported:  # one record per input and run, whatever Ray replays
                continue
            reported.add(record["input"])
            progress.add_frames(record["frames"])
            yield record
    except Exception as error:  # the job itself failed (a lost head, Ray's own errors): the rest are failed
        cause = getattr(error, "cause", None) or error
        failure = f"the Ray job failed: {type(cause).__name__}: {_COLOURS.sub('', first_line(cause))}"
    finally:
        ray.shutdown(wait_for_processes=True)
    for task in tasks:
        if task.input not in reported:
            yield failed_record(task, settings, failure)
