"""Fast paths: closed-form 2x2 linear algebra, bf16 / outer autocast, per-device batch size, channels-last
warps, and the ONNX export run by onnxruntime (skipped when onnx / onnxruntime are missing)."""

import pytest
import torch

from mraa.animate import Animator
from mraa.cli import main
from mraa.geometry import covar_to_affine, inverse_2x2, region_to_gaussian, symmetric_eig_2x2, warp_image
from mraa.modules.blocks import UpBlock2d
from mraa.modules.packed import cpu_bf16_supported

from .conftest import CASE_A, require_case_a


def _covariances(n: int = 2000) -> torch.Tensor:
    """Random SPD 2x2 matrices plus near-degenerate ones (isotropic, rank-1-ish, tiny off-diagonal)."""
    a = torch.randn(n, 2, 2, dtype=torch.float64)
    random = a @ a.transpose(-1, -2) * 0.01
    special = torch.tensor(
        [[[1e-2, 0.0], [0.0, 1e-2]], [[1e-2, 1e-9], [1e-9, 1e-2]], [[1e-2, -1e-9], [-1e-9, 1e-2 + 1e-8]],
         [[1e-2, 0.0], [0.0, 1e-6]], [[1e-6, 0.0], [0.0, 1e-2]], [[1e-2, 9.99e-3], [9.99e-3, 1e-2]]],
        dtype=torch.float64,
    )  # fmt: skip
    return torch.cat([random, special])


def test_inverse_2x2_matches_linalg_and_gradcheck():
    m = torch.randn(500, 2, 2, dtype=torch.float64) + torch.eye(2, dtype=torch.float64)
    m = torch.cat([m, _covariances()])
    ours, ref = inverse_2x2(m), torch.linalg.inv(m)
    scale = ref.abs().amax(dim=(-1, -2), keepdim=True)
    assert ((ours - ref).abs() / scale).max() < 1e-5
    # float32 input: against the exact inverse of the rounded matrix, no worse than LAPACK's float32 inverse
    m32 = m.float()
    exact = torch.linalg.inv(m32.double())
    scale32 = exact.abs().amax(dim=(-1, -2), keepdim=True)
    err32 = ((inverse_2x2(m32).double() - exact).abs() / scale32).amax((-1, -2))
    lapack32 = ((torch.linalg.inv(m32).double() - exact).abs() / scale32).amax((-1, -2))
    assert inverse_2x2(m32).dtype == torch.float32
    assert (err32 <= 2 * lapack32 + 1e-6).all()
    x = (torch.randn(4, 2, 2, dtype=torch.float64) + 2 * torch.eye(2, dtype=torch.float64)).requires_grad_()
    assert torch.autograd.gradcheck(inverse_2x2, (x,))


def test_symmetric_eig_2x2_matches_lapack_with_its_signs():
    covar = _covariances()
    u, s = symmetric_eig_2x2(covar)
    ref_u, ref_s, _ = torch.linalg.svd(covar)
    assert (s - ref_s).abs().max() < 1e-5 * ref_s.max()
    rebuilt = u @ torch.diag_embed(s) @ u.transpose(-1, -2)
    assert (rebuilt - covar).abs().max() < 1e-9 * covar.abs().max()
    well = (ref_s[:, 0] - ref_s[:, 1]) > 1e-6 * ref_s[:, 0]  # distinct eigenvalues: eigenvectors defined
    sign = torch.sign((u * ref_u).sum(dim=(-1, -2), keepdim=True))  # LAPACK's U or -U
    assert ((u * sign - ref_u)[well]).abs().max() < 1e-5
    assert (sign[well] > 0).all()  # LAPACK's own signs (the AVD and the browser's graphs see them)
    affine, _, _ = covar_to_affine(covar.float(), closed_form=True)
    ref_affine, _, _ = covar_to_affine(covar.float())
    separated = (ref_s[:, 0] - ref_s[:, 1]) > 1e-2 * ref_s[:, 0]  # float32 eigenvectors need a gap
    assert (affine - ref_affine).abs().amax((-1, -2))[separated].max() < 1e-5


def test_geometry_stays_float32_under_autocast():
    shift = torch.rand(2, 3, 2) - 0.5
    covar = torch.tensor([[0.02, 0.005], [0.005, 0.01]]).expand(2, 3, 2, 2) * (1 + torch.rand(2, 3, 1, 1))
    ref = region_to_gaussian(shift, covar, (8, 8))
    with torch.autocast("cpu", torch.bfloat16):
        out = region_to_gaussian(shift.bfloat16(), covar.bfloat16(), (8, 8))
        affine, _, _ = covar_to_affine(covar.bfloat16())
    assert out.dtype == torch.float32 and affine.dtype == torch.float32
    assert (
        out - region_to_gaussian(shift.bfloat16().float(), covar.bfloat16().float(), (8, 8))
    ).abs().max() < 1e-6
    assert ref.shape == out.shape


