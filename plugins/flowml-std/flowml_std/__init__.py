"""flowml's standard node types (test patterns, still images, image ops, Python functions,
image files), registered through the ``flowml`` entry point like any third-party plugin."""
