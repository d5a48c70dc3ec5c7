"""``flowml batch`` with the graph on a CUDA GPU: the same files as ``flowml run`` there."""

from __future__ import annotations

import pytest
from rich.console import Console

from batch_helpers import GRAPH, cli, outputs_in, read_lines

from flowml.batch.run import BatchConfig, run_batch

pytestmark = pytest.mark.cuda


def test_local_batch_on_cuda_equals_flowml_run_on_cuda(media, tmp_path):
    cuda_graph = GRAPH.replace("preset: ultrafast", "preset: ultrafast, encoder: cpu").replace(
        "clock: src", "clock: src\ndevice: cuda")
    graph = media.root / "flip_cuda.yaml"
    graph.write_text(cuda_graph.format(first=media.good[0], out="ref_cuda/example.mp4"))
    refs = {}
    for p in media.good[:3]:
        g = media.root / f"ref_cuda_{p.stem}.yaml"  # beside check.py, which the graph names
        g.write_text(cuda_graph.format(first=p, out=tmp_path / "ref" / f"{p.stem}.mp4"))
        assert cli("run", str(g)) == 0
        refs[p.stem] = (tmp_path / "ref" / f"{p.stem}.mp4").read_bytes()
    out = tmp_path / "out"
    summary = run_batch(BatchConfig(str(graph), [str(p) for p in media.good[:3]] + [str(media.odd)],
                                    local=True, retries=0, manifest=str(tmp_path / "m.jsonl"),
                                    sets=["src.path={input}", f"out.path={out}/{{stem}}.mp4"]),
                        Console(quiet=True))
    assert (summary.done, summary.failed) == (3, 1)
    assert outputs_in(out) == sorted(f"{s}.mp4" for s in refs)
    for stem, data in refs.items():
        assert (out / f"{stem}.mp4").read_bytes() == data, stem
    assert "48x32 frames are not wanted" in read_lines(tmp_path / "m.jsonl")[-1]["error"]
