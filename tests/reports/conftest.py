"""Shared helpers for the reports tests: an HTML parser that collects tags and visible text."""
from __future__ import annotations

from html.parser import HTMLParser

import pytest

XSS = "<script>alert(1)</script>"


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)

    def handle_data(self, data):
        self.text.append(data)


def parse_html(html: str) -> _Collector:
    c = _Collector()
    c.feed(html)
    c.close()
    return c


@pytest.fixture
def xss() -> str:
    return XSS


@pytest.fixture
def parse():
    """``parse(html)`` -> object with ``.tags`` (start tag names) and ``.text`` (text nodes)."""
    return parse_html
