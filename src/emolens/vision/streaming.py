"""Frames of a video, webcam or WebSocket stream in, tracked :class:`FrameResult` objects out,
with the face detector run only every ``detect_every`` frames.

Detection is most of a frame's cost (three quarters of it on one core at 640x480 with one face);
between two detections each face is carried by following its landmarks and a few points inside
its box with pyramidal Lucas-Kanade optical flow (forward and back, on the faces' surroundings
only: under a millisecond), then re-aligned and classified
on every frame, so its label still changes frame by frame. The detector runs at once, on the
same frame, when a carried face cannot be followed (too few points found again), when its box
reaches the edge of the frame, or when its classifier confidence drops sharply (another face, a
hand, a bad carry), and whenever the frames change size; and on every frame while a face is
missing (for up to the tracker's patience), so that it is found again as soon as it reappears.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .align import to_grey
from .detectors.base import Detection
from .results import FrameResult
from .tracking import DEFAULT_PATIENCE, FaceTracker

#: Default ``detect_every``, chosen by benchmarks/video.py (docs/benchmarks-video.md): on one core,
#: 640x480, one face, the mean cost per frame falls steeply up to N=8 and little after (a carried
#: frame costs about a quarter of a detected one), while a new face waits up to N-1 frames (0.23 s
#: at 30 fps); per-frame labels agree with detecting every frame on 97-99% of frames for N=2..10.
DEFAULT_DETECT_EVERY = 8

#: A carried face whose own (unsmoothed) probability of its label falls by more than this since
#: the previous frame is looked for again by the detector, on the same frame.
CONFIDENCE_DROP = 0.3

#: Points followed per face besides its landmarks: a GRID x GRID lattice over the box's centre.
GRID = 3

#: Lucas-Kanade settings: window, pyramid levels, and the largest forward-backward error (px) of a
#: point that is kept (a point that does not come back to where it started was lost).
LK_WINDOW, LK_LEVELS, MAX_FB_ERROR = (15, 15), 2, 1.0


@dataclass
class _Face:
    """What the previous frame knows about one tracked face, to carry it into the next frame."""

    track_id: int
    detection: Detection
    confidence: float          # its own probability of its label in that frame
    label_index: int


class StreamTracker:
    """Turn frames, one at a time, into FrameResults whose faces carry stable ``track_id`` and
    smoothed probabilities. Made by :meth:`emolens.Recognizer.tracker` with the recogniser's
    settings (its ``min_confidence`` included); one per stream.

    ``detect_every``: run the detector on every N-th frame (1: every frame) and carry the faces in
    between; ``half_life``: seconds of probability smoothing per track (0: off); ``patience``:
    seconds a lost face keeps its id; ``confidence_drop``: see :data:`CONFIDENCE_DROP`;
    ``max_side``: the detection size (default: the pipeline's).
    """

    def __init__(self, pipeline, *, detect_every: int = DEFAULT_DETECT_EVERY, half_life: float = 0.5,
                 patience: float = DEFAULT_PATIENCE, min_confidence: float | None = None,
                 confidence_drop: float = CONFIDENCE_DROP, max_side: int | None = None):
        if int(detect_every) < 1:
            raise ValueError(f"detect_every must be >= 1, not {detect_every}")
        self.pipeline = pipeline
        self.max_side = max_side
        self.detect_every = int(detect_every)
        self.confidence_drop = confidence_drop
        self.faces = FaceTracker(half_life=half_life, patience=patience, min_confidence=min_confidence)
        self.reset()

    def reset(self) -> None:
        """Forget every face: the next frame is detected and ids start again at 1."""
        self.faces.reset()
        self._size: tuple[int, int] | None = None
        self._grey: np.ndarray | None = None
        self._carried: list[_Face] = []
        self._since_detection = 0
        self.frames = 0
        self.detections = 0

    def update(self, image: np.ndarray, *, bgr: bool = False, index: int | None = None,
               timestamp: float | None = None, source: str = "", pipeline=None) -> FrameResult:
        """The tracked faces of the next frame (an RGB array, or BGR with ``bgr=True``).

        ``timestamp``: seconds (for smoothing and patience; default: the clock); ``pipeline``: run
        on this one instead (an identical recogniser's, e.g. a server's pool) this time."""
        pipeline = pipeline or self.pipeline
        picture = _Picture(image, bgr)
        grey = picture.grey
        h, w = grey.shape
        if self._size is not None and self._size != (w, h):
            # each frame in its own pixels: boxes scale with the frame, the detector looks again
            self.faces.rescale(w / self._size[0], h / self._size[1])
            self._grey, self._carried = None, []
        self._size = (w, h)
        now = timestamp if timestamp is not None else time.monotonic()
        frame = None
        # while a face is missing (hidden, or gone for good) the detector looks on every frame, so it
        # gets its id back the moment it reappears; at most ``patience`` seconds per lost face
        missing = any(t.missed for t in self.faces.tracks)
        if self._grey is not None and self._since_detection < self.detect_every - 1 and not missing:
            frame = self._carry(pipeline, grey, source, now)
        if frame is None:
            t0 = time.perf_counter()
            frame = pipeline.run([picture.rgb], [source], max_side=self.max_side)[0]
            self.faces.update(frame, now)
            frame.timings_ms["track"] = (time.perf_counter() - t0) * 1e3 - frame.timings_ms["total"]
            frame.timings_ms["total"] += frame.timings_ms["track"]
            self._since_detection = 0
            self.detections += 1
        else:
            self._since_detection += 1
        frame.frame_index, frame.timestamp = index, timestamp
        self._remember(frame, grey)
        self.frames += 1
        return frame

    def _carry(self, pipeline, grey: np.ndarray, source: str, now: float) -> FrameResult | None:
        """This frame's faces carried from the previous one and classified, or None when the
        detector must look (a face lost, at the frame's edge, or much less confident)."""
        t0 = time.perf_counter()
        h, w = grey.shape
        if not self._carried:
            frame = FrameResult(faces=[], width=w, height=h, source=source, timings_ms={"track": 0.0, "total": 0.0})
            return self.faces.update(frame, now, ids=[])
        points = [_points(f.detection) for f in self._carried]
        start = np.cumsum([0] + [len(p) for p in points])
        old, new, good = _flow(self._grey, grey, np.concatenate(points), [f.detection.box for f in self._carried])
        detections = []
        for i, face in enumerate(self._carried):
            sl = slice(start[i], start[i + 1])
            moved = _follow(face.detection, old[sl], new[sl], good[sl])
            if moved is None or not _inside(moved.box, w, h):
                return None
            detections.append(moved)
        order = sorted(range(len(detections)), key=lambda i: detections[i].box[:2])
        t1 = time.perf_counter()
        frame = pipeline.classify_faces(grey, [detections[i] for i in order], source)
        for face, i in zip(frame.faces, order):
            before = self._carried[i]
            own = list(face.probabilities.values())[before.label_index]
            if before.confidence - own > self.confidence_drop:
                return None
        self.faces.update(frame, now, ids=[self._carried[i].track_id for i in order])
        frame.timings_ms["track"] = (t1 - t0) * 1e3
        frame.timings_ms["total"] += frame.timings_ms["track"]
        return frame

    def _remember(self, frame: FrameResult, grey: np.ndarray) -> None:
        self._grey = grey
        self._carried = []
        for face in frame.faces:
            own = face.raw_probabilities or face.probabilities
            values = np.array(list(face.probabilities.values()))
            label_index = int(values.argmax())
            marks = None if face.landmarks is None else np.array(face.landmarks, np.float32)
            self._carried.append(_Face(face.track_id, Detection(face.box, face.score, marks),
                                       float(list(own.values())[label_index]), label_index))


class _Picture:
    """A frame as given, with its grey version now and its RGB version only if asked (a carried
    frame needs only grey: for a BGR uint8 frame, one OpenCV conversion instead of two copies)."""

    def __init__(self, image: np.ndarray, bgr: bool):
        import cv2

        from .images import array_to_rgb

        self._rgb = None
        if bgr and isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 \
                and image.shape[2] == 3:
            self._bgr = image
            self.grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        else:
            self._rgb = array_to_rgb(image, bgr=bgr)
            self.grey = to_grey(self._rgb)

    @property
    def rgb(self) -> np.ndarray:
        import cv2

        if self._rgb is None:
            self._rgb = cv2.cvtColor(self._bgr, cv2.COLOR_BGR2RGB)
        return self._rgb


def _flow(before: np.ndarray, after: np.ndarray, points: np.ndarray, boxes) -> tuple[np.ndarray, ...]:
    """(points, where they went, found again?) with pyramidal Lucas-Kanade, forward then back.

    Only the part of the frames around the faces is looked at: faces move little in a frame, and
    the cost of Lucas-Kanade is mostly building the image pyramids."""
    import cv2

    h, w = before.shape
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    size = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])[:, None]
    pad = 0.25 * size + LK_WINDOW[0]
    x1, y1 = np.maximum((boxes[:, :2] - pad).min(axis=0), 0).astype(int)
    x2, y2 = np.minimum((boxes[:, 2:] + pad).max(axis=0), (w, h)).astype(int)
    offset = np.array([x1, y1], np.float32)
    old = (points.astype(np.float32) - offset).reshape(-1, 1, 2)
    before, after = before[y1:y2, x1:x2], after[y1:y2, x1:x2]
    lk = {"winSize": LK_WINDOW, "maxLevel": LK_LEVELS}
    new, ok, _ = cv2.calcOpticalFlowPyrLK(before, after, old, None, **lk)
    back, ok_back, _ = cv2.calcOpticalFlowPyrLK(after, before, new, None, **lk)
    good = (ok.ravel() == 1) & (ok_back.ravel() == 1) & \
        (np.linalg.norm((back - old).reshape(-1, 2), axis=1) <= MAX_FB_ERROR)
    return old.reshape(-1, 2) + offset, new.reshape(-1, 2) + offset, good


