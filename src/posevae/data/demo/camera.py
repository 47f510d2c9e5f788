"""A camera operator for the demo videos: follows the dancer smoothly and keeps them large and in frame.

Everything is planned ahead for a whole video from the dancer's 3D points, so the smoothing is
non-causal (no lag). Per frame:

* azimuth: the camera stands in front of the dancer's *slowly averaged* facing direction (plus a fixed
  per-video offset), so quick turns and spins are seen from a steady camera but the dancer is mostly
  filmed from the front, as in a dance video;
* target: the low-pass filtered root position on the floor, and the middle of the body's vertical extent;
* zoom: per frame, the least distance at which every point (plus a margin for the limbs' thickness)
  projects within ``LIMIT_Y`` / ``LIMIT_X`` of the frame's half height / half width is exact (the camera's
  orientation does not depend on its distance); the distance used is a smooth envelope above it, so the
  dancer is as large as the smoothness allows (about 3/4 of the frame height, median) and never leaves
  the frame, zooming out for jumps, kicks and cartwheels.

Matrices are OpenGL style (column vectors, 4x4 numpy); ``gl_list`` turns one into the column-major list
pybullet's ``getCameraImage`` takes, so rendering and keypoint projection use the very same numbers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

FOV_Y = 28.0  # degrees, vertical
PITCH = math.radians(8.0)  # camera looks down by this much
NEAR, FAR = 0.05, 200.0
MIN_HALF_HEIGHT = 0.5  # metres: do not zoom in further on a crouching body
MARGIN = 0.05  # metres of body thickness around the points
LIMIT_Y, LIMIT_X = 0.95, 0.95  # |ndc| every point (plus margin) must stay within
SIGMA = 8.0  # frames: smoothing of the target
SIGMA_ZOOM = 6.0  # frames: smoothing of the distance (see smooth_envelope)
SIGMA_AZIMUTH = 75.0  # frames: averaging of the facing direction


def gaussian_filter1d(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing along axis 0 with edge padding (float64)."""
    x = np.asarray(x, dtype=np.float64)
    r = math.ceil(3 * sigma)
    if r == 0 or len(x) == 0:
        return x.copy()
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= k.sum()
    pad = [(r, r)] + [(0, 0)] * (x.ndim - 1)
    xp = np.pad(x, pad, mode="edge")
    out = np.zeros_like(x)
    for i, w in enumerate(k):
        out += w * xp[i : i + len(x)]
    return out


def _window_reduce(x: np.ndarray, radius: int, fn: Callable[..., np.ndarray]) -> np.ndarray:
    xp = np.pad(x, (radius, radius), mode="edge")
    win = np.lib.stride_tricks.sliding_window_view(xp, 2 * radius + 1)
    return fn(win, axis=-1)


def smooth_upper(x: np.ndarray, sigma: float = SIGMA) -> np.ndarray:
    """A smooth curve that is >= ``x`` everywhere: running max over the kernel's support, then Gaussian."""
    r = math.ceil(3 * sigma)
    return gaussian_filter1d(_window_reduce(x, r, np.max), sigma)


def smooth_envelope(x: np.ndarray, sigma: float, iterations: int = 8) -> np.ndarray:
    """A smooth curve >= ``x`` that hugs its peaks more closely than :func:`smooth_upper`: repeated
    Gaussian smoothing of max(curve, x), then whatever is still below ``x`` lifted by a smooth bump."""
    y = np.asarray(x, dtype=np.float64).copy()
    for _ in range(iterations):
        y = gaussian_filter1d(np.maximum(y, x), sigma)
    return y + smooth_upper(np.maximum(x - y, 0.0), sigma / 2)


def look_at(eye: np.ndarray, target: np.ndarray, up: Sequence[float] = (0.0, 1.0, 0.0)) -> np.ndarray:
    f = target - eye
    f = f / np.linalg.norm(f)
    s = np.cross(f, up)
    s = s / np.linalg.norm(s)
    u = np.cross(s, f)
    m = np.eye(4)
    m[0, :3], m[1, :3], m[2, :3] = s, u, -f
    m[0, 3], m[1, 3], m[2, 3] = -s @ eye, -u @ eye, f @ eye
    return m


def perspective(fov_y_deg: float, aspect: float, near: float = NEAR, far: float = FAR) -> np.ndarray:
    t = 1.0 / math.tan(math.radians(fov_y_deg) / 2)
    m = np.zeros((4, 4))
    m[0, 0] = t / aspect
    m[1, 1] = t
    m[2, 2] = (far + near) / (near - far)
    m[2, 3] = 2 * far * near / (near - far)
    m[3, 2] = -1.0
    return m


def gl_list(m: np.ndarray) -> list[float]:
    """A 4x4 matrix as pybullet's column-major list of 16 floats."""
    return [float(v) for v in np.asarray(m, dtype=np.float64).flatten(order="F")]


def project(points: np.ndarray, view: np.ndarray, proj: np.ndarray, width: int, height: int) -> np.ndarray:
    """World points (..., 3) -> pixel coordinates (..., 2) (x right, y down; pixel centres at +0.5)."""
    pts = np.concatenate([points, np.ones(points.shape[:-1] + (1,))], axis=-1)
    clip = pts @ (proj @ view).T
    ndc = clip[..., :3] / clip[..., 3:4]
    x = (ndc[..., 0] + 1.0) * 0.5 * width
    y = (1.0 - ndc[..., 1]) * 0.5 * height
    return np.stack([x, y], axis=-1)


