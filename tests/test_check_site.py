"""scripts/check_site.py finds the Sphinx roles a built site shows as text, and fails on them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "check_site.py"


def _check(site: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), str(site), *args], capture_output=True, text=True
    )


def _site(tmp_path: Path, api_page: str) -> Path:
    (tmp_path / "api").mkdir()
    (tmp_path / "index.html").write_text("<p>home</p>")
    (tmp_path / "api" / "index.html").write_text(api_page)
    return tmp_path


def test_raw_roles_are_listed_per_page_and_fail_the_check(tmp_path):
    page = (
        "<p>:func:<code>robust_accuracy</code> and :class:<code>~robustlab.x.Check</code>, "
        "and :meth:`to_json` still in backticks</p>"
    )
    done = _check(_site(tmp_path, page))
    assert done.returncode == 1
    assert "api/index.html: 3 raw role(s): :func:robust_accuracy, :class:~robustlab.x.Check" in (
        done.stdout
    )
    assert done.stdout.strip().endswith(f"3 raw Sphinx role(s) in {tmp_path}")
    assert _check(tmp_path, "--count-only").returncode == 0


def test_cross_references_and_prose_pass(tmp_path):
    page = (
        '<p><a href="#robustlab.x.f"><code>f</code></a>: a ratio 1:2, '
        "time 10:30, a <code>key:value</code> pair</p>"
    )
    done = _check(_site(tmp_path, page))
    assert done.returncode == 0, done.stdout
    assert "0 raw Sphinx role(s)" in done.stdout


def test_a_folder_that_is_not_a_site_is_a_usage_error(tmp_path):
    done = _check(tmp_path)
    assert done.returncode == 2 and "not a built site" in done.stderr
