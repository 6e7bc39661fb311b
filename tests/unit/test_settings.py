"""skinml/core/settings.py is the one reader of SKINML_* variables, and docs/operations.md lists each as it is
defined."""

import re
from pathlib import Path

import pytest

from skinml.core import settings
from skinml.core.settings import SETTINGS

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [p for folder in ("skinml", "flows") for p in (ROOT / folder).rglob("*.py") if p.name != "settings.py"]


def test_no_other_module_reads_a_skinml_variable():
    reads = re.compile(r"""(environ\.get\(|environ\[|getenv\()\s*["']SKINML_""")
    assert [str(p) for p in SOURCES if reads.search(p.read_text())] == []
    named = {m for p in SOURCES for m in re.findall(r"""["'](SKINML_[A-Z_]+)["']""", p.read_text())}
    assert named <= set(SETTINGS), f"variables outside skinml/core/settings.py: {named - set(SETTINGS)}"


def test_docs_list_every_setting_with_its_default():
    rows = dict(re.findall(r"^\| `(SKINML_[A-Z_]+)` \| ([^|]+) \|", (ROOT / "docs/operations.md").read_text(), re.M))
    assert set(rows) == set(SETTINGS)
    for name, setting in SETTINGS.items():
        assert rows[name].strip() == (f"`{setting.default}`" if setting.default else "—"), name


def test_a_bad_value_is_an_error_naming_the_variable(monkeypatch):
    monkeypatch.setenv("SKINML_SERVE_MAX_ROWS", "many")
    with pytest.raises(ValueError, match=r"^\$SKINML_SERVE_MAX_ROWS='many' is not a whole number above 0$"):
        settings.positive_int("SKINML_SERVE_MAX_ROWS")
    monkeypatch.setenv("SKINML_SERVE_MAX_ROWS", "0")
    with pytest.raises(ValueError, match="SKINML_SERVE_MAX_ROWS"):
        settings.positive_int("SKINML_SERVE_MAX_ROWS")
    monkeypatch.setenv("SKINML_PRECISION", "fp8")
    with pytest.raises(ValueError, match=r"'fp8' \(from an option or \$SKINML_PRECISION\) is unknown; use one of f32"):
        settings.choice("SKINML_PRECISION")
    monkeypatch.delenv("SKINML_SERVE_MAX_ROWS")
    assert settings.positive_int("SKINML_SERVE_MAX_ROWS") == 64
    monkeypatch.setenv("SKINML_CACHE_DIR", "~/elsewhere")
    assert settings.user_cache("SKINML_CACHE_DIR", "features") == Path.home() / "elsewhere"
    monkeypatch.delenv("SKINML_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", "/tmp/xdg")
    assert settings.user_cache("SKINML_CACHE_DIR", "features") == Path("/tmp/xdg/skinml/features")
