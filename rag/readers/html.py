"""Saved web pages: the visible text only (scripts, styles, navigation, forms dropped).

The standard library's ``html.parser`` is enough here (no dependency): it tolerates the broken
markup of saved pages, and the reader only needs text and block boundaries. Headings come out
as markdown headings (``## …``) so the cleaner and the title finder treat them as headings.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

from rag.readers.base import Extracted, PageProgress, SourceError, no_progress
from rag.readers.text import decode_text

# Content a reader never sees on the page, or page furniture repeated on every page of a site.
_HIDDEN = {
    "script", "style", "noscript", "template", "svg", "canvas", "iframe", "object",
    "nav", "head", "form", "select", "button", "aside", "footer", "header", "menu",
}  # fmt: skip
_BLOCK = {
    "p", "div", "br", "li", "ul", "ol", "dl", "dt", "dd", "tr", "table", "section", "article",
    "main", "blockquote", "pre", "figure", "figcaption", "caption", "hr", "address", "td", "th",
    "h1", "h2", "h3", "h4", "h5", "h6",
}  # fmt: skip
# Elements without an end tag: they must not open a hidden region that never closes.
_VOID = {
    "br",
    "hr",
    "img",
    "input",
    "meta",
    "link",
    "area",
    "base",
    "col",
    "embed",
    "source",
    "wbr",
}
_SNIFF = re.compile(
    rb"^\s*(?:<\?xml[^>]*>\s*)?(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html)\b", re.I | re.S
)
MIN_LETTERS = 20


class _Visible(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.hidden = 0
        self.title: list[str] = []
        self.in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self.in_title = True
        if tag in _VOID:
            if tag in _BLOCK and not self.hidden:
                self.parts.append("\n")
            return
        if tag in _HIDDEN or any(
            k == "hidden" or (k == "aria-hidden" and v == "true") for k, v in attrs
        ):
            self.hidden += 1
            return
        if self.hidden:
            if tag in _HIDDEN:
                self.hidden += 1
            return
        if tag in _BLOCK:
            self.parts.append("\n\n")
        if re.fullmatch(r"h[1-6]", tag):
            self.parts.append("#" * int(tag[1]) + " ")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self.in_title = False
        if tag in _VOID:
            return
        if self.hidden:
            if tag in _HIDDEN:
                self.hidden -= 1
            return
        if tag in _BLOCK:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if self.in_title:
            self.title.append(data)
        if not self.hidden:
            self.parts.append(data)


def visible_text(markup: str) -> str:
    """The text a reader of the page sees, blocks separated by blank lines."""
    parser = _Visible()
    parser.feed(markup)
    parser.close()
    text = "".join(parser.parts)
    # Lines inside a block keep their breaks (the cleaner joins them); runs of blank lines fold.
    lines = [" ".join(line.split()) for line in text.splitlines()]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    title = " ".join("".join(parser.title).split())
    if title and not text.startswith("#"):
        text = f"# {title}\n\n{text}"
    return text


class HtmlReader:
    """``.html`` / ``.htm``: visible text, headings kept as headings."""

    format: str = "html"
    suffixes: tuple[str, ...] = (".html", ".htm")

    def sniff(self, data: bytes) -> bool:
        """A document that opens with ``<!doctype html>`` or ``<html>`` (after a BOM, comments)."""
        head = data[:4096].lstrip(b"\xef\xbb\xbf")
        if head.startswith((b"\xff\xfe", b"\xfe\xff")):
            try:
                head = head.decode("utf-16").encode()
            except UnicodeDecodeError:
                return False
        return bool(_SNIFF.match(head))

    def read(self, name: str, data: bytes, progress: PageProgress = no_progress) -> Extracted:
        """The visible text; a page with hardly any (all script) is refused."""
        text = visible_text(decode_text(name, data))
        body = re.sub(r"^# .*$", "", text, count=1, flags=re.M)  # the <title> alone is no text
        if len(re.findall(r"[^\W\d_]", body)) < MIN_LETTERS:
            raise SourceError(
                f"{name}: the web page has no visible text (it is mostly script or styling); "
                "save it after it has loaded in a browser, or as text"
            )
        return Extracted(text, self.format)
