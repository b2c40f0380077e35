"""``emolens webcam``: a live window with boxes, labels and track ids. Before opening anything it
checks that there is a camera and a display, and says clearly which is missing."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from .errors import DeviceError


def display_problem() -> str | None:
    """Why no window can be shown here, or None when one can."""
    import cv2

    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return "no display (DISPLAY is not set: run it in a desktop session, or use `emolens video` on a recording)"
    gui = [line for line in cv2.getBuildInformation().splitlines() if line.strip().startswith("GUI:")]
    if gui and gui[0].split(":", 1)[1].strip().upper() == "NONE":
        return "this OpenCV build has no window support (opencv-python-headless?): pip install 'opencv-python<5'"
    return None


def camera_problem(device) -> str | None:
    """Why camera ``device`` (an index or a path/URL) surely cannot be opened, or None."""
    if isinstance(device, int) and sys.platform.startswith("linux") and not Path(f"/dev/video{device}").exists():
        return f"no camera {device} (/dev/video{device} does not exist)"
    return None


def parse_device(text: str):
    """``"0"`` -> 0 (a camera index); anything else is a path or URL given to OpenCV as is."""
    return int(text) if str(text).strip().isdigit() else str(text)


def open_camera(device):
    import cv2

    problems = [p for p in (camera_problem(device), display_problem()) if p]
    if problems:
        raise DeviceError("cannot start the webcam view: " + "; and ".join(problems))
    previous = cv2.getLogLevel() if hasattr(cv2, "getLogLevel") else None
    if previous is not None:
        cv2.setLogLevel(0)                               # silence OpenCV's own warnings about the device
    try:
        cap = cv2.VideoCapture(device)
    finally:
        if previous is not None:
            cv2.setLogLevel(previous)
    if not cap.isOpened():
        raise DeviceError(f"cannot open camera {device} (missing, busy, or no permission)")
    return cap


def camera_frames(cap, device, mirror: bool = True, max_frames: int = 0):
    """BGR pictures from an opened camera until it stops (or ``max_frames``), mirrored if asked."""
    import cv2

    shown = 0
    while not max_frames or shown < max_frames:
        ok, bgr = cap.read()
        if not ok or bgr is None:
            if shown == 0:
                raise DeviceError(f"camera {device} gave no picture")
            return
        yield cv2.flip(bgr, 1) if mirror else bgr
        shown += 1


def run_webcam(recognizer, device=0, half_life: float = 0.3, mirror: bool = True, max_frames: int = 0,
               detect_every: int | None = None, patience: float | None = None) -> int:
    """Show the live view until q or Esc is pressed or the window is closed; returns frames shown.
    ``detect_every``, ``patience``: see :meth:`emolens.Recognizer.tracker`."""
    import cv2

    cap = open_camera(device)
    title = "emolens (q to quit)"
    shown, started = 0, time.monotonic()
    try:
        cv2.namedWindow(title, cv2.WINDOW_NORMAL)
        tracker = recognizer.tracker(detect_every=detect_every, half_life=half_life, patience=patience)
        for bgr in camera_frames(cap, device, mirror, max_frames):
            frame = tracker.update(bgr, bgr=True, index=shown, timestamp=time.monotonic() - started,
                                   source=f"webcam:{device}")
            bgr = frame.plot(bgr, copy=False)
            fps = shown / max(time.monotonic() - started, 1e-6)
            cv2.putText(bgr, f"{fps:.1f} fps", (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
            cv2.imshow(title, bgr)
            shown += 1
            key = cv2.waitKey(1) & 0xFF
            if key in (ord("q"), 27) or cv2.getWindowProperty(title, cv2.WND_PROP_VISIBLE) < 1:
                break
    finally:
        cap.release()
        cv2.destroyAllWindows()
    return shown
