"""Progress on a terminal is tqdm's bar; on a pipe, whole lines; never on stdout."""

from __future__ import annotations

import io
import subprocess
import sys

from attnsvm.progress import Progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_terminal_gets_a_tqdm_bar_redrawn_in_place() -> None:
    buf = _Terminal()
    bar = Progress(4, "rank", buf, unit="cells", min_interval=0.0)
    for _ in range(3):
        bar.advance()
    bar.label = "rank: last cell"
    bar.advance()
    bar.close()
    text = buf.getvalue()
    frames = [f for f in text.split("\r") if f]
    assert "1/4" in frames[1] and "25%|" in frames[1]  # tqdm's bar, after its empty first frame
    assert frames[-1].startswith("rank: last cell: 100%|") and "4/4" in frames[-1]
    assert text.endswith("\n") and text.count("\n") == 1  # one line, ended once
    assert "cells/s" in frames[-1]


def test_terminal_bar_is_silent_when_disabled_or_never_advanced() -> None:
    buf = _Terminal()
    Progress(4, "rank", buf, enabled=False).advance()
    bar = Progress(4, "rank", buf)
    bar.close()  # prints its state once, as on a pipe
    text = buf.getvalue()  # only the second bar drew: its state, redrawn, one line
    assert "0/4" in text.split("\r")[-1] and text.count("\n") == 1 and text.endswith("\n")
    quiet = _Terminal()
    Progress(4, "rank", quiet, enabled=False).close()
    assert quiet.getvalue() == ""


def test_closed_stream_stops_the_bar_quietly() -> None:
    buf = _Terminal()
    bar = Progress(2, "x", buf, min_interval=0.0)
    bar.advance()
    buf.close()
    bar.advance()  # writes to a closed file: nothing raised, the run goes on
    bar.close()
    assert bar.done == 2


def test_json_stdout_stays_clean_when_piped(tmp_path) -> None:
    from attnsvm.instance import random_instance

    random_instance(4, 4, 3, seed=0).save(tmp_path / "i.npz")
    code = ("import sys\nfrom attnsvm.cli import train_cmd\ntrain_cmd._QUIET_SECONDS = 0.0\n"
            "from attnsvm.cli.main import main\nsys.exit(main(sys.argv[1:]))")
    proc = subprocess.run([sys.executable, "-c", code, "train", str(tmp_path / "i.npz"),
                           "--param", "W", "--steps", "2000", "--json"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.lstrip().startswith("{") and proc.stdout.count("\n") <= 1 + \
        proc.stdout.strip().count("\n")
    assert "train: 2000/2000" in proc.stderr and "\r" not in proc.stderr  # whole lines
