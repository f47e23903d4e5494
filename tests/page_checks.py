"""Reading the status pages in tests: plain HTTP gets, the ``/metrics`` scrape,
HTML tables and charts parsed out of a page or a browser's DOM, and the check
that a page points nowhere outside its own server (so it works offline).
"""
from __future__ import annotations

import html
import http.client
import json
import re
from html.parser import HTMLParser
from urllib.parse import urlsplit

from prometheus_client.parser import text_string_to_metric_families


def http_get(base: str, path: str, timeout_s: float = 20.0) -> tuple[int, dict, bytes]:
    """One GET without following redirects: (status, headers, body)."""
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout_s)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def get_json(base: str, path: str):
    status, headers, body = http_get(base, path)
    assert status == 200, f"GET {path}: {status} {body[:500]!r}"
    assert headers["Content-Type"].startswith("application/json")
    return json.loads(body)


def get_page(base: str, path: str) -> str:
    status, headers, body = http_get(base, path)
    assert status == 200, f"GET {path}: {status} {body[:500]!r}"
    assert headers["Content-Type"].startswith("text/html")
    return body.decode()


def scrape(base: str) -> dict[tuple[str, frozenset], float]:
    """``/metrics`` parsed by prometheus_client: (sample name, labels) -> value."""
    status, headers, body = http_get(base, "/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def metric(samples: dict, name: str, **labels) -> float:
    return samples[(name, frozenset(labels.items()))]


class Tables(HTMLParser):
    """Every ``<table>`` of a page: id -> rows of (css class, cell texts, links)."""

    def __init__(self, text: str):
        super().__init__()
        self.tables: dict[str, list[dict]] = {}
        self._table: list[dict] | None = None
        self._row: dict | None = None
        self._cell: list[str] | None = None
        self._in_body = False
        self._count = 0
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self._count += 1
            self._table = self.tables.setdefault(attrs.get("id") or f"#{self._count}", [])
        elif tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body and self._table is not None:
            self._row = {"class": attrs.get("class") or "", "cells": [], "links": []}
            self._table.append(self._row)
        elif tag == "td" and self._row is not None:
            self._cell = []
        elif tag == "a" and self._row is not None and attrs.get("href"):
            self._row["links"].append(attrs["href"])

    def handle_endtag(self, tag):
        if tag == "td" and self._row is not None and self._cell is not None:
            self._row["cells"].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr":
            self._row = None
        elif tag == "tbody":
            self._in_body = False
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def number(text: str) -> int:
    return int(text.replace(",", ""))


def byte_size(text: str) -> tuple[float, float]:
    """A size cell ("812 B", "1.4 KiB") as (bytes, how far off the rounding may be)."""
    value, unit = text.split()
    scale = {"B": 1, "KiB": 1024, "MiB": 1024 ** 2, "GiB": 1024 ** 3}[unit]
    return float(value.replace(",", "")) * scale, (0.5 if unit == "B" else 0.05) * scale + 0.01


SVG_NAMESPACE = "http://www.w3.org/2000/svg"
URL_ATTRIBUTES = {"src", "href", "srcset", "imagesrcset", "action", "formaction", "poster", "data",
                  "background", "cite", "manifest", "ping", "xlink:href"}


class _References(HTMLParser):
    """Every URL a page could make a browser fetch: URL attributes, CSS url()/@import,
    a refresh's target."""

    def __init__(self, text: str):
        super().__init__()
        self.urls: list[str] = []
        self._in_style = False
        self.feed(text)

    def _css(self, css: str) -> None:
        self.urls += re.findall(r"url\(\s*['\"]?([^'\")]+)", css)
        self.urls += re.findall(r"@import\s+['\"]([^'\"]+)", css)

    def handle_starttag(self, tag, attrs):
        self._in_style = tag == "style"
        for name, value in attrs:
            if value is None:
                continue
            if name in URL_ATTRIBUTES:
                self.urls += [part.split()[0] for part in value.split(",") if part.strip()] \
                    if name.endswith("srcset") else [value]
            elif name == "style":
                self._css(value)
            elif tag == "meta" and name == "content" and "url=" in value.lower():
                self.urls.append(value[value.lower().index("url=") + 4:].strip("'\" "))

    def handle_endtag(self, tag):
        if tag == "style":
            self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self._css(data)


def outside_references(page: str) -> list[str]:
    """What in ``page`` points outside its own server (empty for a page that works
    offline): absolute or protocol-relative URLs a browser would fetch, and any
    http(s) URL in the text at all other than the SVG namespace."""
    found = []
    for url in _References(page).urls:
        parts = urlsplit(url.strip())
        if parts.netloc or parts.scheme not in ("", "data"):
            found.append(url)
    found += [url for url in re.findall(r"https?://[^\s\"'<>()]+", page) if url != SVG_NAMESPACE]
    return found


CHART_AVERAGES = {  # chart id -> (title, unit, the /api/v1/streaming average it draws)
    "chart-input-rate": ("Input rate", "records/s", "avg_input_rate"),
    "chart-scheduling-delay": ("Scheduling delay", "ms", "avg_scheduling_delay_ms"),
    "chart-processing-time": ("Processing time", "ms", "avg_processing_ms"),
    "chart-total-delay": ("Total delay", "ms", "avg_total_delay_ms"),
}
CHARTS = {chart: average for chart, (_, _, average) in CHART_AVERAGES.items()}  # id -> average


def svg_chart(page: str, chart_id: str) -> dict:
    """One inline SVG chart of a page: its points, average, visible title and average lines."""
    match = re.search(rf'<svg id="{chart_id}"([^>]*)>(.*?)</svg>', page, re.S)
    assert match, f"no chart {chart_id}"
    attrs, body = match.groups()
    average = re.search(r'data-average="([^"]*)"', attrs).group(1)
    title = re.search(r'<text[^>]*class="title"[^>]*>(.*?)</text>', body, re.S)
    return {"points": int(re.search(r'data-points="(\d+)"', attrs).group(1)),
            "average": float(average) if average else None,
            "title": html.unescape(title.group(1)) if title else "",
            "avg_lines": len(re.findall(r'<line[^>]*class="avg"', body))}


def task_rows(page: str) -> dict[str, dict]:
    """The task rows of a batch or job page by task id (their cells: task, partition,
    attempt, worker, duration, records in, records out, shuffle read, shuffle write,
    status, error)."""
    rows = {}
    for table in Tables(page).tables.values():
        for row in table:
            if len(row["cells"]) == 11:
                assert row["cells"][0] not in rows, f"task {row['cells'][0]} shown twice"
                rows[row["cells"][0]] = row
    return rows


class Dom(HTMLParser):
    """Tables (id -> rows of cells and links) and SVG charts (id -> attributes) of a DOM."""

    def __init__(self, text: str):
        super().__init__()
        self.tables: dict[str, list[dict]] = {}
        self.svgs: dict[str, dict] = {}
        self.meta: list[dict] = []
        self._rows: list[dict] | None = None
        self._row: dict | None = None
        self._cell: list[str] | None = None
        self._count = 0
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self._count += 1
            self._rows = self.tables.setdefault(attrs.get("id") or f"#{self._count}", [])
        elif tag == "tr" and self._rows is not None:
            self._row = {"class": attrs.get("class") or "", "cells": [], "links": []}
            self._rows.append(self._row)
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
        elif tag == "a" and self._row is not None and attrs.get("href"):
            self._row["links"].append(attrs["href"])
        elif tag == "svg" and attrs.get("id"):
            self.svgs[attrs["id"]] = attrs
        elif tag == "meta":
            self.meta.append(attrs)

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._row is not None and self._cell is not None:
            self._row["cells"].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr":
            self._row = None
        elif tag == "table":
            self._rows = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
