"""The ``flowml`` command: run | validate | nodes | schema | params | bench | demo | examples | batch.

Exit codes: 0 success, 1 a node failed while running, 2 a bad graph file or bad usage.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
from pathlib import Path
from typing import Any, Sequence

from rich.console import Console

from . import __version__
from .stopsignals import install_stop_signals

err = Console(stderr=True, highlight=False, soft_wrap=True)  # never wrap file:line:col errors
out = Console(highlight=False, soft_wrap=True)


def _registry():
    from .plugins import load_registry

    return load_registry()


def _load(path: str, registry) -> Any:
    """Validate a graph file; print every error and exit 2 if there are any."""
    from .graph import GraphErrors, load_graph

    try:
        return load_graph(path, registry)
    except GraphErrors as e:
        for ge in e.errors:
            err.print(str(ge), markup=False)
        n = len(e.errors)
        err.print(f"{n} error{'s' if n != 1 else ''} in {path}", markup=False)
        sys.exit(2)


# -- flowml run ---------------------------------------------------------------------------------
def cmd_run(a: argparse.Namespace) -> int:
    from .runtime.scheduler import NodeFailed, Scheduler
    from .contracts import set_checking

    if a.check:
        set_checking(True)

    registry = _registry()
    graph = _load(a.graph, registry)
    mode = "offline" if a.offline else "live" if a.live else None
    sched = Scheduler(graph, mode=mode, device=a.device, max_in_flight=a.max_in_flight,
                      on_error=a.on_error)
    install_stop_signals(sched.stop, "stopping")
    control = _start_control(a, graph, sched, registry)
    if control is None:
        return 2
    try:
        sched.setup()
    except NodeFailed as f:
        control.stop()
        err.print(f"{graph.where(f.node_id)}: error: {f}", markup=False)
        if f.detail():
            err.print(f.detail(), markup=False)
        return 1
    name = graph.spec.name or Path(a.graph).stem
    from .gpu.device import resolve_device

    err.print(f"running {name}: {len(graph.nodes)} nodes, {sched.mode} mode, "
              f"device {resolve_device(sched.device)}", markup=False)
    for line in control.describe():
        err.print(f"  {line}", markup=False)
    stop_live = _start_live_view(sched, name) if a.stats else _start_progress(sched, name)
    try:
        result = sched.run(frames=a.frames, duration=a.duration)
    finally:
        stop_live()
        control.stop()
        sched.teardown()
    s = result.stats
    p50, p99 = s.latency_ms(50), s.latency_ms(99)
    lat = f", latency p50 {p50:.1f} ms p99 {p99:.1f} ms" if p50 is not None else ""
    err.print(f"{result.reason}: {s.completed} frames in {s.elapsed():.2f} s ({s.fps():.1f} fps)"
              f"{lat}, dropped {s.source_drops}", markup=False)
    if a.stats_json:
        Path(a.stats_json).write_text(json.dumps({"graph": name, "mode": sched.mode,
                                                  "reason": result.reason, **s.as_dict()}, indent=2))
    _say_lingering_threads()
    if result.error is not None:
        err.print(f"{graph.where(result.error.node_id)}: error: {result.error}", markup=False)
        if result.error.detail():
            err.print(result.error.detail(), markup=False)
        return 1
    for failure in sched.teardown_failures:  # a recording that did not close is not success
        err.print(f"{graph.where(failure.node_id)}: error: {failure}", markup=False)
    return 1 if sched.teardown_failures else 0


def _say_lingering_threads() -> None:
    """Every thread flowml started is joined by now; name any that is not (user code that
    never returned), so an exit that hangs or crashes in C code has a culprit."""
    import threading

    alive = sorted(t.name for t in threading.enumerate()
                   if t.name.startswith("flowml") and t.is_alive() and t is not threading.current_thread())
    if alive:
        err.print(f"warning: still running at exit: {', '.join(alive)}", markup=False)


def _start_control(a: argparse.Namespace, graph, sched, registry):
    """Live control (flowml.control): OSC, OSCQuery, expressions, --watch. None if it cannot
    start (a port in use, a bad host:port), after saying why."""
    from .control import ControlSession, ControlSettings
    from .graph import load_graph

    try:
        settings = ControlSettings.resolve(graph.spec.osc, osc_port=a.osc_port, osc_host=a.osc_host,
                                           oscquery_port=a.oscquery_port, watch=a.watch)
        control = ControlSession(sched, settings, graph_path=a.graph,
                                 load=lambda path, text: load_graph(path, registry, text=text),
                                 say=lambda line: err.print(line, markup=False, highlight=False),
                                 name=graph.spec.name or Path(a.graph).stem)
        control.start()
    except (OSError, ValueError) as exc:
        err.print(f"error: {exc}", markup=False)
        return None
    return control


def _start_live_view(sched, name: str):
    from rich.live import Live

    from .runtime.stats import stats_table

    live = Live(stats_table(sched.stats, name), console=err, refresh_per_second=4)
    live.start()
    done = threading.Event()

    def loop():
        while not done.wait(0.5):
            live.update(stats_table(sched.stats, name))

    threading.Thread(target=loop, daemon=True).start()

    def stop():
        done.set()
        live.update(stats_table(sched.stats, name))
        live.stop()

    return stop


def _start_progress(sched, name: str):
    """A one-line status (frames, fps) on a terminal; nothing when output is not a terminal."""
    if not err.is_terminal:
        return lambda: None
    status = err.status(f"{name}: starting")
    status.start()
    done = threading.Event()

    def loop():
        while not done.wait(0.5):
            s = sched.stats
            status.update(f"{name}: {s.completed} frames, {s.recent_fps():.1f} fps, "
                          f"dropped {s.source_drops}")

    threading.Thread(target=loop, daemon=True).start()

    def stop():
        done.set()
        status.stop()

    return stop


# -- flowml validate / schema / nodes / params --------------------------------------------------
def cmd_validate(a: argparse.Namespace) -> int:
    """Check every file given (a bad one does not stop the others); exit 2 if any is bad.
    Notes (``file:line:col: note: ...``, e.g. a node needing a GPU this machine lacks) go to
    stderr and leave the exit status 0."""
    from .graph import GraphErrors, load_graph

    registry = _registry()
    bad = 0
    for path in a.graphs:
        try:
            g = load_graph(path, registry)
        except GraphErrors as e:
            bad += 1
            for ge in e.errors:
                err.print(str(ge), markup=False)
            n = len(e.errors)
            err.print(f"{n} error{'s' if n != 1 else ''} in {path}", markup=False)
            continue
        out.print(f"ok: {path}: {len(g.nodes)} nodes, clock {_clock_text(g.clock)}", markup=False)
        for note in g.notes:  # non-fatal: the graph is valid, but e.g. needs a GPU it lacks
            err.print(str(note), markup=False)
    if bad and len(a.graphs) > 1:
        err.print(f"{bad} of {len(a.graphs)} graph files have errors", markup=False)
    return 2 if bad else 0


def _clock_text(clock) -> str:
    return clock if isinstance(clock, str) else f"{clock.fps:g} fps"


def cmd_schema(a: argparse.Namespace) -> int:
    from .graph import graph_json_schema

    text = json.dumps(graph_json_schema(_registry()), indent=2)
    if a.output:
        Path(a.output).write_text(text + "\n", encoding="utf-8")
        err.print(f"wrote {a.output}", markup=False)
    else:
        print(text)
    return 0


def node_type_info(t) -> dict[str, Any]:
    """A JSON-able description of a registered node type."""
    from .paraminfo import describe_params
    from .parammeta import param_meta

    from .node import Node

    from .ports import ports_problem

    cls = t.cls
    try:
        ports = cls.ports(cls.Params())
    except Exception:  # required params: fixed ports are known anyway
        ports = None if "ports" in vars(cls) else Node.ports.__func__(cls, None)  # type: ignore[attr-defined]
    problem = ports_problem(cls, ports) if ports is not None else None
    if problem:
        inputs = outputs = f"error: {problem}"
    elif ports is None:
        inputs = outputs = "depends on params"
    else:
        inputs = [{"name": p.name, "type": p.type.name, "optional": p.optional} for p in ports.inputs]
        outputs = [{"name": p.name, "type": p.type.name} for p in ports.outputs]
    return {
        "type": t.name, "plugin": t.plugin, "distribution": t.distribution, "version": t.version,
        "description": _description(cls), "inputs": inputs, "outputs": outputs,
        "blocking": cls.blocking, "live": cls.live,
        "params": [{"name": p.name, "type": p.type, "default": _jsonable(p.default),
                    "min": p.min, "max": p.max, "choices": p.choices, "required": p.required,
                    "description": p.description, "meta": param_meta(cls.Params, p.name).as_schema(),
                    "tag": param_meta(cls.Params, p.name).tag()}
                   for p in describe_params(cls.Params)],
    }


def _description(cls) -> str:
    """The first paragraph of the type's docstring, joined into one line (never cut mid-sentence)."""
    import inspect

    doc = inspect.getdoc(cls) if cls.__doc__ else ""
    return " ".join((doc or "").strip().split("\n\n")[0].split())


