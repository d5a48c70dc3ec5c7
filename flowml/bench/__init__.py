"""``flowml bench``: flowml against hand-written PyTorch loops doing the same work, side by side."""
