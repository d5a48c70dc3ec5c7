"""flowml camera source through OpenCV: ``capture.camera``."""
