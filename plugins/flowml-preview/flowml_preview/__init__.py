"""flowml preview window: ``output.preview``."""
