"""Real human motion for the demo dataset: DeepMimic mocap clips shipped with pybullet, mixed into long
videos.

The clips live in ``pybullet_data/data/motions/humanoid3d_*.txt`` (JSON, key ``Frames``). One row is
``[duration, root pos (3), root quat (w, x, y, z), chest, neck, right hip (quat), right knee (angle),
right ankle, right shoulder (quat), right elbow (angle), left hip, left knee, left ankle, left shoulder,
left elbow]`` (44 numbers) in DeepMimic's y-up world, the layout ``pybullet_envs.deep_mimic`` reads.

A video is a seeded random sequence of *segments* (a clip played at one speed from some clip time). Each
segment is turned about the vertical axis and moved on the floor so that it starts where and facing the
way the previous one is at that moment, then the two are cross-faded (slerp of every rotation) over 10-20
frames. Looping clips keep going across their loop point with the clip's own per-loop turn and shift, so
a walk walks on and a spin spins on. Everything here is numpy on float64 and depends only on the seed.

A pose row (``POSE_DIM`` = 43 numbers) is what :mod:`posevae.data.demo.scene` feeds to pybullet: base
position (3), base quaternion (x, y, z, w), then the joint positions of ``JOINT_INDICES`` in order
(quaternions x, y, z, w for spherical joints, one angle for knees and elbows).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

FPS = 30.0
"""Frame rate of the rendered videos (clip time advances ``speed / FPS`` seconds a frame)."""

# Spherical joints and revolute joints of pybullet's humanoid.urdf (link indices with
# URDF_MAINTAIN_LINK_ORDER) and their columns in a DeepMimic row.
SPHERICAL = (  # (name, link index, first column of w,x,y,z in the mocap row)
    ("chest", 1, 8),
    ("neck", 2, 12),
    ("right_hip", 3, 16),
    ("right_ankle", 5, 21),
    ("right_shoulder", 6, 25),
    ("left_hip", 9, 30),
    ("left_ankle", 11, 35),
    ("left_shoulder", 12, 39),
)
REVOLUTE = (  # (name, link index, column of the angle)
    ("right_knee", 4, 20),
    ("right_elbow", 7, 29),
    ("left_knee", 10, 34),
    ("left_elbow", 13, 43),
)
JOINT_INDICES = (1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13)
"""pybullet joint indices in the order of a pose row (after the 7 base numbers)."""
POSE_DIM = 7 + 4 * len(SPHERICAL) + len(REVOLUTE)  # 43

# Clips used and how often a segment picks them. Lying-on-the-floor clips (crawl, roll, get-ups) are
# left out: the person would not fill the frame's height. "loop" clips play a random stretch from a random
# clip time; the others play once from the start (a whole kick, cartwheel, backflip ...).
CLIPS = {
    "dance_a": {"weight": 3.0, "loop": True},
    "dance_b": {"weight": 3.0, "loop": True},
    "spin": {"weight": 1.2, "loop": True},
    "walk": {"weight": 1.0, "loop": True},
    "run": {"weight": 0.5, "loop": True, "max_speed": 1.1},
    "jump": {"weight": 1.0, "loop": False},
    "kick": {"weight": 1.0, "loop": False},
    "punch": {"weight": 1.0, "loop": False},
    "spinkick": {"weight": 0.8, "loop": False, "max_speed": 1.2},
    "cartwheel": {"weight": 0.6, "loop": False, "max_speed": 1.2},
    "backflip": {"weight": 0.5, "loop": False, "max_speed": 1.0},  # already fast (and keyed at 16 fps)
}
DANCE_CLIPS = ("dance_a", "dance_b")

SPEED_RANGE = (0.7, 1.4)
BLEND_RANGE = (10, 20)  # cross-fade length in frames, inclusive
LOOP_SECONDS = (2.0, 6.0)  # how long a looping clip plays (output seconds)


def motions_dir() -> Path:
    import pybullet_data

    return Path(pybullet_data.getDataPath()) / "data" / "motions"


# ----------------------------------------------------------------------------------------------------------
# quaternion helpers (x, y, z, w), vectorised over leading axes


def quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ax, ay, az, aw = np.moveaxis(a, -1, 0)
    bx, by, bz, bw = np.moveaxis(b, -1, 0)
    return np.stack(
        [
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
            aw * bw - ax * bx - ay * by - az * bz,
        ],
        axis=-1,
    )


def quat_normalize(q: np.ndarray) -> np.ndarray:
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def quat_slerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Shortest-path slerp from ``a`` to ``b``; ``t`` broadcasts against the leading axes."""
    t = np.asarray(t, dtype=np.float64)[..., None]
    dot = np.sum(a * b, axis=-1, keepdims=True)
    b = np.where(dot < 0, -b, b)
    return _slerp_path(a, b, t, np.abs(dot))


