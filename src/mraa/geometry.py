"""Pure tensor geometry for MRAA: coordinate grids, region moments, Gaussians, motions, random warps.

Conventions (used throughout mraa):
- Coordinates are in [-1, 1], x first then y; ``make_coordinate_grid`` puts -1 and 1 on the centres of the
  first and last pixels, while ``F.grid_sample`` runs with ``align_corners=False`` (as the official
  checkpoints were trained).
- Region parameters of ``K`` regions: ``shift`` (B, K, 2), ``covar`` (B, K, 2, 2), ``affine`` (B, K, 2, 2).
"""

from __future__ import annotations

from typing import TypedDict

import torch
import torch.nn.functional as F
from torch import Tensor


class RegionParams(TypedDict, total=False):
    """Region parameters predicted for a batch of images (``K`` regions)."""

    shift: Tensor  # (B, K, 2) centres in [-1, 1], (x, y)
    covar: Tensor  # (B, K, 2, 2) second moments
    affine: Tensor  # (B, K, 2, 2) U S^(1/2) (PCA) or the regressed jacobian
    heatmap: Tensor  # (B, K, h, w), each map sums to 1
    u: Tensor  # (B*K, 2, 2) SVD left singular vectors (PCA only)
    d: Tensor  # (B*K, 2, 2) diag(sqrt(singular values)) (PCA only)


