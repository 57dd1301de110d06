"""Tests of the rotated-rectangles toy experiment (mraa.toy and ``mraa toy``)."""

from __future__ import annotations

import csv
import dataclasses
import math
import sys

import pytest
import torch

from mraa.cli import main
from mraa.errors import MRAAError
from mraa.geometry import covar_to_affine, heatmap_to_moments, region_to_gaussian
from mraa.toy import dataset, runner
from mraa.toy.dataset import make_rectangles, make_test_set, sample_rectangle
from mraa.toy.networks import NETWORKS, build_network, pca_angle, wrap_axis_angle
from mraa.toy.runner import QUICK_CONFIG, RunResult, ToyConfig, read_results_csv, results_table, train_run


@pytest.fixture(autouse=True)
def _one_thread():
    """The toy networks are tiny: with two threads on a busy 2-core machine, thread hand-offs cost far more
    than they save (a quick run took 15 s instead of 0.6 s), so these tests use one."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _pca_angle_of(heatmap: torch.Tensor) -> torch.Tensor:
    """Wrapped PCA angle (B,) of heatmaps (B, 1, H, W) summing to 1."""
    _, covar = heatmap_to_moments(heatmap)
    _, u, _ = covar_to_affine(covar)
    return wrap_axis_angle(pca_angle(u))


class TestDataset:
    def test_shapes_ranges_and_labels(self):
        images, angles = make_rectangles(64, seed=5, image_size=32)
        assert images.shape == (64, 3, 32, 32) and images.dtype == torch.float32
        assert angles.shape == (64,)
        assert images.min() >= 0 and images.max() <= 1
        assert angles.min() >= 0 and angles.max() <= 90
        assert angles.std() > 15  # spread over the range, not a constant
        # plain black background: the corners are empty, every image shows a rectangle
        assert images[:, :, 0, 0].abs().max() == 0
        assert (images.amax(dim=(1, 2, 3)) >= dataset.MIN_BRIGHTNESS - 1e-6).all()

    def test_deterministic_nested_and_disjoint(self):
        a_images, a_angles = make_rectangles(16, seed=1, image_size=16)
        b_images, b_angles = make_rectangles(16, seed=1, image_size=16)
        assert torch.equal(a_images, b_images) and torch.equal(a_angles, b_angles)
        small_images, small_angles = make_rectangles(8, seed=1, image_size=16)
        assert torch.equal(small_images, a_images[:8]) and torch.equal(small_angles, a_angles[:8])
        _, other_angles = make_rectangles(16, seed=2, image_size=16)
        assert not torch.equal(other_angles, a_angles)
        _, test_angles = make_test_set(image_size=16, num_images=16)
        assert not torch.equal(test_angles, make_rectangles(16, dataset.TEST_SEED, 16)[1])
        assert len(make_test_set(image_size=16)[1]) == 128

    def test_aspect_ratio_away_from_square(self):
        import numpy as np

        for i in range(200):
            rect = sample_rectangle(np.random.default_rng((0, 7, i)))
            assert 1.5 <= rect.half_long / rect.half_short <= 4.0
            corner = math.hypot(rect.half_long, rect.half_short)
            assert max(abs(rect.center[0]), abs(rect.center[1])) + corner <= dataset.MARGIN + 1e-9

    def test_label_is_the_long_axis_angle_y_down(self):
        """The PCA of a rendered rectangle's own mask recovers its label (the convention of the networks)."""
        images, angles = make_rectangles(64, seed=3, image_size=32)
        mask = images.sum(dim=1, keepdim=True)
        angle = _pca_angle_of(mask / mask.sum(dim=(2, 3), keepdim=True))
        error = (angle - angles).abs()
        assert error.mean() < 0.2 and error.max() < 1.0

    def test_sample_grid(self):
        from mraa.toy.plot import sample_grid

        images, angles = make_rectangles(10, seed=0, image_size=16)
        grid = sample_grid(images, angles, columns=4, scale=2)
        assert grid.shape == (3 * 32, 4 * 32, 3) and grid.dtype.name == "uint8"
        assert grid[2 * 32 :, 2 * 32 :].max() == 0  # the two unused tiles stay empty

    def test_bad_arguments(self):
        with pytest.raises(MRAAError, match="split"):
            make_rectangles(2, 0, 16, split="valid")
        with pytest.raises(MRAAError, match="at least 8"):
            make_rectangles(2, 0, 4)


