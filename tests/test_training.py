"""Training loops: losses, optimisation, checkpoints, exact resume, AVD training and the CLI commands."""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from mraa.checkpoint import has_trained_avd, read_checkpoint
from mraa.cli import main
from mraa.config import MRAAConfig, apply_overrides, load_config
from mraa.errors import MRAAError
from mraa.losses import Vgg19Features, separation_loss
from mraa.models import build_models
from mraa.training.checkpoints import find_latest_checkpoint
from mraa.training.reconstruction_model import ReconstructionModel, disable_perceptual, load_vgg
from mraa.training.schedule import PairsLRSchedule
from mraa.training.train import train
from mraa.training.train_avd import AVDTrainingModel, train_avd

TINY = Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml"
SIZE = 32  # the tiny networks work at 32x32 (scale 0.5, 3 hourglass blocks)


@pytest.fixture(autouse=True)
def _one_thread():
    """The tiny networks are faster on one thread (synchronising two costs more than it saves on 32x32
    tensors), and on shared CI cores a second thread makes these multi-step tests' timings erratic."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_config(*overrides: str) -> MRAAConfig:
    base = [f"dataset_params.frame_shape=[{SIZE},{SIZE},3]", "train_params.dataloader_workers=0"]
    return apply_overrides(load_config(TINY), base + list(overrides))


class PairsDataset(Dataset):
    """Fixed random (source, driving) pairs of a bright rectangle moving on a dark background."""

    def __init__(self, num_items: int = 4, size: int = SIZE, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        images = torch.rand(num_items, 2, 3, size, size, generator=g) * 0.3
        for i in range(num_items):
            for j in range(2):
                y, x = torch.randint(0, size // 2, (2,), generator=g).tolist()
                images[i, j, :, y : y + size // 3, x : x + size // 4] += (
                    torch.rand(3, 1, 1, generator=g) * 0.7
                )
        self.images = images.clamp(0, 1)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict:
        return {"source": self.images[index, 0], "driving": self.images[index, 1], "name": f"v{index}"}


def make_models(cfg: MRAAConfig, seed: int = 0):
    torch.manual_seed(seed)
    return build_models(cfg.model_params)


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def state_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ------------------------------------------------------------------------------------------ losses
class TestSeparationLoss:
    def test_values(self):
        together = torch.zeros(3, 4, 2)
        assert separation_loss(together, 0.1).item() == pytest.approx(1.0)
        apart = torch.tensor([[[-0.8, -0.8], [0.8, -0.8], [-0.8, 0.8], [0.8, 0.8]]])
        assert separation_loss(apart, 0.1).item() < 1e-12
        pair = torch.tensor([[[0.0, 0.0], [0.3, 0.0]]])
        assert separation_loss(pair, 0.2).item() == pytest.approx(math.exp(-0.09 / 0.08))
        single = torch.zeros(2, 1, 2, requires_grad=True)
        loss = separation_loss(single, 0.1)
        loss.backward()
        assert loss.item() == 0 and single.grad is not None

    def test_gradient_pushes_regions_apart(self):
        g = torch.Generator().manual_seed(0)
        shift = (torch.rand(2, 5, 2, generator=g, dtype=torch.float64) - 0.5) * 0.1
        assert torch.autograd.gradcheck(lambda x: separation_loss(x, 0.1), (shift.requires_grad_(),))
        x = shift.detach().clone().requires_grad_()
        spread_before = torch.pdist(x[0].detach()).min()
        for _ in range(20):
            loss = separation_loss(x, 0.1)
            (grad,) = torch.autograd.grad(loss, x)
            x = (x - 0.01 * grad / grad.abs().max()).detach().requires_grad_()
        assert separation_loss(x, 0.1) < loss and torch.pdist(x[0].detach()).min() > spread_before


class TestReconstructionModel:
    def test_two_steps_finite_losses_and_parameters_change(self):
        cfg = tiny_config()
        models = make_models(cfg)
        model = ReconstructionModel(
            models.region_predictor,
            models.bg_predictor,
            models.generator,
            cfg.train_params,
            rng=torch.Generator().manual_seed(0),
        )
        before = {name: p.detach().clone() for name, p in model.named_parameters()}
        optimizer = torch.optim.Adam(model.trainable_parameters(), lr=1e-3)
        batch = {"source": PairsDataset().images[:2, 0], "driving": PairsDataset().images[:2, 1]}
        for _ in range(2):
            losses, generated = model(batch)
            assert set(losses) == {"l1", "equivariance_shift", "equivariance_affine"}
            assert all(torch.isfinite(v) and v.dim() == 0 for v in losses.values())
            optimizer.zero_grad()
            sum(losses.values()).backward()
            optimizer.step()
        assert generated["prediction"].shape == (2, 3, SIZE, SIZE)
        assert {"deformed", "occlusion_map", "transformed_frame", "driving_region_params"} <= set(generated)
        for prefix in ("region_predictor.", "bg_predictor.", "generator."):
            changed = [
                n
                for n, p in model.named_parameters()
                if n.startswith(prefix) and not torch.equal(p, before[n])
            ]
            assert changed, f"no {prefix} parameter changed"
        assert len(model.trainable_parameters()) == len(before)

    def test_perceptual_loss_with_a_vgg(self):
        cfg = tiny_config(
            "train_params.loss_weights.perceptual=[1,1,0,0,0]", "train_params.loss_weights.l1=0"
        )
        models = make_models(cfg)
        with pytest.raises(MRAAError, match="VGG19 weights"):
            ReconstructionModel(
                models.region_predictor, models.bg_predictor, models.generator, cfg.train_params
            )
        torch.manual_seed(0)
        vgg = Vgg19Features()  # random weights: accepted explicitly (with a warning), as in benchmarks
        model = ReconstructionModel(
            models.region_predictor, models.bg_predictor, models.generator, cfg.train_params, vgg=vgg
        )
        model.train()
        assert not model.vgg.training and not any(p.requires_grad for p in model.vgg.parameters())
        batch = {"source": PairsDataset().images[:2, 0], "driving": PairsDataset().images[:2, 1]}
        losses, _ = model(batch)
        assert set(losses) == {"perceptual", "equivariance_shift", "equivariance_affine"}
        losses["perceptual"].backward()
        assert models.generator.final.weight.grad.abs().sum() > 0

    def test_separation_loss_term(self):
        cfg = tiny_config(
            "train_params.loss_weights.separation=2", "train_params.loss_weights.separation_sigma=0.2"
        )
        models = make_models(cfg)
        model = ReconstructionModel(
            models.region_predictor, models.bg_predictor, models.generator, cfg.train_params
        )
        batch = {"source": PairsDataset().images[:2, 0], "driving": PairsDataset().images[:2, 1]}
        losses, generated = model(batch)
        assert set(losses) == {"l1", "equivariance_shift", "equivariance_affine", "separation"}
        shifts = torch.cat(
            [generated["source_region_params"]["shift"], generated["driving_region_params"]["shift"]]
        )
        assert torch.allclose(losses["separation"], 2 * separation_loss(shifts, 0.2))
        losses["separation"].backward()
        assert models.region_predictor.regions.weight.grad.abs().sum() > 0
        with pytest.raises(MRAAError, match="separation"):
            tiny_config("train_params.loss_weights.separation=-1")
        with pytest.raises(MRAAError, match="separation_sigma"):
            tiny_config("train_params.loss_weights.separation_sigma=0")

    def test_refuses_perceptual_without_vgg_weights(self):
        cfg = load_config(TINY)
        cfg = apply_overrides(cfg, ["train_params.loss_weights.perceptual=[10,10,10,10,10]"])
        with pytest.raises(MRAAError, match="VGG19 weights"):
            load_vgg(cfg.train_params, None)
        assert load_vgg(tiny_config().train_params, None) is None  # all-zero perceptual weights

    def test_disable_perceptual(self):
        cfg = apply_overrides(load_config(TINY), ["train_params.loss_weights.l1=0"])
        cfg = apply_overrides(cfg, ["train_params.loss_weights.perceptual=[10,10,10,10,10]"])
        off = disable_perceptual(cfg)
        assert off.train_params.loss_weights.perceptual == (0, 0, 0, 0, 0)
        assert off.train_params.loss_weights.l1 == 10
        kept = disable_perceptual(apply_overrides(cfg, ["train_params.loss_weights.l1=3"]))
        assert kept.train_params.loss_weights.l1 == 3


# ------------------------------------------------------------------------------------------ schedule
class TestPairsLRSchedule:
    def test_matches_multistep_at_epoch_boundaries(self):
        pairs_per_epoch, milestones = 48, [3, 5]
        params = [torch.nn.Parameter(torch.zeros(1))]
        ours = torch.optim.Adam(params, lr=2e-4)
        schedule = PairsLRSchedule(ours, 2e-4, [m * pairs_per_epoch for m in milestones])
        reference = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=2e-4)
        multistep = torch.optim.lr_scheduler.MultiStepLR(reference, milestones, gamma=0.1)
        for epoch in range(7):
            schedule.update(epoch * pairs_per_epoch)
            assert math.isclose(schedule.get_last_lr()[0], multistep.get_last_lr()[0], rel_tol=1e-12), epoch
            reference.step()
            multistep.step()

    def test_drops_at_the_pair_and_restores(self):
        optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        schedule = PairsLRSchedule(optimizer, 1.0, [100, 150])
        schedule.update(99)
        assert optimizer.param_groups[0]["lr"] == 1.0
        schedule.update(100)
        assert math.isclose(optimizer.param_groups[0]["lr"], 0.1)
        schedule.update(160)
        state = schedule.state_dict()
        fresh_optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        fresh = PairsLRSchedule(fresh_optimizer, 1.0, [100, 150])
        fresh.load_state_dict(state)
        assert fresh.pairs_seen == 160 and math.isclose(fresh_optimizer.param_groups[0]["lr"], 0.01)


# ------------------------------------------------------------------------------------------ train()
def test_train_writes_checkpoints_metrics_and_pictures(tmp_path):
    cfg = tiny_config()  # 2 epochs, lr milestone at epoch 1, checkpoint every epoch
    models = make_models(cfg)
    result = train(cfg, models, PairsDataset(), tmp_path, device="cpu", seed=3, progress=False)
    assert (result.epochs, result.steps, result.pairs_seen, result.seed) == (2, 4, 8, 3)
    assert result.checkpoint == tmp_path / "00000001-cpk-reconstruction.pth"
    # checkpoint_freq 1 < checkpoint_keep_every 10: epoch 0's checkpoint went once epoch 1's was saved
    assert sorted(p.name for p in tmp_path.glob("*.pth")) == ["00000001-cpk-reconstruction.pth"]
    assert find_latest_checkpoint(tmp_path, "reconstruction") == result.checkpoint
    data = read_checkpoint(result.checkpoint)  # weights_only load
    assert {"generator", "region_predictor", "bg_predictor", "optimizer_reconstruction", "config"} <= set(
        data
    )
    assert data["epoch_reconstruction"] == 1 and "avd_network" not in data and not has_trained_avd(data)
    assert data["mraa_train_state"]["next_epoch"] == 2 and data["mraa_train_state"]["pairs_seen"] == 8
    assert state_equal(data["generator"], models.generator.state_dict())
    assert load_config(tmp_path / "config.yaml") == cfg

    lines = records(tmp_path / "metrics.jsonl")
    steps = [r for r in lines if r["kind"] == "step"]
    assert [r["pairs_seen"] for r in steps] == [2, 4, 6, 8]
    assert [r["lr"] for r in steps] == pytest.approx([2e-4, 2e-4, 2e-5, 2e-5])  # milestone: epoch 1
    assert all(math.isfinite(r[k]) for r in steps for k in ("loss", "l1", "equivariance_shift"))
    assert [r["epoch"] for r in lines if r["kind"] == "epoch"] == [0, 1]
    assert sorted(p.name for p in (tmp_path / "train-vis").iterdir()) == [
        "00000000-rec.png",
        "00000001-rec.png",
    ]


class _Interrupt(Exception):
    pass


def test_resume_after_interruption_matches_uninterrupted_run(tmp_path, monkeypatch):
    cfg = tiny_config("train_params.num_epochs=3")  # 3 epochs of 2 steps, lr drop at epoch 1
    quiet = {"device": "cpu", "progress": False, "visualize": False, "tensorboard": False}
    straight = make_models(cfg)
    train(cfg, straight, PairsDataset(), tmp_path / "a", seed=5, **quiet)

    # the same run, killed in the middle of epoch 1 (after the epoch-0 checkpoint), then resumed
    killed = make_models(cfg)
    calls = {"n": 0}
    original = ReconstructionModel.forward

    def forward_then_die(self, x):
        calls["n"] += 1
        if calls["n"] == 6:  # die in the 2nd step of epoch 2 (the last checkpoint is after the lr drop)
            raise _Interrupt
        return original(self, x)

    monkeypatch.setattr(ReconstructionModel, "forward", forward_then_die)
    with pytest.raises(_Interrupt):
        train(cfg, killed, PairsDataset(), tmp_path / "b", seed=5, **quiet)
    monkeypatch.setattr(ReconstructionModel, "forward", original)
    assert find_latest_checkpoint(tmp_path / "b", "reconstruction").name == "00000001-cpk-reconstruction.pth"

    resumed = make_models(cfg, seed=123)  # different initial weights: everything must come from the file
    result = train(cfg, resumed, PairsDataset(), tmp_path / "b", resume=True, **quiet)
    assert result.seed == 5 and result.epochs == 3
    # the checkpoint it resumed from (epoch 1, not a 10th epoch) went once epoch 2's was saved, as in run a
    assert [p.name for p in (tmp_path / "b").glob("*.pth")] == ["00000002-cpk-reconstruction.pth"]
    a = read_checkpoint(tmp_path / "a" / "00000002-cpk-reconstruction.pth")
    b = read_checkpoint(tmp_path / "b" / "00000002-cpk-reconstruction.pth")
    for name in ("generator", "region_predictor", "bg_predictor"):
        assert state_equal(a[name], b[name]), name
    for sa, sb in zip(
        a["optimizer_reconstruction"]["state"].values(), b["optimizer_reconstruction"]["state"].values()
    ):
        assert torch.equal(sa["exp_avg"], sb["exp_avg"]) and torch.equal(sa["exp_avg_sq"], sb["exp_avg_sq"])
    assert a["mraa_train_state"] == b["mraa_train_state"]
    # the interrupted epoch's partial records were dropped: both logs are identical
    assert records(tmp_path / "a" / "metrics.jsonl") == records(tmp_path / "b" / "metrics.jsonl")
    lrs = [r["lr"] for r in records(tmp_path / "b" / "metrics.jsonl") if r["kind"] == "step"]
    assert lrs == pytest.approx([2e-4] * 2 + [2e-5] * 4)  # the decayed rate survives the resume

    # nothing left to do
    again = train(cfg, resumed, PairsDataset(), tmp_path / "b", resume=True, **quiet)
    assert again.checkpoint is None and again.epochs == 3


@pytest.mark.parametrize(
    "freq, keep_every, kept",
    [(1, 2, [1, 3, 4]), (1, 1, [0, 1, 2, 3, 4]), (2, 2, [1, 3, 4])],
)
def test_checkpoint_keep_every_keeps_the_newest_and_every_nth(tmp_path, freq, keep_every, kept):
    cfg = tiny_config(
        "train_params.num_epochs=5",
        "train_params.num_repeats=1",
        f"train_params.checkpoint_freq={freq}",
        f"train_params.checkpoint_keep_every={keep_every}",
    )
    quiet = {"device": "cpu", "progress": False, "visualize": False, "tensorboard": False}
    (tmp_path / "00000000-cpk-other.pth").write_bytes(b"not ours")  # another run's file stays
    train(cfg, make_models(cfg), PairsDataset(2), tmp_path, seed=0, **quiet)
    names = sorted(p.name for p in tmp_path.glob("*-cpk-reconstruction.pth"))
    assert names == [f"{epoch:08d}-cpk-reconstruction.pth" for epoch in kept]
    assert (tmp_path / "00000000-cpk-other.pth").read_bytes() == b"not ours"


def test_checkpoint_without_resume_is_a_warm_start(tmp_path):
    cfg = tiny_config("train_params.num_epochs=1")
    quiet = {"device": "cpu", "progress": False, "visualize": False, "tensorboard": False}
    models = make_models(cfg)
    first = train(cfg, models, PairsDataset(), tmp_path / "a", seed=0, **quiet)
    # lr 0: the parameters stay those loaded from the checkpoint; the run starts again at epoch 0
    frozen_cfg = apply_overrides(cfg, ["train_params.lr=0"])
    warm = make_models(cfg, seed=9)
    result = train(frozen_cfg, warm, PairsDataset(), tmp_path / "b", checkpoint=first.checkpoint, **quiet)
    assert result.epochs == 1 and result.pairs_seen == 4
    for name, parameter in warm.generator.named_parameters():
        assert torch.equal(parameter, dict(models.generator.named_parameters())[name]), name
    with pytest.raises(MRAAError, match="checkpoint not found"):
        train(cfg, warm, PairsDataset(), tmp_path / "c", checkpoint=tmp_path / "x.pth", **quiet)


# ------------------------------------------------------------------------------------------ AVD
def test_avd_training_loss_falls_and_checkpoint_is_complete(tmp_path):
    cfg = tiny_config(
        "train_avd_params.num_epochs=12",
        "train_avd_params.batch_size=8",
        "train_avd_params.epoch_milestones=[10]",
        "train_avd_params.checkpoint_freq=100",
    )
    models = make_models(cfg)
    recon = tmp_path / "rec.pth"
    from mraa.checkpoint import save_checkpoint

    save_checkpoint(recon, models, cfg, include=("generator", "region_predictor", "bg_predictor"))
    frozen = {k: v.clone() for k, v in models.region_predictor.state_dict().items()}
    quiet = {"progress": False, "visualize": False, "tensorboard": False}
    result = train_avd(cfg, models, PairsDataset(8), tmp_path, checkpoint=recon, seed=0, **quiet)
    epochs = [r["loss"] for r in records(tmp_path / "metrics-avd.jsonl") if r["kind"] == "epoch"]
    assert len(epochs) == 12 and all(math.isfinite(v) for v in epochs)
    assert epochs[-1] < 0.6 * epochs[0], epochs
    assert state_equal(frozen, models.region_predictor.state_dict())  # frozen, BN statistics included
    assert all(p.requires_grad for p in models.region_predictor.parameters())  # restored afterwards
    data = read_checkpoint(result.checkpoint)
    assert result.checkpoint.name == "00000011-cpk-avd.pth"
    assert {"generator", "region_predictor", "bg_predictor", "avd_network", "optimizer_avd"} <= set(data)
    assert data["epoch_avd"] == 11 and has_trained_avd(data)
    assert (tmp_path / "config-avd.yaml").is_file()

    more = apply_overrides(cfg, ["train_avd_params.num_epochs=13"])
    resumed = train_avd(
        more, make_models(cfg, seed=1), PairsDataset(8), tmp_path, resume=True, progress=False
    )
    assert resumed.epochs == 13 and resumed.steps == 13 and resumed.checkpoint.name == "00000012-cpk-avd.pth"


def test_avd_model_keeps_region_predictor_in_eval_mode():
    cfg = tiny_config()
    models = make_models(cfg)
    model = AVDTrainingModel(models.region_predictor, models.avd_network, cfg.train_avd_params)
    model.train()
    assert not models.region_predictor.training and models.avd_network.training
    batch = {"source": PairsDataset(4).images[:, 0], "driving": PairsDataset(4).images[:, 1]}
    losses, regions = model(batch)
    assert set(losses) == {"shift", "affine"} and regions["prediction"]["shift"].shape == (4, 2, 2)


# ------------------------------------------------------------------------------------------ CLI
def _write_videos(root: Path, count: int = 4, frames: int = 5) -> None:
    from mraa.data.video_io import write_frame_folder

    (root / "train").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for v in range(count):
        color = rng.integers(80, 255, 3)
        clip = []
        for t in range(frames):
            frame = np.full((SIZE, SIZE, 3), 20, np.uint8)
            x = 4 + 3 * t + v
            frame[8:20, x : x + 8] = color
            clip.append(frame)
        write_frame_folder(root / "train" / f"video{v}", clip)


def test_cli_train_resume_and_train_avd(tmp_path, capsys):
    data = tmp_path / "data"
    _write_videos(data)
    log_dir = tmp_path / "run"
    common = ["--data", str(data), "--device", "cpu", "--no-progress", "--seed", "0"]
    sizes = [f"dataset_params.frame_shape=[{SIZE},{SIZE},3]"]
    args = ["train", "--config", str(TINY), "--log-dir", str(log_dir), *common, "--set", *sizes]
    assert main([*args, "--set", "train_params.num_epochs=1"]) == 0
    assert (log_dir / "00000000-cpk-reconstruction.pth").is_file()
    # resume without --config: the run's config.yaml is used
    resume = ["train", "--log-dir", str(log_dir), "--resume", "--data", str(data), "--no-progress"]
    assert main([*resume, "--set", "train_params.num_epochs=2"]) == 0
    assert "trained 2 epochs" in capsys.readouterr().out
    checkpoint = log_dir / "00000001-cpk-reconstruction.pth"
    resumed = read_checkpoint(checkpoint)
    assert resumed["mraa_train_state"]["pairs_seen"] == 8
    # FramesDataset (augmented, frames drawn at random) resumes exactly too
    straight = [
        "train",
        "--config",
        str(TINY),
        "--log-dir",
        str(tmp_path / "straight"),
        *common,
        "--set",
        *sizes,
    ]
    assert main([*straight, "--set", "train_params.num_epochs=2", "--no-tensorboard"]) == 0
    reference = read_checkpoint(tmp_path / "straight" / "00000001-cpk-reconstruction.pth")
    assert state_equal(reference["generator"], resumed["generator"])

    avd = ["train-avd", "--checkpoint", str(checkpoint), *common, "--set", "train_avd_params.num_epochs=1"]
    assert main(avd) == 0  # config from the checkpoint, log dir = the checkpoint's folder
    assert has_trained_avd(read_checkpoint(log_dir / "00000000-cpk-avd.pth"))
    # the resume command Ctrl-C prints for AVD training: config and data come from config-avd.yaml
    more = ["--no-progress", "--set", "train_avd_params.num_epochs=2"]
    assert main(["train-avd", "--log-dir", str(log_dir), "--resume", *more]) == 0
    assert read_checkpoint(log_dir / "00000001-cpk-avd.pth")["epoch_avd"] == 1
    assert (log_dir / "train-vis" / "00000000-avd.png").is_file() and (
        log_dir / "metrics-avd.jsonl"
    ).is_file()


def test_cli_ctrl_c_names_the_checkpoint_and_the_readme_resume_works(tmp_path, capsys, monkeypatch):
    """A run started with --data and --set, interrupted by Ctrl-C in epoch 1, resumes with the README's
    `mraa train --log-dir runs/X --resume` (the command the interruption prints), from another folder's
    relative paths as a user types them; bar, log, metrics and checkpoint names share one epoch index."""
    import shlex

    monkeypatch.chdir(tmp_path)
    _write_videos(tmp_path / "clips")
    args = ["train", "--config", str(TINY), "--data", "clips", "--log-dir", "runs/x", "--device", "cpu",
            "--seed", "0", "--no-tensorboard", "--set", f"dataset_params.frame_shape=[{SIZE},{SIZE},3]",
            "--set", "train_params.num_epochs=3", "--set", "train_params.checkpoint_keep_every=2"]  # fmt: skip
    calls = {"n": 0}
    original = ReconstructionModel.forward

    def forward_then_ctrl_c(self, x):
        calls["n"] += 1
        if calls["n"] == 6:  # the 2nd step of epoch 2, after the checkpoints of epochs 0 and 1
            raise KeyboardInterrupt
        return original(self, x)

    monkeypatch.setattr(ReconstructionModel, "forward", forward_then_ctrl_c)
    assert main(args) == 130
    err = capsys.readouterr().err
    checkpoint = Path("runs/x/00000001-cpk-reconstruction.pth")
    resume = "mraa train --log-dir runs/x --resume"
    assert f"interrupted: last checkpoint {checkpoint} (epoch 1); resume with: {resume}" in err
    assert "rec epoch 1 (2/3)" in err and "rec epoch 2 (3/3)" in err  # the progress bar
    assert "INFO: epoch 1 (8 pairs)" in err  # the log line ending epoch 1
    assert [r["epoch"] for r in records(Path("runs/x/metrics.jsonl")) if r["kind"] == "epoch"] == [0, 1]
    assert read_checkpoint(checkpoint)["epoch_reconstruction"] == 1
    assert load_config(Path("runs/x/config.yaml")).dataset_params.root_dir == "clips"

    monkeypatch.setattr(ReconstructionModel, "forward", original)
    monkeypatch.chdir(tmp_path / "clips")  # from another folder the relative data path is not found: say so
    assert main(["train", "--log-dir", "../runs/x", "--resume"]) == 2
    assert "dataset not found: clips (the config's dataset_params.root_dir" in capsys.readouterr().err
    monkeypatch.chdir(tmp_path)
    assert main([*shlex.split(resume)[1:], "--no-progress"]) == 0  # config, data, --set: from the run
    assert "trained 3 epochs (12 pairs, seed 0)" in capsys.readouterr().out
    # epoch 0 went when epoch 1 was saved; 1 is every 2nd epoch; 2 is the newest
    assert sorted(p.name[:8] for p in Path("runs/x").glob("*.pth")) == ["00000001", "00000002"]


def test_recipes_build_their_own_models_and_data(tmp_path):
    """``train_reconstruction`` / ``train_avd`` (what the CLI calls) take a config and folders, nothing built."""
    from mraa.training.loop import RunOptions
    from mraa.training.recipes import DatasetNotFound, train_reconstruction
    from mraa.training.recipes import train_avd as avd_recipe

    data, log_dir = tmp_path / "data", tmp_path / "run"
    _write_videos(data, count=2)
    cfg = tiny_config("train_params.num_epochs=1", "train_params.num_repeats=1", "train_avd_params.num_epochs=1",
                      "train_avd_params.batch_size=2")  # fmt: skip
    quiet = {"device": "cpu", "progress": False, "visualize": False, "tensorboard": False, "seed": 0}
    with pytest.raises(DatasetNotFound, match="dataset_params.root_dir"):  # the config's root: not there
        train_reconstruction(apply_overrides(cfg, ["dataset_params.root_dir=missing"]), log_dir)
    assert not log_dir.exists()
    result = train_reconstruction(
        cfg, log_dir, data=data, keep_all_checkpoints=True, options=RunOptions(**quiet)
    )
    assert result.checkpoint == log_dir / "00000000-cpk-reconstruction.pth" and result.epochs == 1
    saved = load_config(log_dir / "config.yaml")
    assert saved.dataset_params.root_dir == str(data) and saved.train_params.checkpoint_keep_every == 1
    avd = avd_recipe(cfg, log_dir, data=data, options=RunOptions(checkpoint=result.checkpoint, **quiet))
    assert has_trained_avd(read_checkpoint(avd.checkpoint))


def test_cli_ctrl_c_before_any_checkpoint(tmp_path, capsys, monkeypatch):
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    import importlib

    monkeypatch.setattr(importlib.import_module("mraa.training.recipes"), "build_training_dataset", interrupt)
    args = ["train", "--config", str(TINY), "--data", str(tmp_path), "--log-dir", str(tmp_path / "run")]
    assert main(args) == 130
    assert "interrupted before the first checkpoint was saved: nothing to resume" in capsys.readouterr().err


def test_cli_refuses_perceptual_without_vgg(tmp_path, capsys):
    args = ["train", "--config", str(TINY), "--data", str(tmp_path), "--log-dir", str(tmp_path / "run")]
    assert main([*args, "--set", "train_params.loss_weights.perceptual=[10,10,10,10,10]"]) == 2
    assert "--vgg-weights" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
    assert main(["train", "--log-dir", str(tmp_path / "run")]) == 2  # no config
    assert main(["train-avd", "--config", str(TINY), "--log-dir", str(tmp_path)]) == 2  # no checkpoint


@pytest.mark.parametrize("command", ["train", "train-avd"])
def test_cli_help(command):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_bf16_autocast_on_cuda(tmp_path):
    cfg = tiny_config("train_params.num_epochs=1")
    result = train(cfg, make_models(cfg), PairsDataset(), tmp_path, device="cuda", amp="bf16", progress=False)
    assert all(math.isfinite(v) for v in result.last_losses.values())


# ------------------------------------------------------------------------------------------ run folder safety
def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """(size, mtime_ns) of every file below ``folder``."""
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _one_line_error(capsys) -> str:
    """The error message of a failed command: one line, the last, with no traceback (INFO logs may precede)."""
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert "Traceback" not in err and [line for line in lines if line.startswith("error:")] == lines[-1:], err
    return lines[-1]


def test_cli_train_refuses_a_folder_holding_a_run_unless_overwrite(tmp_path, capsys):
    data, log_dir = tmp_path / "data", tmp_path / "run"
    _write_videos(data)
    args = ["train", "--config", str(TINY), "--log-dir", str(log_dir), "--data", str(data), "--device", "cpu"]
    args += ["--no-progress", "--no-tensorboard", "--set", f"dataset_params.frame_shape=[{SIZE},{SIZE},3]"]
    args += ["--set", "train_params.num_epochs=1"]
    log_dir.mkdir()
    for name in ("00000000-cpk-reconstruction.pth", "config.yaml", "metrics.jsonl"):
        (log_dir / name).write_text("from a previous run")
    (log_dir / "00000007-cpk-reconstruction.pth").write_bytes(b"from an older, longer run")
    (log_dir / "00000003-cpk-avd.pth").write_bytes(b"an AVD network trained on that run")
    (log_dir / "notes.txt").write_text("not part of any run")
    capsys.readouterr()
    before = _snapshot(log_dir)

    assert main([*args, "--seed", "1"]) == 2  # neither --resume nor --overwrite
    err = _one_line_error(capsys)
    assert "already holds a previous run" in err and "--resume" in err and "--overwrite" in err
    assert _snapshot(log_dir) == before  # nothing written, nothing deleted
    assert main([*args, "--seed", "1", "--resume", "--overwrite"]) == 2

    assert main([*args, "--seed", "1", "--overwrite"]) == 0
    names = {p.name for p in log_dir.iterdir()}
    assert "00000007-cpk-reconstruction.pth" not in names and "00000003-cpk-avd.pth" not in names
    assert {"00000000-cpk-reconstruction.pth", "config.yaml", "metrics.jsonl", "notes.txt"} <= names
    assert read_checkpoint(log_dir / "00000000-cpk-reconstruction.pth")["mraa_train_state"]["seed"] == 1
    assert [r["epoch"] for r in records(log_dir / "metrics.jsonl") if r["kind"] == "epoch"] == [0]


def test_avd_training_refuses_a_folder_holding_an_avd_run(tmp_path):
    cfg = tiny_config("train_avd_params.num_epochs=1", "train_avd_params.batch_size=4")
    models = make_models(cfg)
    from mraa.checkpoint import save_checkpoint

    recon = save_checkpoint(tmp_path / "00000000-cpk-reconstruction.pth", models, cfg, include=RECON)
    quiet = {"progress": False, "visualize": False, "tensorboard": False, "checkpoint": recon}
    train_avd(cfg, models, PairsDataset(), tmp_path, seed=0, **quiet)  # next to a reconstruction run: fine
    before = _snapshot(tmp_path)
    with pytest.raises(MRAAError, match="already holds a previous run"):
        train_avd(cfg, models, PairsDataset(), tmp_path, seed=0, **quiet)
    assert _snapshot(tmp_path) == before
    again = train_avd(cfg, models, PairsDataset(), tmp_path, seed=0, overwrite=True, **quiet)
    assert again.checkpoint.name == "00000000-cpk-avd.pth" and recon.is_file()  # the reconstruction stays
    with pytest.raises(MRAAError, match="belongs to the run"):  # --overwrite would delete the start
        train(cfg, models, PairsDataset(), tmp_path, overwrite=True, **quiet)


RECON = ("generator", "region_predictor", "bg_predictor")


@pytest.mark.parametrize(
    "override",
    [
        "train_params.batch_size=0",
        "train_params.lr=-1",
        "train_params.num_epochs=-1",
        "train_params.num_epochs=0",
        "train_params.num_repeats=0",
        "train_params.num_repeats=-2",
        "train_params.checkpoint_freq=0",
        "train_params.dataloader_workers=-1",
        "train_params.epoch_milestones=[-1]",
        "train_params.betas=[0.5,1.5]",
        "train_params.lr=.nan",
    ],
)
def test_cli_train_checks_values_before_writing(tmp_path, capsys, override):
    log_dir = tmp_path / "run"
    args = [
        "train",
        "--config",
        str(TINY),
        "--log-dir",
        str(log_dir),
        "--data",
        str(tmp_path),
        "--set",
        override,
    ]
    assert main(args) == 2
    assert override.split("=")[0] in _one_line_error(capsys)
    assert not log_dir.exists()


@pytest.mark.parametrize(
    "override",
    ["train_avd_params.batch_size=0", "train_avd_params.num_repeats=-1", "train_avd_params.lr=-1"],
)
def test_cli_train_avd_checks_values_before_writing(tmp_path, capsys, override):
    log_dir = tmp_path / "run"
    args = ["train-avd", "--config", str(TINY), "--checkpoint", str(tmp_path / "rec.pth"), "--log-dir"]
    assert main([*args, str(log_dir), "--data", str(tmp_path), "--set", override]) == 2
    assert override.split("=")[0] in _one_line_error(capsys)
    assert not log_dir.exists()


def test_cli_refuses_negative_workers(tmp_path, capsys):
    data = tmp_path / "data"
    _write_videos(data, count=2)
    args = ["train", "--config", str(TINY), "--log-dir", str(tmp_path / "run"), "--data", str(data)]
    assert main([*args, "--workers", "-1", "--set", f"dataset_params.frame_shape=[{SIZE},{SIZE},3]"]) == 2
    assert "workers" in _one_line_error(capsys)
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------------------------ stale temporaries
def _kill_during_write(target: Path) -> Path:
    """A process killed (SIGKILL) in the middle of an atomic write of ``target``; the temp file it left."""
    import subprocess
    import sys

    code = (
        "import os, signal, sys\n"
        "from mraa.atomic import atomic_path\n"
        "with atomic_path(sys.argv[1]) as tmp:\n"
        "    tmp.write_bytes(b'half a checkpoint')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    before = set(target.parent.iterdir())
    process = subprocess.run([sys.executable, "-c", code, str(target)], capture_output=True)
    assert process.returncode != 0
    (left,) = set(target.parent.iterdir()) - before
    old = left.stat().st_mtime - 3600
    os.utime(left, (old, old))  # the killed run started before this one (newer temps are left alone)
    return left


def test_stale_checkpoint_temp_files_are_removed_at_the_next_start(tmp_path):
    cfg = tiny_config("train_params.num_epochs=1")
    quiet = {"device": "cpu", "progress": False, "visualize": False, "tensorboard": False}
    models = make_models(cfg)
    train(cfg, models, PairsDataset(), tmp_path, seed=0, **quiet)
    left = _kill_during_write(tmp_path / "00000001-cpk-reconstruction.pth")
    assert left.name.startswith(".mraa-tmp-00000001-cpk-reconstruction-") and left.name.endswith(".pth")
    (tmp_path / "train-vis").mkdir(exist_ok=True)
    picture = _kill_during_write(tmp_path / "train-vis" / "00000001-rec.png")
    (tmp_path / ".keep").write_text("a hidden file of the user's")
    longer = apply_overrides(cfg, ["train_params.num_epochs=2"])
    result = train(longer, models, PairsDataset(), tmp_path, resume=True, **quiet)
    assert result.epochs == 2
    assert not left.exists() and not picture.exists() and (tmp_path / ".keep").is_file()


def test_remove_stale_temps_matches_only_atomic_temporaries(tmp_path):
    from mraa.atomic import atomic_path, remove_stale_temps

    with pytest.raises(RuntimeError), atomic_path(tmp_path / "kept.txt") as tmp:
        raise RuntimeError  # an ordinary failure cleans up after itself
    assert not tmp.exists()
    names = [
        ".mraa-tmp-a-abcd1234.pth",
        ".mraa-tmp-config-x1sszkwc.yaml",
        ".mraa-tmp-noext-zz99zz_9",
        ".keep",
    ]
    names += [".mraa-tmp-a-short.pth", "b.pth", ".a-abcd1234.pth"]  # the last: not marked as mraa's
    old = time.time() - 3600  # written by a run that started before this one
    for name in names:
        (tmp_path / name).write_text("x")
        os.utime(tmp_path / name, (old, old))
    assert [p.name for p in remove_stale_temps(tmp_path, "*.pth")] == [".mraa-tmp-a-abcd1234.pth"]
    assert sorted(p.name for p in remove_stale_temps(tmp_path)) == [
        ".mraa-tmp-config-x1sszkwc.yaml",
        ".mraa-tmp-noext-zz99zz_9",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".a-abcd1234.pth",
        ".keep",
        ".mraa-tmp-a-short.pth",
        "b.pth",
    ]
    assert remove_stale_temps(tmp_path / "missing") == []


# ------------------------------------------------------------------------------------------ -v shows the cause
def test_verbose_shows_the_cause_of_an_error(tmp_path, capsys):
    data = tmp_path / "data"
    _write_videos(data, count=2)
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint at all")
    args = ["train", "--config", str(TINY), "--log-dir", str(tmp_path / "run"), "--data", str(data)]
    args += ["--checkpoint", str(bad), "--set", f"dataset_params.frame_shape=[{SIZE},{SIZE},3]"]
    assert main(args) == 2
    assert "cannot read checkpoint" in _one_line_error(capsys)
    assert not (tmp_path / "run").exists()  # nothing written before the checkpoint loaded
    assert main(["-v", *args]) == 2
    err = capsys.readouterr().err
    assert "The above exception was the direct cause" in err and "UnpicklingError" in err
    assert err.strip().splitlines()[-1].startswith("error: cannot read checkpoint")


def test_resume_command_repeats_what_the_config_does_not_hold(tmp_path, monkeypatch):
    from argparse import Namespace

    from mraa.cli._training import resume_command

    args = Namespace(log_dir=Path("my runs/x"), vgg_weights="vgg19.pth", amp="bf16")
    assert resume_command(args, "reconstruction") == (
        "mraa train --log-dir 'my runs/x' --resume --vgg-weights vgg19.pth --amp bf16"
    )
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    args = Namespace(log_dir=Path("runs/avd"), amp=None)
    assert (
        resume_command(args, "avd")
        == "torchrun --nproc_per_node 4 -m mraa train-avd --log-dir runs/avd --resume"
    )
