"""Taps and weight edits for the generator: flowml-torch's, which work on any ``nn.Module``
(``flowml_torch.taps``, ``flowml_torch.edits``); kept here under their old names."""

from flowml_torch.edits import Edit, EditOp, WeightEdits
from flowml_torch.taps import Taps, TapsDone, closest, parse_tap

__all__ = ["closest", "parse_tap", "Taps", "TapsDone", "Edit", "WeightEdits", "EditOp"]