def _slerp_path(a: np.ndarray, b: np.ndarray, t: np.ndarray, dot: np.ndarray) -> np.ndarray:
    """Slerp from ``a`` to ``b`` along the path given by their dot product (no sign flipping here)."""
    theta = np.arccos(np.clip(dot, -1.0, 1.0))
    sin = np.sin(theta)
    small = sin < 1e-6
    safe = np.where(small, 1.0, sin)
    wa = np.where(small, 1.0 - t, np.sin((1.0 - t) * theta) / safe)
    wb = np.where(small, t, np.sin(t * theta) / safe)
    return quat_normalize(wa * a + wb * b)


def yaw_quat(theta: np.ndarray | float) -> np.ndarray:
    """Rotation by ``theta`` about the vertical (y) axis."""
    theta = np.asarray(theta, dtype=np.float64)
    z = np.zeros_like(theta)
    return np.stack([z, np.sin(theta / 2), z, np.cos(theta / 2)], axis=-1)


def yaw_of(q: np.ndarray) -> np.ndarray:
    """Heading of a root rotation: the angle of its twist about the vertical axis."""
    return 2.0 * np.arctan2(q[..., 1], q[..., 3])


def rotate_xz(theta: float, x: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Apply the y-axis rotation of ``theta`` to floor coordinates (x, z)."""
    c, s = math.cos(theta), math.sin(theta)
    return c * x + s * z, -s * x + c * z


# ----------------------------------------------------------------------------------------------------------
# clips


@dataclass(frozen=True)
class Clip:
    name: str
    loop: bool  # the file says "wrap": it may be played on across its end
    dt: float  # seconds a key frame
    root_pos: np.ndarray  # (T, 3)
    root_rot: np.ndarray  # (T, 4) x y z w
    sph: np.ndarray  # (T, 8, 4) x y z w
    rev: np.ndarray  # (T, 4)

    @property
    def duration(self) -> float:
        return self.dt * (len(self.root_pos) - 1)


def _hemisphere_continuous(q: np.ndarray) -> np.ndarray:
    """Flip signs along the time axis (0) so that consecutive quaternions have positive dot products."""
    q = q.copy()
    for t in range(1, len(q)):
        flip = np.sum(q[t] * q[t - 1], axis=-1) < 0
        q[t][flip] *= -1
    return q


def _wxyz_to_xyzw(a: np.ndarray) -> np.ndarray:
    return np.concatenate([a[..., 1:4], a[..., :1]], axis=-1)


@cache
def load_clip(name: str) -> Clip:
    path = motions_dir() / f"humanoid3d_{name}.txt"
    with open(path) as f:
        data = json.load(f)
    rows = np.asarray(data["Frames"], dtype=np.float64)
    if rows.ndim != 2 or rows.shape[1] != 44:
        raise ValueError(f"unexpected mocap layout in {path}: shape {rows.shape}")
    root_rot = quat_normalize(_wxyz_to_xyzw(rows[:, 4:8]))
    sph = np.stack([_wxyz_to_xyzw(rows[:, c : c + 4]) for _, _, c in SPHERICAL], axis=1)
    rev = np.stack([rows[:, c] for _, _, c in REVOLUTE], axis=1)
    return Clip(
        name=name,
        loop=data.get("Loop", "none") == "wrap",
        dt=float(rows[0, 0]),
        root_pos=rows[:, 1:4].copy(),
        root_rot=_hemisphere_continuous(root_rot),
        sph=_hemisphere_continuous(quat_normalize(sph)),
        rev=rev,
    )


@dataclass
class Poses:
    """A stretch of poses: root position (N, 3); root rotation as a heading ``yaw`` (N,) (continuous, not
    wrapped, so cross-fades turn the short way round whatever the clips do) times a ``swing`` (N, 4) that
    tilts the body; joint rotations (N, 8, 4) and angles (N, 4)."""

    root_pos: np.ndarray
    yaw: np.ndarray
    swing: np.ndarray
    sph: np.ndarray
    rev: np.ndarray

    FIELDS = ("root_pos", "yaw", "swing", "sph", "rev")

    def arrays(self) -> tuple:
        return tuple(getattr(self, f) for f in self.FIELDS)

    @property
    def root_rot(self) -> np.ndarray:
        return quat_mul(yaw_quat(self.yaw), self.swing)

    def __len__(self) -> int:
        return len(self.root_pos)

    def rows(self) -> np.ndarray:
        """(N, POSE_DIM) pose rows in pybullet's order (see the module docstring)."""
        n = len(self)
        out = np.empty((n, POSE_DIM))
        out[:, 0:3] = self.root_pos
        out[:, 3:7] = self.root_rot
        col = 7
        si = ri = 0
        revolute = {link for _, link, _ in REVOLUTE}
        for j in JOINT_INDICES:
            if j in revolute:
                out[:, col] = self.rev[:, ri]
                ri += 1
                col += 1
            else:
                out[:, col : col + 4] = self.sph[:, si]
                si += 1
                col += 4
        return out


def sample_clip(clip: Clip, times: np.ndarray) -> Poses:
    """Poses of ``clip`` at clip times ``times`` (seconds). Looping clips continue past their end with the
    loop's own turn and shift (a rigid floor motion mapping the first frame's root onto the last one's);
    the others hold their end poses."""
    times = np.asarray(times, dtype=np.float64)
    if np.any(times < 0):
        raise ValueError("clip times must be >= 0")
    n_key = len(clip.root_pos)
    dur = clip.duration
    if clip.loop:
        cycles = np.floor(times / dur).astype(np.int64)
        local = times - cycles * dur
    else:
        cycles = np.zeros(len(times), dtype=np.int64)
        local = np.clip(times, 0.0, dur)
    f = np.clip(local / clip.dt, 0.0, n_key - 1)
    i0 = np.minimum(np.floor(f).astype(np.int64), n_key - 2)
    frac = f - i0
    i1 = i0 + 1
    pos = clip.root_pos[i0] + frac[:, None] * (clip.root_pos[i1] - clip.root_pos[i0])
    rot = quat_slerp(clip.root_rot[i0], clip.root_rot[i1], frac)
    sph = quat_slerp(clip.sph[i0], clip.sph[i1], frac[:, None])
    rev = clip.rev[i0] + frac[:, None] * (clip.rev[i1] - clip.rev[i0])
    if clip.loop and np.any(cycles != 0):
        # per-loop floor transform C(p) = R(d) (p - p0) + p_end, applied k times
        d_yaw = float(yaw_of(clip.root_rot[-1]) - yaw_of(clip.root_rot[0]))
        p0 = clip.root_pos[0, [0, 2]]
        pe = clip.root_pos[-1, [0, 2]]
        bx, bz = rotate_xz(d_yaw, -p0[0], -p0[1])
        b = np.array([bx + pe[0], bz + pe[1]])
        for k in np.unique(cycles):  # times are >= 0, so k >= 0
            sel = cycles == k
            # C^k(x) = R(k d) x + sum_{j<k} R(j d) b
            t = np.zeros(2)
            for j in range(int(k)):
                t += np.array(rotate_xz(j * d_yaw, b[0], b[1]))
            ang = float(k) * d_yaw
            x, z = rotate_xz(ang, pos[sel, 0], pos[sel, 2])
            pos[sel, 0] = x + t[0]
            pos[sel, 2] = z + t[1]
            rot[sel] = quat_mul(yaw_quat(np.full(sel.sum(), ang)), rot[sel])
    yaw = yaw_of(rot)
    swing = quat_mul(yaw_quat(-yaw), rot)
    return Poses(pos, np.unwrap(yaw), swing, sph, rev)


def align(poses: Poses, at: int, target_xz: np.ndarray, target_yaw: float) -> Poses:
    """Turn ``poses`` about the vertical axis and move them on the floor so that frame ``at`` has its root
    at ``target_xz`` facing ``target_yaw``."""
    d = float(target_yaw - poses.yaw[at])
    px, pz = poses.root_pos[at, 0], poses.root_pos[at, 2]
    x, z = rotate_xz(d, poses.root_pos[:, 0] - px, poses.root_pos[:, 2] - pz)
    pos = poses.root_pos.copy()
    pos[:, 0] = x + target_xz[0]
    pos[:, 2] = z + target_xz[1]
    return Poses(pos, poses.yaw + d, poses.swing, poses.sph, poses.rev)


def _slerp_tracks(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Slerp between two quaternion tracks (time on axis 0) without ever switching path mid-way: both
    tracks are made sign-continuous in time and ``b`` takes the sign nearest ``a`` at the first frame,
    then each frame is interpolated along that one path (the long way round if they drift apart)."""
    a = _hemisphere_continuous(a)
    b = _hemisphere_continuous(b)
    b = np.where((np.sum(a[:1] * b[:1], axis=-1) < 0)[..., None], -b, b)
    t = w.reshape((-1,) + (1,) * (a.ndim - 1))
    return _slerp_path(a, b, t, np.sum(a * b, axis=-1, keepdims=True))


def blend(a: Poses, b: Poses, w: np.ndarray) -> Poses:
    """Cross-fade from ``a`` (w = 0) to ``b`` (w = 1); ``w`` has one weight a frame."""
    return Poses(
        a.root_pos + w[:, None] * (b.root_pos - a.root_pos),
        a.yaw + w * (b.yaw - a.yaw),
        _slerp_tracks(a.swing, b.swing, w),
        _slerp_tracks(a.sph, b.sph, w),
        a.rev + w[:, None] * (b.rev - a.rev),
    )


# ----------------------------------------------------------------------------------------------------------
# videos


@dataclass(frozen=True)
class Segment:
    clip: str
    speed: float
    start_time: float  # clip time of the segment's first frame (seconds)
    first_frame: int  # output frame where it starts (its cross-fade in starts here)
    n_frames: int  # frames until the next segment starts (then it fades out over `blend_out` more)
    blend_out: int

    def as_dict(self) -> dict:
        return {
            "clip": self.clip,
            "speed": round(self.speed, 4),
            "start_time": round(self.start_time, 4),
            "first_frame": self.first_frame,
            "n_frames": self.n_frames,
        }


def plan_segments(rng: np.random.Generator, n_frames: int, *, first_clip: str | None = None) -> list[Segment]:
    """A random sequence of segments covering ``n_frames`` output frames."""
    names = list(CLIPS)
    weights = np.array([CLIPS[c]["weight"] for c in names])
    segs: list[Segment] = []
    frame = 0
    prev = None
    while frame < n_frames:
        if first_clip is not None and not segs:
            name = first_clip
        else:
            p = weights * np.array([0.0 if c == prev else 1.0 for c in names])
            name = names[int(rng.choice(len(names), p=p / p.sum()))]
        clip = load_clip(name)
        speed = float(rng.uniform(SPEED_RANGE[0], CLIPS[name].get("max_speed", SPEED_RANGE[1])))
        blend_out = int(rng.integers(BLEND_RANGE[0], BLEND_RANGE[1] + 1))
        if CLIPS[name]["loop"]:
            start = float(rng.uniform(0.0, clip.duration))
            n = round(rng.uniform(*LOOP_SECONDS) * FPS)
        else:
            start = 0.0
            # the whole clip; the cross-fade to the next one overlaps its last frames
            n = math.ceil(clip.duration * FPS / speed) - blend_out // 2
        n = max(n, 2 * BLEND_RANGE[1] + 2)
        segs.append(Segment(name, speed, start, frame, n, blend_out))
        frame += n
        prev = name
    return segs


def synthesize(segments: list[Segment], n_frames: int, *, start_yaw: float = 0.0) -> Poses:
    """Play the segments one after the other with cross-fades; returns ``n_frames`` poses."""
    total = segments[-1].first_frame + segments[-1].n_frames + segments[-1].blend_out
    out = Poses(
        np.zeros((total, 3)),
        np.zeros(total),
        np.zeros((total, 4)),
        np.zeros((total, 8, 4)),
        np.zeros((total, 4)),
    )
    prev_blend = 0
    for idx, seg in enumerate(segments):
        clip = load_clip(seg.clip)
        span = seg.n_frames + seg.blend_out
        times = seg.start_time + seg.speed * np.arange(span) / FPS
        poses = sample_clip(clip, times)
        a = seg.first_frame
        if idx == 0:
            poses = align(poses, 0, np.zeros(2), start_yaw)
        else:
            # start where (and facing where) the previous segment is at this frame
            poses = align(poses, 0, out.root_pos[a, [0, 2]], float(out.yaw[a]))
        if prev_blend:
            u = (np.arange(prev_blend) + 1) / (prev_blend + 1)
            w = u * u * (3 - 2 * u)  # smoothstep
            old = Poses(*(arr[a : a + prev_blend] for arr in out.arrays()))
            new = Poses(*(arr[:prev_blend] for arr in poses.arrays()))
            mixed = blend(old, new, w)
            for dst, head, src in zip(out.arrays(), mixed.arrays(), poses.arrays(), strict=True):
                dst[a : a + prev_blend] = head
                dst[a + prev_blend : a + span] = src[prev_blend:]
        else:
            for dst, src in zip(out.arrays(), poses.arrays(), strict=True):
                dst[a : a + span] = src
        prev_blend = seg.blend_out
    return Poses(*(arr[:n_frames] for arr in out.arrays()))


def make_video(rng: np.random.Generator, n_frames: int, *,
               first_clip: str | None = None) -> tuple[np.ndarray, list[Segment]]:
    """(pose rows (n_frames, POSE_DIM), segments) for one video. The dancer starts at the origin facing +z
    (towards where the camera starts), give or take 40 degrees."""
    segs = plan_segments(rng, n_frames, first_clip=first_clip)
    start_yaw = -math.pi / 2 + float(rng.uniform(-0.7, 0.7))
    poses = synthesize(segs, n_frames, start_yaw=start_yaw)
    return poses.rows(), segs
