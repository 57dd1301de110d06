import math

import pytest
import torch

from mraa.geometry import (
    Transform,
    convex_hull_area,
    covar_to_affine,
    from_homogeneous,
    heatmap_to_moments,
    make_coordinate_grid,
    region_to_gaussian,
    sparse_motions,
    to_homogeneous,
)


def gaussian_heatmap(mean, covar, size=64):
    g = region_to_gaussian(
        torch.tensor(mean).view(1, 1, 2), torch.tensor(covar).view(1, 1, 2, 2), (size, size)
    )
    return g / g.sum(dim=(2, 3), keepdim=True)


class TestMakeCoordinateGrid:
    def test_corners_and_order(self):
        grid = make_coordinate_grid((3, 5))
        assert grid.shape == (3, 5, 2)
        assert grid[0, 0].tolist() == [-1, -1]
        assert grid[-1, -1].tolist() == [1, 1]
        assert grid[0, -1].tolist() == [1, -1]  # x first

    def test_dtype_device(self):
        assert make_coordinate_grid((2, 2), torch.float64).dtype == torch.float64


class TestMoments:
    def test_recovers_known_gaussian(self):
        mean = [0.2, -0.1]
        rot = torch.tensor([[math.cos(0.5), -math.sin(0.5)], [math.sin(0.5), math.cos(0.5)]])
        covar = rot @ torch.diag(torch.tensor([0.02, 0.005])) @ rot.T
        shift, cov = heatmap_to_moments(gaussian_heatmap(mean, covar.tolist(), 128))
        assert torch.allclose(shift[0, 0], torch.tensor(mean), atol=1e-3)
        assert torch.allclose(cov[0, 0], covar, atol=1e-3)

    def test_affine_is_a_square_root(self):
        covar = torch.tensor([[[[0.03, 0.01], [0.01, 0.02]]]])
        affine, u, d = covar_to_affine(covar)
        assert torch.allclose(affine @ affine.transpose(-1, -2), covar, atol=1e-6)
        assert u.shape == (1, 2, 2) and d.shape == (1, 2, 2)

    def test_gradcheck(self):
        heat = torch.rand(1, 2, 8, 8, dtype=torch.float64)
        heat = (heat / heat.sum(dim=(2, 3), keepdim=True)).requires_grad_()
        assert torch.autograd.gradcheck(lambda h: heatmap_to_moments(h)[1], (heat,))


class TestGaussian:
    def test_peak_at_mean(self):
        g = region_to_gaussian(torch.tensor([[0.0, 0.0]]), 0.01, (9, 9))
        assert g.shape == (1, 9, 9)
        assert g[0, 4, 4] == pytest.approx(1.0)

    def test_covar_equals_isotropic_float(self):
        shift = torch.tensor([[0.3, -0.2]])
        a = region_to_gaussian(shift, 0.01, (16, 16))
        b = region_to_gaussian(shift, torch.eye(2).view(1, 2, 2) * 0.01, (16, 16))
        assert torch.allclose(a, b, atol=1e-6)


class TestSparseMotions:
    def test_identical_regions_give_identity(self):
        grid = make_coordinate_grid((8, 8))
        params = {"shift": torch.rand(2, 3, 2) - 0.5, "affine": torch.eye(2).repeat(2, 3, 1, 1) * 0.2}
        motions = sparse_motions(grid, params, params)
        assert motions.shape == (2, 4, 8, 8, 2)
        assert torch.allclose(motions, grid.expand_as(motions), atol=1e-6)

    def test_background_affine(self):
        grid = make_coordinate_grid((4, 4))
        params = {"shift": torch.zeros(1, 1, 2), "affine": torch.eye(2).view(1, 1, 2, 2)}
        bg = torch.tensor([[[1.0, 0, 0.5], [0, 1.0, 0], [0, 0, 1]]])
        motions = sparse_motions(grid, params, params, bg_params=bg)
        assert torch.allclose(motions[0, 0, ..., 0], grid[..., 0] + 0.5)

    def test_homogeneous_round_trip(self):
        x = torch.rand(5, 2)
        assert torch.allclose(from_homogeneous(to_homogeneous(x)), x)


class TestTransform:
    def test_zero_noise_is_identity(self):
        t = Transform(2, sigma_affine=0.0, sigma_tps=0.0, points_tps=5)
        frame = torch.rand(2, 3, 16, 16)
        # grid_sample runs with align_corners=False on a [-1, 1] pixel-centre grid (the official quirk),
        # so the identity warp equals sampling at the identity grid rather than the frame itself
        grid = make_coordinate_grid((16, 16)).expand(2, 16, 16, 2)
        expected = torch.nn.functional.grid_sample(
            frame, grid, padding_mode="reflection", align_corners=False
        )
        assert torch.allclose(t.transform_frame(frame), expected, atol=1e-6)
        coords = torch.rand(2, 7, 2) * 2 - 1
        assert torch.allclose(t.warp_coordinates(coords), coords, atol=1e-6)

    def test_analytic_jacobian_equals_autograd(self):
        t = Transform(
            3, sigma_affine=0.1, sigma_tps=0.05, points_tps=5, generator=torch.Generator().manual_seed(1)
        )
        coords = (torch.rand(3, 6, 2, dtype=torch.float64) * 2 - 1).requires_grad_()
        t = t.to("cpu", torch.float64)
        warped = t.warp_coordinates(coords)
        gx = torch.autograd.grad(warped[..., 0].sum(), coords, retain_graph=True)[0]
        gy = torch.autograd.grad(warped[..., 1].sum(), coords)[0]
        autograd_jac = torch.stack([gx, gy], dim=-2)
        assert torch.allclose(t.jacobian(coords), autograd_jac, atol=1e-10)

    def test_from_params_reproduces(self):
        t = Transform(2, generator=torch.Generator().manual_seed(3))
        u = Transform.from_params(t.theta, t.control_points, t.control_params)
        c = torch.rand(2, 4, 2)
        assert torch.equal(t.warp_coordinates(c), u.warp_coordinates(c))

    def test_gradcheck_warp(self):
        t = Transform(1, sigma_affine=0.1, sigma_tps=0.05, generator=torch.Generator().manual_seed(2))
        t = t.to("cpu", torch.float64)
        coords = (torch.rand(1, 4, 2, dtype=torch.float64) * 2 - 1).requires_grad_()
        assert torch.autograd.gradcheck(t.warp_coordinates, (coords,))


def test_convex_hull_area():
    square = torch.tensor([[0.0, 0.0], [1, 0], [1, 1], [0, 1], [0.5, 0.5]])
    assert convex_hull_area(square) == pytest.approx(1.0)
    assert convex_hull_area(torch.tensor([[0.0, 0.0], [1.0, 1.0]])) == 0.0