def _jsonable(v: Any) -> Any:
    try:
        json.dumps(v)
        return v
    except TypeError:
        return str(v)


def cmd_nodes(a: argparse.Namespace) -> int:
    try:
        return _nodes(a)
    except BrokenPipeError:  # `flowml nodes --json | head`: the reader has what it wanted
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # no second error when Python flushes at exit
        return 0


def _nodes(a: argparse.Namespace) -> int:
    from rich.markup import escape
    from rich.table import Table

    reg = _registry()
    types = [t for name in sorted(reg.types) if not a.type or name.startswith(a.type)
             for t in reg.registrations(name)]  # a name two plugins claim: both listed
    infos = [node_type_info(t) for t in types]
    conflicts = {name: reg.conflict(name) for name in sorted(reg.candidates)
                 if not a.type or name.startswith(a.type)}
    if a.json:
        failures = [{"plugin": f.plugin, "error": f.error, "loaded": f.loaded,
                     **({"traceback": f.detail} if a.show_tracebacks else {})} for f in reg.failures]
        clashes = [{"type": name, "plugins": reg.owners(name), "error": text}
                   for name, text in conflicts.items()]
        sys.stdout.write(json.dumps({"node_types": infos, "failed_plugins": failures,
                                     "conflicts": clashes}, indent=2) + "\n")
        sys.stdout.flush()
        return 0
    table = Table(title=f"{len(infos)} node types", title_justify="left", show_lines=True)
    for col in ("type", "plugin", "inputs", "outputs", "params"):
        table.add_column(col, overflow="fold")
    for i in infos:
        def ports(ps):
            return ps if isinstance(ps, str) else "\n".join(
                f"{p['name']}: {p['type']}{'?' if p.get('optional') else ''}" for p in ps)
        params = "\n".join(
            f"{p['name']}: {p['type']} = {'(required)' if p['required'] else p['default']!r}"
            + (f" {_range(p)}" if _range(p) else "") + (f" ({p['tag']})" if p.get("tag") else "")
            for p in i["params"])
        table.add_row(f"{i['type']}\n[dim]{escape(i['description'])}[/dim]",
                      f"{i['plugin']}\n[dim]{i['distribution']} {i['version']}[/dim]",
                      escape(ports(i["inputs"])), escape(ports(i["outputs"])), escape(params))
    out.print(table)
    for text in conflicts.values():
        err.print(f"[red]conflict:[/red] {escape(text)}")
    for f in reg.failures:
        err.print(f"[red]{escape(str(f))}[/red]")
        if a.show_tracebacks and f.detail:
            err.print(f.detail.rstrip(), markup=False, highlight=False)
    if reg.failures and not a.show_tracebacks:
        err.print("run `flowml nodes --verbose` for the tracebacks", markup=False)
    return 0


