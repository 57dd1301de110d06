"""Co-part segmentation (the paper's argmax / background rule), part swap, `mraa segment` and `mraa swap`."""

import subprocess

import imageio.v3 as iio
import imageio_ffmpeg
import numpy as np
import pytest
import torch

from mraa.animate import Animator
from mraa.cli import main
from mraa.data.video_io import probe_video, read_video, write_image, write_video
from mraa.errors import MRAAError
from mraa.segmentation import (
    feather_mask,
    parse_parts,
    segment,
    segment_heatmaps,
    swap_parts,
    swap_parts_iter,
    upsample_heatmaps,
)
from mraa.visualize import legend_strip, overlay_segmentation


def random_heatmaps(b: int, k: int, h: int, w: int, temperature: float = 0.3) -> torch.Tensor:
    """Softmax over space, like the region predictor's output: each map sums to 1."""
    logits = torch.randn(b, k, h * w) / temperature
    return torch.softmax(logits, dim=2).view(b, k, h, w)


def assert_partition(seg, num_parts: int) -> None:
    labels = seg.labels
    assert labels.dtype == torch.long
    assert int(labels.min()) >= 0 and int(labels.max()) <= num_parts
    members = torch.stack([labels == k for k in range(num_parts + 1)])  # (K+1, B, H, W)
    assert torch.equal(members.sum(0), torch.ones_like(labels))  # every pixel exactly one label
    fg = seg.foreground
    total = seg.soft_masks.sum(1)
    torch.testing.assert_close(total, fg.to(total.dtype), atol=1e-5, rtol=0)
    assert torch.equal(seg.soft_masks.argmax(1)[fg] + 1, labels[fg])


# ----------------------------------------------------------------------------- the rule
class TestSegmentHeatmaps:
    @pytest.mark.parametrize("size", [None, (20, 24), (64, 64)])
    def test_labels_partition_the_image(self, size):
        heat = random_heatmaps(2, 3, 8, 8)
        seg = segment_heatmaps(heat, size, threshold=0.05)
        assert seg.labels.shape == (2, *(size or (8, 8)))
        assert seg.soft_masks.shape == (2, 3, *(size or (8, 8)))
        assert_partition(seg, 3)
        assert 0 < seg.foreground.float().mean() < 1  # both kinds of pixel present

    def test_background_rule_on_constructed_heatmaps(self):
        # two 4x4 maps, each summing to 1; per-pixel sums straddle the threshold
        m1 = torch.zeros(4, 4)
        m2 = torch.zeros(4, 4)
        m1[0, 0], m2[0, 0] = 0.0006, 0.0003  # sum 0.0009 < 0.001: background
        m1[0, 1], m2[0, 1] = 0.0004, 0.0006  # sum 0.0010: foreground (not below), part 2
        m1[0, 2], m2[0, 2] = 0.0011, 0.0  # sum 0.0011: part 1
        m1[0, 3], m2[0, 3] = 0.0, 0.0  # empty: background
        m1[1, 0] = 1 - m1.sum()
        m2[2, 2] = 1 - m2.sum()
        heat = torch.stack([m1, m2])[None].double()
        seg = segment_heatmaps(heat, threshold=0.001)
        sums = heat[0].sum(0)
        assert torch.equal(seg.labels[0] == 0, sums < 0.001)
        assert seg.labels[0, 0].tolist() == [0, 2, 1, 0]
        assert seg.labels[0, 1, 0] == 1 and seg.labels[0, 2, 2] == 2
        # the threshold is configurable: 0 keeps every pixel, a huge one none
        everything = segment_heatmaps(heat, threshold=0.0)
        assert everything.foreground.all()
        assert_partition(everything, 2)  # also where all maps are 0
        assert not segment_heatmaps(heat, threshold=2.0).foreground.any()
        assert segment_heatmaps(heat, threshold=0.0009).labels[0, 0, 0] == 1

    def test_upsampling_keeps_the_native_decision_at_heatmap_pixels(self):
        heat = random_heatmaps(1, 4, 9, 7)
        threshold = float(heat.sum(1).median())
        native = segment_heatmaps(heat, threshold=threshold)
        big = segment_heatmaps(heat, (17, 13), threshold=threshold)  # native pixel (i, j) lands on (2i, 2j)
        assert torch.equal(big.labels[:, ::2, ::2], native.labels)
        assert 0 < native.foreground.float().mean() < 1
        assert torch.equal(big.resize((9, 7)).labels, native.labels)

    def test_upsampled_maps_are_not_renormalised(self):
        heat = torch.full((1, 1, 8, 8), 1 / 64)  # uniform: 0.0156 per heatmap pixel
        for size in [(8, 8), (32, 32), (100, 60)]:
            assert upsample_heatmaps(heat, size).sum() == pytest.approx(size[0] * size[1] / 64)
            assert segment_heatmaps(heat, size, threshold=0.015).foreground.all()
            assert not segment_heatmaps(heat, size, threshold=0.016).foreground.any()

    def test_bad_threshold(self):
        with pytest.raises(MRAAError, match="threshold"):
            segment_heatmaps(random_heatmaps(1, 2, 4, 4), threshold=-1)

    def test_part_mask_and_feather(self):
        seg = segment_heatmaps(random_heatmaps(1, 3, 8, 8), (16, 16), threshold=0.02)
        all_parts = seg.part_mask([1, 2, 3])
        torch.testing.assert_close(all_parts[:, 0], seg.foreground.float(), atol=1e-5, rtol=0)
        one = seg.part_mask([2])
        torch.testing.assert_close(one[:, 0], seg.soft_masks[:, 1])
        blurred = seg.part_mask([2], feather=2.0)
        assert blurred.min() >= 0 and blurred.max() <= 1 and not torch.equal(blurred, one)
        assert blurred.sum() == pytest.approx(one.sum().item(), rel=0.1)
        ones = torch.ones(1, 1, 10, 10)
        torch.testing.assert_close(feather_mask(ones, 3.0), ones)
        with pytest.raises(MRAAError, match="feather"):
            feather_mask(ones, -1)


