"""flowml_analytics.models: each of torchvision's three video classifiers built and exported
by the command line, with a user's own weights file loaded instead of the random ones."""

from __future__ import annotations

import pytest
import torch

from flowml_analytics import models

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"), pytest.mark.filterwarnings("ignore::UserWarning")]


@pytest.mark.parametrize("name, wrapped", [("r3d_18", False), ("mc3_18", True), ("r2plus1d_18", False)])
def test_the_command_exports_each_model_with_the_users_weights(tmp_path, name, wrapped):
    """The weights file's classifier gives fixed logits (zero weights, a known bias), so the
    exported model's output says that these weights, not random ones, were loaded; a
    checkpoint ``{"state_dict": ...}`` loads as well."""
    own = models.build(name, classes=5)
    with torch.no_grad():
        own.fc.weight.zero_()
        own.fc.bias.copy_(torch.arange(5.0))
    weights = tmp_path / "mine.pth"
    state = own.state_dict()
    torch.save({"state_dict": state} if wrapped else state, weights)
    out = tmp_path / f"{name}.pt"
    models.main([name, str(out), "--frames", "4", "--size", "32", "--classes", "5", "--weights", str(weights)])
    net = torch.jit.load(str(out))
    with torch.inference_mode():
        logits = net(torch.rand(2, 3, 4, 32, 32, generator=torch.Generator().manual_seed(0)))
    assert logits.shape == (2, 5)
    torch.testing.assert_close(logits, torch.arange(5.0).expand(2, 5), atol=1e-6, rtol=0)


def test_an_unknown_model_and_mismatched_weights_say_so(tmp_path):
    with pytest.raises(SystemExit, match="unknown model 'r3d_50'; choose one of r3d_18, mc3_18, r2plus1d_18"):
        models.build("r3d_50")
    weights = tmp_path / "ten.pth"
    torch.save(models.build("r3d_18", classes=10).state_dict(), weights)
    with pytest.raises(RuntimeError, match="size mismatch for fc.weight"):
        models.build("r3d_18", classes=5, weights=weights)
