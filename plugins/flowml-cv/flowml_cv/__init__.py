"""flowml's computer-vision nodes: ``cv.homography`` (feature-based plate-to-frame homography,
host-side, made for ``hold: true``), ``cv.warp`` (perspective warp on the device) and
``capture.synthetic_scene`` (a real photograph seen by a shaking camera, with a moving subject)."""