class TestParseParts:
    def test_forms(self):
        assert parse_parts("1,3", 5) == [1, 3]
        assert parse_parts(" 3, 1,3 ", 5) == [1, 3]
        assert parse_parts("2-4", 5) == [2, 3, 4]
        assert parse_parts("all", 3) == [1, 2, 3]
        assert parse_parts([2], 3) == [2]
        assert parse_parts("9", None) == [9]  # syntax only

    @pytest.mark.parametrize(
        "spec, message",
        [("0", "background"), ("6", "5 parts"), ("1,x", "expected indices"), ("", "no parts"),
         ("4-2", "empty range"), ("-1", "does not exist")],
    )  # fmt: skip
    def test_errors(self, spec, message):
        with pytest.raises(MRAAError, match=message):
            parse_parts(spec, 5)


def test_overlay_and_legend_shapes():
    image = np.full((40, 60, 3), 100, np.uint8)
    labels = np.zeros((40, 60), np.int64)
    labels[5:30, 5:30] = 1
    labels[5:30, 30:55] = 3
    out = overlay_segmentation(image, labels, 3)
    assert out.shape[1] == 60 and out.shape[0] > 40  # legend strip below
    assert (out[:5] == 100).all() and (out[32:40] == 100).all()  # background away from borders untinted
    assert not (out[:40][labels == 1] == 100).all()
    assert legend_strip(300, 10).shape[1] == 300
    with pytest.raises(MRAAError):
        overlay_segmentation(image, labels[:10], 3)


# ----------------------------------------------------------------------------- with a (tiny) model
@pytest.fixture
def animator(tiny_models, tiny_cfg):
    return Animator(tiny_models, tiny_cfg.animate_params, batch_size=2, config=tiny_cfg)


