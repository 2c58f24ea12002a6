"""Open the HTML report in headless Chromium: every figure image loads, the page logs no error,
and the first screen shows the table of claims."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from attnsvm.experiments.report import provenance, write_report
from attnsvm.experiments.runner import run_figure

pytestmark = pytest.mark.browser

_CHROMIUM = next((p for p in (shutil.which(n) for n in
                              ("chromium", "chromium-browser", "google-chrome")) if p), None)

# Injected first in <head> of a copy of index.html (same folder, so relative links behave the
# same): records script errors, console errors and failed resource loads, then on load writes
# every image's naturalWidth into the DOM that --dump-dom prints.
_PROBE = """<script>
window.__errs = [];
window.addEventListener('error', function (e) {
  var t = e.target || {};
  window.__errs.push(t.src ? 'resource: ' + t.src.slice(0, 60) : 'script: ' + e.message);
}, true);
var __ce = console.error;
console.error = function () { window.__errs.push('console: ' + [].join.call(arguments, ' '));
  __ce.apply(console, arguments); };
window.addEventListener('load', function () {
  var imgs = Array.prototype.map.call(document.images, function (i) {
    return {id: i.id, complete: i.complete, w: i.naturalWidth, h: i.naturalHeight}; });
  var pre = document.createElement('pre');
  pre.id = '__result';
  var claims = document.getElementById('claims');
  var rows = claims ? claims.querySelectorAll('tr').length : 0;
  var top = claims ? claims.getBoundingClientRect().top : null;
  pre.textContent = JSON.stringify({images: imgs, errors: window.__errs, claims_top: top,
                                    claims_rows: rows, height: window.innerHeight});
  document.body.appendChild(pre);
});
</script>"""


@pytest.mark.skipif(_CHROMIUM is None, reason="chromium is not installed")
def test_report_opens_in_headless_chromium(tmp_path: Path) -> None:
    out = tmp_path / "report"
    tiny = {"ns": (4,), "Ts": (4,), "n_fixed": 4, "T_fixed": 4, "ds": (2, 4), "seeds": 2,
            "chunk": 2}
    run_figure("rank", out, quick=True, overrides=tiny)
    run_figure("paths-2d", out, quick=True)
    write_report(out, provenance(test=True))
    html = (out / "index.html").read_text(encoding="utf-8")
    check = out / "check.html"
    check.write_text(html.replace("<head>", "<head>" + _PROBE, 1), encoding="utf-8")
    assert _CHROMIUM is not None
    proc = subprocess.run(
        [_CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update", "--no-first-run",
         f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
         "--virtual-time-budget=5000", "--window-size=1280,800", "--dump-dom", check.as_uri()],
        capture_output=True, text=True, timeout=120)
    m = re.search(r'<pre id="__result">(.*?)</pre>', proc.stdout, re.S)
    assert m, f"no probe output; stderr: {proc.stderr[-2000:]}"
    res = json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    ids = {img["id"] for img in res["images"]}
    assert ids == {"img-rank", "img-paths-2d"}
    for img in res["images"]:
        assert img["complete"] and img["w"] > 100 and img["h"] > 100, img
    assert res["errors"] == []
    # The claims table (a header row and one row per figure) starts on the first screen.
    assert res["claims_rows"] == 3
    assert res["claims_top"] is not None and 0 <= res["claims_top"] < res["height"] / 2
    console = [ln for ln in proc.stderr.splitlines() if "CONSOLE" in ln or "Uncaught" in ln]
    assert console == [], console
