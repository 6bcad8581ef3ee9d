"""Score label maps made by anything against a split facseg reads, with a run's metrics and keys.

    facseg score PRED_DIR TRUTH_ROOT --out FILE [--split test] [--format lapa|celebamask|folder]

PRED_DIR holds one PNG label map per photo of the split, NAME.png, of its truth's size, in the truth's class ids.
FILE gets the keys of a run's metrics.json (`test/f1_fg`, `test/bf1/2px`, ...; docs/protocol.md). Exits 1 with one
line per kind of problem (missing ids, sizes, unknown class ids), writing nothing.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pred_dir", type=Path, help="the predicted label maps, NAME.png")
    parser.add_argument("truth_root", type=Path, help="the dataset's folder (LaPa, CelebAMask-HQ or a folder set)")
    parser.add_argument("--out", type=Path, required=True, help="the metrics file to write (JSON)")
    parser.add_argument("--split", default="test", choices=("train", "val", "test"), help="the split scored")
    parser.add_argument("--format", default=None, help="the dataset's format (default: from its layout)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from facseg.runtime.atomic import write_json
    from facseg.scoring.parses import score_parses

    try:
        found = score_parses(args.pred_dir, args.truth_root, args.split, args.format)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    write_json(args.out, {"model": args.pred_dir.name, "data": str(args.truth_root), "split": args.split, **found})
    key = "test/f1_fg" if args.split == "test" else f"{args.split}/f1_fg"
    print(f"{args.out}: mean F1 {100 * found[key]:.2f}, {len(found)} keys")
    return 0


if __name__ == "__main__":
    sys.exit(main())