def test_segment_with_model_partitions(animator):
    frames = torch.rand(3, 3, 64, 64)
    seg = segment(animator, frames)
    assert seg.labels.shape == (3, 64, 64) and seg.num_parts == 2
    assert_partition(seg, 2)
    direct = segment(animator.models.region_predictor, frames)  # a RegionPredictor works too
    assert torch.equal(direct.labels, seg.labels)


def _threshold_for_half(animator, frames):
    heat = animator.region_params(frames)["heatmap"]
    return float(upsample_heatmaps(heat, frames.shape[-2:]).sum(1).median())


def test_swap_all_parts_is_animation_inside_foreground_driving_outside(animator):
    source = torch.rand(1, 3, 64, 64)
    driving = torch.rand(3, 3, 64, 64)
    threshold = _threshold_for_half(animator, driving)
    result = swap_parts(animator, source, driving, "all", threshold=threshold)
    animated = animator.animate(source, driving, mode="standard")
    fg = segment(animator, driving, threshold=threshold).foreground.unsqueeze(1).expand_as(result)
    assert 0.2 < fg.float().mean() < 0.8
    torch.testing.assert_close(result[fg], animated[fg], atol=1e-5, rtol=0)
    torch.testing.assert_close(result[~fg], driving[~fg], atol=0, rtol=0)


def test_swap_one_part_streaming(animator):
    source = torch.rand(1, 3, 64, 64)
    driving = torch.rand(3, 3, 64, 64)
    batches = list(swap_parts_iter(animator, source, iter(driving), [2], feather=1.5))
    assert [len(b.frame_indices) for b in batches] == [2, 1]
    result = torch.cat([b.result for b in batches])
    mask = torch.cat([b.mask for b in batches])
    animated = torch.cat([b.animated for b in batches])
    torch.testing.assert_close(result, mask * animated + (1 - mask) * driving)
    assert torch.equal(torch.cat([b.driving for b in batches]), driving)
    assert 0 < mask.mean() < 1


def test_swap_with_label_maps(animator):
    source = torch.rand(1, 3, 64, 64)
    driving = torch.rand(2, 3, 64, 64)
    labels = torch.zeros(64, 64, dtype=torch.long)
    labels[:, 32:] = 1
    batch = next(swap_parts_iter(animator, source, driving, [1], labels=labels))  # one map for all frames
    torch.testing.assert_close(batch.result[..., 32:], batch.animated[..., 32:])
    assert torch.equal(batch.result[..., :32], driving[..., :32])
    with pytest.raises(MRAAError, match="label map for frame 0 is 32x64"):
        swap_parts(animator, source, driving, [1], labels=labels[:, :32])
    with pytest.raises(MRAAError, match="ran out at driving frame 1"):
        swap_parts(animator, source, driving, [1], labels=[labels])
    with pytest.raises(MRAAError, match="3 does not exist"):
        swap_parts(animator, source, driving, [3])


# ----------------------------------------------------------------------------- command line
@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """A tiny checkpoint, a 72x90 source image and a 4-frame driving video with audio."""
    from mraa.checkpoint import save_checkpoint
    from mraa.config import load_config
    from mraa.models import build_models

    from .conftest import ROOT

    root = tmp_path_factory.mktemp("seg")
    cfg = load_config(ROOT / "configs" / "tiny.yaml")
    torch.manual_seed(0)
    save_checkpoint(root / "ck.pth", build_models(cfg.model_params), cfg)
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (72, 90, 3), dtype=np.uint8) for _ in range(4)]
    write_video(root / "silent.mp4", frames, fps=10)
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-i", str(root / "silent.mp4"), "-f",
         "lavfi", "-i", "sine=frequency=440:duration=1", "-c:v", "copy", "-c:a", "aac", "-shortest",
         str(root / "driving.mp4")],
        check=True,
    )  # fmt: skip
    write_image(root / "source.png", frames[0])
    return root


