"""GPU paths: crop.square on CUDA equals the CPU; overlay.tracks draws on the device without
copying the frame to the host; the tracking graph runs on a GPU."""

from pathlib import Path

import pytest
import torch

from flowml.testing import NodeHarness, run_node
from flowml_track import detections
from flowml_track.crops import CropSquare
from flowml_track.overlay import Overlay

pytestmark = pytest.mark.cuda
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def scene_detections(n: int, width: int, height: int) -> dict:
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(n, 2, generator=g) * torch.tensor([width - 40.0, height - 40.0])
    wh = 8 + torch.rand(n, 2, generator=g) * 120
    return detections.make(torch.cat([xy - 20, xy + wh], 1), tracker_id=torch.arange(n) * 3 + 1)


@needs_cuda
@pytest.mark.parametrize("size, margin", [(224, 0.0), (96, 0.2)])
def test_crop_square_on_cuda_equals_cpu(size, margin):
    image = torch.rand(1, 3, 1080, 1920, generator=torch.Generator().manual_seed(2))
    d = scene_detections(40, 1920, 1080)
    params = {"size": size, "margin": margin}
    cpu = run_node(CropSquare, {"image": image, "detections": d}, params)
    gpu = run_node(CropSquare, {"image": image.cuda(), "detections": d}, params, device="cuda")
    assert gpu["crops"].is_cuda and gpu["crops"].shape == (40, 3, size, size)
    assert gpu["ids"] == cpu["ids"]
    torch.testing.assert_close(gpu["boxes"].cpu(), cpu["boxes"], rtol=0, atol=0)
    # the boxes above are exact; the crops are not bit-equal: roi_align places its samples with
    # float32 arithmetic that rounds differently on the GPU (~1e-4 px at x ~ 1920), and on a
    # noise image (neighbours differ by up to 1, x ~4.5 normalised) that moves a value by up to
    # ~5e-4 per tap. Measured on the H200: 2.3e-4 (2026-12-02), 7.2e-4 (2026-12-04, unseeded image)
    torch.testing.assert_close(gpu["crops"].cpu(), cpu["crops"], rtol=0, atol=2e-3)


def grid_detections(cols: int = 6, rows: int = 5) -> dict:
    """Boxes that never overlap (nor their labels): one per 320 x 216 cell of a 1080p frame, so
    the drawing has one right answer (overlapping marks may land in either order on a GPU)."""
    g = torch.Generator().manual_seed(1)
    boxes = []
    for r in range(rows):
        for c in range(cols):
            w, h = (20 + torch.rand(2, generator=g) * 130).tolist()
            boxes.append([c * 320 + 30, r * 216 + 30, c * 320 + 30 + w, r * 216 + 30 + h])
    return detections.make(boxes, tracker_id=torch.arange(len(boxes)) * 3 + 1)


@needs_cuda
def test_overlay_on_cuda_draws_on_the_device_without_a_host_copy():
    from torch.profiler import ProfilerActivity, profile

    image = torch.rand(1, 3, 1080, 1920, device="cuda")
    d = grid_detections()
    classes = [{"tracker_id": int(i), "class": "disc", "probability": 50.0} for i in d["tracker_id"]]
    with NodeHarness(Overlay, {}, device="cuda") as h:
        h.process(image=image, detections=d, classes=classes)  # warm: glyphs uploaded once
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            out = h.process(image=image, detections=d, classes=classes)["image"]
            torch.cuda.synchronize()
    names = [e.name for e in prof.events()]
    assert not [n for n in names if "DtoH" in n or "Device -> Pageable" in n or "Device -> Pinned" in n], \
        sorted({n for n in names if "Memcpy" in n})
    assert out.is_cuda and out.shape == image.shape
    cpu = run_node(Overlay, {"image": image.cpu(), "detections": d, "classes": classes}, {"renderer": "torch"})
    torch.testing.assert_close(out.cpu(), cpu["image"], rtol=0, atol=0)


@needs_cuda
def test_tracking_graph_runs_on_the_gpu(tmp_path):
    from flowml.graph import load_graph
    from flowml.plugins import load_registry
    from flowml.runtime.scheduler import Scheduler
    from flowml_track.models import save_squeezenet
    from flowml_track.synth import Scene, write_video

    graph_file = Path(__file__).resolve().parents[3] / "graphs" / "analytics_tracking.yaml"
    if not graph_file.is_file():
        pytest.skip(f"the repo's graphs/ folder is not here ({graph_file})")
    write_video(Scene((320, 240), 40, 30, objects=4, seed=2), tmp_path / "out" / "tracking_scene.mp4")
    save_squeezenet(tmp_path / "models" / "squeezenet_tracks.pt")
    (tmp_path / "graphs").mkdir()
    path = tmp_path / "graphs" / "t.yaml"
    path.write_text(graph_file.read_text().replace("at_frame: 60", "at_frame: 30"))
    rules = graph_file.with_name("analytics_tracking_rules.json")
    (tmp_path / "graphs" / rules.name).write_text(rules.read_text())
    joined = []
    with Scheduler(load_graph(path, load_registry()), device="cuda") as sched:
        sched.after_tick.append(lambda tick, out: joined.append((out["crops"]["crops"].device.type,
                                                                 len(out["join"]["classes"]))))
        sched.run()
    assert len(joined) == 40 and all(dev == "cuda" for dev, _ in joined)
    assert max(k for _, k in joined) >= 3
    assert (tmp_path / "out" / "analytics_tracking.mp4").stat().st_size > 1000
