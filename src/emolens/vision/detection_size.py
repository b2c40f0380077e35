"""The detection size, by kind of input: the longer side, in pixels, of the copy of an image the
face detector works on (an image smaller than that is detected at its own size; 0: always full
size). The one table that ``emolens predict / video / webcam`` (their ``--max-side`` defaults and
help), :class:`emolens.Recognizer` (``predict`` and ``predict_batch`` for photos; ``tracker``,
``stream`` and ``predict_video`` for streams) and the server (uploads and the WebSocket stream)
read: a new default is one edit here.
"""

from __future__ import annotations

#: Still images (files, uploads, arrays given to ``predict``): photos are often large with small
#: faces. On a 4000x3000 group photo (benchmarks/video.py, docs/benchmarks-video.md) 480 px found 0
#: of 24 faces, 960 px 13 for about 1.5x the detection time, 1280 px 16 for about 2.3x. A 640x480
#: picture is detected at its own size (about 3 ms more than at 480 on one core).
PHOTO = 960

#: Frames of a stream (video files, the webcam, the server's WebSocket): at 320 px one core
#: recognises a 640x480 frame with one face in 7.8 ms with the detector on every frame and 3.4 ms at
#: the default detect-every (21.3 and 5.3 ms at 480; docs/benchmarks-video.md); faces under ~30 px
#: in such a frame are missed: max_side 480 (or more) for small faces and large videos.
STREAM = 320

DETECTION_SIZE = {"photo": PHOTO, "stream": STREAM}

#: Two passes for still images: a photo is first detected at this size, and again at the photo
#: size only when that first pass is unsure (no face, a face not clearly one, a face under 32 px at
#: this size, or a faint candidate elsewhere: :meth:`emolens.vision.detectors.base.FaceDetector.sure`).
#: On one core a 640x480 frame with one face is detected in about a quarter of the time of one pass
#: at 480 (RetinaFace at 160 px: 3.7 ms CPU against 20, on a loaded machine), and every face one pass
#: at 480 finds on the JAFFE and CK+ dev frames and on the multi-face photos of
#: benchmarks/pipeline.py is still found (docs/benchmarks-pipeline.md, detector study). 0: one pass.
FIRST_PASS = 160

#: ... only for images the photo size detects at no more than this many times the first pass's side
#: (640 px for 160): a bigger photo may hold faces too small to be seen, or hinted at, in so small a
#: copy next to one big face, so it keeps one pass at the photo size.
FIRST_PASS_REACH = 4


def detection_size(kind: str, max_side: int | None = None) -> int:
    """``max_side`` when given (it overrides every kind), else the default for ``kind``."""
    if max_side is not None:
        return int(max_side)
    try:
        return DETECTION_SIZE[kind]
    except KeyError:
        raise ValueError(f"unknown kind of input {kind!r}; known: {', '.join(DETECTION_SIZE)}") from None


def describe(max_side: int | None = None) -> str:
    """``photos 960 px, streams 320 px`` (or the one size that ``max_side`` sets for all)."""
    if max_side is not None:
        return f"{max_side} px for every input" if max_side else "full size for every input"
    return ", ".join(f"{kind}s {size} px" for kind, size in DETECTION_SIZE.items())
