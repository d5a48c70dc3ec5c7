"""Check that flowml's distributions are in step, or list them (stdlib only, Python 3.11+)::

    python scripts/check_dists.py                 # check; exit 1 naming each problem
    python scripts/check_dists.py --list          # the folder of every distribution, core first
    python scripts/check_dists.py --set-version 0.2.0   # one version for all, extras' pins too

The distributions are the root (flowml), every ``plugins/*`` folder with a pyproject.toml (found
on disk, so a new plugin is picked up without editing anything here) and ``examples/*``. Checked:
one version everywhere; every plugin is named, pinned to that version, in an extra of flowml's
and reached from ``flowml[all]``; no extra names a distribution that is not in the repository;
Spout only on Windows, Syphon only on macOS (environment markers), so ``[all]`` installs everywhere.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARKERS = {"flowml-spout": "sys_platform == 'win32'", "flowml-syphon": "sys_platform == 'darwin'"}
_REQ = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*([^;]*?)\s*(?:;\s*(.*))?$")


def dist_dirs(root: Path = ROOT) -> list[Path]:
    """The root, then ``plugins/*``, then ``examples/*``: each folder with a pyproject.toml."""
    found = [root]
    for group in ("plugins", "examples"):
        found += sorted(p.parent for p in (root / group).glob("*/pyproject.toml"))
    return found


def _project(folder: Path) -> dict:
    return tomllib.loads((folder / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def problems(root: Path = ROOT) -> list[str]:
    """Every way the distributions are out of step, as sentences; empty when all is well."""
    core = _project(root)
    version = core["version"]
    bad: list[str] = []
    plugins = {}
    for folder in dist_dirs(root)[1:]:
        project = _project(folder)
        rel = folder.relative_to(root).as_posix()
        if project.get("version") != version:
            bad.append(f"{rel}/pyproject.toml: version {project.get('version')!r}, flowml's is {version!r} "
                       "(python scripts/check_dists.py --set-version X sets all)")
        if folder.parent.name == "plugins":
            plugins[_norm(project["name"])] = rel
    extras: dict[str, list[str]] = core.get("optional-dependencies", {})
    reached_by: dict[str, set[str]] = {}  # extra -> extras it names through flowml[...]
    named: dict[str, set[str]] = {}       # distribution -> extras naming it
    for extra, reqs in extras.items():
        reached_by[extra] = set()
        for req in reqs:
            m = _REQ.match(req)
            if not m:
                bad.append(f"pyproject.toml: extra {extra!r}: cannot read {req!r}")
                continue
            name, inner, spec, marker = _norm(m.group(1)), m.group(2), m.group(3), m.group(4)
            if name == "flowml":
                reached_by[extra] |= {e.strip() for e in (inner or "[]")[1:-1].split(",") if e.strip()}
                continue
            if not name.startswith("flowml-"):
                continue  # a third-party package (ray for [batch], ...)
            named.setdefault(name, set()).add(extra)
            if name not in plugins:
                bad.append(f"pyproject.toml: extra {extra!r} names {name}, which is not in plugins/ "
                           "(an extra naming a distribution that does not exist breaks installs)")
                continue
            if spec.replace(" ", "") != f"=={version}":
                bad.append(f"pyproject.toml: extra {extra!r}: {name} must be pinned =={version}, not {spec!r}")
            want = MARKERS.get(name)
            if want and (marker or "").replace('"', "'") != want:
                bad.append(f"pyproject.toml: extra {extra!r}: {name} needs the marker `; {want}` "
                           "so that [all] installs on every OS")
    for extra, inner in reached_by.items():
        for e in sorted(inner - set(extras)):
            bad.append(f"pyproject.toml: extra {extra!r} names flowml[{e}], which is not an extra")
    for name, rel in sorted(plugins.items()):
        if name not in named:
            bad.append(f"{rel}: {name} is in no extra of flowml's pyproject.toml (add one named by purpose, "
                       "and add it to [all])")
    if "all" not in extras:
        bad.append("pyproject.toml: no extra 'all'")
    else:
        seen, todo = set(), ["all"]
        while todo:
            e = todo.pop()
            if e not in seen and e in extras:
                seen.add(e)
                todo += sorted(reached_by.get(e, ()))
        for name in sorted(plugins):
            if not named.get(name, set()) & seen:
                bad.append(f"pyproject.toml: flowml[all] does not install {name}")
    return bad


def set_version(version: str, root: Path = ROOT) -> list[Path]:
    """Write ``version`` into every pyproject.toml and flowml/__init__.py, and pin the extras to it."""
    changed = []
    for folder in dist_dirs(root):
        path = folder / "pyproject.toml"
        text = path.read_text(encoding="utf-8")
        new = re.sub(r'(?m)^version = "[^"]*"', f'version = "{version}"', text, count=1)
        if folder == root:
            new = re.sub(r'("flowml-[a-z0-9-]+)==[^;"\s]+', rf"\1=={version}", new)
        if new != text:
            path.write_text(new, encoding="utf-8")
            changed.append(path)
    init = root / "flowml" / "__init__.py"
    text = init.read_text(encoding="utf-8")
    new = re.sub(r'(?m)^__version__ = "[^"]*"', f'__version__ = "{version}"', text)
    if new != text:
        init.write_text(new, encoding="utf-8")
        changed.append(init)
    return changed


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--list", action="store_true", help="print the folder of every distribution")
    p.add_argument("--set-version", metavar="X", help="set every distribution's version to X")
    a = p.parse_args()
    if a.list:
        for folder in dist_dirs():
            print(folder.relative_to(ROOT).as_posix() or ".")
        return 0
    if a.set_version:
        for path in set_version(a.set_version):
            print(f"wrote {path.relative_to(ROOT)}")
    bad = problems()
    init = re.search(r'(?m)^__version__ = "([^"]*)"', (ROOT / "flowml" / "__init__.py").read_text())
    if init and init.group(1) != _project(ROOT)["version"]:
        bad.append(f"flowml/__init__.py: __version__ {init.group(1)!r}, pyproject.toml says "
                   f"{_project(ROOT)['version']!r}")
    for line in bad:
        print(line, file=sys.stderr)
    if not bad:
        print(f"{len(dist_dirs())} distributions in step at {_project(ROOT)['version']}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
