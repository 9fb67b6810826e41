"""The docs cannot point at nothing: links, quoted file paths and shown commands are checked against the repo.

Pages: README.md, CONTRIBUTING.md and docs/*.md. Checked:

- every relative link (and image) resolves to a file, and its `#anchor` to a heading of that page;
- every repository path quoted in inline code (`study/...`, `tests/test_x.py::test_name`,
  `study/spec/_expand.py: lr_twin`, `study.evaluate.stratified_subset`) exists, with its name;
- every `lamp-study ...` invocation in a fenced code block, a table or inline code names a real
  subcommand, and each `--option` it shows is one that subcommand's argparse parser accepts.

No Ray, no MLflow: the parser is built, never run.
"""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

from study.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted([ROOT / "README.md", ROOT / "CONTRIBUTING.md", *(ROOT / "docs").glob("*.md")])
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
INLINE = re.compile(r"`([^`\n]+(?:\n[^`\n]+)?)`")  # one span may wrap onto the next line
REPO_DIRS = ("study", "reports", "tests", "bench", "search_spaces", "docs", "scripts")
PATH = re.compile(rf"^((?:{'|'.join(REPO_DIRS)})/[\w./-]*)(?:(?:::|: )(\w+))?$")
DOTTED = re.compile(r"^(?:study|reports)(?:\.\w+)+$")
NOT_CODE = {"study.name"}  # dotted names that are MLflow params, not Python
OTHER_TOOLS = {"--artifacts-destination"}  # options of `mlflow server` that the docs quote alone


def _rel(page: Path) -> str:
    return str(page.relative_to(ROOT))


def _prose(text: str) -> str:
    """The page without its fenced code blocks (links and inline code there are not markdown)."""
    return FENCE.sub("", text)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for line in _prose(page.read_text()).splitlines():
        if m := re.match(r"^#{1,6}\s+(.*)$", line):
            slug = _slug(m.group(1))
            n = seen.get(slug, 0)
            seen[slug] = n + 1
            out.add(slug if n == 0 else f"{slug}-{n}")
    return out


@pytest.mark.parametrize("page", PAGES, ids=_rel)
def test_every_relative_link_resolves(page: Path) -> None:
    broken = []
    for target in LINK.findall(_prose(page.read_text())):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            broken.append(f"{target} (no heading #{anchor} in {dest.name})")
    assert not broken, f"{_rel(page)}: {broken}"


def _defines(path: Path, name: str) -> bool:
    """Whether the module defines `name` (a package's `__init__` may re-export it)."""
    text = path.read_text() if path.is_file() else ""
    if path.name == "__init__.py":
        return re.search(rf"\b{name}\b", text) is not None
    return re.search(rf"^\s*(?:def|class|async def) {name}\b|^{name}\s*[:=]", text, re.M) is not None


def _module_file(dotted: str) -> tuple[Path, str] | None:
    """(module file, attribute) of `study.mod.attr`; None when no module prefix exists."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        base = ROOT.joinpath(*parts[:cut])
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.exists():
                return candidate, ".".join(parts[cut:])
    return None


@pytest.mark.parametrize("page", PAGES, ids=_rel)
def test_every_quoted_repository_path_exists(page: Path) -> None:
    missing = []
    for code in INLINE.findall(_prose(page.read_text())):
        code = code.strip()
        if m := PATH.match(code):
            path, name = ROOT / m.group(1), m.group(2)
            if not path.exists():
                missing.append(code)
            elif name and not _defines(path, name):
                missing.append(f"{code} (no {name} there)")
        elif DOTTED.match(code) and code not in NOT_CODE:
            found = _module_file(code)
            if found is None or (found[1] and not _defines(found[0], found[1].split(".")[-1])):
                missing.append(code)
    assert not missing, f"{_rel(page)} quotes what the repository does not have: {missing}"


# ---------------------------------------------------------------- commands and options
def _parsers() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return parser, dict(sub.choices)


def _invocations(text: str) -> list[str]:
    """The argument text after each `lamp-study` in fenced blocks (continued lines joined), table
    cells and inline code, up to a shell comment or the next command."""
    spans = []
    for block in FENCE.findall(text):
        spans += block.replace("\\\n", " ").splitlines()
    spans += INLINE.findall(_prose(text))
    out = []
    for span in spans:
        span = span.replace("\\|", "|").replace("\n", " ")
        for m in re.finditer(r"(?:^|[\s/$])lamp-study((?:\s[^#&;|]*)?)", span):
            out.append(m.group(1).strip())
    return out


def _options(args: str) -> list[str]:
    try:
        words = shlex.split(args.replace("[", " ").replace("]", " "))
    except ValueError:
        words = args.replace("[", " ").replace("]", " ").split()
    return [w.split("=")[0].rstrip(".,;:)") for w in words if w.startswith("-")]


def test_every_shown_command_and_option_exists() -> None:
    parser, commands = _parsers()
    shown, wrong = 0, []
    for page in PAGES:
        for args in _invocations(page.read_text()):
            words = args.split()
            command = next((w for w in words if not w.startswith("-")), None)
            if command in (None, "COMMAND"):  # `lamp-study --help`, `lamp-study COMMAND --help`
                known = parser._option_string_actions
            elif command in commands:
                known = commands[command]._option_string_actions
            else:
                wrong.append(f"{_rel(page)}: lamp-study {args} (no command {command!r})")
                continue
            shown += 1
            wrong += [f"{_rel(page)}: lamp-study {args} ({o}?)" for o in _options(args) if o not in known]
    assert shown > 20, f"only {shown} invocations found: the check would pass vacuously"
    assert not wrong, "\n".join(wrong)


def test_every_option_quoted_alone_exists() -> None:
    """`--extend`, `--retry-failed`, ... quoted in prose: an option of some lamp-study command
    (CONTRIBUTING.md is left out: its options are the benchmarks' own)."""
    parser, commands = _parsers()
    known = set(parser._option_string_actions)
    for sub in commands.values():
        known |= set(sub._option_string_actions)
    wrong = []
    for page in (p for p in PAGES if p.name != "CONTRIBUTING.md"):
        for code in INLINE.findall(_prose(page.read_text())):
            if re.match(r"^--[a-z]", code) and _options(code)[0] not in known | OTHER_TOOLS:
                wrong.append(f"{_rel(page)}: {code}")
    assert not wrong, wrong


def test_the_readme_is_a_start_page_with_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.encode()) < 15_000, "README grew past a start page: move the detail to docs/"
    quickstart = readme.split("## Quickstart")[1].split("\n## ")[0]
    commands = [
        line.split("#")[0].strip() for block in FENCE.findall(quickstart) for line in block.splitlines()
    ]
    assert [c for c in commands if c] == ["make quickstart", "make test"]
    for name in ("docs/index.md", "docs/report_screenshot.png", "CONTRIBUTING.md"):
        assert f"]({name})" in readme, name
