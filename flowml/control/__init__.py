"""Live control of a running graph: the param store, OSC in and out, OSCQuery, expressions,
smoothing, presets, and reloading an edited graph file (``--watch``).

``ControlSession`` (``session.py``) puts the parts together for ``flowml run``; each module
does one job:

- ``store.py``: every live param by address; checks, queues and applies changes at tick start,
  steps expressions, smoothing and preset crossfades;
- ``addresses.py``: address form and OSC 1.0 wildcard matching; ``convert.py``: OSC arguments
  <-> param values and type tags;
- ``osc_server.py``: the UDP socket and its thread; ``dispatch.py``: what received OSC means;
  ``report.py``: bad input logged once per address and answered as ``/flowml/error``;
- ``osc_out.py``: sending values and stats, rate-limited; ``oscquery.py``: the OSCQuery server;
- ``presets.py``: the presets file beside the graph; ``watch.py``: ``--watch``.

The safe expression evaluator lives in the graph layer (``flowml.graph.expr``) because graph
validation checks expressions too.
"""

from .session import ControlSession, ControlSettings
from .store import ControlError, ParamStore

__all__ = ["ControlSession", "ControlSettings", "ParamStore", "ControlError"]
