"""The documentation site (mkdocs.yml, docs/) builds with `mkdocs build --strict`: a broken link or anchor, a page
missing from the nav, a README section that no page shows, or a docstring griffe cannot read fails the build."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def require_mkdocs() -> None:
    for module in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python"):
        if importlib.util.find_spec(module.split(".")[0]) is None or importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed: pip install -e '.[docs]' builds the documentation")


def load_hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", REPO / "docs" / "hooks.py")
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    return hooks


def test_the_site_builds_strictly_with_every_page_the_readme_the_help_and_the_api(tmp_path):
    require_mkdocs()
    site = tmp_path / "site"
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=REPO, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"}, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    assert "WARNING" not in result.stderr, result.stderr[-4000:]
    page = {name: (site / name / "index.html").read_text() for name in ("rcl", "architecture", "cli", "api/modules")}
    assert "Relative Contrastive Learning" in page["rcl"]  # the README's section, included
    assert 'href="../CONTRIBUTING/"' in page["architecture"]  # the README's link to a file outside docs/
    assert (site / "CONTRIBUTING" / "index.html").is_file() and not (site / "hooks.py").exists()
    for command in ("train", "eval", "recommend", "serve", "export", "federated", "finetune", "zoo"):
        assert f'id="seqrec-{command}"' in page["cli"], command
    assert "usage: seqrec train" in page["cli"] and "config groups" in page["cli"]
    assert 'id="lightning_seqrec.modules.seqrec.SeqRecModule"' in page["api/modules"]  # from the docstrings


class Warnings(list):
    """Stands in for the hooks' logger: the warnings it was given."""

    def warning(self, message: str) -> None:
        self.append(message)


def test_a_readme_section_on_no_page_is_a_warning(tmp_path, monkeypatch):
    """`mkdocs build --strict` fails on a warning, so a README section must be on a page to build."""
    pytest.importorskip("mkdocs", reason="mkdocs is not installed: pip install -e '.[docs]'")
    hooks = load_hooks()
    (tmp_path / "README.md").write_text(
        "<!-- --8<-- [start:intro] -->\n# title\n<!-- --8<-- [end:intro] -->\n"
        "<!-- --8<-- [start:shown] -->\n## Shown\n<!-- --8<-- [end:shown] -->\n"
        "<!-- --8<-- [start:hidden] -->\n## Hidden\n<!-- --8<-- [end:hidden] -->\n"
        "## Unmarked\n```bash\n## a comment in a code block, not a heading\n```\n"
    )
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text('--8<-- "README.md:intro"\n\n--8<-- "README.md:shown"\n')
    warnings = Warnings()
    monkeypatch.setattr(hooks, "ROOT", tmp_path)
    monkeypatch.setattr(hooks, "log", warnings)
    hooks.on_pre_build({"docs_dir": str(docs)})
    assert len(warnings) == 2, warnings
    assert "'hidden'" in warnings[0] and "'## Unmarked'" in warnings[1]
