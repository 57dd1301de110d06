"""Model export: ONNX graphs and the onnxruntime backend (:mod:`mraa.export.onnx`)."""
