"""Training: reconstruction (``train``) and AVD (``train_avd``) loops, single process or under torchrun."""

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
