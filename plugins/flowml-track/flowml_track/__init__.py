"""flowml-track: detect -> track -> square crops -> batch classify -> overlay, as graph nodes."""
