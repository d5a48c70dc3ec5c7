"""The ``flowml batch`` subcommand: its arguments and exit codes (0 all done, 1 some input
failed, 2 bad usage or graph, 130 stopped by Ctrl-C). Imports neither Ray nor torch until run."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from rich.console import Console

from ..stopsignals import install_stop_signals

INSTALL = ("flowml batch runs on Ray, which is not installed here: pip install 'flowml[batch]' "
           "(or pip install ray); or run in this process with --workers 1 --local")


def add_parser(sub) -> None:
    b = sub.add_parser("batch", help="run a graph over many files (Ray, or --local), resumable",
                       description="Run one graph over many input files: each worker loads the graph "
                       "once and runs it offline once per input, with the params --set names bound "
                       "to that input. Outputs appear under their final names only when the input "
                       "succeeded; every finished input gets a line in the manifest.")
    b.add_argument("graph")
    b.add_argument("--inputs", action="append", required=True, metavar="GLOB",
                   help="input files: a glob ('videos/**/*.mp4'), a path or a URL (repeatable)")
    b.add_argument("--set", dest="sets", action="append", default=[], metavar="NODE.PARAM=TEMPLATE",
                   help="bind a param per input: {input} {stem} {name} {parent} {index} "
                   "(e.g. src.path={input}, out.path='out/{stem}.mp4'; paths are read from this folder)")
    b.add_argument("--workers", type=int, default=1, help="workers (Ray actors), each loads the graph once")
    b.add_argument("--local", action="store_true", help="run in this process, no Ray (needs --workers 1)")
    b.add_argument("--cpus-per-worker", type=float, default=1.0, metavar="N")
    b.add_argument("--gpus-per-worker", type=float, default=0.0, metavar="N",
                   help="GPUs each worker asks Ray for; a fraction shares one (0.25: four a GPU)")
    b.add_argument("--ray-address", metavar="ADDR",
                   help="join a running Ray cluster ('auto' or host:port); default: start a local one")
    b.add_argument("--retries", type=int, default=1, help="tries after a failure, per input (default 1)")
    b.add_argument("--device", help="auto, cpu, cuda, cuda:N (overrides the graph's)")
    b.add_argument("--rebuild", action="append", default=[], metavar="NODE",
                   help="build this node anew for every input (state kept across frames, e.g. a tracker)")
    b.add_argument("--manifest", metavar="PATH", help="JSON lines, one per finished input "
                   "(default: GRAPH.batch.jsonl in this folder)")
    b.add_argument("--resume", action="store_true",
                   help="skip inputs the manifest says are done (and whose outputs exist)")
    b.add_argument("--summary-json", metavar="PATH", help="write the summary as JSON")
    b.set_defaults(fn=cmd_batch)


def cmd_batch(a: argparse.Namespace) -> int:
    from ..graph import GraphErrors
    from .inputs import BatchUsageError
    from .progress import failures_table, summary_table
    from .ray_driver import BatchError
    from .run import BatchConfig, Stopper, run_batch

    err = Console(stderr=True, highlight=False, soft_wrap=True)
    cfg = BatchConfig(graph=a.graph, inputs=a.inputs, sets=a.sets, workers=a.workers, local=a.local,
                      retries=a.retries, cpus_per_worker=a.cpus_per_worker,
                      gpus_per_worker=a.gpus_per_worker, ray_address=a.ray_address, device=a.device,
                      rebuild=a.rebuild, manifest=a.manifest, resume=a.resume,
                      verbose=bool(getattr(a, "verbose", False)))
    flowml_log = logging.getLogger("flowml")
    level = flowml_log.level
    if not cfg.verbose:  # a line per file is said by the batch; the nodes' own info is noise here
        flowml_log.setLevel(logging.WARNING)
    stopper = Stopper()
    install_stop_signals(stopper.request, "stopping the batch")
    try:
        summary = run_batch(cfg, err, stopper=stopper)
    except GraphErrors as e:
        for ge in e.errors:
            err.print(str(ge), markup=False)
        err.print(f"{len(e.errors)} error{'s' if len(e.errors) != 1 else ''} in {a.graph}", markup=False)
        return 2
    except BatchUsageError as exc:
        err.print(f"error: {exc}", markup=False)
        return 2
    except ImportError as exc:
        if (getattr(exc, "name", None) or "").split(".")[0] == "ray":
            err.print(f"error: {INSTALL}", markup=False)
            return 2
        raise
    except BatchError as exc:
        err.print(f"error: {exc}", markup=False)
        return 1
    finally:  # in-process callers (tests, a library user) keep their own logging
        flowml_log.setLevel(level)
    err.print(summary_table(summary))
    failed = failures_table(summary)
    if failed is not None:
        err.print(failed)
    if a.summary_json:
        Path(a.summary_json).write_text(json.dumps(summary.as_dict(), indent=2) + "\n")
    if summary.interrupted:
        err.print(f"stopped: {summary.not_finished} input(s) not finished; run again with --resume",
                  markup=False)
        return 130
    return 1 if summary.failed else 0
