"""The kernel's lane buffer: ``LANES`` series worked on side by side, one per SIMD lane.

The kernel (``anomaly/kernel.py``) gives each lane a series of the batch; at every step
each lane takes its series' next reading, and one loop over the lanes does all the
per-reading arithmetic, which LLVM vectorises: a lane is an element of a vector register.
A lane whose series has no readings left takes the next series of the batch.

The buffer is one flat float64 array; column ``c`` of lane ``l`` is ``buf[c * LANES + l]``
(a column of all lanes is contiguous, and every offset is a constant, so the vectoriser
proves that no two columns overlap). Columns:

- ``S64 + c``: the series' float64 state column ``c`` (``anomaly/layout.py``);
- ``S32 + c``: its float32 state column ``c``, held as float64 but always rounded to
  float32 (``lanemath.r32``) where it is stored, as a store into the table rounds;
- ``MET + c``: its metric's catalogue row (``M_*``);
- ``IN_*``: the lane's reading at this step;
- ``OUT_*``: what the vectorised loop hands to the scalar work after it (the onset
  decision, rare sub-steps, event records).
"""

from __future__ import annotations

from typing import Final

from anomaly.layout import COARSE_SCALES, F32_COLUMNS, F64_COLUMNS, M_COLUMNS, K

LANES: Final = 8
"""Series side by side: one 512-bit vector of float64 (``anomaly/wide_vectors.py``)."""

S64: Final = 0
S32: Final = S64 + F64_COLUMNS
MET: Final = S32 + F32_COLUMNS

# ------------------------------------------------------------------ this step's reading
IN_X: Final = MET + M_COLUMNS
IN_T: Final = IN_X + 1  # ms since the epoch, as float64
IN_TOD: Final = IN_T + 1
"""The time-of-day bin of the lane's reading: level, dev, count, as the table stores them.
The lane holds it (and the kernel writes it back) until a reading falls in another bin."""
IN_BIN: Final = IN_TOD + 3
"""2 columns: from and to (ms) of the span of time that falls in the bin the lane holds
(NaN: none held)."""
IN_LA: Final = IN_BIN + 2  # the Holt weights of this gap (an irregular gap needs exp)
IN_LB: Final = IN_LA + 1
IN_GAP: Final = IN_LB + 1
"""2 columns: the gap and the expected period the Holt weights are of (NaN: none yet);
a lane whose next gap is the same keeps them, without two ``exp``."""

# ------------------------------------------------------------------ vectorised -> scalar
OUT_SCORE: Final = IN_GAP + 2  # max of the sub-detectors
OUT_EVIDENCE: Final = OUT_SCORE + 1  # onset evidence so far (decades)
OUT_BAR: Final = OUT_EVIDENCE + 1  # what a report must exceed
OUT_REF: Final = OUT_BAR + 1  # the decayed reference, kept if nothing reports
OUT_SINCE: Final = OUT_REF + 1  # readings since the last report, this one counted
OUT_LEARNABLE: Final = OUT_SINCE + 1  # 1.0: a finite reading
OUT_TAIL: Final = OUT_LEARNABLE + 1
"""3 columns (baseline, time of day, level shift): the excess of a calibration whose tail
probability may report (``kernel.tail_decades``, scalar, rare); NaN: none."""
OUT_TAIL_VAR: Final = OUT_TAIL + 3  # ... and the long-run variance it is judged against
OUT_BLOCK: Final = OUT_TAIL_VAR + 3
"""``COARSE_SCALES`` columns: the readings of a coarse block that ended at this reading
(0: none; its evidence is ``kernel._block_end``'s, scalar, once a block)."""
OUT_BLOCK_SUM: Final = OUT_BLOCK + COARSE_SCALES  # ... the sum of its readings
OUT_BLOCK_STEPS: Final = OUT_BLOCK_SUM + COARSE_SCALES  # ... and of its absolute steps
OUT_WARM: Final = OUT_BLOCK_STEPS + COARSE_SCALES  # 1.0: the series was past its warm-up
OUT_SC: Final = OUT_WARM + 1  # K columns: each sub-detector's score
OUT_Z: Final = OUT_SC + K  # K columns: its statistic
OUT_REFS: Final = OUT_Z + K  # K columns: its reference
OUT_EVENT: Final = OUT_REFS + K
"""K columns: the event transition of each sub-detector at this reading: 0 none,
``STARTS``, ``ENDS``, or ``BLIP`` (a dropout: started and ended by one reading)."""
OUT_EVENTS: Final = OUT_EVENT + K  # the sum of those: 0.0 when nothing changed
OUT_DROP_START: Final = OUT_EVENTS + 1  # when the silence a dropout reports began
OUT_SINCE_MS: Final = OUT_DROP_START + 1  # ms since the value began
OUT_RARE: Final = OUT_SINCE_MS + 1
"""1.0: a tail probability may report or a coarse block ended: the scalar pass decides
the onset; 0.0: the lane loop decided it (``OUT_ONSET``)."""
OUT_ONSET: Final = OUT_RARE + 1  # the onset score, where the lane loop decided it
COLUMNS: Final = OUT_ONSET + 1

STARTS: Final = 1.0
ENDS: Final = 2.0
BLIP: Final = 3.0