def test_warp_keeps_channels_last():
    image = torch.rand(1, 4, 8, 8).contiguous(memory_format=torch.channels_last)
    flow = torch.rand(1, 8, 8, 2) * 2 - 1
    out = warp_image(image, flow)
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(out, warp_image(image.contiguous(), flow))


def test_outer_autocast_on_cpu(tiny_cfg, tiny_models):
    source, driving = torch.rand(1, 3, 32, 32), torch.rand(3, 3, 32, 32)
    fp32 = Animator(tiny_models, tiny_cfg.animate_params, config=tiny_cfg)
    assert fp32.batch_size == 1  # the CPU default
    ref = fp32.animate(source, driving, mode="relative")
    with torch.autocast("cpu", torch.bfloat16):  # used to crash in region_to_gaussian (inverse in bf16)
        outer = fp32.animate(source, driving, mode="avd")
    assert outer.shape == ref.shape
    assert torch.isfinite(outer).all()


@pytest.mark.skipif(not cpu_bf16_supported(), reason="this CPU has no native bfloat16 convolutions")
def test_bf16_on_cpu(tiny_cfg, tiny_models):
    source, driving = torch.rand(1, 3, 32, 32), torch.rand(3, 3, 32, 32)
    fp32 = Animator(tiny_models, tiny_cfg.animate_params, config=tiny_cfg)
    bf16 = Animator(tiny_models, tiny_cfg.animate_params, config=tiny_cfg, precision="bf16")
    ref = fp32.animate(source, driving, mode="relative")
    out = bf16.animate(source, driving, mode="relative")
    assert out.dtype == torch.float32
    assert 0 < (out - ref).abs().max() < 0.1


def test_bf16_refused_on_a_cpu_without_native_bf16(tiny_cfg, tiny_models, monkeypatch):
    from mraa.errors import MRAAError
    from mraa.inference import engines as animate

    monkeypatch.setattr(animate, "cpu_bf16_supported", lambda: False)
    with pytest.raises(MRAAError, match="native bfloat16"):
        Animator(tiny_models, tiny_cfg.animate_params, config=tiny_cfg, precision="bf16")
    Animator(tiny_models, tiny_cfg.animate_params, config=tiny_cfg)  # fp32 is unaffected


def test_compile_is_cuda_only(tiny_cfg, tiny_models):
    from mraa.errors import MRAAError

    with pytest.raises(MRAAError, match="CUDA-only"):
        Animator(tiny_models, tiny_cfg.animate_params, config=tiny_cfg, compile=True)


def _require_onnx():
    pytest.importorskip("onnxruntime", reason="onnxruntime not installed (pip install 'mraa[onnx]')")
    pytest.importorskip("onnx", reason="onnx not installed")


def test_onnx_backend_matches_torch_on_case_a():
    _require_onnx()
    require_case_a()
    ref = torch.load(CASE_A / "io.pt", weights_only=True)
    args = (CASE_A / "checkpoint.pth", CASE_A / "config.yaml")
    torch_path = Animator.from_checkpoint(*args, batch_size=3)
    onnx_path = Animator.from_checkpoint(*args, batch_size=3, backend="onnxruntime")
    for mode in ("standard", "relative", "avd"):
        expected = torch_path.animate(ref["input/source"], ref["input/driving"], mode=mode)
        out = onnx_path.animate(ref["input/source"], ref["input/driving"], mode=mode)
        assert (out - expected).abs().max() < 1e-4, mode


def test_export_onnx_cli_and_reuse(tiny_cfg, tiny_models, tmp_path, capsys):
    _require_onnx()
    from mraa.checkpoint import save_checkpoint
    from mraa.config import save_config

    save_checkpoint(tmp_path / "ck.pth", tiny_models, tiny_cfg)
    save_config(tiny_cfg, tmp_path / "cfg.yaml")
    argv = ["export", "--checkpoint", str(tmp_path / "ck.pth"), "--config", str(tmp_path / "cfg.yaml")]
    code = main([*argv, "--output", str(tmp_path / "onnx"), "--format", "onnx"])
    assert code == 0 and "region_predictor.onnx" in capsys.readouterr().out
    names = sorted(p.name for p in (tmp_path / "onnx").iterdir())
    assert names == ["avd_network.onnx", "config.yaml", "generator.onnx", "onnx-manifest.json",
                     "region_predictor.onnx", "source_encoder.onnx"]  # fmt: skip
    source, driving = torch.rand(1, 3, 64, 64), torch.rand(3, 3, 64, 64)
    expected = Animator(tiny_models, tiny_cfg.animate_params, config=tiny_cfg).animate(
        source, driving, "relative"
    )
    reused = Animator(
        tiny_models,
        tiny_cfg.animate_params,
        config=tiny_cfg,
        backend="onnxruntime",
        onnx_dir=tmp_path / "onnx",
    )
    assert (reused.animate(source, driving, "relative") - expected).abs().max() < 1e-4
    from mraa.inference.engines import OnnxBackend

    for session in OnnxBackend(tmp_path / "onnx", pca_based=True).sessions.values():  # pools take turns
        assert (
            session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning") == "0"
        )
    small_source, small_driving = source[..., :32, :32], driving[..., :32, :32]  # another size: re-exported
    torch_small = Animator(tiny_models, tiny_cfg.animate_params, config=tiny_cfg).animate(
        small_source, small_driving, "standard"
    )
    assert (reused.animate(small_source, small_driving, "standard") - torch_small).abs().max() < 1e-4