def _range(p: dict[str, Any]) -> str:
    if p["choices"]:
        return "{" + "|".join(map(str, p["choices"])) + "}"
    if p["min"] is None and p["max"] is None:
        return ""
    return f"[{'' if p['min'] is None else p['min']}, {'' if p['max'] is None else p['max']}]"


def cmd_params(a: argparse.Namespace) -> int:
    from rich.markup import escape
    from rich.table import Table

    from .paraminfo import describe_params

    from .control.addresses import normalize_prefix
    from .control.convert import range_of, shape_of, type_of
    from .graph.live import numeric_fields

    g = _load(a.graph, _registry())
    prefix = normalize_prefix(g.spec.osc.prefix if g.spec.osc else "")
    table = Table(title=f"OSC addresses of {a.graph}", title_justify="left")
    for col in ("address", "osc type", "range", "value", "description"):
        table.add_column(col, overflow="fold")
    rows = []
    for nid in g.order:
        rn = g.nodes[nid]
        for p in describe_params(rn.type.cls.Params):
            value = getattr(rn.params, p.name)
            smooth = rn.spec.smooth.get(p.name) if isinstance(rn.spec.smooth, dict) else rn.spec.smooth
            smooth = smooth if p.name in numeric_fields(rn.type.cls.Params) else None
            shape = shape_of(rn.type.cls.Params.model_fields[p.name], value)
            osc_type = type_of(shape, value)  # the OSC type tags, as OSCQuery's TYPE
            rows.append({"address": f"{prefix}/{nid}/{p.name}", "type": p.type, "osc": osc_type,
                         "osc_range": range_of(p, shape, osc_type),
                         "range": p.range_text(), "value": _jsonable(value),
                         "default": _jsonable(p.default), "description": p.description,
                         "expr": rn.expressions.get(p.name), "smooth": smooth})
    if a.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        value = f"= {r['expr']}" if r["expr"] else repr(r["value"])
        if r["smooth"]:
            value += f" (smooth {r['smooth']:g} s)"
        table.add_row(*(escape(str(c)) for c in (r["address"], r["osc"], r["range"], value,
                                                 r["description"])))
    out.print(table)
    return 0


