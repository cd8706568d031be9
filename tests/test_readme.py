"""README.md says what works: its runnable Python snippets run, its commands exist.

A ```python block right after a `<!-- runnable -->` line is executed as a reader would run it:
a fresh Python process (this one's interpreter) whose working folder looks like the repository
root (every top-level entry linked into a temporary folder, except out/), so the snippet's
relative paths resolve and whatever it writes stays in the temporary folder. Such a block
starts party processes, hence `slow`. The fast tests check that the markers sit where they
should and that every `sqlmpc` command line of the README names a real subcommand and real
options.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MARKER = "<!-- runnable -->"
FENCE = re.compile(r"^```(\w*)\s*$")
#: top-level entries a snippet's working folder does not share with the repository
NOT_LINKED = {"out", ".git", ".venv", ".pytest_cache", ".hypothesis"}


def fenced_blocks(text: str) -> list[tuple[int, str, str, bool]]:
    """(line number, language, code, marked runnable) of every fenced block."""
    lines = text.splitlines()
    blocks, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        start, lang = i, m.group(1)
        end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("```")), None)
        assert end is not None, f"README.md line {start + 1}: a code block is never closed"
        before = [ln for ln in lines[:start] if ln.strip()]
        marked = bool(before) and before[-1].strip() == MARKER
        blocks.append((start + 1, lang, "\n".join(lines[start + 1:end]), marked))
        i = end + 1
    return blocks


BLOCKS = fenced_blocks(README.read_text())
RUNNABLE = [(line, code) for line, lang, code, marked in BLOCKS if marked]


def test_markers_precede_python_blocks():
    """Every marker marks a python block (a marker before prose or a shell block would leave
    a snippet untested), and the README has runnable snippets at all."""
    text = README.read_text()
    assert text.count(MARKER) == len(RUNNABLE) >= 2
    for line, lang, _, marked in BLOCKS:
        if marked:
            assert lang == "python", f"README.md line {line}: {MARKER} before a {lang} block"


def working_folder(tmp_path: Path) -> Path:
    """A folder that looks like the repository root to a snippet; writes stay in it."""
    folder = tmp_path / "repo"
    folder.mkdir()
    for entry in ROOT.iterdir():
        if entry.name not in NOT_LINKED:
            (folder / entry.name).symlink_to(entry)
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("line,code", RUNNABLE, ids=[f"line{line}" for line, _ in RUNNABLE])
def test_runnable_block_runs(line, code, tmp_path):
    folder = working_folder(tmp_path)
    proc = subprocess.run([sys.executable, "-c", code], cwd=folder, capture_output=True,
                          text=True, timeout=600, env=dict(os.environ, PYTHONUNBUFFERED="1"),
                          check=False)
    assert proc.returncode == 0, (f"README.md line {line}: the snippet failed:\n"
                                  f"{proc.stderr[-3000:]}")
    assert proc.stdout.strip(), f"README.md line {line}: the snippet printed nothing"


def sqlmpc_commands() -> list[tuple[int, list[str]]]:
    """(line, words) of every `sqlmpc ...` line in the README's shell blocks."""
    found = []
    for line, lang, code, _ in BLOCKS:
        if lang != "sh":
            continue
        for k, text in enumerate(code.splitlines()):
            words = text.split("#", 1)[0].split()
            if words[:1] == ["sqlmpc"]:
                found.append((line + 1 + k, words))
    return found


def test_readme_commands_name_real_options():
    from sqlmpc.runtime.cli import build_parser

    parser = build_parser()
    (sub,) = [a for a in parser._actions if a.dest == "command"]  # the subcommands
    commands = sqlmpc_commands()
    assert len(commands) >= 5
    for line, words in commands:
        assert words[1] in sub.choices, f"README.md line {line}: no command {words[1]!r}"
        known = sub.choices[words[1]]._option_string_actions
        for word in words[2:]:
            option = word.strip("[]").split("=", 1)[0]
            if option.startswith("--"):
                assert option in known, (f"README.md line {line}: `sqlmpc {words[1]}` has no "
                                         f"option {option}")
