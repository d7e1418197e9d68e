"""A ``Pipeline`` on its own thread and event loop: for tests, benchmarks and tools that
drive the platform from synchronous code."""

import asyncio
import threading
import time

from citywatch.pipeline import Pipeline, PipelineConfig


class BackgroundPipeline:
    """Starts at construction (returns once the API answers); ``close`` drains and stops."""

    def __init__(self, config: PipelineConfig, start_timeout_s: float = 60.0) -> None:
        self.pipeline = Pipeline(config)
        self._runner = asyncio.Runner()  # cancels leftovers and closes cleanly, as asyncio.run
        self._stop = asyncio.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="pipeline", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + start_timeout_s
        while not self.pipeline.ready.is_set():
            if self._error is not None or not self._thread.is_alive():
                raise RuntimeError(f"pipeline failed to start: {self._error!r}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"pipeline did not become ready within {start_timeout_s} s")
            time.sleep(0.05)

    def _main(self) -> None:
        with self._runner:
            try:
                self._runner.run(self.pipeline.run(self._stop))
            except BaseException as exc:  # reported by close()
                self._error = exc

    def wait_idle(self, timeout_s: float = 180.0, settle_s: float = 3.0) -> None:
        """Until everything received has reached the store, and stayed so for ``settle_s``."""
        deadline = time.monotonic() + timeout_s
        quiet_since: float | None = None
        while time.monotonic() < deadline:
            if self.pipeline.idle():
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since >= settle_s:
                    return
            else:
                quiet_since = None
            time.sleep(0.2)
        raise TimeoutError(f"the pipeline did not become idle within {timeout_s} s")

    def close(self) -> None:
        if self._thread.is_alive():
            self._runner.get_loop().call_soon_threadsafe(self._stop.set)
        self._thread.join(120)
        if self._error is not None:
            raise self._error
