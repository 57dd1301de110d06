"""Inference: compute engines (:mod:`.engines`), the :class:`~mraa.inference.animator.Animator` (modes, background,
smoothing), background motion (:mod:`.background`) and region motion (:mod:`.motion`)."""
