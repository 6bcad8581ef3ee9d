"""LaPa's 106 landmarks: the 5 points crops are aligned on, and the renumbering a horizontal flip makes."""

from __future__ import annotations

import numpy as np

# LaPa's 106 landmarks: which point a horizontal flip turns each point into. Groups and orders as in LaPa's files:
# 0-32 contour left to right; 33-41 / 42-50 eyebrows (5 upper points left to right, 4 lower back); 51-54 nose bridge
# down to the tip, 55-65 nose outline from upper left around to upper right; 66-74 / 75-83 eyes (corner, 3 upper,
# corner, 3 lower back, centre); 84-95 outer lips (left corner, 5 upper, right corner, 5 lower back); 96-103 inner
# lips (left corner, 3 upper, right corner, 3 lower back); 104 / 105 eye centres.
NUM_LANDMARKS = 106
ALIGNMENT_POINTS = (104, 105, 54, 84, 90)  # left eye, right eye, nose tip, left and right mouth corners


def landmark_flip_permutation() -> np.ndarray:
    """perm[i] = the index that point i takes after a horizontal flip (an involution)."""
    pairs = [(i, 32 - i) for i in range(16)]
    pairs += [(33 + i, 46 - i) for i in range(5)] + [(38 + i, 50 - i) for i in range(4)]  # eyebrows
    pairs += [(55 + i, 65 - i) for i in range(5)]  # nose outline; the bridge 51-54 and 60 stay
    pairs += [(66 + i, 79 - i) for i in range(5)] + [(71 + i, 82 - i) for i in range(3)] + [(74, 83)]  # eyes
    pairs += [(84 + i, 90 - i) for i in range(3)] + [(91 + i, 95 - i) for i in range(2)]  # outer lips
    pairs += [(96, 100), (97, 99), (101, 103), (104, 105)]  # inner lips, eye centres
    perm = np.arange(NUM_LANDMARKS)
    for a, b in pairs:
        perm[a], perm[b] = b, a
    return perm
