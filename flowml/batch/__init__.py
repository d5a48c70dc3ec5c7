"""``flowml batch``: one graph over many files, on Ray (``pip install 'flowml[batch]'``) or in
this process (``--workers 1 --local``), resumable from its manifest.

Modules, each with one job: ``inputs`` (globs, ``--set`` templates), ``manifest`` (JSON lines,
fsynced, read back for ``--resume``), ``staging`` (outputs under a temporary name, renamed on
success), ``runner`` (one loaded graph run once per input), ``ledger`` (retries, crashes, the
manifest line), ``local`` and ``ray_driver`` (the two loops), ``worker`` (the Ray actor),
``progress`` (bar and summary), ``command`` (the CLI). Importing this package imports
neither Ray nor torch.
"""

from .inputs import Binding, BatchUsageError, Item, expand_inputs, make_items, parse_set
from .manifest import Manifest, finished_inputs, read_manifest
from .runner import FileResult, FileRunner

__all__ = ["Binding", "BatchUsageError", "Item", "expand_inputs", "make_items", "parse_set",
           "Manifest", "finished_inputs", "read_manifest", "FileResult", "FileRunner"]
