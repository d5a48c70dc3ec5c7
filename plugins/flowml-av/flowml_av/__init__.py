"""flowml video file nodes through PyAV: ``capture.video`` decodes, ``output.video`` encodes H.264 MP4."""
