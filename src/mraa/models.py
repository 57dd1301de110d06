"""build_models: the one place that maps ``model_params`` to network constructors."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from torch import nn

from mraa.config import ModelParams
from mraa.modules import AVDNetwork, BGMotionPredictor, Generator, RegionPredictor


@dataclass
class MRAAModels:
    """The four MRAA networks (checkpoint keys: ``generator``, ``region_predictor``, ``bg_predictor``,
    ``avd_network``)."""

    region_predictor: RegionPredictor
    bg_predictor: BGMotionPredictor
    generator: Generator
    avd_network: AVDNetwork

    def items(self) -> list[tuple[str, nn.Module]]:
        return [(f.name, getattr(self, f.name)) for f in dataclasses.fields(self)]

    def to(self, *args, **kwargs) -> MRAAModels:
        for _, module in self.items():
            module.to(*args, **kwargs)
        return self

    def eval(self) -> MRAAModels:
        for _, module in self.items():
            module.eval()
        return self

    def train(self, mode: bool = True) -> MRAAModels:
        for _, module in self.items():
            module.train(mode)
        return self


def build_models(model_params: ModelParams) -> MRAAModels:
    """Construct the networks exactly as the official ``run.py`` does from the same config."""
    mp = model_params
    rp = dataclasses.asdict(mp.region_predictor_params)
    bg = dataclasses.asdict(mp.bg_predictor_params)
    gen = dataclasses.asdict(mp.generator_params)
    return MRAAModels(
        region_predictor=RegionPredictor(
            num_regions=mp.num_regions, num_channels=mp.num_channels, estimate_affine=mp.estimate_affine, **rp
        ),
        bg_predictor=BGMotionPredictor(num_channels=mp.num_channels, **bg),
        generator=Generator(
            num_regions=mp.num_regions,
            num_channels=mp.num_channels,
            revert_axis_swap=mp.revert_axis_swap,
            **gen,
        ),
        avd_network=AVDNetwork(num_regions=mp.num_regions, **dataclasses.asdict(mp.avd_network_params)),
    )
