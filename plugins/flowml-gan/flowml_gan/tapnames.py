"""Tap specs (torch-free, so that validating a graph imports no torch): flowml-torch's."""

from flowml_torch.specs import parse_tap

__all__ = ["parse_tap"]