def make_coordinate_grid(
    spatial_size: tuple[int, int],
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """Grid of (x, y) coordinates in [-1, 1].

    Args:
        spatial_size: (H, W).

    Returns:
        Tensor of shape (H, W, 2); ``grid[i, j] = (x_j, y_i)``.

    >>> make_coordinate_grid((2, 3))[1, 2]
    tensor([1., 1.])
    """
    h, w = spatial_size
    x = torch.arange(w, dtype=dtype, device=device)
    y = torch.arange(h, dtype=dtype, device=device)
    x = 2 * (x / (w - 1)) - 1 if w > 1 else x * 0
    y = 2 * (y / (h - 1)) - 1 if h > 1 else y * 0
    yy = y.view(-1, 1).expand(h, w)
    xx = x.view(1, -1).expand(h, w)
    return torch.stack([xx, yy], dim=2)


def heatmap_to_moments(heatmap: Tensor, with_covar: bool = True) -> tuple[Tensor, Tensor | None]:
    """First and second moments of normalised heatmaps.

    Args:
        heatmap: (B, K, H, W), each map summing to 1.

    Returns:
        shift (B, K, 2) = sum_z M(z) z and covar (B, K, 2, 2) = sum_z M(z) (z - shift)(z - shift)^T.
    """
    heatmap = _fp32(heatmap)
    grid = make_coordinate_grid(heatmap.shape[2:], heatmap.dtype, heatmap.device)  # (H, W, 2)
    weights = heatmap.unsqueeze(-1)  # (B, K, H, W, 1)
    shift = (weights * grid).sum(dim=(2, 3))  # (B, K, 2)
    if not with_covar:
        return shift, None
    centred = grid - shift[:, :, None, None, :]  # (B, K, H, W, 2)
    covar = (centred.unsqueeze(-1) * centred.unsqueeze(-2) * weights.unsqueeze(-1)).sum(dim=(2, 3))
    return shift, covar


def _fp32(x: Tensor) -> Tensor:
    return x if x.dtype == torch.float64 else x.float()


def inverse_2x2(matrix: Tensor) -> Tensor:
    """Closed-form inverse of 2x2 matrices (..., 2, 2), computed in float32 (float64 stays float64) with
    autocast off, so it works inside ``torch.autocast`` and exports to ONNX without a custom operator.
    Equal to ``torch.linalg.inv`` up to float rounding; singular matrices give inf/nan like it does."""
    with torch.autocast(matrix.device.type, enabled=False):
        m = _fp32(matrix)
        a, b, c, d = m[..., 0, 0], m[..., 0, 1], m[..., 1, 0], m[..., 1, 1]
        # float32 products are exact in float64: the determinant loses no digits to cancellation
        det = (a.double() * d.double() - b.double() * c.double()).to(m.dtype)
        rows = torch.stack([torch.stack([d, -b], -1), torch.stack([-c, a], -1)], -2)
        return rows / det[..., None, None]


def symmetric_eig_2x2(covar: Tensor, eps: float = 1e-12) -> tuple[Tensor, Tensor]:
    """Closed-form eigendecomposition of symmetric PSD 2x2 matrices ``covar = U diag(S) U^T`` (..., 2, 2)
    (= their SVD), in float32 with autocast off; exportable to ONNX.

    S is sorted in descending order; ``U = [[-cos t, -sin t], [-sin t, cos t]]`` with
    ``t = atan2(2 b, a - c) / 2`` (and the identity or the axis swap for exactly diagonal ones), negated
    where ``b > 0`` and ``a^2 + 2 b^2 < a c``: LAPACK's signs (its first Householder reflection maps
    ``[a, b]`` to ``[-r, 0]``; the 2x2 bidiagonal step then flips U where ``b > 0`` and ``r^2 < det``)."""
    with torch.autocast(covar.device.type, enabled=False):
        m = _fp32(covar)
        a, b, c = m[..., 0, 0], 0.5 * (m[..., 0, 1] + m[..., 1, 0]), m[..., 1, 1]
        half_diff = 0.5 * (a - c)
        radius = torch.sqrt(half_diff * half_diff + b * b + eps * eps)
        mean = 0.5 * (a + c)
        s = torch.stack([mean + radius, (mean - radius).clamp(min=0)], -1)
        # cos/sin of the principal axis angle t (t in (-pi/2, pi/2], so cos >= 0), by half-angle formulas
        cos2 = half_diff / radius
        cos = torch.sqrt((0.5 * (1 + cos2)).clamp(min=0))
        sin = torch.sqrt((0.5 * (1 - cos2)).clamp(min=0)) * torch.where(b < 0, -1.0, 1.0).to(m)
        u = torch.stack([torch.stack([-cos, -sin], -1), torch.stack([-sin, cos], -1)], -2)
        flip = (b > 0) & (a * a + 2 * b * b < a * c)  # where LAPACK returns -U
        u = u * torch.where(flip, -1.0, 1.0).to(m)[..., None, None]
        # exactly diagonal matrices: LAPACK returns the identity or the swap [[0, 1], [1, 0]]
        swap = (a < c).to(m.dtype)[..., None, None]
        eye = torch.eye(2, dtype=m.dtype, device=m.device)
        diagonal = eye * (1 - swap) + eye.flip(-1) * swap
        u = torch.where((b == 0)[..., None, None], diagonal, u)
        return u, s


def covar_to_affine(covar: Tensor, closed_form: bool = False) -> tuple[Tensor, Tensor, Tensor]:
    """PCA of 2x2 covariances: ``affine = U diag(sqrt(S))`` with ``covar = U S U^T``.

    The SVD runs on the CPU (LAPACK), as in the official implementation, so the signs of the singular
    vectors, and therefore ``affine``, match the released models on every device. It runs in float32
    whatever autocast is active. ``closed_form`` uses :func:`symmetric_eig_2x2` instead (ONNX export).

    Args:
        covar: (B, K, 2, 2).

    Returns:
        affine (B, K, 2, 2), u (B*K, 2, 2), d (B*K, 2, 2).
    """
    shape = covar.shape
    flat = _fp32(covar).reshape(-1, 2, 2)
    with torch.autocast(covar.device.type, enabled=False):
        if closed_form:
            u, s = symmetric_eig_2x2(flat)
        else:
            u, s, _ = torch.linalg.svd(flat.cpu(), full_matrices=False)
            u, s = u.to(covar.device), s.to(covar.device)
        root = s.sqrt()
        d = torch.diag_embed(root)
        affine = (u * root.unsqueeze(-2)).reshape(shape)  # u @ diag(sqrt(s))
    return affine, u, d


def region_to_gaussian(shift: Tensor, covar: Tensor | float, spatial_size: tuple[int, int]) -> Tensor:
    """Unnormalised Gaussians exp(-0.5 (z - shift)^T covar^-1 (z - shift)) on the coordinate grid.

    Args:
        shift: (..., 2) centres.
        covar: (..., 2, 2) covariances, or one float variance shared by all.
        spatial_size: (H, W).

    Returns:
        (..., H, W).
    """
    shift = _fp32(shift)
    grid = make_coordinate_grid(spatial_size, shift.dtype, shift.device)  # (H, W, 2)
    lead = shift.shape[:-1]
    centred = grid.view((1,) * len(lead) + grid.shape) - shift.view(*lead, 1, 1, 2)  # (..., H, W, 2)
    if isinstance(covar, (float, int)):
        return torch.exp(-0.5 * (centred**2).sum(-1) / covar)
    # the quadratic form written out elementwise: float32 under autocast, no tiny batched matmuls
    p = inverse_2x2(covar).view(*lead, 1, 1, 2, 2).to(shift.dtype)
    x, y = centred[..., 0], centred[..., 1]
    mahalanobis = x * (p[..., 0, 0] * x + p[..., 0, 1] * y) + y * (p[..., 1, 0] * x + p[..., 1, 1] * y)
    return torch.exp(-0.5 * mahalanobis)


def to_homogeneous(coordinates: Tensor) -> Tensor:
    """Append a 1 to the last dimension: (..., 2) -> (..., 3)."""
    return torch.cat([coordinates, torch.ones_like(coordinates[..., :1])], dim=-1)


def from_homogeneous(coordinates: Tensor) -> Tensor:
    """Divide by the last coordinate: (..., 3) -> (..., 2)."""
    return coordinates[..., :2] / coordinates[..., 2:3]


def region_transforms(
    source_region_params: RegionParams, driving_region_params: RegionParams, revert_axis_swap: bool = True
) -> Tensor | None:
    """The 2x2 part of each region's driving-to-source motion, A_S A_D^-1 (B, K, 2, 2).

    With ``revert_axis_swap`` the matrix is multiplied by the sign of its [0, 0] entry, which undoes a
    PCA axis flip between the two frames. Returns None when the regions carry no ``affine``.
    """
    if "affine" not in driving_region_params:
        return None
    with torch.autocast(driving_region_params["affine"].device.type, enabled=False):
        source_affine = _fp32(source_region_params["affine"])
        affine = torch.matmul(source_affine, inverse_2x2(driving_region_params["affine"]).to(source_affine))
    if revert_axis_swap:
        affine = affine * torch.sign(affine[:, :, 0:1, 0:1])
    return affine


def sparse_motions(
    identity_grid: Tensor,
    source_region_params: RegionParams,
    driving_region_params: RegionParams,
    bg_params: Tensor | None = None,
    revert_axis_swap: bool = True,
) -> Tensor:
    """Candidate backward flows: the background motion followed by one affine motion per region.

    Region k maps a driving coordinate z to ``A_S A_D^-1 (z - mu_D) + mu_S``; the background maps z by
    the 3x3 ``bg_params`` (identity when None).

    Args:
        identity_grid: (H, W, 2) coordinate grid.
        bg_params: (B, 3, 3) or None.

    Returns:
        (B, K + 1, H, W, 2) grid_sample coordinates; index 0 is the background.
    """
    shift_d = _fp32(driving_region_params["shift"])
    b, k = shift_d.shape[:2]
    h, w = identity_grid.shape[:2]
    grid = _fp32(identity_grid).view(1, 1, h, w, 2)
    relative = grid - shift_d.view(b, k, 1, 1, 2)  # (B, K, H, W, 2)
    affine = region_transforms(source_region_params, driving_region_params, revert_axis_swap)
    if affine is not None:  # affine (B, K, 2, 2) applied elementwise: float32 under autocast
        a = affine.to(relative.dtype)[:, :, None, None]  # (B, K, 1, 1, 2, 2)
        rx, ry = relative[..., 0:1], relative[..., 1:2]
        relative = torch.cat(
            [a[..., 0, 0:1] * rx + a[..., 0, 1:2] * ry, a[..., 1, 0:1] * rx + a[..., 1, 1:2] * ry], -1
        )
    driving_to_source = relative + _fp32(source_region_params["shift"]).view(b, k, 1, 1, 2)
    if bg_params is None:
        bg_grid = grid.expand(b, 1, h, w, 2)
    else:
        with torch.autocast(grid.device.type, enabled=False):
            bg = bg_params.to(grid.dtype).view(b, 1, 1, 1, 3, 3)
            bg_grid = torch.matmul(bg, to_homogeneous(grid).unsqueeze(-1))
        bg_grid = from_homogeneous(bg_grid.squeeze(-1))  # (B, 1, H, W, 2)
    return torch.cat([bg_grid, driving_to_source], dim=1)


def warp_image(
    image: Tensor, flow: Tensor, padding_mode: str = "zeros", keep_memory_format: bool = True
) -> Tensor:
    """Backward-warp ``image`` (B, C, H, W) by a grid_sample flow (B, h, w, 2), resized if needed.

    Sampling runs in the flow's precision (float32 under autocast: bfloat16 coordinates would be off by up
    to half a pixel) and keeps the image's memory format (grid_sample itself returns NCHW) unless
    ``keep_memory_format`` is False (for a caller whose next elementwise op writes channels-last anyway)."""
    h, w = image.shape[2:]
    channels_last = image.dim() == 4 and image.is_contiguous(memory_format=torch.channels_last)
    flow = _fp32(flow)
    image = image.to(flow.dtype)
    if flow.shape[1:3] != (h, w):
        flow = F.interpolate(flow.permute(0, 3, 1, 2), size=(h, w), mode="bilinear", align_corners=False)
        flow = flow.permute(0, 2, 3, 1)
    with torch.autocast(image.device.type, enabled=False):
        out = F.grid_sample(image, flow, padding_mode=padding_mode, align_corners=False)
    return out.contiguous(memory_format=torch.channels_last) if channels_last and keep_memory_format else out


def convex_hull_area(points: Tensor | list) -> float:
    """Area of the 2D convex hull of points (N, 2), in float64 (Andrew's monotone chain)."""
    pts = sorted(
        {(float(x), float(y)) for x, y in (points.tolist() if isinstance(points, Tensor) else points)}
    )
    if len(pts) < 3:
        return 0.0

    def cross(o, a, b):
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower: list = []
    for p in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    upper: list = []
    for p in reversed(pts):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    hull = lower[:-1] + upper[:-1]
    area = 0.0
    for i in range(len(hull)):
        x0, y0 = hull[i]
        x1, y1 = hull[(i + 1) % len(hull)]
        area += x0 * y1 - x1 * y0
    return abs(area) / 2.0


class Transform:
    """Random smooth warp (affine + thin-plate spline) used by the equivariance losses.

    ``theta`` (B, 2, 3) is the identity plus N(0, sigma_affine) noise; ``control_params`` (B, 1, P*P)
    are N(0, sigma_tps) weights of a TPS with P x P control points on the coordinate grid, using the
    L1 distance r and the kernel r^2 log(r + 1e-6) (as the official implementation).
    """

    def __init__(
        self,
        batch_size: int,
        sigma_affine: float = 0.05,
        sigma_tps: float | None = 0.005,
        points_tps: int | None = 5,
        generator: torch.Generator | None = None,
    ) -> None:
        noise = torch.normal(mean=0.0, std=sigma_affine * torch.ones(batch_size, 2, 3), generator=generator)
        theta = noise + torch.eye(2, 3).view(1, 2, 3)
        control_points = control_params = None
        if sigma_tps is not None and points_tps is not None:
            control_points = make_coordinate_grid((points_tps, points_tps)).unsqueeze(0)  # (1, P, P, 2)
            control_params = torch.normal(
                mean=0.0, std=sigma_tps * torch.ones(batch_size, 1, points_tps**2), generator=generator
            )
        self._set(theta, control_points, control_params)

    def _set(self, theta: Tensor, control_points: Tensor | None, control_params: Tensor | None) -> None:
        self.theta = theta
        self.batch_size = theta.shape[0]
        self.control_points = control_points
        self.control_params = control_params
        self.tps = control_params is not None

    @classmethod
    def from_params(
        cls, theta: Tensor, control_points: Tensor | None = None, control_params: Tensor | None = None
    ) -> Transform:
        """Build the transform from given parameters (theta (B, 2, 3), control points (1, P, P, 2),
        control params (B, 1, P*P))."""
        obj = cls.__new__(cls)
        obj._set(theta, control_points, control_params)
        return obj

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> Transform:
        def move(t):
            return None if t is None else t.to(device=device, dtype=dtype or t.dtype)

        return Transform.from_params(move(self.theta), move(self.control_points), move(self.control_params))

    def warp_coordinates(self, coordinates: Tensor) -> Tensor:
        """Map coordinates (B, N, 2) through the warp."""
        theta = self.theta.to(coordinates)
        affine = theta[:, None, :, :2]  # (B, 1, 2, 2)
        transformed = torch.matmul(affine, coordinates.unsqueeze(-1)).squeeze(-1) + theta[:, None, :, 2]
        if self.tps:
            points = self.control_points.to(coordinates).view(1, 1, -1, 2)
            params = self.control_params.to(coordinates)  # (B, 1, P*P)
            distances = (
                (coordinates.view(coordinates.shape[0], -1, 1, 2) - points).abs().sum(-1)
            )  # (B, N, P*P)
            kernel = distances**2 * torch.log(distances + 1e-6)
            transformed = transformed + (kernel * params).sum(dim=2).view(self.batch_size, -1, 1)
        return transformed

    def jacobian(self, coordinates: Tensor) -> Tensor:
        """Analytic Jacobian of ``warp_coordinates`` at coordinates (B, N, 2) -> (B, N, 2, 2).

        Equal to the autograd Jacobian (differentiable, so usable inside a loss).
        """
        theta = self.theta.to(coordinates)
        jac = theta[:, None, :, :2].expand(coordinates.shape[0], coordinates.shape[1], 2, 2)
        if self.tps:
            points = self.control_points.to(coordinates).view(1, 1, -1, 2)
            params = self.control_params.to(coordinates)  # (B, 1, P*P)
            delta = coordinates.view(coordinates.shape[0], -1, 1, 2) - points  # (B, N, P*P, 2)
            r = delta.abs().sum(-1, keepdim=True)
            d_kernel = 2 * r * torch.log(r + 1e-6) + r**2 / (r + 1e-6)  # d/dr of r^2 log(r + eps)
            grad = (d_kernel * torch.sign(delta) * params.unsqueeze(-1)).sum(dim=2)  # (B, N, 2)
            jac = jac + grad.unsqueeze(-2)  # the TPS term adds the same scalar to x and y
        return jac

    def transform_frame(self, frame: Tensor) -> Tensor:
        """Warp frames (B, C, H, W) with reflection padding."""
        b, _, h, w = frame.shape
        grid = make_coordinate_grid((h, w), frame.dtype, frame.device).reshape(1, h * w, 2).expand(b, -1, -1)
        grid = self.warp_coordinates(grid).view(b, h, w, 2)
        return F.grid_sample(frame, grid, padding_mode="reflection", align_corners=False)


def random_scale(
    region_params: RegionParams, scale: float, generator: torch.Generator | None = None
) -> RegionParams:
    """Scale shifts and affines by a random diagonal matrix diag(U(1-scale, 1+scale)) per sample.

    Used by AVD training to perturb the pose regions' shape.
    """
    shift = region_params["shift"]
    factors = torch.rand(shift.shape[0], 2, generator=generator).to(shift) * (2 * scale) + (1 - scale)
    theta = torch.diag_embed(factors).unsqueeze(1)  # (B, 1, 2, 2)
    return {
        "shift": torch.matmul(theta, shift.unsqueeze(-1)).squeeze(-1),
        "affine": torch.matmul(theta, region_params["affine"]),
    }
