"""The pybullet side of the demo renderer: a coloured humanoid in a DIRECT connection, posed from pose
rows (see :mod:`posevae.data.demo.motion`), rendered with the tiny (CPU) renderer.

Only the person is rasterised by pybullet (cheap at 64x128). The floor and sky are painted afterwards
with numpy by casting each background pixel's ray against the floor plane y = 0: a plain warm floor with
faint 1 m tiles that fade into haze with distance, a soft blob shadow under the dancer, and a sky
gradient. That costs a fraction of rasterising a big floor and never aliases.

The world is DeepMimic's: y up, metres.
"""

from __future__ import annotations

import math

import numpy as np

from posevae.data.demo.humanoid import LINKS_NEEDED, SCALE, keypoints_from_link_states
from posevae.data.demo.motion import JOINT_INDICES, POSE_DIM, REVOLUTE
from posevae.data.native_output import quiet_c_output

REVOLUTE_LINKS = frozenset(link for _, link, _ in REVOLUTE)

# clothing: link index -> RGB (a dancer in a yellow top with one red and one teal sleeve, dark blue and
# purple leggings, dark shoes)
SKIN = (0.93, 0.74, 0.60)
LINK_COLORS = {
    0: (0.16, 0.17, 0.30),  # pelvis
    1: (0.98, 0.80, 0.18),  # chest
    2: SKIN,  # head
    3: (0.14, 0.24, 0.62),  # right thigh
    4: (0.20, 0.32, 0.75),  # right shin
    5: (0.12, 0.12, 0.14),  # right foot
    6: (0.85, 0.13, 0.18),  # right upper arm
    7: SKIN,  # right forearm
    8: SKIN,  # right hand
    9: (0.45, 0.17, 0.55),  # left thigh
    10: (0.58, 0.25, 0.70),  # left shin
    11: (0.12, 0.12, 0.14),  # left foot
    12: (0.05, 0.60, 0.58),  # left upper arm
    13: SKIN,  # left forearm
    14: SKIN,  # left hand
}

FLOOR = np.array([0.62, 0.56, 0.48])
FLOOR_TILE_CONTRAST = 0.06
TILE_FADE = 12.0  # metres: tiles fade out by this distance
SKY_TOP = np.array([0.55, 0.65, 0.80])
SKY_HORIZON = np.array([0.82, 0.84, 0.86])
HAZE_START, HAZE_DIST = 3.0, 20.0  # metres: the floor fades into the horizon colour beyond HAZE_START
SHADOW_RADIUS = 0.38
SHADOW_STRENGTH = 0.35


class Scene:
    """One pybullet DIRECT connection with the humanoid loaded and coloured."""

    def __init__(self) -> None:
        with quiet_c_output():
            import pybullet as p
            import pybullet_data

            self.p = p
            self.client = p.connect(p.DIRECT)
            self.body = p.loadURDF(
                f"{pybullet_data.getDataPath()}/humanoid/humanoid.urdf",
                [0, 0.9, 0],
                globalScaling=SCALE,
                useFixedBase=True,
                flags=p.URDF_MAINTAIN_LINK_ORDER,
                physicsClientId=self.client,
            )
        for link, rgb in LINK_COLORS.items():
            p.changeVisualShape(self.body, link, rgbaColor=[*rgb, 1.0], physicsClientId=self.client)

    def close(self) -> None:
        if self.p.isConnected(physicsClientId=self.client):
            self.p.disconnect(physicsClientId=self.client)

    def set_pose(self, row: np.ndarray) -> None:
        """Put the humanoid in the pose of one pose row (base, then joints; see demo_motion)."""
        p = self.p
        if len(row) != POSE_DIM:
            raise ValueError(f"a pose row has {POSE_DIM} numbers, got {len(row)}")
        values = [float(v) for v in row]
        p.resetBasePositionAndOrientation(self.body, values[0:3], values[3:7], physicsClientId=self.client)
        positions = []
        col = 7
        for j in JOINT_INDICES:
            n = 1 if j in REVOLUTE_LINKS else 4
            positions.append(values[col : col + n])
            col += n
        p.resetJointStatesMultiDof(self.body, list(JOINT_INDICES), positions, physicsClientId=self.client)

    def keypoints(self) -> tuple[np.ndarray, np.ndarray]:
        """World keypoints (J, 3) and extra extent points of the current pose."""
        states = self.p.getLinkStates(
            self.body, list(LINKS_NEEDED), computeForwardKinematics=1, physicsClientId=self.client
        )
        origins = {link: (s[4], s[5]) for link, s in zip(LINKS_NEEDED, states, strict=True)}
        return keypoints_from_link_states(origins)

    def render_person(
        self, view: list[float], proj: list[float], width: int, height: int, light_dir: list[float]
    ) -> tuple[np.ndarray, np.ndarray]:
        """(rgb uint8 (H, W, 3), person mask bool (H, W)) of the current pose; background not painted."""
        p = self.p
        _, _, rgba, _, seg = p.getCameraImage(
            width,
            height,
            viewMatrix=view,
            projectionMatrix=proj,
            lightDirection=light_dir,
            lightColor=[1.0, 1.0, 1.0],
            lightAmbientCoeff=0.55,
            lightDiffuseCoeff=0.55,
            lightSpecularCoeff=0.05,
            shadow=0,
            renderer=p.ER_TINY_RENDERER,
            physicsClientId=self.client,
        )
        rgba = np.asarray(rgba, dtype=np.uint8).reshape(height, width, 4)
        seg = np.asarray(seg).reshape(height, width)
        return rgba[..., :3], seg >= 0


