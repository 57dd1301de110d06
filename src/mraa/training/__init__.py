"""Training: reconstruction (``train``) and AVD (``train_avd``) loops, single process or under torchrun.

The entry points that build their own networks and data from a config, as ``mraa train`` and
``mraa train-avd`` do, are ``mraa.training.recipes.train_reconstruction`` and ``recipes.train_avd``; the
``train`` and ``train_avd`` here take networks and a dataset built by the caller.
"""

from mraa.training.loop import RunOptions, Task, fit
from mraa.training.reconstruction_model import ReconstructionModel
from mraa.training.train import TrainResult, train
from mraa.training.train_avd import AVDTrainingModel, train_avd

__all__ = [
    "AVDTrainingModel",
    "ReconstructionModel",
    "RunOptions",
    "Task",
    "TrainResult",
    "fit",
    "train",
    "train_avd",
]
