"""MkDocs hooks of the documentation site (mkdocs.yml `hooks:`): one source for every text it shows.

- README.md and CONTRIBUTING.md stay the source of the pages that include their sections (pymdownx.snippets,
  `--8<-- "README.md:NAME"` for the part between `--8<-- [start:NAME]` and `--8<-- [end:NAME]`). Those pages sit at
  the top of docs/, where the README's relative links mean what they mean in the repository; the files the links
  point to outside docs/ (CONTRIBUTING.md, an image) join the site at the same path, so the links work there too.
- A README section that no page includes is reported (a warning, so `mkdocs build --strict` fails): a new section
  needs its markers and a page.
- `<!-- seqrec-help -->` in a page becomes the `--help` of every `seqrec` command, as the command prints it.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from mkdocs.plugins import get_plugin_logger
from mkdocs.structure.files import File

log = get_plugin_logger("seqrec")

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("README.md", "CONTRIBUTING.md")
LINK = re.compile(r"\]\(([^)\s]+)\)")
SECTION = re.compile(r"--8<-- \[(start|end):([\w-]+)\]")
INCLUDE = re.compile(r'--8<-- "README\.md:([\w-]+)"')
HELP_MARKER = "<!-- seqrec-help -->"

HELP_SCRIPT = """
import contextlib, io, json, sys
from lightning_seqrec import cli

spelled = {task: f"{word} {sub}" for word, subs in cli.SUBCOMMANDS.items() for sub, task in subs.items()}
helps = {}
for command in ["", *(spelled.get(task, task) for task in cli.TASKS), *cli.PLAIN_COMMANDS]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            cli.main([*command.split(), "--help"])
        except SystemExit:
            pass
    helps[command] = out.getvalue().strip()
json.dump(helps, sys.stdout)
"""
"""Each command's `--help` in one process (cli.main as `seqrec` runs it), as JSON {command: text}."""


def on_files(files, config):
    """Add the repository files that README.md and CONTRIBUTING.md link to from outside docs/."""
    for source in SOURCES:
        for target in LINK.findall((ROOT / source).read_text(encoding="utf-8")):
            path = target.split("#", 1)[0]
            if not path or "://" in path or path.startswith(("/", "mailto:")):
                continue
            if (ROOT / path).is_file() and files.get_file_from_path(path) is None:
                files.append(File(path, str(ROOT), config["site_dir"], config["use_directory_urls"]))
    for source in SOURCES:  # CONTRIBUTING.md is a page whether or not the README links it
        if source != "README.md" and files.get_file_from_path(source) is None:
            files.append(File(source, str(ROOT), config["site_dir"], config["use_directory_urls"]))
    return files


def on_pre_build(config):
    """Warn about README sections no page includes, and `## ` headings outside every section."""
    included = {name for page in Path(config["docs_dir"]).rglob("*.md") for name in INCLUDE.findall(page.read_text())}
    open_sections: list[str] = []
    fenced = False
    for number, line in enumerate((ROOT / "README.md").read_text(encoding="utf-8").splitlines(), start=1):
        fenced = fenced != line.startswith("```")
        marker = SECTION.search(line)
        if marker:
            kind, name = marker.groups()
            if kind == "start":
                open_sections.append(name)
                if name not in included:
                    log.warning(f"README.md section {name!r} (line {number}) is on no page: include it in docs/")
            elif name in open_sections:
                open_sections.remove(name)
        elif line.startswith("## ") and not fenced and not open_sections:
            log.warning(
                f"README.md line {number} {line!r} is in no section: put it between <!-- --8<-- [start:NAME] --> and "
                "<!-- --8<-- [end:NAME] --> lines and include README.md:NAME in a page of docs/"
            )


def on_page_markdown(markdown, page, config, files):
    """Replace the help marker by each command's `--help` output."""
    if HELP_MARKER not in markdown:
        return markdown
    result = subprocess.run(
        [sys.executable, "-c", HELP_SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    if result.returncode != 0:
        log.warning(f"the seqrec --help texts could not be collected: {result.stderr[-2000:]}")
        return markdown
    sections = []
    for command, text in json.loads(result.stdout).items():
        title = f"seqrec {command}".strip()
        sections.append(f"## {title}\n\n```text\n{text}\n```\n")
    return markdown.replace(HELP_MARKER, "\n".join(sections))
