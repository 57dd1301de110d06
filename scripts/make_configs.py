#!/usr/bin/env python
"""Write configs/*.yaml (our own files in the official schema) from the released models' hyperparameters.

Values are facts about the released MRAA models (key names and numbers); run this to regenerate the files.
"""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

FULL_MODEL = {
    "num_regions": 10,
    "num_channels": 3,
    "estimate_affine": True,
    "revert_axis_swap": True,
    "bg_predictor_params": {
        "block_expansion": 32,
        "max_features": 1024,
        "num_blocks": 5,
        "bg_type": "affine",
    },
    "region_predictor_params": {
        "temperature": 0.1,
        "block_expansion": 32,
        "max_features": 1024,
        "scale_factor": 0.25,
        "num_blocks": 5,
        "pca_based": True,
        "pad": 0,
        "fast_svd": False,
    },
    "generator_params": {
        "block_expansion": 64,
        "max_features": 512,
        "num_down_blocks": 2,
        "num_bottleneck_blocks": 6,
        "skips": True,
        "pixelwise_flow_predictor_params": {
            "block_expansion": 64,
            "max_features": 1024,
            "num_blocks": 5,
            "scale_factor": 0.25,
            "use_deformed_source": True,
            "use_covar_heatmap": True,
            "estimate_occlusion_map": True,
        },
    },
    "avd_network_params": {"id_bottle_size": 64, "pose_bottle_size": 64},
}

COMMON_AUG = {
    "flip_param": {"horizontal_flip": True, "time_flip": True},
    "jitter_param": {"brightness": 0.1, "contrast": 0.1, "saturation": 0.1, "hue": 0.1},
}


def full_config(
    root_dir,
    batch_size,
    num_repeats,
    avd_repeats,
    id_sampling=True,
    aug=None,
    model_updates=None,
    avd_milestones=(20, 25),
    framing="none",
    frame_shape=None,
):
    model = copy.deepcopy(FULL_MODEL)
    for path, value in (model_updates or {}).items():
        node = model
        *parents, last = path.split(".")
        for key in parents:
            node = node[key]
        if value is None:
            node.pop(last)
        else:
            node[last] = value
    return {
        "dataset_params": {
            "root_dir": root_dir,
            "frame_shape": frame_shape,  # null: the loader's 256x256 (the official value in every released file)
            "id_sampling": id_sampling,
            "pairs_list": None,
            "augmentation_params": aug or COMMON_AUG,
        },
        "model_params": model,
        "train_params": {
            "num_epochs": 100,
            "num_repeats": num_repeats,
            "epoch_milestones": [60, 90],
            "lr": 2.0e-4,
            "batch_size": batch_size,
            "use_sync_bn": False,
            "dataloader_workers": 6,
            "checkpoint_freq": 50,
            "scales": [1, 0.5, 0.25, 0.125],
            "transform_params": {"sigma_affine": 0.05, "sigma_tps": 0.005, "points_tps": 5},
            "loss_weights": {
                "perceptual": [10, 10, 10, 10, 10],
                "equivariance_shift": 10,
                "equivariance_affine": 10,
            },
        },
        "train_avd_params": {
            "num_epochs": 30,
            "num_repeats": avd_repeats,
            "batch_size": 256,
            "dataloader_workers": 12,
            "checkpoint_freq": 50,
            "epoch_milestones": list(avd_milestones),
            "lr": 1.0e-3,
            "random_scale": 0.25,
            "lambda_shift": 1,
            "lambda_affine": 1,
        },
        "reconstruction_params": {"num_videos": 1000, "format": ".mp4"},
        "animate_params": {"num_pairs": 50, "format": ".mp4", "mode": "avd", "framing": framing},
        "visualizer_params": {
            "kp_size": 5,
            "draw_border": True,
            "colormap": "gist_rainbow",
            "region_bg_color": [1, 1, 1],
        },
    }


CONFIGS = {
    # vox256 leaves region_predictor_params.pad out, so the constructor default (3) applies
    "vox256": full_config(
        "data/vox-png", 14, 75, 2000, model_updates={"region_predictor_params.pad": None}, framing="face"
    ),
    "taichi256": full_config("data/taichi-png", 14, 150, 150, framing="full_body"),
    "mgif256": full_config(
        "data/moving-gif",
        14,
        50,
        50,
        id_sampling=False,
        aug={
            "flip_param": {"horizontal_flip": True, "time_flip": True},
            "crop_param": {"size": [256, 256]},
            "resize_param": {"ratio": [0.9, 1.1]},
            "jitter_param": {"hue": 0.5},
        },
        model_updates={"bg_predictor_params.bg_type": "zero"},
        avd_milestones=(60, 90),
    ),
    # the TED models run at 384x384; the official files leave frame_shape null and pass the size to the demo
    "ted384": full_config("data/TED384-v2", 6, 150, 150, framing="upper_body", frame_shape=[384, 384, 3]),
    "ted-youtube384": full_config(
        "data/ted-youtube-384",
        20,
        150,
        500,
        model_updates={"num_regions": 20, "region_predictor_params.fast_svd": None},
        framing="upper_body",
        frame_shape=[384, 384, 3],
    ),
}
CONFIGS["mgif256"]["dataset_params"].pop("pairs_list")

HEADER = (
    "# mraa config ({name}): hyperparameters of the released MRAA model, in the official YAML schema.\n"
    "# Loads unchanged in the official code; train with `mraa train --config configs/{name}.yaml --data ROOT`.\n"
)


def main() -> None:
    out = ROOT / "configs"
    out.mkdir(exist_ok=True)
    for name, data in CONFIGS.items():
        text = yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=110)
        (out / f"{name}.yaml").write_text(HEADER.format(name=name) + text)
        print("wrote", out / f"{name}.yaml")


if __name__ == "__main__":
    main()