def cmd_new_plugin(a: argparse.Namespace) -> int:
    """``flowml new plugin NAME [DIR]``: a plugin package that installs and passes its test."""
    from .scaffold import ScaffoldError, scaffold_plugin

    try:
        made = scaffold_plugin(a.name, Path(a.dir) if a.dir else None)
    except ScaffoldError as exc:
        err.print(f"error: {exc}", markup=False)
        return 2
    out.print(f"made {made}: install it with `pip install -e {made}`, test it with "
              f"`pytest {made}`, then edit the node in {made}/flowml_{a.name}/nodes.py", markup=False)
    return 0


def cmd_discover(a: argparse.Namespace) -> int:
    """``flowml discover``: flowml graphs and OSCQuery servers that answer over mDNS."""
    from .control.discovery import browse, render

    try:
        found = browse(a.timeout, interfaces=a.interface or None)
    except OSError as exc:
        err.print(f"error: cannot browse mDNS here: {exc} (is there a network interface with "
                  "multicast?)", markup=False)
        return 1
    print(render(found, as_json=a.json))
    return 0


def cmd_bench(a: argparse.Namespace) -> int:
    from .bench.report import run
    from .bench.scenarios import SCENARIOS

    names = a.only or list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        err.print(f"unknown scenario {unknown}; choose from {list(SCENARIOS)}", markup=False)
        return 2
    import torch

    if not torch.cuda.is_available() and names != ["overhead"]:
        err.print("flowml bench needs a CUDA GPU for every scenario but 'overhead' "
                  "(run `flowml bench --only overhead` on the CPU)", markup=False)
        return 2
    results = run(names, Path(a.out), log=lambda m: err.print(m, markup=False))
    out.print((Path(a.out) / "bench.md").read_text(encoding="utf-8"), markup=False)
    return 0 if all(r.get("met", True) and "error" not in r
                    for r in results["scenarios"].values()) else 1


