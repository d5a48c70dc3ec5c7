"""Moved to the flowml package: ``flowml.models.difference_matte`` (kept here for scripts that import it)."""

from flowml.models.difference_matte import DifferenceMatte  # noqa: F401
