"""The quickstart report: one list of blocks (headings, paragraphs, tables, images) rendered both as
Markdown (``report.md``) and as a self-contained HTML page (``report.html``, images linked beside it)."""
from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

from facelivt.files import atomic_paths


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Para:
    text: str  # Markdown inline syntax limited to **bold** and `code`


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]
    caption: str = ""


@dataclass
class Figure:
    path: str  # relative to the report folder
    alt: str


Block = Union[Heading, Para, Bullets, Table, Figure]


@dataclass
class Report:
    title: str
    blocks: list[Block] = field(default_factory=list)

    def add(self, *blocks: Block) -> None:
        self.blocks.extend(blocks)


# ---------------------------------------------------------------------------------------- markdown


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def to_markdown(report: Report) -> str:
    out = [f"# {report.title}", ""]
    for b in report.blocks:
        if isinstance(b, Heading):
            out += ["#" * b.level + " " + b.text, ""]
        elif isinstance(b, Para):
            out += [b.text, ""]
        elif isinstance(b, Bullets):
            out += [f"- {item}" for item in b.items] + [""]
        elif isinstance(b, Table):
            if b.caption:
                out += [b.caption, ""]
            out.append("| " + " | ".join(_md_cell(h) for h in b.header) + " |")
            out.append("|" + "|".join("---" for _ in b.header) + "|")
            out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in b.rows]
            out.append("")
        elif isinstance(b, Figure):
            out += [f"![{b.alt}]({b.path})", ""]
    return "\n".join(out)


# -------------------------------------------------------------------------------------------- html


def _inline(text: str) -> str:
    """Escape, then the two inline marks the blocks use: **bold** and `code`."""
    parts = str(text).split("`")
    out = []
    for i, part in enumerate(parts):
        if i % 2:
            out.append(f"<code>{html.escape(part)}</code>")
        else:
            chunks = html.escape(part).split("**")
            out.append("".join(f"<b>{c}</b>" if j % 2 else c for j, c in enumerate(chunks)))
    return "".join(out)


_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }
th { background: #f2f2f2; } td:first-child, th:first-child { text-align: left; }
code { background: #f4f4f4; padding: 0 0.2em; } img { max-width: 100%; border: 1px solid #ddd; }
"""


def to_html(report: Report) -> str:
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(report.title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(report.title)}</h1>",
    ]
    for b in report.blocks:
        if isinstance(b, Heading):
            out.append(f"<h{b.level}>{_inline(b.text)}</h{b.level}>")
        elif isinstance(b, Para):
            out.append(f"<p>{_inline(b.text)}</p>")
        elif isinstance(b, Bullets):
            out.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in b.items) + "</ul>")
        elif isinstance(b, Table):
            if b.caption:
                out.append(f"<p>{_inline(b.caption)}</p>")
            head = "".join(f"<th>{_inline(h)}</th>" for h in b.header)
            body = "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in row) + "</tr>" for row in b.rows)
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif isinstance(b, Figure):
            out.append(f'<p><img src="{html.escape(b.path)}" alt="{html.escape(b.alt)}"></p>')
    out.append("</body></html>")
    return "\n".join(out)


def write_report(report: Report, folder: str | Path) -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.html`` into ``folder``."""
    folder = Path(folder)
    md, page = folder / "report.md", folder / "report.html"
    with atomic_paths(md, page) as (tmp_md, tmp_page):  # both or, on a failed write, neither replaced
        tmp_md.write_text(to_markdown(report), encoding="utf-8")
        tmp_page.write_text(to_html(report), encoding="utf-8")
    return md, page


def pct(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{100.0 * x:.{digits}f}"

