"""Pose data from ordinary video: ``posevae data from-video`` and ``posevae transfer --poses VIDEO``.

    decode    video files and folders of frames, frame-rate resampling
    estimate  MediaPipe Pose (lazy import, the ``video`` extra) and its landmarks -> the 18 skeleton joints
    track     gaps, segments, a steady crop box, cropping
    cache     decoded frames and landmarks, so a second run is fast
    layout    where the splits are cut; writing the lab layout whole
    pipeline  :func:`from_video`
    drive     poses of a video for ``posevae transfer``, normalised as in Everybody Dance Now

Only :mod:`.estimate` (and :mod:`.decode`, for ``cv2``) need the ``video`` extra, and only when called.
"""

from posevae.data.video.pipeline import VideoOptions, from_video

__all__ = ["VideoOptions", "from_video"]
