"""flowml's OSC node types (``output.osc``), registered through the ``flowml`` entry point
like any third-party plugin."""
