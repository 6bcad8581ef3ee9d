"""The registry of dataset layouts: `data.format` names one, `open_layout` opens a dataset in it.

data.format=lapa         ROOT/{train,val,test}/{images/NAME.jpg, labels/NAME.png, landmarks/NAME.txt}
                         (facseg.data.formats)
data.format=celebamask   CelebAMask-HQ as released, or as its preprocessing scripts write it
                         (facseg.data.celebamask)
"""

from __future__ import annotations

from pathlib import Path

from facseg.data.celebamask import celebamask_layout
from facseg.data.formats import LaPaLayout, Layout

FORMATS = ("lapa", "celebamask")


def open_layout(
    root: Path | str, format: str = "lapa", num_classes: int = 11, composed_dir: Path | str | None = None
) -> Layout:
    """The Layout of the dataset at `root` in `format` (data.format); CelebAMask-HQ's two layouts are told apart by
    their folders. `composed_dir`: where the label maps composed from the official release's part masks go."""
    if format == "lapa":
        return LaPaLayout(Path(root), num_classes)
    if format == "celebamask":
        return celebamask_layout(Path(root), num_classes, composed_dir)
    raise ValueError(f"data.format={format}: expected one of {', '.join(FORMATS)}")