def _points(det: Detection) -> np.ndarray:
    """The points followed for one face: its landmarks and a lattice over the middle of its box."""
    x1, y1, x2, y2 = det.box
    fx = np.linspace(0.3, 0.7, GRID)
    gx, gy = np.meshgrid(x1 + fx * (x2 - x1), y1 + fx * (y2 - y1))
    grid = np.stack([gx.ravel(), gy.ravel()], axis=1)
    return grid if det.landmarks is None else np.vstack([np.asarray(det.landmarks).reshape(-1, 2), grid])


def _follow(det: Detection, old: np.ndarray, new: np.ndarray, good: np.ndarray) -> Detection | None:
    """``det`` moved and scaled as its followed points were (medians: a few wrong points do not
    matter), or None when fewer than half of them were found again. Landmarks found again take
    their new place; the others move with the face."""
    if good.sum() < max(3, len(good) // 2):
        return None
    o, n = old[good], new[good]
    o_mid, n_mid = np.median(o, axis=0), np.median(n, axis=0)
    spread = np.median(np.linalg.norm(o - o_mid, axis=1))
    scale = float(np.median(np.linalg.norm(n - n_mid, axis=1)) / spread) if spread > 1e-6 else 1.0
    x1, y1, x2, y2 = det.box
    centre = n_mid + (np.array([(x1 + x2) / 2, (y1 + y2) / 2]) - o_mid) * scale
    half_w, half_h = (x2 - x1) * scale / 2, (y2 - y1) * scale / 2
    box = (float(centre[0] - half_w), float(centre[1] - half_h), float(centre[0] + half_w), float(centre[1] + half_h))
    marks = None
    if det.landmarks is not None:
        k = len(det.landmarks)                 # the landmarks are the first points followed
        moved = n_mid + (old[:k] - o_mid) * scale
        marks = np.where(good[:k, None], new[:k], moved).astype(np.float32)
    return Detection(box, det.score, marks)


def _inside(box, width: int, height: int, slack: float = 0.05) -> bool:
    """Whether a box lies within the frame (up to ``slack`` of its size outside)."""
    x1, y1, x2, y2 = box
    sx, sy = slack * (x2 - x1), slack * (y2 - y1)
    return x1 >= -sx and y1 >= -sy and x2 <= width + sx and y2 <= height + sy
