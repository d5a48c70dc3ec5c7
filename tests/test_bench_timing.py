"""The bench times a run's frame rate after its one-time start, not across it."""

import pytest

from flowml.bench.scenarios import steady_fps


def test_a_slow_start_is_not_the_frame_rate():
    done = [0.5 + 0.01 * i for i in range(100)]  # 0.5 s of start (GC, capture), then 100 fps
    assert steady_fps([0.0] + done) == pytest.approx(100.0)
    assert (len(done) + 1) / done[-1] < 70  # what timing the whole run would have said


def test_too_few_frames_is_an_error():
    with pytest.raises(RuntimeError, match="too few frames"):
        steady_fps([0.0, 0.1, 0.2])


def test_a_variant_setting_is_restored_even_when_the_variant_fails():
    import types

    from flowml.bench.scenarios import _setting

    module = types.SimpleNamespace(GIL_SWITCH_S=0.0001)
    with pytest.raises(ZeroDivisionError):
        with _setting(module, "GIL_SWITCH_S", 0.005):
            assert module.GIL_SWITCH_S == 0.005
            1 / 0
    assert module.GIL_SWITCH_S == 0.0001
