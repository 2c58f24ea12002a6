"""Progress on stderr with an estimate of the time left, for terminals, pipes and logs.

On a terminal the bar is tqdm's, redrawn in place; otherwise (a pipe, a log file, CI) a new
line is printed at most every ``min_interval`` seconds and once at the end, so a long run is
never silent and a log holds no carriage returns.  Progress never goes to stdout, which stays
free for results (``--json``).
"""

from __future__ import annotations

import math
import sys
import time
from typing import IO, Any

__all__ = ["Progress", "format_seconds"]


def format_seconds(s: float) -> str:
    """``"42 s"``, ``"3 min 05 s"``, ``"1 h 02 min"``; ``"?"`` when unknown.

    >>> format_seconds(4.2), format_seconds(185), format_seconds(3720), format_seconds(float("nan"))
    ('4 s', '3 min 05 s', '1 h 02 min', '?')
    """
    if not math.isfinite(s):
        return "?"
    if s < 59.5:
        return f"{s:.0f} s"
    r = int(round(s))
    if r < 3600:
        return f"{r // 60} min {r % 60:02d} s"
    r = int(round(s / 60))
    return f"{r // 60} h {r % 60:02d} min"


class Progress:
    """Units of work done, time elapsed and time left, on a stream (default stderr).

    Parameters
    ----------
    total : int
        Units of work (cells, steps, heads).
    label : str
        What runs (``"rank"``, ``"train"``).
    stream : file, optional
        Default ``sys.stderr`` (looked up when the object is made).
    enabled : bool, optional
        ``False`` prints nothing; ``None`` (default) and ``True`` print.
    min_interval : float
        Seconds between printed lines when the stream is not a terminal (and between redraws
        on a terminal).
    unit : str
        Name of a unit in the line (``"cells"``).

    Examples
    --------
    >>> import io
    >>> buf = io.StringIO()
    >>> bar = Progress(4, "rank", buf, unit="cells")
    >>> bar.advance(); bar.close()
    >>> buf.getvalue().startswith("rank: 1/4 cells (25%)")
    True
    """

    def __init__(self, total: int, label: str = "", stream: IO[str] | None = None,
                 enabled: bool | None = None, min_interval: float = 2.0, unit: str = ""):
        self.total = max(int(total), 0)
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled is not False
        self.min_interval = min_interval
        self.unit = unit
        self.done = 0
        self.t0 = time.perf_counter()
        self._last = -math.inf
        self._printed_at = -1
        isatty = getattr(self.stream, "isatty", None)
        self.tty = bool(isatty()) if callable(isatty) else False
        self._bar: Any = None  # the tqdm bar on a terminal, made when first drawn

    def elapsed(self) -> float:
        """Seconds since the object was made."""
        return time.perf_counter() - self.t0

    def eta(self) -> float:
        """Estimated seconds left (NaN before the first unit is done)."""
        if self.done <= 0 or self.total <= 0:
            return float("nan")
        return self.elapsed() * (self.total - self.done) / self.done

    def text(self) -> str:
        """The current line (no newline)."""
        frac = self.done / self.total if self.total else 1.0
        unit = f" {self.unit}" if self.unit else ""
        left = f", about {format_seconds(self.eta())} left" if 0 < self.done < self.total else ""
        head = f"{self.label}: " if self.label else ""
        return (f"{head}{self.done}/{self.total}{unit} ({100 * frac:.0f}%), "
                f"{format_seconds(self.elapsed())} elapsed{left}")

    def update(self, done: int) -> None:
        """Record that ``done`` units are finished; print when due."""
        self.done = min(max(int(done), 0), self.total)
        now = time.perf_counter()
        if not self.enabled or (now - self._last < self.min_interval and self.done < self.total):
            return
        self._last = now
        self._print()

    def advance(self, k: int = 1) -> None:
        """Record ``k`` more finished units; print when due."""
        self.update(self.done + k)

    def _tqdm(self) -> Any:
        """The terminal's bar (tqdm), made on first use; its total, count and label follow
        this object's."""
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(total=self.total, desc=self.label or None, unit=f" {self.unit}"
                             if self.unit else "it", file=self.stream, leave=True,
                             dynamic_ncols=True, mininterval=0.0, miniters=1, ascii=False,
                             initial=0)
            self._bar.start_t = self._bar._time() - self.elapsed()  # counted from our start
        bar = self._bar
        if self.label and bar.desc != self.label:
            bar.set_description_str(self.label, refresh=False)
        bar.n = self.done
        return bar

    def _print(self) -> None:
        try:
            if self.tty:
                self._tqdm().refresh()
            else:
                self.stream.write(self.text() + "\n")
                self.stream.flush()
            self._printed_at = self.done
        except (BrokenPipeError, ValueError):  # stderr closed: stop, do not fail the run
            self.enabled = False

    def close(self) -> None:
        """Print the final state once (if not printed yet) and end a terminal line."""
        if not self.enabled:
            return
        if self._printed_at != self.done:
            self._print()
        if self.tty and self._bar is not None:
            try:
                self._bar.close()
            except (BrokenPipeError, ValueError):
                self.enabled = False
