"""flowml virtual camera: ``output.virtualcam``."""