def cmd_demo(a: argparse.Namespace) -> int:
    """``flowml demo [DIR]``: the demo graph and its model into DIR (or the user cache), then run."""
    from .demo import missing_plugins, prepare
    from .example_graphs import ExampleError

    lacking = missing_plugins(_registry())
    if lacking:
        err.print(f"error: the demo needs the plugins of flowml[{','.join(lacking)}]: "
                  "pip install 'flowml[demo]'", markup=False)
        return 2
    try:
        a.graph = str(prepare(Path(a.dir) if a.dir else None, say=lambda m: err.print(m, markup=False)))
    except ExampleError as exc:
        err.print(f"error: {exc}", markup=False)
        return 2
    code = cmd_run(a)
    if code == 0:
        folder = Path(a.graph).parent / "out"
        err.print(f"wrote {folder / 'demo.mp4'} and {folder / 'demo.png'}", markup=False)
    return code


def cmd_examples(a: argparse.Namespace) -> int:
    """``flowml examples``: the packaged example graphs; ``flowml examples copy NAME... DIR``."""
    from . import example_graphs as ex

    if a.what != "copy":
        rows = [(name, ex.summary(name), ", ".join(ex.models_of(name)))
                for name in ex.names()]
        if not sys.stdout.isatty():  # plain lines for scripts: NAME<TAB>what it shows
            for name, summary, _ in rows:
                print(f"{name}\t{summary}")
            return 0
        from rich.table import Table

        table = Table(title="example graphs (flowml examples copy NAME DIR)", title_justify="left")
        for col in ("name", "what it shows", "models it reads"):
            table.add_column(col, overflow="fold")
        for row in rows:
            table.add_row(*row)
        out.print(table)
        return 0
    names = ex.names() if a.names == ["all"] else a.names
    registry = _registry()   # the plugins build their graphs' models too
    try:
        for name in names:
            done = ex.copy(name, Path(a.dir), build_models=not a.no_models,
                           say=lambda m: err.print(m, markup=False), registry=registry)
            out.print(f"wrote {done.graph}", markup=False)
            for model in done.not_buildable:
                err.print(f"  {name} reads models/{model}, which neither flowml nor an installed plugin builds: "
                          f"the first lines of {done.graph.name} say where it comes from", markup=False)
            for model in done.skipped:
                err.print(f"  not built (--no-models): models/{model}", markup=False)
    except ex.ExampleError as exc:
        err.print(f"error: {exc}", markup=False)
        return 2
    return 0


