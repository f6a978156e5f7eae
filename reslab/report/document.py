"""A report as a list of blocks, rendered twice: Markdown (figures beside it) and self-contained HTML.

One list for both keeps the two files saying the same thing. The HTML embeds every figure as a base64
data URI and carries its CSS inline, so it opens anywhere, offline, and makes no requests. Blocks hold
plain text (run names, values from files): both renderers escape it, so a name like `a|b *c* <d>` shows
as typed instead of breaking a table or becoming markup, and both clean it to valid UTF-8.
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence, Union

from reslab.reading import clean_text, inline


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Note:
    """A warning a reader must not miss (a run in progress, interrupted or crashed)."""

    text: str


@dataclass(frozen=True)
class Table:
    header: Sequence[str]
    rows: Sequence[Sequence[str]]
    numeric: Sequence[bool] = ()  # right-align these columns


@dataclass(frozen=True)
class Figure:
    path: str  # relative to the report folder
    caption: str


@dataclass(frozen=True)
class Preformatted:
    text: str


Block = Union[Heading, Paragraph, Note, Table, Figure, Preformatted]

CSS = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1b1b1b;
       max-width: 1100px; margin: 2em auto; padding: 0 1.5em; }
h1 { font-size: 1.7em; margin-bottom: 0.2em; } h2 { margin-top: 2.2em; border-bottom: 1px solid #ddd; }
h3 { margin-top: 1.6em; }
table { border-collapse: collapse; margin: 1em 0; font-variant-numeric: tabular-nums; }
th, td { border-bottom: 1px solid #e3e3e3; padding: 0.3em 0.8em; text-align: left; }
th { background: #f4f6f8; } td.num, th.num { text-align: right; }
figure { margin: 1.2em 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9em; }
pre { background: #f6f8fa; padding: 0.8em 1em; overflow-x: auto; font-size: 0.85em; }
.note { background: #fff4e5; border-left: 4px solid #e8890c; padding: 0.5em 1em; font-weight: 600; }
@media print { body { max-width: none; margin: 0; font-size: 11pt; } h2 { break-before: page; }
               figure, table, pre { break-inside: avoid; } }
"""


_MD_ESCAPE = re.compile(r"([\\`*_\[\]|#~$])")  # CommonMark's markup characters inside a line (and GFM's | ~)


def md(text: str) -> str:
    """Plain text as Markdown that shows it as typed: markup characters escaped, &, < and > as entities."""
    text = inline(text, None).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_ESCAPE.sub(r"\\\1", text)


def _link(path: str) -> str:
    """A link target that works with spaces and parentheses (<...> form); the report's own names need none."""
    return f"<{path}>" if re.search(r"[\s()<>]", path) else path


def _fenced(text: str) -> list[str]:
    """Text in a code fence longer than any run of backticks inside it."""
    text = clean_text(text).rstrip("\n")
    fence = "`" * max(3, 1 + max((len(run) for run in re.findall(r"`+", text)), default=0))
    return [fence + "text", text, fence, ""]


def to_markdown(title: str, blocks: Sequence[Block]) -> str:
    out = [f"# {md(title)}", ""]
    for b in blocks:
        if isinstance(b, Heading):
            out += ["#" * b.level + " " + md(b.text), ""]
        elif isinstance(b, Paragraph):
            out += [md(b.text), ""]
        elif isinstance(b, Note):
            out += [f"> **{md(b.text)}**", ""]
        elif isinstance(b, Table):
            aligns = [("---:" if i < len(b.numeric) and b.numeric[i] else "---") for i in range(len(b.header))]
            out += ["| " + " | ".join(map(md, b.header)) + " |", "| " + " | ".join(aligns) + " |"]
            out += ["| " + " | ".join(map(md, row)) + " |" for row in b.rows] + [""]
        elif isinstance(b, Figure):
            out += [f"![{md(b.caption)}]({_link(b.path)})", "", f"*{md(b.caption)}*", ""]
        elif isinstance(b, Preformatted):
            out += _fenced(b.text)
    return "\n".join(out)


def _h(text: str) -> str:
    return html.escape(inline(text, None))


def _data_uri(path: Path) -> str:
    mime = {".png": "image/png", ".svg": "image/svg+xml"}[path.suffix.lower()]
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def _html_table(b: Table) -> str:
    def cls(i: int) -> str:
        return ' class="num"' if i < len(b.numeric) and b.numeric[i] else ""

    head = "".join(f"<th{cls(i)}>{_h(h)}</th>" for i, h in enumerate(b.header))
    body = "".join("<tr>" + "".join(f"<td{cls(i)}>{_h(c)}</td>" for i, c in enumerate(row)) + "</tr>"
                   for row in b.rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def to_html(title: str, blocks: Sequence[Block], root: Path) -> str:
    """One file: figures under `root` are embedded, nothing is fetched."""
    parts = []
    for b in blocks:
        if isinstance(b, Heading):
            parts.append(f"<h{b.level}>{_h(b.text)}</h{b.level}>")
        elif isinstance(b, Paragraph):
            parts.append(f"<p>{_h(b.text)}</p>")
        elif isinstance(b, Note):
            parts.append(f'<p class="note">{_h(b.text)}</p>')
        elif isinstance(b, Table):
            parts.append(_html_table(b))
        elif isinstance(b, Figure):
            parts.append(f'<figure><img src="{_data_uri(root / b.path)}" alt="{_h(b.caption)}">'
                         f"<figcaption>{_h(b.caption)}</figcaption></figure>")
        elif isinstance(b, Preformatted):
            parts.append(f"<pre>{html.escape(clean_text(b.text))}</pre>")
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f'<link rel="icon" href="data:,">\n'  # no favicon request
            f"<title>{_h(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
            f"<h1>{_h(title)}</h1>\n" + "\n".join(parts) + "\n</body>\n</html>\n")
