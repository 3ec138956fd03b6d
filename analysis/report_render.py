"""Text for ``sweep report``: numbers and lists in words, and a tiny document model.

Part of :mod:`analysis.report`. :class:`Doc` holds the report as blocks (headings, paragraphs,
lists, tables, figures) and renders them to Markdown (``report.md``) and to self-contained HTML
(``report.html``); the functions above it format the numbers and lists the sections write.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

# --------------------------------------------------------------------------------------------
# numbers and lists in words


def list_text(items: Sequence[str], limit: int = 6) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def keys_text(keys: Sequence[str]) -> str:
    return ", ".join(f"`{k}`" for k in keys) if keys else "(none: one group)"


def num(value: Any) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "-"
    if not np.isfinite(v):
        return "-"
    if abs(v) >= 1000:
        return f"{v:.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.3g}"


def ci(est: float, low: float, high: float, digits: int | None = None) -> str:
    fmt = (lambda v: f"{v:.{digits}f}") if digits is not None else num
    if not np.isfinite(est):
        return "-"
    if not (np.isfinite(low) and np.isfinite(high)):
        return f"{fmt(est)} [no CI]"
    return f"{fmt(est)} [{fmt(low)}, {fmt(high)}]"


def steps_ci(est: float, low: float, high: float) -> str:
    def fmt(v: float) -> str:
        if np.isinf(v):
            return "not reached"
        return "-" if not np.isfinite(v) else f"{v:,.0f}"

    if np.isinf(est) and np.isinf(low):
        return "not reached"
    return f"{fmt(est)} [{fmt(low)}, {fmt(high)}]"


def int_text(value: Any) -> str:
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return "?"


def first_line(error: Any, limit: int = 160) -> str:
    if error is None or (isinstance(error, float) and np.isnan(error)):
        return "(no error message)"
    line = str(error).strip().splitlines()[-1] if str(error).strip() else ""
    return (line[: limit - 3] + "...") if len(line) > limit else line or "(empty)"


# --------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------
# a tiny document model rendered to Markdown and to self-contained HTML


class Doc:
    """The report as a list of blocks, rendered by :meth:`to_markdown` and :meth:`to_html`."""

    def __init__(self, svg: bool = True, inline_images: bool = True) -> None:
        self.blocks: list[tuple[str, Any]] = []
        self.svg = svg  # link an SVG copy of each figure
        self.inline_images = inline_images  # HTML: PNGs embedded (one file) or linked

    def h(self, level: int, text: str) -> None:
        self.blocks.append(("h", (level, text)))

    def p(self, text: str) -> None:
        self.blocks.append(("p", text))

    def ul(self, items: Sequence[str]) -> None:
        self.blocks.append(("ul", list(items)))

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        self.blocks.append(("table", (list(headers), [list(r) for r in rows])))

    def figure(self, stem: str, caption: str) -> None:
        self.blocks.append(("figure", (stem, caption)))

    def to_markdown(self) -> str:
        out: list[str] = []
        for kind, data in self.blocks:
            if kind == "h":
                out.append(f"{'#' * data[0]} {data[1]}")
            elif kind == "p":
                out.append(data)
            elif kind == "ul":
                out.append("\n".join(f"- {item}" for item in data))
            elif kind == "table":
                headers, rows = data
                lines = [
                    "| " + " | ".join(_md_cell(h) for h in headers) + " |",
                    "|" + "|".join("---" for _ in headers) + "|",
                ]
                lines += ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in rows]
                out.append("\n".join(lines))
            elif kind == "figure":
                stem, caption = data
                link = f" ([SVG]({stem}.svg))" if self.svg else ""
                out.append(f"![{_md_cell(caption)}]({stem}.png)\n\n*{caption}*{link}")
        return "\n\n".join(out) + "\n"

    def to_html(self, root: Path, title: str) -> str:
        """Self-contained HTML: headings with anchors, a table of contents after the title,
        and for each figure the PNG (inlined or linked) or, where the file is missing, a
        visible note naming it (a linked figure deleted later shows the same note)."""
        body: list[str] = []
        toc: list[tuple[int, str, str]] = []
        anchors: set[str] = set()
        for kind, data in self.blocks:
            if kind == "h":
                level, text = data
                anchor = _anchor(text, anchors)
                if level in (2, 3):
                    toc.append((level, anchor, text))
                body.append(f'<h{level} id="{anchor}">{_inline(text)}</h{level}>')
                if level == 1:
                    body.append("<!--toc-->")
            elif kind == "p":
                body.append(f"<p>{_inline(data)}</p>")
            elif kind == "ul":
                body.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in data) + "</ul>")
            elif kind == "table":
                headers, rows = data
                head = "".join(f"<th>{_inline(h)}</th>" for h in headers)
                trs = "".join(
                    "<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>" for r in rows
                )
                body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{trs}</tbody></table>")
            elif kind == "figure":
                body.append(self._figure_html(root, *data))
        toc_html = _toc_html(toc)
        body = [toc_html if b == "<!--toc-->" else b for b in body]
        if toc_html and toc_html not in body:
            body.insert(0, toc_html)
        return (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>Sweep report: {html.escape(title)}</title><style>{_CSS}</style></head>"
            "<body>\n" + "\n".join(body) + "\n</body></html>\n"
        )

    def _figure_html(self, root: Path, stem: str, caption: str) -> str:
        path = root / f"{stem}.png"
        if not path.is_file():
            return (
                f'<figure><p class="missing">Figure missing: <code>{html.escape(stem)}.png'
                "</code> was not found when this page was written (rerun <code>sweep report"
                f"</code>).</p><figcaption>{_inline(caption)}</figcaption></figure>"
            )
        if self.inline_images:
            png = base64.b64encode(path.read_bytes()).decode("ascii")
            src = f"data:image/png;base64,{png}"
            fallback = ""
        else:
            src = html.escape(f"{stem}.png")
            note = html.escape(
                f"Figure missing: {stem}.png is not next to this page "
                "(report/figures/ moved or deleted; rerun sweep report)."
            )
            # a linked figure deleted after the page was written: say so, not a broken image
            js = "this.outerHTML='<p class=\"missing\">{}</p>'".format(
                note.replace("\\", "\\\\").replace("'", "\\'")
            )
            fallback = f' onerror="{html.escape(js, quote=True)}"'
        return (
            f'<figure><img alt="{html.escape(caption)}" src="{src}"{fallback}>'
            f"<figcaption>{_inline(caption)}</figcaption></figure>"
        )


_CSS = (
    "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;"
    "line-height:1.45;color:#222}table{border-collapse:collapse;margin:1em 0;font-size:.9em}"
    "th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left}th{background:#f3f3f3}"
    "figure{margin:1.5em 0}img{max-width:100%}figcaption{font-size:.9em;color:#444}"
    "code{background:#f3f3f3;padding:0 .2em}"
    "nav.toc{background:#f7f7f7;border:1px solid #ddd;padding:.4em 1em;margin:1em 0;"
    "font-size:.92em}nav.toc ul{margin:.2em 0;padding-left:1.2em}"
    ".missing{border:2px dashed #b00;color:#b00;background:#fff4f4;padding:1em;"
    "font-weight:600}"
)


def _anchor(text: str, taken: set[str]) -> str:
    """A unique HTML id for a heading: lower-case words joined by hyphens."""
    base = re.sub(r"[^a-z0-9]+", "-", re.sub(r"[`*]", "", str(text)).lower()).strip("-")
    base = base or "section"
    anchor, k = base, 2
    while anchor in taken:
        anchor, k = f"{base}-{k}", k + 1
    taken.add(anchor)
    return anchor


def _toc_html(toc: Sequence[tuple[int, str, str]]) -> str:
    """Nested list of links to the h2 (and their h3) headings."""
    if not toc:
        return ""
    out = ['<nav class="toc"><strong>Contents</strong><ul>']
    open_sub = False
    for level, anchor, text in toc:
        link = f'<a href="#{anchor}">{_inline(text)}</a>'
        if level == 3:
            if not open_sub:
                out.append("<ul>")
                open_sub = True
            out.append(f"<li>{link}</li>")
            continue
        if open_sub:
            out.append("</ul>")
            open_sub = False
        out.append(f"<li>{link}</li>")
    if open_sub:
        out.append("</ul>")
    out.append("</ul></nav>")
    return "".join(out)


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _inline(text: str) -> str:
    """Markdown-lite to HTML: escape, then **bold** and `code`."""
    out = html.escape(str(text), quote=False)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", out)
