"""``rmbg-filter batch --ray``: the files of a batch as a Ray Data job, one whole file per task.

``from_items`` over the tasks (one block each, so one file is the unit of
scheduling and of retry), then ``map_batches`` with ``FileWorker``: an actor
that loads the model once and converts one file per call (``batch_size=1``).
Each worker asks for one GPU where the cluster has GPUs, otherwise a share of
the CPUs. Ray restarts an actor that dies (a SIGKILL, a lost node) and retries
its file there; ``batch.convert`` first clears what the dead writer left. The
records stream back to this process, which alone writes the manifest.

Ray is imported only here (``pip install 'rmbg-filter[ray]'``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..errors import InputError, first_line
from .batch import BatchProgress, BatchSettings, Record, Task, convert

__all__ = ["FileWorker", "run_on_ray", "worker_resources"]


class FileWorker:
    """A Ray Data actor: the model, loaded once; each call converts the files of a batch (one, here)."""

    def __init__(self, settings: BatchSettings) -> None:
        from ..engine import build
        from .main import keep_freed_memory

        keep_freed_memory()
        self.settings = settings
        self.remover = build(settings.model)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[str]]:
        """``batch``: columns ``input`` and ``output`` (paths); returns the column ``record`` (JSON text)."""
        tasks = [Task(str(source), str(output)) for source, output in zip(batch["input"], batch["output"], strict=True)]
        return {"record": [json.dumps(convert(self.remover, task, self.settings)) for task in tasks]}


def worker_resources(resources: dict[str, float], nodes: list[dict[str, Any]], workers: int | None,
                     device: str) -> tuple[int, dict[str, float]]:
    """How many workers, and what each asks Ray for, on a cluster with ``resources`` (``cluster_resources()``).

    GPUs (unless ``device`` is cpu): one worker per GPU by default, each ``num_gpus=1``. Otherwise one
    worker per node by default, each asking ``num_cpus`` = an even share of the CPUs, at most the
    largest node's (torch in a worker uses that many threads: Ray sets OMP_NUM_THREADS to it).
    """
    gpus = int(resources.get("GPU", 0)) if device in ("auto", "cuda") or device.startswith("cuda:") else 0
    if gpus:
        return workers or gpus, {"num_gpus": 1}
    alive = [node for node in nodes if node.get("Alive")]
    count = workers or max(len(alive), 1)
    largest = max((int(node.get("Resources", {}).get("CPU", 0)) for node in alive), default=1)
    share = max(1, min(int(resources.get("CPU", 1)) // count, largest))
    return count, {"num_cpus": share}


def run_on_ray(tasks: list[Task], settings: BatchSettings, address: str, workers: int | None,
               progress: BatchProgress) -> Iterator[Record]:
    """Run the tasks on the cluster at ``address`` (``auto``, ``local`` or ``host:port``); records as files finish.

    Raises InputError when the cluster cannot be reached or a worker cannot load the model.
    """
    if not tasks:
        return
    try:
        import ray
        import ray.data
    except ImportError as error:
        raise InputError("--ray needs Ray: pip install 'rmbg-filter[ray]'") from error
    # Ray's own chatter (start-up notes, the executor's INFO lines, its C++ core's warnings) stays in
    # the session's log files; this command's lines are the per-file failures and the summary
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    try:
        ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False,
                 include_dashboard=False if address == "local" else None)
    except (ConnectionError, ValueError, RuntimeError) as error:
        raise InputError(f"--ray {address}: cannot join a Ray cluster ({first_line(error)})") from error
    try:
        count, asks = worker_resources(ray.cluster_resources(), ray.nodes(), workers, settings.model.device)
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        context.print_on_execution_start = False
        items = [{"input": task.input, "output": task.output} for task in tasks]
        records = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
            FileWorker, batch_size=1, compute=ray.data.ActorPoolStrategy(size=min(count, len(tasks))),
            fn_constructor_kwargs={"settings": settings}, **asks)
        for row in records.iter_rows():
            record = json.loads(row["record"])
            progress.add_frames(record["frames"])
            yield record
    except ray.exceptions.RayError as error:
        cause = getattr(error, "cause", None) or error
        raise InputError(f"the Ray job failed: {type(cause).__name__}: {first_line(cause)}") from error
    finally:
        ray.shutdown()
