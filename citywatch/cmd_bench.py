"""``citywatch bench``: benchmarks run by hand (never in the test suite)."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.table import Table

from citywatch.bench_detector import run

bench_app = typer.Typer(help="Benchmarks (run by hand; they print figures and ratios).")


@bench_app.command("detector")
def detector(
    as_json: bool = typer.Option(False, "--json", help="End with one JSON line of figures."),
    series: int = typer.Option(100_000, "--series", min=1, help="Series in the stream."),
    max_batch: int = typer.Option(
        1_000_000, "--max-batch", min=1_000, help="Largest batch (sizes go 1,000 ×10 up to it)."
    ),
    subsample: int = typer.Option(
        20_000, "--subsample", min=100, help="Readings the Python loop and River peers run."
    ),
) -> None:
    """Readings/s of the full detector set beside a Python loop, River and a bare EWMA."""
    console = Console(stderr=as_json)
    sizes = []
    size = 1_000
    while size <= max_batch:
        sizes.append(size)
        size *= 10
    res = run(series, sizes, subsample, progress=console.log)
    table = Table(title=f"detector speed, {res.series:,} series, one core")
    for col in (
        "batch",
        "ours M/s",
        "bare EWMA M/s",
        "ours ÷ EWMA",
        "state floor M/s",
        "ours ÷ floor",
    ):
        table.add_column(col, justify="right")
    for s in res.sizes:
        table.add_row(
            f"{s.batch:,}",
            f"{s.ours_per_s / 1e6:.2f}",
            f"{s.ewma_per_s / 1e6:.2f}",
            f"{s.ours_per_s / s.ewma_per_s:.3f}",
            f"{s.state_floor_per_s / 1e6:.2f}",
            f"{s.ours_per_s / s.state_floor_per_s:.3f}",
        )
    console.print(table)
    console.print(
        f"ours {res.readings_per_s / 1e6:.2f} M readings/s (largest batch); "
        f"Python loop {res.python_loop_per_s / 1e6:.3f} M/s → ×{res.python_loop_ratio:.0f}; "
        f"River StandardAbsoluteDeviation {res.river_per_s / 1e6:.3f} M/s → ×{res.river_ratio:.0f} "
        f"(peers on a {res.subsample:,}-reading subsample, extrapolated); "
        f"ours ÷ bare EWMA {res.ewma_bound_ratio:.3f}; ours ÷ state floor "
        f"{res.state_floor_ratio:.3f} (moving {res.state_arrays} state arrays per reading, no "
        f"arithmetic: {res.state_floor_per_s / 1e6:.2f} M/s); "
        f"{res.bytes_per_series:.0f} bytes/series"
    )
    if as_json:
        print(json.dumps(res.to_json_dict()))
