"""flowml NDI nodes through cyndilib: ``output.ndi`` sends, ``capture.ndi`` receives."""
