"""``flowml batch --workers 1 --local``: the batch loop in this process, over real files."""

from __future__ import annotations

import threading
import textwrap
import time

from rich.console import Console

from batch_helpers import cli, outputs_in, read_lines

from flowml.batch.run import BatchConfig, Stopper, run_batch


def test_local_batch_outputs_equal_flowml_run_and_bad_files_are_in_the_manifest(media, reference):
    out = media.root / "out_local"
    manifest = media.root / "local.jsonl"
    code = cli("batch", *media.args(str(out), "--workers", "1", "--local", "--retries", "1",
                                    "--manifest", str(manifest)))
    assert code == 1  # some inputs failed
    assert outputs_in(out) == sorted(f"{p.stem}.mp4" for p in media.good)  # no staging left
    for p in media.good:
        assert (out / f"{p.stem}.mp4").read_bytes() == reference[p.stem], p
    lines = {rec["input"]: rec for rec in read_lines(manifest)}
    assert len(lines) == 12 and len(read_lines(manifest)) == 12  # one line per input
    for p in media.good:
        rec = lines[str(p)]
        assert rec["status"] == "done" and rec["frames"] == 8 and rec["outputs"] == [str(out / f"{p.stem}.mp4")]
    missing = lines[str(media.missing)]
    assert missing["status"] == "failed" and "not found" in missing["error"] and missing["attempts"] == 1
    corrupt = lines[str(media.corrupt)]
    assert corrupt["status"] == "failed" and "node 'src'" in corrupt["error"] and corrupt["attempts"] == 2
    odd = lines[str(media.odd)]
    assert odd["status"] == "failed" and "48x32 frames are not wanted" in odd["error"]
    assert "node 'check'" in odd["error"] and "check.py" in odd["error"]

    # --resume: nothing good is run again; an output deleted since is made again
    (out / "clip3.mp4").unlink()
    summary = run_batch(BatchConfig(str(media.graph), [str(media.root / "videos" / "**" / "*.mp4"), str(media.missing)],
                                    sets=["src.path={input}", f"out.path={out}/{{stem}}.mp4"],
                                    local=True, retries=0, manifest=str(manifest), resume=True),
                        Console(quiet=True))
    assert (summary.skipped, summary.done, summary.failed) == (8, 1, 3)
    assert (out / "clip3.mp4").read_bytes() == reference["clip3"]
    assert len(read_lines(manifest)) == 12 + 4


def test_local_stop_mid_input_keeps_the_manifest_whole_and_renames_nothing_partial(media, reference):
    out = media.root / "out_local_stop"
    manifest = media.root / "local_stop.jsonl"
    stopper = Stopper()
    seen = []

    def stop_once_clip2_is_being_written():  # as Ctrl-C would, in the middle of an input
        deadline = time.monotonic() + 30
        while not list(out.glob(".clip2.mp4.flowml-part-*/clip2.mp4")) and time.monotonic() < deadline:
            time.sleep(0.005)
        stopper.request()

    def on_result(result):
        seen.append(result)
        if len(seen) == 2:
            threading.Thread(target=stop_once_clip2_is_being_written, daemon=True).start()

    cfg = BatchConfig(str(media.graph), [str(p) for p in media.good], local=True,
                      sets=["src.path={input}", f"out.path={out}/{{stem}}.mp4",
                            "check.args={{delay: 0.02}}"], manifest=str(manifest))
    summary = run_batch(cfg, Console(quiet=True), stopper=stopper, on_result=on_result)
    assert summary.interrupted and summary.done == 2 and summary.not_finished == 7
    assert outputs_in(out) == ["clip0.mp4", "clip1.mp4"]  # clip2's part was removed, not renamed
    assert [r["status"] for r in read_lines(manifest)] == ["done", "done"]
    for stem in ("clip0", "clip1"):  # the delay does not change a pixel
        assert (out / f"{stem}.mp4").read_bytes() == reference[stem]


def test_a_folder_output_is_staged_and_merged_into_place_and_a_name_param_left_alone(media):
    graph = media.root / "frames.yaml"
    graph.write_text(textwrap.dedent(f"""\
        flowml: 1
        clock: src
        nodes:
          src: {{type: capture.video, params: {{path: {media.good[0]}}}}}
          frames: {{type: output.images, inputs: {{image: src/image}}, params: {{dir: f/example, every: 4}}}}
        """))
    out = media.root / "out_frames"
    summary = run_batch(BatchConfig(str(graph), [str(p) for p in media.good[:2]], local=True,
                                    sets=["src.path={input}", f"frames.dir={out}/{{stem}}",
                                          "frames.pattern={stem}_{{index:03d}}.png"],
                                    manifest=str(media.root / "frames.jsonl")), Console(quiet=True))
    assert summary.done == 2
    assert outputs_in(out) == ["clip0", "clip0/clip0_000.png", "clip0/clip0_004.png",
                               "clip1", "clip1/clip1_000.png", "clip1/clip1_004.png"]
    assert [r["outputs"] for r in read_lines(media.root / "frames.jsonl")] == [
        [str(out / "clip0")], [str(out / "clip1")]]
