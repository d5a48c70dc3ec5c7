"""flowml-zenoh: tensors, images, detections and JSON between hosts over Zenoh."""
