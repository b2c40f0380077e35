"""``emolens crop SRC DST``: photos in a class layout -> aligned face crops in the same layout,
ready for ``emolens train``. The classifier learns from (and ``emolens predict`` feeds it) aligned
48x48 grey crops made by the detector and aligner; training on uncropped photos would teach it
backgrounds. One face per photo: the largest (the labelled person, in a photo that shows others).
"""

from __future__ import annotations

import io
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import EmolensError
from .align import DEFAULT_MARGIN, align_face, to_grey
from .images import iter_image_files, read_image

#: The side of the crops: FER-2013's, which the bundled models read.
CROP_SIZE = 48


@dataclass
class CropSummary:
    """What ``crop_folder`` did: images read, crops written, and the files it could not use."""

    images: int = 0
    written: int = 0
    no_face: list[Path] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)

    def describe(self, dst: Path) -> str:
        text = f"{self.written:,} face crops written to {dst} from {self.images:,} images"
        if self.no_face:
            text += f"; {len(self.no_face):,} without a face (listed in {dst / 'no_face.txt'})"
        if self.unreadable:
            text += f"; {len(self.unreadable):,} unreadable ({self.unreadable[0]}{', ...' if len(self.unreadable) > 1 else ''})"
        return text


def crop_folder(src: str | Path, dst: str | Path, detector: str | None = None, size: int = CROP_SIZE,
                margin: float = DEFAULT_MARGIN, progress: bool = True) -> CropSummary:
    """Detect, align and write one ``size`` x ``size`` grey PNG per image of ``src`` to the same
    relative path under ``dst`` (``happy/img1.jpg`` -> ``happy/img1.png``)."""
    from PIL import Image
    from tqdm import tqdm

    from ..files import atomic_write_bytes, refuse_inside
    from .detectors import create_detector

    src, dst = Path(src), Path(dst)
    if not src.is_dir():
        raise EmolensError(f"{src}: not a folder (expected photos in ROOT/<class>/* or ROOT/<split>/<class>/*)")
    refuse_inside(dst, [src], "the destination", "the crops must go outside it")
    files = [f for f, _ in iter_image_files([src])]
    if not files:
        raise EmolensError(f"{src}: no images found")
    det = create_detector(detector)
    summary = CropSummary()
    for path in tqdm(files, desc="crop", unit="img", disable=not progress, file=sys.stderr):
        summary.images += 1
        try:
            rgb = read_image(path)
        except EmolensError as e:
            summary.unreadable.append(str(e))
            continue
        faces = det.detect(rgb)
        if not faces:
            summary.no_face.append(path.relative_to(src))
            continue
        largest = max(faces, key=lambda d: d.area)
        crop = align_face(to_grey(rgb), largest, size, margin)
        buffer = io.BytesIO()
        Image.fromarray(crop).save(buffer, format="PNG")
        atomic_write_bytes(dst / path.relative_to(src).with_suffix(".png"), buffer.getvalue())
        summary.written += 1
    if summary.no_face:
        atomic_write_bytes(dst / "no_face.txt", "".join(f"{p.as_posix()}\n" for p in summary.no_face).encode())
    return summary
