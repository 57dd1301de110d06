"""The MRAA networks (official class and attribute names, so official checkpoints load with strict=True)."""

from mraa.modules.avd_network import AVDNetwork
from mraa.modules.bg_motion_predictor import BGMotionPredictor
from mraa.modules.generator import Generator
from mraa.modules.pixelwise_flow_predictor import PixelwiseFlowPredictor
from mraa.modules.region_predictor import RegionPredictor

__all__ = ["AVDNetwork", "BGMotionPredictor", "Generator", "PixelwiseFlowPredictor", "RegionPredictor"]
