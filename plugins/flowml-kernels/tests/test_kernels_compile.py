"""``torch.compile(fullgraph=True)`` and ``torch.export`` keep weighted_filter as one op."""

from __future__ import annotations

import torch

from flowml_kernels import WeightedFilter, weighted_filter


class Kpn(torch.nn.Module):
    def __init__(self, n: int = 3):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, n * n, 3, padding=1)
        self.filter = WeightedFilter(n)

    def forward(self, x):
        return self.filter(x, torch.softmax(self.conv(x), dim=1))


def _ops(graph: torch.fx.Graph) -> list:
    return [node.target for node in graph.nodes if node.op == "call_function"]


def _filters(graph: torch.fx.Graph) -> int:
    """Calls of flowml::weighted_filter (Dynamo records the packet, export the overload)."""
    op = torch.ops.flowml.weighted_filter
    return sum(t in (op, op.default) for t in _ops(graph))


def test_compile_fullgraph_keeps_one_op():
    graphs = []

    def recording(gm, example_inputs):
        graphs.append(gm.graph)
        return gm.forward

    model = Kpn()
    x = torch.rand(1, 3, 8, 8)
    compiled = torch.compile(model, backend=recording, fullgraph=True)
    torch.testing.assert_close(compiled(x), model(x))
    assert len(graphs) == 1
    ops = _ops(graphs[0])
    assert _filters(graphs[0]) == 1, ops
    assert len(ops) == 3  # conv2d, softmax, the filter: nothing decomposed


def test_dynamo_explain_sees_no_graph_break():
    explanation = torch._dynamo.explain(lambda a, b: weighted_filter(a, b, 5, True))(
        torch.rand(1, 2, 6, 6), torch.rand(1, 25, 6, 6))
    assert explanation.graph_count == 1 and explanation.graph_break_count == 0


def test_compile_inductor_forward_and_backward_match_eager():
    x = torch.rand(1, 2, 6, 7, requires_grad=True)
    w = torch.rand(1, 9, 6, 7, requires_grad=True)
    f = torch.compile(lambda a, b: weighted_filter(a, b, 3).square().sum(), fullgraph=True)
    f(x, w).backward()
    gx, gw = x.grad.clone(), w.grad.clone()
    x.grad = w.grad = None
    weighted_filter(x, w, 3).square().sum().backward()
    torch.testing.assert_close(gx, x.grad)
    torch.testing.assert_close(gw, w.grad)


def test_export_shows_the_op():
    model = Kpn(5).eval()
    x = torch.rand(1, 3, 8, 8)
    ep = torch.export.export(model, (x,))
    text = str(ep.graph)
    assert "flowml.weighted_filter" in text
    assert _filters(ep.graph) == 1
    torch.testing.assert_close(ep.module()(x), model(x))
