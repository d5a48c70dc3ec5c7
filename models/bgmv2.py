"""Moved to the flowml package: ``flowml.models.bgmv2`` (kept here for scripts that import it)."""

from flowml.models.bgmv2 import *  # noqa: F401,F403
from flowml.models.bgmv2 import random_bgmv2  # noqa: F401
