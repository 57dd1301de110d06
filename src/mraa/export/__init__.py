"""Model export: the ONNX graphs of the animation networks (:mod:`mraa.export.onnx`; run by
:class:`mraa.inference.engines.OnnxEngine`), the browser page (:mod:`mraa.export.web`), and the manifest that ties a
folder of graphs to the weights and frame size they were made from (:mod:`mraa.export.manifest`)."""
