"""LaPa-format data: layout, label map, generation, loading, alignment."""

SPLITS = ("train", "val", "test")  # LaPa's split folders, in this order everywhere