# -- entry point --------------------------------------------------------------------------------
def add_run_options(r: argparse.ArgumentParser) -> None:
    """The options of `flowml run` (and of `flowml demo`, which runs a graph too)."""
    r.add_argument("--frames", type=int, help="stop after N frames")
    r.add_argument("--duration", type=float, help="stop after S seconds")
    m = r.add_mutually_exclusive_group()
    m.add_argument("--offline", action="store_true", help="every frame, nothing dropped")
    m.add_argument("--live", action="store_true", help="latest frame wins, drops counted")
    r.add_argument("--device", help="auto, cpu, cuda, cuda:N (overrides the graph's)")
    r.add_argument("--max-in-flight", type=int, help="frames in flight at once")
    r.add_argument("--on-error", choices=["stop", "skip"], help="when a node raises")
    r.add_argument("--stats", action="store_true", help="live table of per-node stats")
    r.add_argument("--stats-json", metavar="PATH", help="write a JSON stats summary at exit")
    r.add_argument("--osc-port", type=int, metavar="PORT",
                   help="listen for OSC on this UDP port (0: any free; overrides osc: port)")
    r.add_argument("--osc-host", metavar="HOST", help="listen for OSC on this address (0.0.0.0: all)")
    r.add_argument("--oscquery-port", type=int, metavar="PORT",
                   help="serve the param tree over OSCQuery (HTTP + websocket) on this port")
    r.add_argument("--watch", action="store_true",
                   help="reload the graph file (and files its nodes read) when they change")
    r.add_argument("--check", action="store_true", help="costlier contract checks: image values "
                   "in [0, 1], inputs changed in place (see docs/plugins.md)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="flowml", description=__doc__.splitlines()[0])
    p.add_argument("--version", action="version", version=f"flowml {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="cmd", required=True)

    r = sub.add_parser("run", help="run a graph file")
    r.add_argument("graph")
    add_run_options(r)
    r.set_defaults(fn=cmd_run)

    v = sub.add_parser("validate", help="check graph files, report every error")
    v.add_argument("graphs", nargs="+")
    v.set_defaults(fn=cmd_validate)

    n = sub.add_parser("nodes", help="list installed node types")
    n.add_argument("type", nargs="?", help="only types starting with this")
    n.add_argument("--json", action="store_true")
    n.add_argument("--verbose", dest="show_tracebacks", action="store_true",
                   help="show the traceback of each plugin that failed")
    n.set_defaults(fn=cmd_nodes)

    nw = sub.add_parser("new", help="scaffold a new plugin package (with a passing test)")
    nw_sub = nw.add_subparsers(dest="what", required=True)
    nwp = nw_sub.add_parser("plugin", help="a plugin package: pyproject.toml, a node, a test")
    nwp.add_argument("name", help="the plugin's name, e.g. mynodes (also its node types' family)")
    nwp.add_argument("dir", nargs="?", help="where to make it (default: ./flowml-NAME)")
    nwp.set_defaults(fn=cmd_new_plugin)

    s = sub.add_parser("schema", help="JSON Schema of graph files, for editors")
    s.add_argument("-o", "--output")
    s.set_defaults(fn=cmd_schema)

    pa = sub.add_parser("params", help="every live parameter address of a graph")
    pa.add_argument("graph")
    pa.add_argument("--json", action="store_true")
    pa.set_defaults(fn=cmd_params)
    d = sub.add_parser("discover", help="list flowml graphs and OSCQuery servers on the network (mDNS)")
    d.add_argument("--timeout", type=float, default=3.0, metavar="S", help="seconds to listen (default 3)")
    d.add_argument("--interface", action="append", metavar="ADDR",
                   help="browse only on the interface with this IPv4 address (repeatable)")
    d.add_argument("--json", action="store_true")
    d.set_defaults(fn=cmd_discover)
    b = sub.add_parser("bench", help="flowml against hand-written PyTorch loops (GPU)")
    b.add_argument("--only", nargs="+", metavar="SCENARIO")
    b.add_argument("--out", default="bench-out", help="folder for bench.json, bench.md, latency.png")
    b.set_defaults(fn=cmd_bench)
    dm = sub.add_parser("demo", help="write the demo graph and build its model (no download), then run it",
                        description="Write the demo graph and build its model (a few seconds, no download) "
                        "into DIR (default: flowml's folder in the user cache), then run it: DIR/out/demo.mp4, "
                        "DIR/out/demo.png. Takes the options of `flowml run`.")
    dm.add_argument("dir", nargs="?", help="folder for the graph, its model and out/ (default: the user cache)")
    add_run_options(dm)
    dm.set_defaults(fn=cmd_demo)
    ex = sub.add_parser("examples", help="list the example graphs that ship with flowml; copy one out")
    ex_sub = ex.add_subparsers(dest="what")
    exc = ex_sub.add_parser("copy", help="copy example graphs into DIR and build the models they use")
    exc.add_argument("names", nargs="+", metavar="NAME", help="example names (`all`: every one)")
    exc.add_argument("dir", metavar="DIR")
    exc.add_argument("--no-models", action="store_true", help="do not build the models the graphs use")
    ex.set_defaults(fn=cmd_examples)
    from .batch.command import add_parser as add_batch_parser  # flowml batch: Ray, or --local

    add_batch_parser(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from rich.logging import RichHandler

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s",
                        handlers=[RichHandler(console=err, show_path=False, show_time=False)])
    return int(args.fn(args) or 0)


def entry() -> None:
    """The ``flowml`` command. Once a command is done (every thread of flowml's joined, every
    file closed) the process ends at once: finalizing torch's and FFmpeg's modules took 2 -
    2.5 s on a loaded 2-core machine, and a C++ thread of a library still alive then can abort
    the exit ("terminate called without an active exception")."""
    try:
        code = main()
    except KeyboardInterrupt:  # a second Ctrl-C: abort, as promised
        code = 130
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if not isinstance(exc.code, (int, type(None))):
            print(exc.code, file=sys.stderr)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


if __name__ == "__main__":
    entry()
