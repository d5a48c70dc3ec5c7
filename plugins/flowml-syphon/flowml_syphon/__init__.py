"""flowml Syphon server (macOS): ``output.syphon``."""