def _one_line_error(capsys, text: str) -> None:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and text in err, err


def test_cli_segment_image(media, tmp_path, capsys):
    out = tmp_path / "seg"
    argv = ["segment", "--input", str(media / "source.png"), "--output", str(out),
            "--checkpoint", str(media / "ck.pth"), "--soft-masks", "--threshold", "0.0015"]  # fmt: skip
    assert main(argv) == 0
    labels = iio.imread(out / "labels.png")
    assert labels.shape == (64, 64) and labels.max() <= 2
    overlay = iio.imread(out / "overlay.png")
    assert overlay.shape[1] == 256 and overlay.shape[0] > 256  # 4x for display, legend below
    masks = np.stack([iio.imread(out / "masks" / f"part_{k:02d}.png") for k in (1, 2)]).astype(int)
    assert np.abs(masks.sum(0) - 255 * (labels > 0)).max() <= 1
    assert sorted(p.name for p in out.iterdir()) == ["labels.png", "masks", "overlay.png"]
    assert "2 parts" in capsys.readouterr().out


def test_cli_segment_video(media, tmp_path):
    out = tmp_path / "seg"
    argv = ["segment", "--input", str(media / "driving.mp4"), "--output", str(out),
            "--checkpoint", str(media / "ck.pth"), "--quiet", "--overlay-scale", "1", "--batch-size", "3"]  # fmt: skip
    assert main(argv) == 0
    overlay = read_video(out / "overlay.mp4")
    assert overlay.shape[0] == 4 and overlay.shape[2] == 64
    assert probe_video(out / "overlay.mp4").has_audio
    assert sorted(p.name for p in (out / "labels").iterdir()) == [f"{i:06d}.png" for i in range(4)]
    assert not (out / "masks").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary leftovers


def test_cli_segment_errors(media, tmp_path, capsys):
    model = ["--checkpoint", str(media / "ck.pth"), "--quiet"]
    assert (
        main(["segment", "--input", str(media / "source.png"), "--output", str(media / "source.png"), *model])
        == 2
    )
    _one_line_error(capsys, "must be a folder")
    assert (
        main(["segment", "--input", str(tmp_path / "nope.png"), "--output", str(tmp_path / "o"), *model]) == 2
    )
    _one_line_error(capsys, "input not found")
    argv = [
        "segment",
        "--input",
        str(media / "source.png"),
        "--output",
        str(tmp_path / "o"),
        "--threshold",
        "-1",
    ]
    assert main([*argv, *model]) == 2
    _one_line_error(capsys, "threshold")


def _swap(media, out, *extra):
    argv = ["swap", "--source", str(media / "source.png"), "--driving", str(media / "driving.mp4"),
            "--checkpoint", str(media / "ck.pth"), "--quiet", *extra]  # fmt: skip
    if out is not None:
        argv += ["--output", str(out)]
    return main(argv)


def test_cli_swap_writes_video_with_audio(media, tmp_path, capsys):
    out = tmp_path / "swap.mp4"
    assert _swap(media, out, "--parts", "1,2", "--feather", "1") == 0
    frames = read_video(out)
    assert frames.shape == (4, 256, 256, 3)  # the 64x64 model's frames enlarged to a readable size
    info = probe_video(out)
    assert info.fps == pytest.approx(10) and info.has_audio
    assert "swapping parts 1,2" in capsys.readouterr().out


def test_cli_swap_pick(media, tmp_path, capsys):
    sheet = tmp_path / "parts.png"
    assert _swap(media, None, "--pick", str(sheet)) == 0
    image = iio.imread(sheet)
    assert image.shape[1] > 2 * 256  # source and driving side by side
    text = capsys.readouterr().out
    assert "part  colour" in text and "background" in text
    assert _swap(media, tmp_path / "x.mp4", "--pick") == 0  # default path next to --output
    assert (tmp_path / "x_parts.png").is_file() and not (tmp_path / "x.mp4").exists()


