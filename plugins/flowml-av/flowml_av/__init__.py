"""flowml video nodes through PyAV: ``capture.video``/``capture.stream``/``capture.sequence`` decode, ``output.video`` encodes."""
