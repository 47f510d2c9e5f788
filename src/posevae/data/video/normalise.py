"""Pose normalisation for motion transfer, after Everybody Dance Now (Chan et al., 2019, section 3.2).

EDN maps the source dancer's skeleton into the target's frame by a scale and a translation, so that the
source's height and ankle position match the target's. Here both are read from one reference pose per
person: the source's first frame with a person and the target's first frame. Only the joints seen in
both are compared, so a half-visible person is measured on the same body parts on both sides:

    height  = lowest minus highest of those joints (head to ankles when the whole body is seen)
    scale   = target height / source height
    shift   : the source's lowest point (its ankle line) lands on the target's, and the horizontal centres
              (mean x of those joints) coincide

EDN also interpolates the scale between the nearest and farthest ankle positions of each video; with one
reference frame per person that reduces to the single scale above.
"""

from __future__ import annotations

import numpy as np

from posevae.errors import UserError


def normalising_transform(source_ref: np.ndarray, target_ref: np.ndarray) -> tuple[float, np.ndarray]:
    """(scale, shift (2,)) taking the source's reference joints (J, 2) onto the target's (J, 2)."""
    common = np.isfinite(source_ref).all(axis=1) & np.isfinite(target_ref).all(axis=1)
    src, tgt = source_ref[common], target_ref[common]
    if len(src) < 2 or np.ptp(src[:, 1]) < 1e-6 or np.ptp(tgt[:, 1]) < 1e-6:
        raise ValueError("fewer than two joints at different heights are seen in both reference poses")
    scale = float(np.ptp(tgt[:, 1]) / np.ptp(src[:, 1]))
    shift = np.array([tgt[:, 0].mean() - scale * src[:, 0].mean(), tgt[:, 1].max() - scale * src[:, 1].max()])
    return scale, shift.astype(np.float32)


def normalise_poses(
    joints: np.ndarray, source_ref: np.ndarray, target_ref: np.ndarray, where: str
) -> np.ndarray:
    """Joints (N, J, 2) of the source, scaled and shifted into the target's frame (see the module doc)."""
    try:
        scale, shift = normalising_transform(source_ref, target_ref)
    except ValueError as err:
        raise UserError(
            f"Cannot normalise the poses of {where} to the first frame: {err}. Pass --no-normalise, "
            "or a first frame that shows the same body parts as the video."
        ) from None
    return (joints * scale + shift).astype(np.float32)
