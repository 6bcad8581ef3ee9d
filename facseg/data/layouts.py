"""The registry of dataset layouts: `data.format` names one, `open_layout` opens a dataset in it.

data.format=lapa         ROOT/{train,val,test}/{images/NAME.jpg, labels/NAME.png, landmarks/NAME.txt}
                         (facseg.data.formats)
data.format=celebamask   CelebAMask-HQ as released, or as its preprocessing scripts write it
                         (facseg.data.celebamask)
data.format=folder       your own: ROOT/images/ID.{jpg,png}, ROOT/masks/ID.png, ROOT/{train,val,test}.txt and
                         ROOT/classes.yaml, its class set (facseg.data.labels.LabelMap.of_folder)
"""

from __future__ import annotations

from pathlib import Path

from facseg.data.celebamask import PreprocessedLayout, celebamask_layout
from facseg.data.formats import LaPaLayout, Layout

FORMATS = ("lapa", "celebamask", "folder")


class FolderLayout(PreprocessedLayout):
    """data=folder: CelebAMask-HQ's preprocessed layout, with a class set of its own (classes.yaml)."""

    format = "folder"


def open_layout(
    root: Path | str, format: str = "lapa", num_classes: int = 11, composed_dir: Path | str | None = None
) -> Layout:
    """The Layout of the dataset at `root` in `format` (data.format); CelebAMask-HQ's two layouts are told apart by
    their folders. `composed_dir`: where the label maps composed from the official release's part masks go."""
    if format == "lapa":
        return LaPaLayout(Path(root), num_classes)
    if format == "celebamask":
        return celebamask_layout(Path(root), num_classes, composed_dir)
    if format == "folder":
        return FolderLayout(Path(root), num_classes)
    raise ValueError(f"data.format={format}: expected one of {', '.join(FORMATS)}")
