"""Inference: the engines and the Animator (turning images and frames into animated frames) and the one
file pipeline (:mod:`mraa.inference.pipeline`) that every front-end calls."""