class Background:
    """Paints floor and sky for a camera: each pixel's ray is cut with the floor plane y = 0.

    The camera never rolls (its right axis is horizontal), so a ray's climb, and with it the sky colour,
    whether the ray meets the floor and how far away, depend on the image row only; the floor point is
    then an outer product of per-row and per-column terms. float32 throughout.
    """

    def __init__(self, width: int, height: int, fov_y_deg: float):
        self.width, self.height = width, height
        tan = math.tan(math.radians(fov_y_deg) / 2)
        self.cx = (((np.arange(width) + 0.5) / width * 2 - 1) * tan * width / height).astype(np.float32)
        self.cy = ((1 - (np.arange(height) + 0.5) / height * 2) * tan).astype(np.float32)
        self.norm = np.sqrt(self.cx[None, :] ** 2 + self.cy[:, None] ** 2 + 1).astype(np.float32)
        self.floor_rgb = (FLOOR * 255.0).astype(np.float32)
        self.horizon_rgb = (SKY_HORIZON * 255.0).astype(np.float32)
        self.sky_step = ((SKY_TOP - SKY_HORIZON) * 255.0).astype(np.float32)

    def paint(
        self, view: np.ndarray, eye: np.ndarray, shadow_xz: np.ndarray, shadow_height: float
    ) -> np.ndarray:
        """RGB uint8 (H, W, 3)."""
        f32 = np.float32
        R = np.asarray(view, dtype=np.float64)[:3, :3]  # rows: camera right, up, back in world coordinates
        right, up, back = R[0], R[1], R[2]
        # world ray of pixel (row i, col j): cx[j] * right + cy[i] * up - back; its y does not depend on j
        dy = (self.cy * up[1] - back[1]).astype(f32)
        row_norm = np.sqrt(self.cy**2 + 1)
        out = np.empty((self.height, self.width, 3), dtype=np.float32)
        sky_rows = dy >= -1e-6
        # sky: a gradient by the ray's climb (taken at the middle of the row)
        climb = np.clip(dy[sky_rows] / row_norm[sky_rows] / f32(0.35), 0.0, 1.0)
        out[sky_rows] = (self.horizon_rgb + climb[:, None] * self.sky_step)[:, None, :]
        rows = np.flatnonzero(~sky_rows)
        if len(rows):
            t = (-float(eye[1]) / dy[rows]).astype(f32)[:, None]  # (r, 1): ray length factor to the floor
            cy = self.cy[rows]
            # floor point relative to the shadow centre (keeps float32 precise far from the origin)
            ox, oz = float(eye[0] - shadow_xz[0]), float(eye[2] - shadow_xz[1])
            hx = (ox + t[:, 0] * (cy * up[0] - back[0]))[:, None] + t * (self.cx * f32(right[0]))[None, :]
            hz = (oz + t[:, 0] * (cy * up[2] - back[2]))[:, None] + t * (self.cx * f32(right[2]))[None, :]
            dist = t * self.norm[rows]
            tile_x, tile_z = math.floor(shadow_xz[0]), math.floor(shadow_xz[1])  # tile corner near the dancer
            fx, fz = f32(shadow_xz[0] - tile_x), f32(shadow_xz[1] - tile_z)
            parity = (tile_x + tile_z) % 2
            checker = ((np.floor(hx + fx) + np.floor(hz + fz)).astype(np.int32) + parity) & 1
            near = np.maximum(f32(1.0) - dist * f32(1.0 / TILE_FADE), f32(0.0))
            # tiles: 1 -+ contrast near the camera, fading to 1 far away
            shade = f32(1.0) + f32(FLOOR_TILE_CONTRAST) * near * (checker.astype(f32) * f32(2.0) - f32(1.0))
            h = max(float(shadow_height), 0.0)
            radius = SHADOW_RADIUS * (1.0 + 0.5 * h)
            strength = SHADOW_STRENGTH / (1.0 + 2.0 * h)
            shade *= f32(1.0) - f32(strength) * np.exp((hx * hx + hz * hz) * f32(-0.5 / radius**2))
            far = np.maximum(dist - f32(HAZE_START), f32(0.0))
            haze = far / (far + f32(HAZE_DIST))
            shade *= f32(1.0) - haze
            out[rows] = shade[..., None] * self.floor_rgb + haze[..., None] * self.horizon_rgb
        out += f32(0.5)
        return out.astype(np.uint8)


def light_direction(eye: np.ndarray, target: np.ndarray) -> list[float]:
    """Light from above, behind the camera and a little to its left."""
    back = eye - target
    back[1] = 0.0
    back /= max(np.linalg.norm(back), 1e-9)
    left = np.array([-back[2], 0.0, back[0]])
    d = back + np.array([0.0, 1.6, 0.0]) + 0.5 * left
    return [float(v) for v in d / np.linalg.norm(d)]


def compose(person: np.ndarray, mask: np.ndarray, background: np.ndarray) -> np.ndarray:
    """The person's pixels over the painted background (uint8 (H, W, 3))."""
    out = background.copy()
    out[mask] = person[mask]
    return out
