"""Model export: ONNX graphs and the onnxruntime backend (:mod:`mraa.export.onnx`), and the manifest that
ties a folder of graphs to the weights and frame size they were made from (:mod:`mraa.export.manifest`)."""
