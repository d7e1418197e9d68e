"""The compiled kernel: the same source interpreted (``NUMBA_DISABLE_JIT=1``) is the
reference, bit for bit; the grouping walks series in time order; the tail shortcut
never hides evidence."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anomaly import kernel
from anomaly.lanes import LANES
from anomaly.layout import K

HERE = Path(__file__).parent


def test_compiled_equals_interpreted_on_a_golden_stream(tmp_path: Path) -> None:
    sys.path.insert(0, str(HERE))
    try:
        import golden_stream  # noqa: PLC0415 - the stream lives beside this test
    finally:
        sys.path.remove(str(HERE))
    assert not kernel.JIT_DISABLED, "this process runs the compiled kernel"
    compiled = golden_stream.run()
    out = tmp_path / "interpreted.npz"
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1"}
    subprocess.run([sys.executable, str(HERE / "golden_stream.py"), str(out)], env=env, check=True)
    with np.load(out) as interpreted:
        assert set(interpreted.files) == set(compiled)
        for name, want in compiled.items():
            np.testing.assert_array_equal(interpreted[name], want, err_msg=name)
    assert (compiled["onset"] > 0).sum() >= 5, "the stream reports onsets"
    assert len(compiled["events"]) >= 10, "the stream raises events"
    assert np.isfinite(compiled["scores"]).all()
    assert np.isfinite(compiled["onset"]).all()


@st.composite
def _batches(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    n = draw(st.integers(0, 80))
    size = draw(st.sampled_from([3, 50, 5000]))
    slots = draw(st.lists(st.integers(0, size - 1), min_size=n, max_size=n))
    ts = draw(st.lists(st.integers(0, 6), min_size=n, max_size=n))
    return np.array(slots, dtype=np.int64), np.array(ts, dtype=np.int64)


@settings(max_examples=200, deadline=None)
@given(_batches(), st.booleans())
def test_group_walks_each_series_in_time_order(
    batch: tuple[np.ndarray, np.ndarray], presorted: bool
) -> None:
    slots, ts = batch
    if presorted:
        order = np.lexsort((np.arange(len(slots)), ts, slots))
        slots, ts = slots[order], ts[order]
    x = np.arange(len(slots), dtype=np.float64)
    size = int(slots.max()) + 1 if len(slots) else 1
    rows, origin, starts, series = kernel.group(slots, ts, x, size)
    assert rows.shape == (len(slots), kernel.ROW_FIELDS)
    want = np.lexsort((np.arange(len(slots)), ts, slots))  # slot, then time, then input
    first = np.searchsorted(slots[want], np.unique(slots))  # where each series begins
    np.testing.assert_array_equal(starts, np.r_[first, len(slots)])
    np.testing.assert_array_equal(series, np.unique(slots))
    np.testing.assert_array_equal(origin, want)
    np.testing.assert_array_equal(np.repeat(series, np.diff(starts)), slots[want])
    np.testing.assert_array_equal(rows[:, kernel.ROW_TS], ts[want])
    np.testing.assert_array_equal(rows[:, kernel.ROW_X].view(np.float64), x[want])


def test_a_batch_beyond_what_the_input_indices_hold_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Grouped rows keep their input index as int32: a batch of more readings than
    that holds is refused with a message (checked here with the limit lowered, on the
    interpreted source, which reads it at run time)."""
    monkeypatch.setattr(kernel, "MAX_READINGS", 3)
    slots = np.zeros(4, dtype=np.int64)
    with pytest.raises(ValueError, match="at most 2,147,483,647 readings; split it"):
        kernel.group.py_func(slots, slots, np.zeros(4), 1)
    _, origin, _, _ = kernel.group.py_func(slots[:3], slots[:3], np.zeros(3), 1)
    assert origin.dtype == np.int32
    assert list(origin) == [0, 1, 2]