class TestPCAAngle:
    @pytest.mark.parametrize("degrees", [0.0, 7.5, 30.0, 45.0, 60.0, 83.0, 89.9, 90.0])
    def test_rotated_gaussian_exact(self, degrees):
        theta = math.radians(degrees)
        rotation = torch.tensor(
            [[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]], dtype=torch.float64
        )
        covar = rotation @ torch.diag(torch.tensor([0.2**2, 0.08**2], dtype=torch.float64)) @ rotation.T
        shift = torch.tensor([[0.05, -0.1]], dtype=torch.float64)
        heatmap = region_to_gaussian(shift, covar[None], (129, 129))  # (1, 129, 129)
        heatmap = (heatmap / heatmap.sum()).view(1, 1, 129, 129)
        angle = _pca_angle_of(heatmap)
        assert angle.dtype == torch.float64
        assert abs(float(angle[0]) - degrees) < 1e-3

    def test_sign_invariant_and_vertical_axis(self):
        theta = math.radians(35.0)
        u = torch.tensor([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
        flips = torch.tensor([[1.0, 1.0], [-1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]])  # column signs
        angles = pca_angle(u[None] * flips[:, None, :])
        assert torch.allclose(angles, torch.full((4,), 35.0), atol=1e-4)
        vertical = torch.tensor([[[0.0, 1.0], [1.0, 0.0]], [[0.0, 1.0], [-1.0, 0.0]]])
        assert torch.allclose(wrap_axis_angle(pca_angle(vertical)), torch.tensor([90.0, 90.0]))

    def test_wrap_axis_angle(self):
        angles = torch.tensor([-89.9, -45.0, -44.0, 0.0, 89.9, 90.0, 134.0, 135.0])
        expected = torch.tensor([90.1, -45.0, -44.0, 0.0, 89.9, 90.0, 134.0, -45.0])
        assert torch.allclose(wrap_axis_angle(angles), expected, atol=1e-4)


class TestNetworks:
    @pytest.mark.parametrize("name", NETWORKS)
    def test_forward_backward(self, name):
        torch.manual_seed(0)
        model = build_network(name, image_size=16, block_expansion=4, num_blocks=2, max_features=16)
        images, angles = make_rectangles(4, seed=0, image_size=16)
        pred = model(images)
        assert pred.shape == (4,) and torch.isfinite(pred).all()
        if name == "pca":
            assert pred.min() >= -45 and pred.max() < 135
        (pred - angles).abs().mean().backward()
        grads = [p.grad for p in model.parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads)
        assert any(g.abs().sum() > 0 for g in grads)

    def test_bad_arguments(self):
        with pytest.raises(MRAAError, match="unknown toy network"):
            build_network("resnet", 16)
        with pytest.raises(MRAAError, match="divisible"):
            build_network("pca", 20, num_blocks=3)


class TestRunner:
    def test_train_run_deterministic_and_learns(self):
        config = ToyConfig(
            epochs=2, image_size=16, block_expansion=4, num_blocks=2, max_features=16, test_size=16
        )
        test_set = make_test_set(16, 16)
        first = train_run("naive", 8, 0, config, test_set)
        second = train_run("naive", 8, 0, config, test_set)
        assert first.test_l1_deg == second.test_l1_deg
        assert 0 < first.test_l1_deg < 90 and first.skipped_steps == 0
        assert train_run("naive", 8, 1, config, test_set).test_l1_deg != first.test_l1_deg

    def test_results_table(self):
        base = {f: getattr(QUICK_CONFIG, f) for f in runner._RUN_SETTINGS}
        rows = [RunResult("pca", 32, s, v, 0.0, 0, 1.0, **base) for s, v in enumerate([1.0, 2.0, 3.0])] + [
            RunResult("naive", 32, 0, 10.0, 0.0, 0, 1.0, **base)
        ]
        table = results_table(rows)
        assert table.splitlines()[0] == "| train size | naive | pca |"
        # 95 % t-interval of [1, 2, 3]: 4.303 * 1 / sqrt(3) = 2.48
        assert "| 32 | 10.00 ± 0.00 (n=1) | 2.00 ± 2.48 (n=3) |" in table

    def test_t_interval(self):
        assert runner.t_interval([5.0]) == 0.0
        assert runner.t_interval([1.0, 3.0]) == pytest.approx(12.706 * math.sqrt(2) / math.sqrt(2))
        values = [float(v) for v in range(40)]  # beyond the table: the normal quantile
        std = math.sqrt(sum((v - 19.5) ** 2 for v in values) / 39)
        assert runner.t_interval(values) == pytest.approx(1.96 * std / math.sqrt(40))

    def test_axis_error_is_modulo_180(self):
        pred = torch.tensor([1.0, 179.0, -1.0, 134.0, 45.0, 90.0, 270.5])
        target = torch.tensor([0.0, 0.0, 90.0, 0.0, 45.0, 0.0, 90.0])
        expected = torch.tensor([1.0, 1.0, 89.0, 46.0, 0.0, 90.0, 0.5])
        assert torch.allclose(runner.axis_error(pred, target), expected, atol=1e-4)

    def test_training_set_cache_matches_rendering(self):
        images, angles = runner.training_set(5, 3, 16, cache_size=12)
        ref_images, ref_angles = make_rectangles(5, 3, 16)
        assert torch.equal(images, ref_images) and torch.equal(angles, ref_angles)

    def test_predict_with_batch_stats_leaves_running_stats(self):
        torch.manual_seed(0)
        model = build_network("pca", 16, block_expansion=4, num_blocks=2, max_features=16)
        images, _ = make_rectangles(8, 0, 16)
        before = {k: v.clone() for k, v in model.state_dict().items()}
        eval_pred = runner.predict(model, images)
        batch_pred = runner.predict(model, images, batch_size=4, batch_stats=True)
        assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
        assert eval_pred.shape == batch_pred.shape == (8,) and not torch.allclose(eval_pred, batch_pred)

    @pytest.mark.parametrize(
        ("flags", "message"),
        [
            (["--image-size", "100000"], "--image-size must be between 8 and 256, got 100000"),
            (["--image-size", "18"], "divisible by 2**num_blocks = 4, got 18"),
            (["--sizes", "8", "0"], "--sizes must be between 1 and 65536, got 0"),
            (["--sizes", "10000000"], "--sizes must be between"),
            (["--epochs", "0"], "--epochs must be between 1"),
            (["--seeds", "-1"], "--seeds must be between 1"),
            (["--threads", "0"], "--threads must be between 1"),
            (["--sizes", "65536", "--image-size", "256"], "need 48.0 GiB"),
        ],
    )
    def test_cli_rejects_bad_numbers_in_one_line(self, tmp_path, capsys, flags, message):
        assert main(["toy", "--out", str(tmp_path / "t"), "--quick", "--no-progress", *flags]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1
        assert not (tmp_path / "t").exists()

    def test_quick_cli_end_to_end(self, tmp_path, capsys):
        pytest.importorskip("matplotlib")
        out = tmp_path / "toy"
        assert main(["toy", "--out", str(out), "--quick", "--no-progress"]) == 0
        for name in ("results.csv", "results.md", "error_vs_size.png", "samples.png"):
            assert (out / name).stat().st_size > 0
        with (out / "results.csv").open() as handle:
            rows = list(csv.DictReader(handle))
        assert {(r["network"], r["size"], r["seed"]) for r in rows} == {
            (n, s, "0") for n in NETWORKS for s in ("8", "16")
        }
        assert all(0 <= float(r["test_l1_deg"]) <= 180 for r in rows)
        assert "| 16 |" in (out / "results.md").read_text()
        assert "pca" in capsys.readouterr().out

    def test_resume_reads_finished_runs_back(self, tmp_path, monkeypatch, capsys):
        config = dataclasses.replace(QUICK_CONFIG, networks=("naive",), sizes=(8,), epochs=1)
        first = runner.run_toy(tmp_path, config, progress=False)
        assert len(first) == 1

        def fail(*args, **kwargs):
            raise AssertionError("a finished run was repeated")

        monkeypatch.setattr(runner, "train_run", fail)
        assert runner.run_toy(tmp_path, config, progress=False) == first
        monkeypatch.undo()
        both = runner.run_toy(tmp_path, dataclasses.replace(config, seeds=2), progress=False)
        assert both[0] == first[0] and [r.seed for r in both] == [0, 1]
        assert len(read_results_csv(tmp_path / "results.csv")) == 2

        # runs made with other settings are not mixed with new ones
        args = ["toy", "--out", str(tmp_path), "--quick", "--networks", "naive", "--sizes", "8", "--no-plot"]
        assert main([*args, "--no-progress"]) == 2
        assert "epochs=1" in capsys.readouterr().err

    def test_cli_without_matplotlib_still_writes_tables(self, tmp_path, monkeypatch, capsys):
        monkeypatch.setitem(sys.modules, "matplotlib", None)
        args = [
            "toy",
            "--out",
            str(tmp_path),
            "--quick",
            "--networks",
            "pca",
            "--sizes",
            "8",
            "--epochs",
            "1",
        ]
        assert main([*args, "--no-progress"]) == 2
        assert "pip install 'mraa[toy]'" in capsys.readouterr().err
        assert len(read_results_csv(tmp_path / "results.csv")) == 1
        assert "| 8 |" in (tmp_path / "results.md").read_text()
        assert not (tmp_path / "error_vs_size.png").exists()

    def test_cli_help(self, capsys):
        with pytest.raises(SystemExit) as exit_info:
            main(["toy", "--help"])
        assert exit_info.value.code == 0
        assert "--quick" in capsys.readouterr().out

    def test_plot_without_matplotlib_is_a_clear_error(self, tmp_path, monkeypatch):
        from mraa.toy.plot import plot_error_vs_size

        monkeypatch.setitem(sys.modules, "matplotlib", None)
        base = {f: getattr(QUICK_CONFIG, f) for f in runner._RUN_SETTINGS}
        rows = [RunResult("pca", 8, 0, 1.0, 0.0, 0, 1.0, **base)]
        with pytest.raises(MRAAError, match=r"mraa\[toy\]"):
            plot_error_vs_size(rows, tmp_path / "plot.png")
        assert not (tmp_path / "plot.png").exists()
