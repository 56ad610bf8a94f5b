"""Sentence banks the speech tasks read aloud."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

# --------------------------------------------------------------------------- text


_NARRATIVE = (
    ("the old sailor", "a young teacher", "the small boy", "my neighbour", "the quiet student",
     "our captain", "the village doctor", "a tired traveller"),
    ("walked slowly", "looked around carefully", "waited patiently", "spoke softly",
     "worked hard", "sat quietly", "listened closely", "smiled warmly"),
    ("along the river", "near the old bridge", "in the garden", "beside the window",
     "across the valley", "under the tall trees", "at the edge of the town", "inside the library"),
    ("in the morning", "after supper", "before the storm", "during the long winter",
     "on a bright afternoon", "late at night", "every spring", "at dawn"),
)
_SHORT_NARRATIVE = (_NARRATIVE[0], _NARRATIVE[1], _NARRATIVE[3])
_PARLIAMENT = (
    ("we must", "this house should", "the committee will", "our citizens expect us to",
     "member states need to", "the council has agreed to"),
    ("protect", "support", "review", "strengthen", "reform", "improve"),
    ("the common budget", "regional development", "fair working conditions", "clean energy",
     "public health", "food safety", "digital education", "transport networks"),
    ("without further delay", "in the coming years", "for every family", "with great care",
     "as a matter of urgency", "before the next session"),
)


def _sentences(rng: np.random.Generator, banks: Sequence[Sequence[str]]) -> Iterator[str]:
    while True:
        text = " ".join(bank[int(rng.integers(len(bank)))] for bank in banks)
        yield text[0].upper() + text[1:] + "."