@pytest.mark.parametrize("size", [1, 7, 1 << 12, kernel.COUNTING_MAX + 1, 5_000_000])
def test_both_slot_sorts_are_stable_sorts(size: int) -> None:
    """The counting sort (up to ``COUNTING_MAX`` series) and the radix sort (beyond)
    agree with numpy's stable argsort, whatever the number of series."""
    rng = np.random.default_rng(size)
    slots = rng.integers(0, size, 20_000).astype(np.int64)
    want = np.argsort(slots, kind="stable")
    zeros = np.zeros(len(slots), dtype=np.int64)
    rows = np.empty((len(slots), kernel.ROW_FIELDS), dtype=np.int64)
    origin = np.empty(len(slots), dtype=np.int32)
    seg, series = np.empty(len(slots) + 1, dtype=np.int64), np.empty(len(slots), dtype=np.int64)
    used, ordered = kernel._by_slot(slots, zeros, zeros, size, rows, origin, seg, series)
    np.testing.assert_array_equal(origin, want)
    np.testing.assert_array_equal(series[:used], np.unique(slots))
    assert ordered
    np.testing.assert_array_equal(kernel._radix_by_slot(slots, size), want)


def test_the_tail_bound_is_above_the_tail() -> None:
    """The lane loop skips a tail probability where ``0.55 z^2 + 2`` (natural logs)
    cannot beat what would report: that bound is above the tail everywhere."""
    for z in np.linspace(0.0, 60.0, 6001):
        bound = (0.55 * z * z + 2.0) / np.log(10.0)
        assert bound >= kernel.tail_decades(float(z)) + 0.05, z


def test_a_prefetch_is_only_a_hint() -> None:
    """Prefetching any row of a table (its last, one that does not start a cache line,
    one past a bin that crosses a line) reads nothing into the program and changes
    nothing; the kernel calls it for the series a few readings ahead."""
    import numba  # noqa: PLC0415

    from anomaly.prefetch import prefetch_item, prefetch_row  # noqa: PLC0415

    @numba.njit
    def touch(f32: np.ndarray, f64: np.ndarray) -> float:
        for row in range(f32.shape[0]):
            prefetch_row(f32, row)
            prefetch_row(f64, row)
            prefetch_item(f32, row, f32.shape[1] - 1)
        return float(f32.sum() + f64.sum())

    f32 = np.arange(7 * 75, dtype=np.float32).reshape(7, 75)
    f64 = np.arange(7 * 20, dtype=np.float64).reshape(7, 20)
    before = f32.copy(), f64.copy()
    assert touch(f32, f64) == float(before[0].sum() + before[1].sum())
    assert np.array_equal(f32, before[0])
    assert np.array_equal(f64, before[1])


def test_a_batch_with_more_events_than_the_records_array_holds() -> None:
    """The kernel's steps stop when its records array has no room for another step and
    resume once it is grown: 600 cabinets crossing the critical limit in one batch give
    every start event, the same as one cabinet at a time."""
    from anomaly.detector import Detector  # noqa: PLC0415
    from anomaly.events import DetectionKind  # noqa: PLC0415
    from telemetry.catalogue import metric_id  # noqa: PLC0415

    temp = metric_id("cabinet", "temp_inside")
    cabinets = 600
    minute = 60_000
    batch_det, single_det = Detector(capacity=cabinets), Detector(capacity=cabinets)
    for det in (batch_det, single_det):
        for i in range(cabinets):
            det.registry.slot(f"cab-{i}", temp)
    slots = np.repeat(np.arange(cabinets), 3)
    ts = np.tile(np.arange(3) * minute, cabinets)
    x = np.tile([30.0, 31.0, 60.0], cabinets)  # the third reading is past 55 °C
    got = batch_det.update_arrays(slots, ts, x).events
    want = []
    for i in range(cabinets):
        part = slice(3 * i, 3 * i + 3)
        want += single_det.update_arrays(slots[part], ts[part], x[part]).events
    starts = [e for e in got if e.kind is DetectionKind.LIMIT and e.active]
    assert len(starts) == cabinets > 4 * LANES * K
    assert sorted(got, key=lambda e: (e.device, e.kind.value, e.active)) == sorted(
        want, key=lambda e: (e.device, e.kind.value, e.active)
    )