def test_cli_swap_with_label_maps(media, tmp_path):
    seg_dir = tmp_path / "seg"
    assert main(["segment", "--input", str(media / "driving.mp4"), "--output", str(seg_dir),
                 "--checkpoint", str(media / "ck.pth"), "--quiet"]) == 0  # fmt: skip
    out = tmp_path / "swap.mp4"
    assert _swap(media, out, "--parts", "2", "--labels", str(seg_dir / "labels")) == 0
    assert read_video(out).shape[0] == 4


@pytest.mark.parametrize(
    "extra, message",
    [(["--parts", "3"], "part 3 does not exist: this model has 2 parts"),
     (["--parts", "0"], "part 0 is the background"),
     (["--parts", "1,x"], "expected indices"),
     ([], "--parts is required"),
     (["--parts", "1", "--feather", "-2"], "--feather"),
     (["--parts", "1", "--labels", "WRONG"], "is 32x32 but the model works at 64x64"),
     (["--parts", "1", "--labels", "COLOUR"], "colour image"),
     (["--parts", "1", "--labels", "BIG"], "has label 7 but the model has 2 parts")],
)  # fmt: skip
def test_cli_swap_errors(media, tmp_path, capsys, extra, message):
    maps = {
        "WRONG": np.zeros((32, 32), np.uint8),
        "COLOUR": np.random.default_rng(0).integers(0, 3, (64, 64, 3), dtype=np.uint8),
        "BIG": np.full((64, 64), 7, np.uint8),
    }
    extra = list(extra)
    if extra and extra[-1] in maps:
        write_image(tmp_path / "labels.png", maps[extra[-1]])
        extra[-1] = str(tmp_path / "labels.png")
    out = tmp_path / "swap.mp4"
    assert _swap(media, out, *extra) == 2
    _one_line_error(capsys, message)
    assert not out.exists()


def test_official_checkpoint_segment_and_swap(tmp_path, capsys):
    """The official-layout parity checkpoint (pad 0: 10x10 heatmaps for 64x64 images) works end to end."""
    from .conftest import require_case_a

    case = require_case_a()
    io = torch.load(case / "io.pt", weights_only=True)
    heat = io["rp/source/heatmap"]  # (1, 5, 10, 10) from the official code
    seg = segment_heatmaps(heat)
    assert torch.equal(seg.labels[0] == 0, heat[0].sum(0) < 0.001)
    assert torch.equal(seg.labels[0][seg.foreground[0]], heat[0].argmax(0)[seg.foreground[0]] + 1)
    frames = (io["input/driving"][:2].permute(0, 2, 3, 1) * 255).round().to(torch.uint8).numpy()
    write_video(tmp_path / "driving.mp4", list(frames), fps=5)
    write_image(
        tmp_path / "source.png", (io["input/source"][0].permute(1, 2, 0) * 255).round().byte().numpy()
    )
    model = ["--checkpoint", str(case / "checkpoint.pth"), "--config", str(case / "config.yaml"), "--quiet"]
    argv = ["swap", "--source", str(tmp_path / "source.png"), "--driving", str(tmp_path / "driving.mp4"),
            "--parts", "1,3", "--output", str(tmp_path / "out.mp4"), *model]  # fmt: skip
    assert main(argv) == 0
    assert read_video(tmp_path / "out.mp4").shape == (2, 256, 256, 3)
    assert "swapping parts 1,3" in capsys.readouterr().out


def test_part_colour_names_are_distinct_for_up_to_20_parts():
    from mraa.visualize import part_color_names

    for num_parts in range(1, 21):
        names = part_color_names(num_parts)
        assert len(names) == num_parts and len(set(names)) == num_parts, (num_parts, names)
        assert not any(name[-1].isdigit() for name in names), names  # plain names, no numbering needed
    assert part_color_names(10)[:4] == ["red", "orange", "yellow", "grass green"]
    assert len(set(part_color_names(40))) == 40  # past 20 a number tells repeated names apart