def project_video(
    points: np.ndarray, views: np.ndarray, proj: np.ndarray, width: int, height: int
) -> np.ndarray:
    """:func:`project` for a whole video: points (N, P, 3), views (N, 4, 4) -> pixels (N, P, 2)."""
    pts = np.concatenate([points, np.ones(points.shape[:-1] + (1,))], axis=-1)
    clip = np.einsum("nij,npj->npi", proj[None] @ views, pts)
    ndc = clip[..., :2] / clip[..., 3:4]
    return np.stack([(ndc[..., 0] + 1.0) * 0.5 * width, (1.0 - ndc[..., 1]) * 0.5 * height], axis=-1)


@dataclass
class CameraPath:
    eye: np.ndarray  # (N, 3)
    target: np.ndarray  # (N, 3)
    views: np.ndarray  # (N, 4, 4)
    proj: np.ndarray  # (4, 4), the same for every frame

    def __len__(self) -> int:
        return len(self.eye)


def _views(eye: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Vectorised :func:`look_at` (up = +y) for (N, 3) eyes and targets."""
    f = target - eye
    f /= np.linalg.norm(f, axis=1, keepdims=True)
    s = np.cross(f, np.array([0.0, 1.0, 0.0]))
    s /= np.linalg.norm(s, axis=1, keepdims=True)
    u = np.cross(s, f)
    m = np.zeros((len(eye), 4, 4))
    m[:, 0, :3], m[:, 1, :3], m[:, 2, :3] = s, u, -f
    m[:, 0, 3] = -np.einsum("nk,nk->n", s, eye)
    m[:, 1, 3] = -np.einsum("nk,nk->n", u, eye)
    m[:, 2, 3] = np.einsum("nk,nk->n", f, eye)
    m[:, 3, 3] = 1.0
    return m


def _ndc(points: np.ndarray, views: np.ndarray, proj: np.ndarray) -> np.ndarray:
    pts = np.concatenate([points, np.ones(points.shape[:-1] + (1,))], axis=-1)  # (N, P, 4)
    clip = np.einsum("nij,npj->npi", proj[None] @ views, pts)
    return clip[..., :2] / clip[..., 3:4]


def plan_camera(
    points: np.ndarray, root: np.ndarray, facing: np.ndarray, *, aspect: float, azimuth_offset: float = 0.0
) -> CameraPath:
    """Cameras for one video.

    points: (N, P, 3) world points that must stay in frame (joints, top of the head ...).
    root: (N, 3) root (pelvis) positions. facing: (N,) the dancer's heading (radians about +y; 0 faces +x).
    """
    n = len(points)
    up = np.array([0.0, 1.0, 0.0])
    # where the camera stands: in front of the averaged facing direction
    vec = gaussian_filter1d(np.stack([np.cos(facing), np.sin(facing)], axis=1), SIGMA_AZIMUTH)
    az = gaussian_filter1d(np.unwrap(np.arctan2(vec[:, 1], vec[:, 0])), 30.0) + azimuth_offset
    # horizontal unit vector from the dancer towards the camera: the body's front (1, 0, 0) turned by az
    e = np.stack([np.cos(az), np.zeros(n), -np.sin(az)], axis=1)
    view_dir = e * math.cos(PITCH) + up * math.sin(PITCH)  # unit vector from the target to the eye
    fwd = -view_dir
    right = np.cross(fwd, up)
    right /= np.linalg.norm(right, axis=1, keepdims=True)
    cam_up = np.cross(right, fwd)

    # aim: smoothed root on the floor, middle of the smoothed vertical extent of the body
    tgt = gaussian_filter1d(root, SIGMA)
    top = gaussian_filter1d(points[..., 1].max(axis=1), SIGMA)
    bot = gaussian_filter1d(points[..., 1].min(axis=1), SIGMA)
    target = np.stack([tgt[:, 0], (top + bot) / 2, tgt[:, 2]], axis=1)

    # distance: the least that keeps every point (plus a margin) within the limits, exactly (the camera's
    # orientation does not depend on its distance), then a smooth curve above it
    tan_y = math.tan(math.radians(FOV_Y) / 2)
    tan_x = tan_y * aspect
    rel = points - target[:, None]
    u = np.abs(np.einsum("npk,nk->np", rel, cam_up)) + MARGIN
    r = np.abs(np.einsum("npk,nk->np", rel, right)) + MARGIN
    depth_off = np.einsum("npk,nk->np", rel, fwd)  # how much further than the target each point is
    need = np.maximum(u / (LIMIT_Y * tan_y), r / (LIMIT_X * tan_x)) - depth_off
    need = np.maximum(need.max(axis=1), MIN_HALF_HEIGHT / (LIMIT_Y * tan_y))
    dist = smooth_envelope(need, SIGMA_ZOOM)
    eye = target + view_dir * dist[:, None]
    return CameraPath(eye=eye, target=target, views=_views(eye, target), proj=perspective(FOV_Y, aspect))