def test_exported_generator_graph(tiny_cfg, tiny_models, tmp_path):
    """One frame per call, phase-conv upsampling, no two-branch lerp, the user's models untouched."""
    _require_onnx()
    import onnx

    from mraa.export.onnx import export_onnx
    from mraa.modules.fusion import is_narrow_conv

    nets = ("generator", "region_predictor", "avd_network")
    before = {n: {k: v.clone() for k, v in getattr(tiny_models, n).state_dict().items()} for n in nets}
    pixels = []  # input pixels of each upsampling block in one eager frame
    hooks = [
        m.register_forward_pre_hook(lambda _, args: pixels.append(args[0].shape[2] * args[0].shape[3]))
        for m in tiny_models.generator.modules()
        if isinstance(m, UpBlock2d)
    ]
    with torch.no_grad():
        params = tiny_models.region_predictor(torch.rand(2, 3, 64, 64))
        tiny_models.generator(torch.rand(1, 3, 64, 64), {k: v[1:] for k, v in params.items()},
                              {k: v[:1] for k, v in params.items()})  # fmt: skip
    for hook in hooks:
        hook.remove()
    export_onnx(tiny_models, (64, 64), tmp_path)
    graph = onnx.load(str(tmp_path / "generator.onnx")).graph
    ops = [node.op_type for node in graph.node]
    # blocks on maps of >= 16 pixels as four 2x2 convs and one Col2Im, none as a transposed conv
    assert "ConvTranspose" not in ops and ops.count("Col2Im") == sum(p >= 16 for p in pixels) >= 3
    # the narrow 7x7 convs (output, occlusion; the mask too with < 7 regions) as a (1, 7) and a (7, 1) conv
    narrow = sum(is_narrow_conv(m) for m in tiny_models.generator.modules())
    kernels = [tuple(a.ints) for node in graph.node for a in node.attribute if a.name == "kernel_shape"]
    assert narrow >= 2 and kernels.count((1, 7)) == kernels.count((7, 1)) == narrow and (7, 7) not in kernels
    assert "Less" not in ops  # lerp exported as previous + occlusion * (warped - previous), no branch test
    batch = {i.name: i.type.tensor_type.shape.dim[0] for i in graph.input}
    assert all(d.dim_value == 1 for d in batch.values())
    for n in nets:
        after = getattr(tiny_models, n).state_dict()
        assert before[n].keys() == after.keys() and all(torch.equal(before[n][k], after[k]) for k in after), n


def test_animate_cli_with_the_onnxruntime_backend(tiny_cfg, tiny_models, tmp_path, capsys):
    _require_onnx()
    import numpy as np

    from mraa.checkpoint import save_checkpoint
    from mraa.config import save_config
    from mraa.data.video_io import read_video, write_image, write_video

    save_checkpoint(tmp_path / "ck.pth", tiny_models, tiny_cfg)
    save_config(tiny_cfg, tmp_path / "cfg.yaml")
    rng = np.random.default_rng(0)
    write_image(tmp_path / "src.png", rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    write_video(tmp_path / "drv.mp4", rng.integers(0, 255, (3, 64, 64, 3), dtype=np.uint8), fps=10)
    argv = ["animate", "--checkpoint", str(tmp_path / "ck.pth"), "--config", str(tmp_path / "cfg.yaml"),
            "--source", str(tmp_path / "src.png"), "--driving", str(tmp_path / "drv.mp4"), "--quiet",
            "--mode", "relative", "--backend", "onnxruntime", "--onnx-dir", str(tmp_path / "onnx")]  # fmt: skip
    assert main([*argv, "--output", str(tmp_path / "out.mp4")]) == 0
    assert read_video(tmp_path / "out.mp4").shape[0] == 3
    assert (tmp_path / "onnx" / "generator.onnx").is_file()  # exported there, reused by the next run
    assert main([*argv, "--output", str(tmp_path / "again.mp4")]) == 0
    assert (
        main(
            [*argv[:-4], "--backend", "onnxruntime", "--device", "cuda", "--output", str(tmp_path / "x.mp4")]
        )
        == 2
    )
    assert "error:" in capsys.readouterr().err


def test_training_bf16_refused_on_a_cpu_without_native_bf16(monkeypatch):
    from mraa.errors import MRAAError
    from mraa.modules import packed
    from mraa.training.common import check_amp

    monkeypatch.setattr(packed, "cpu_bf16_supported", lambda: False)
    with pytest.raises(MRAAError, match="native bfloat16"):
        check_amp(torch.device("cpu"), "bf16")
    assert check_amp(torch.device("cpu"), None) is None
