"""GPU support: device choice now; stream pool, events, pinned staging and CUDA graphs next."""
