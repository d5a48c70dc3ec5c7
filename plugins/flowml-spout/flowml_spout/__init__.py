"""flowml Spout sender (Windows): ``output.spout``."""
