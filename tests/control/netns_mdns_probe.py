"""Run inside a fresh network namespace by test_discovery_netns.py (only loopback, with a
multicast route): start a graph with `flowml run`, browse mDNS with a zeroconf browser and with
`flowml discover`, read the tree from what was found; print one JSON line of what was seen."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from flowml.control.discovery import OSCJSON, OSC_UDP, browse


def main(graph: str) -> int:
    run = subprocess.Popen([sys.executable, "-m", "flowml.cli", "run", graph, "--duration", "60"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen: dict = {"lines": []}
    try:
        assert run.stdout is not None
        for _ in range(50):  # the banner: where OSC and OSCQuery listen
            line = run.stdout.readline()
            if not line:
                break
            seen["lines"].append(line.rstrip())
            m = re.search(r"OSCQuery on http://[\d.]+:(\d+)/", line)
            if m:
                seen["oscquery_port"] = int(m.group(1))
            m = re.search(r"OSC on udp [\d.]+:(\d+)", line)
            if m:
                seen["osc_port"] = int(m.group(1))
            if "mDNS:" in line:
                break
        found = []
        for _ in range(5):  # bounded: the announcement may need a moment after probing
            found = browse(2.0, interfaces=["127.0.0.1"])
            if {OSCJSON, OSC_UDP} <= {f.type for f in found}:
                break
            time.sleep(0.5)
        seen["found"] = [f.as_dict() for f in found]
        query = next((f for f in found if f.type == OSCJSON), None)
        if query is not None:
            with urllib.request.urlopen(f"http://{query.addresses[0]}:{query.port}/src/size",
                                        timeout=5) as r:
                seen["size_leaf"] = json.loads(r.read())
        cli = subprocess.run([sys.executable, "-m", "flowml.cli", "discover", "--json",
                              "--timeout", "2", "--interface", "127.0.0.1"],
                             capture_output=True, text=True, timeout=60)
        seen["discover_rc"] = cli.returncode
        seen["discover"] = json.loads(cli.stdout) if cli.returncode == 0 else cli.stderr
    finally:
        run.terminate()
        try:
            out, _ = run.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            run.kill()
            out, _ = run.communicate()
        seen["lines"] += out.splitlines()[-20:]
        seen["run_rc"] = run.returncode
    # after the graph stopped, its goodbye removed the service
    seen["after_stop"] = [f.name for f in browse(1.5, interfaces=["127.0.0.1"], read_host_info=False)]
    print("RESULT " + json.dumps(seen))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