def test_a_statistic_at_its_threshold_scores_score_on() -> None:
    """Each statistic is scaled so that its own threshold squashes to ``score_on`` and
    starts an event: a CUSUM sum at ``cusum_h`` (clipped residuals make exact sums), a
    gap of ``dropout_k`` periods, a z of ``z_on``. A squash that rounds below
    ``score_on`` there lost 410 of NAB's 3,184 level-shift events."""
    from anomaly.config import DetectorConfig  # noqa: PLC0415
    from anomaly.detector import kernel_params  # noqa: PLC0415

    config = DetectorConfig()
    p = kernel_params(config)
    for z in (p.shift_gain * config.cusum_h, p.drop_gain * config.dropout_k, config.z_on):
        assert kernel.squash(z, config.z_half) >= config.score_on, z


@pytest.mark.parametrize(("bins", "offset_h"), [(24, 7.0), (7, -5.5)])
def test_a_lane_holds_its_time_of_day_bin_as_one_reading_at_a_time_would(
    bins: int, offset_h: float
) -> None:
    """A lane keeps the hour-of-day bin of its last reading, and the span of time in it,
    across a batch; over three days of readings 37 minutes apart (bins that do not divide
    the day, a local time west of UTC) the bins learn what one reading a batch learns."""
    from anomaly.config import DetectorConfig  # noqa: PLC0415
    from anomaly.detector import Detector  # noqa: PLC0415
    from anomaly.registry import GENERIC_METRIC  # noqa: PLC0415

    config = DetectorConfig(tod_bins=bins, utc_offset_h=offset_h)
    ts = 1_700_000_000_000 + np.arange(3 * 24 * 60 // 37, dtype=np.int64) * 37 * 60_000
    x = 20.0 + 5.0 * np.sin(ts / 86_400_000 * 2 * np.pi)
    batch, single = Detector(config, capacity=2), Detector(config, capacity=2)
    for det in (batch, single):
        det.registry.slot("s", GENERIC_METRIC)
    batch.update_arrays(np.zeros(len(ts), dtype=np.int64), ts, x)
    for i in range(len(ts)):
        single.update_arrays(np.zeros(1, dtype=np.int64), ts[i : i + 1], x[i : i + 1])
    np.testing.assert_array_equal(batch.state.tod, single.state.tod)
    np.testing.assert_array_equal(batch.state.f32, single.state.f32)
    assert (batch.state.tod[0, 2::3] > 0).all(), "every bin learned"


_LANE_ASM = """
import re
import numba, numpy as np
from anomaly import Detector, kernel
from anomaly.lanes import COLUMNS, LANES
det = Detector()
args = (np.zeros(COLUMNS * LANES), LANES, det._params, 1.0, det._switches)
sig = tuple(numba.typeof(a) for a in args)
kernel._lane_step.compile(sig)
asm = kernel._lane_step.inspect_asm(sig)
ops = r"(?:add|sub|mul|div|fmadd\\w*|sqrt)"
print(len(re.findall(rf"\\bv?{ops}pd\\b", asm)), len(re.findall(rf"\\bv?{ops}sd\\b", asm)))
"""


@pytest.mark.skipif(kernel.JIT_DISABLED, reason="the interpreted kernel has no machine code")
def test_the_lane_loop_compiles_to_simd_code(tmp_path: Path) -> None:
    # LLVM decides per host whether the lane loop is worth vectorising, silently: a
    # branch it threaded into copies of stores made it keep the loop scalar on AVX2
    # (no masked scatter), the whole kernel's arithmetic one lane at a time. A fresh
    # cache: the machine code of a cached function cannot be read back.
    import llvmlite.binding as llvm  # noqa: PLC0415 - only this test asks the host

    if not llvm.get_host_cpu_features().get("avx2"):
        pytest.skip("the lanes are tuned for AVX2 and AVX-512 hosts")
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    out = subprocess.run(
        [sys.executable, "-c", _LANE_ASM], env=env, check=True, capture_output=True, text=True
    )
    packed, scalar = map(int, out.stdout.split())
    # The vector body holds the loop's arithmetic once per vector; the scalar loop kept
    # for a tail of fewer lanes than a vector holds, once more.
    assert packed >= scalar // 2 > 0, f"{packed} packed against {scalar} scalar operations"
