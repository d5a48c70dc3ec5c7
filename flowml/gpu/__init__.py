"""GPU support: device choice (``device``), CUDA lanes and events (``lanes``), host <-> device
transfers (``transfer``) with pinned staging (``staging``), CUDA-graph capture (``capture``)."""
