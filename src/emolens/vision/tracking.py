"""Face tracks across frames: stable ids (IoU matching, then centre distance) and probabilities
smoothed over time per track (an exponential moving average with a half-life in seconds).

Each track predicts its next box from its last motion, so faces that move steadily keep their
id even when frames are skipped (``--every N``); faces are matched greedily, best pair first.
A face that disappears (turned away, hidden behind a hand) keeps its track for ``patience``
seconds; when a face of about the same size reappears near where it was, it gets the old id back.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .results import FaceResult, FrameResult, top_label


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of every box in ``a`` (N, 4) with every box in ``b`` (M, 4), x1y1x2y2."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def centre_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance between box centres, in units of the mean face size of the pair (N, M)."""
    ca = (a[:, :2] + a[:, 2:]) / 2
    cb = (b[:, :2] + b[:, 2:]) / 2
    size_a = np.sqrt(np.prod(a[:, 2:] - a[:, :2], axis=1).clip(1))
    size_b = np.sqrt(np.prod(b[:, 2:] - b[:, :2], axis=1).clip(1))
    dist = np.linalg.norm(ca[:, None] - cb[None], axis=2)
    return dist / ((size_a[:, None] + size_b[None, :]) / 2)


def size_ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Ratio of the larger to the smaller face size (sqrt of the box area) of every pair (N, M); >= 1."""
    size_a = np.sqrt(np.prod(a[:, 2:] - a[:, :2], axis=1).clip(1))
    size_b = np.sqrt(np.prod(b[:, 2:] - b[:, :2], axis=1).clip(1))
    ratio = size_a[:, None] / size_b[None, :]
    return np.maximum(ratio, 1 / ratio)


def greedy_match(score: np.ndarray, accept, higher_is_better: bool = True) -> list[tuple[int, int]]:
    """Pairs (row, col) taken best score first, each row and column at most once, while ``accept(score)``."""
    if score.size == 0:
        return []
    order = np.argsort(-score if higher_is_better else score, axis=None, kind="stable")
    used_r, used_c, pairs = set(), set(), []
    for flat in order:
        r, c = divmod(int(flat), score.shape[1])
        if not accept(score[r, c]):
            break
        if r not in used_r and c not in used_c:
            used_r.add(r)
            used_c.add(c)
            pairs.append((r, c))
    return pairs


@dataclass
class Track:
    id: int
    box: np.ndarray                                   # last seen box
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(4))  # box change per update
    missed: int = 0                                   # updates since last seen
    hits: int = 1
    probs: np.ndarray | None = None                   # smoothed probabilities
    seen_at: float = 0.0
    raw_confidence: float | None = None               # last frame's own probability of the smoothed label

    def predicted(self) -> np.ndarray:
        """Where the box should be now: the last motion, extrapolated for a few updates at most
        (a hidden face is looked for near where it vanished, not where its motion would take it)."""
        return self.box + self.velocity * min(self.missed + 1, MAX_EXTRAPOLATION)


#: Updates over which a track's motion is extrapolated; beyond, the face is sought where it was.
MAX_EXTRAPOLATION = 3

#: Seconds a lost face keeps its track (``--track-patience``): a face hidden for half a second
#: (a hand, a head turn, a missed detection) comes back with its id; beyond it a new id is fairer.
DEFAULT_PATIENCE = 1.0


class FaceTracker:
    """Give every face of a stream of frames a stable ``track_id`` and smoothed probabilities.

    ``half_life``: seconds for an old observation's weight to halve (0 turns smoothing off);
    ``patience``: seconds a face may be missing before its track ends; ``max_missed``: also end
    it after this many updates without the face (None: time only); ``max_distance``: how far (in
    face sizes) a face may jump between updates and still be matched by its centre;
    ``max_size_ratio``: how much bigger or smaller a face matched that way may be;
    ``min_confidence``: a face whose smoothed top probability is below it is labelled ``uncertain``.
    """

    def __init__(self, iou_threshold: float = 0.3, max_distance: float = 1.0, max_missed: int | None = None,
                 half_life: float = 0.5, min_confidence: float | None = None, patience: float = DEFAULT_PATIENCE,
                 max_size_ratio: float = 1.5):
        if patience < 0:
            raise ValueError(f"patience must be >= 0 seconds, not {patience}")
        self.min_confidence = min_confidence
        self.iou_threshold = iou_threshold
        self.max_distance = max_distance
        self.max_missed = max_missed
        self.patience = patience
        self.max_size_ratio = max_size_ratio
        self.half_life = half_life
        self.tracks: list[Track] = []
        self._next_id = 1

    def reset(self) -> None:
        """Forget every track (ids start again at 1)."""
        self.tracks = []
        self._next_id = 1

    def rescale(self, sx: float, sy: float) -> None:
        """The frames changed size: express every track's box in the new frame's pixels."""
        factor = np.array([sx, sy, sx, sy])
        for t in self.tracks:
            t.box, t.velocity = t.box * factor, t.velocity * factor

    def update(self, frame: FrameResult, now: float | None = None, ids: list[int] | None = None) -> FrameResult:
        """Set ``track_id`` (and smooth the probabilities) of each face of ``frame``, in place.

        ``ids``: the track each face belongs to, when the caller already knows (faces carried from
        the previous frame by following their tracks); an id with no live track starts a new one."""
        if now is None:
            now = frame.timestamp if frame.timestamp is not None else time.monotonic()
        boxes = np.array([f.box for f in frame.faces], dtype=np.float64).reshape(-1, 4)
        if ids is not None:
            index = {t.id: i for i, t in enumerate(self.tracks)}
            pairs = [(index[tid], di) for di, tid in enumerate(ids) if tid in index]
        else:
            pairs = self._match(boxes)
        matched_t, n_old = set(), len(self.tracks)
        for ti, di in pairs:
            track = self.tracks[ti]
            steps = track.missed + 1
            track.velocity = 0.5 * track.velocity + 0.5 * (boxes[di] - track.box) / steps
            track.box, track.missed, track.hits = boxes[di], 0, track.hits + 1
            self._observe(track, frame.faces[di], now)
            matched_t.add(ti)
        for di in sorted(set(range(len(boxes))) - {p[1] for p in pairs}):
            track = Track(self._next_id, boxes[di])
            self._next_id += 1
            self._observe(track, frame.faces[di], now)
            self.tracks.append(track)
        for ti in set(range(n_old)) - matched_t:
            self.tracks[ti].missed += 1
        self.tracks = [t for t in self.tracks if now - t.seen_at <= self.patience
                       and (self.max_missed is None or t.missed <= self.max_missed)]
        return frame

    def _match(self, boxes: np.ndarray) -> list[tuple[int, int]]:
        """(track, face) pairs: by overlap with the predicted box first, then the nearest centre
        of a face of about the same size (so a face that was hidden comes back to its track)."""
        predicted = np.array([t.predicted() for t in self.tracks]).reshape(-1, 4)
        pairs = greedy_match(iou_matrix(predicted, boxes), lambda s: s >= self.iou_threshold)
        free_t = [i for i in range(len(self.tracks)) if i not in {p[0] for p in pairs}]
        free_d = [j for j in range(len(boxes)) if j not in {p[1] for p in pairs}]
        if free_t and free_d:
            dist = centre_distance(predicted[free_t], boxes[free_d])
            dist[size_ratio(predicted[free_t], boxes[free_d]) > self.max_size_ratio] = np.inf
            pairs += [(free_t[r], free_d[c]) for r, c in
                      greedy_match(dist, lambda s: s <= self.max_distance, higher_is_better=False)]
        return pairs

    def _observe(self, track: Track, face: FaceResult, now: float) -> None:
        face.track_id = track.id
        classes = list(face.probabilities)
        p = np.array([face.probabilities[c] for c in classes])
        if track.probs is None or self.half_life <= 0 or len(track.probs) != len(p):
            track.probs = p
        else:
            alpha = 1.0 - 0.5 ** (max(now - track.seen_at, 0.0) / self.half_life)
            track.probs = alpha * p + (1 - alpha) * track.probs
        track.seen_at = now
        track.raw_confidence = float(p[int(track.probs.argmax())])
        if self.half_life > 0:
            face.raw_probabilities = dict(face.probabilities)
            face.probabilities = dict(zip(classes, map(float, track.probs)))
            face.label, face.confidence = top_label(face.probabilities, self.min_confidence)
