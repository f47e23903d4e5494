"""The test tier's page checks themselves (``tests/page_checks.py``): the offline
check must see every way a page can reach outside its own server."""
from __future__ import annotations

from page_checks import SVG_NAMESPACE, outside_references


def test_outside_references_finds_them():
    """The offline check itself: it must see every way a page can reach out."""
    clean = (f'<html><head><meta http-equiv="refresh" content="2"><style>a{{color:red}}</style></head>'
             f'<body><a href="/batch/1">b</a><svg xmlns="{SVG_NAMESPACE}"></svg></body></html>')
    assert outside_references(clean) == []
    for bad in ('<script src="https://cdn.example.com/chart.js"></script>',
                '<link rel="stylesheet" href="//cdn.example.com/x.css">',
                '<style>@import "https://fonts.example.com/f.css";</style>',
                '<style>body{background:url(http://img.example.com/a.png)}</style>',
                '<div style="background: url(\'//img.example.com/b.png\')"></div>',
                '<img srcset="/ok.png 1x, https://img.example.com/c.png 2x">',
                '<meta http-equiv="refresh" content="2; url=http://elsewhere.example.com/">'):
        assert outside_references(clean.replace("<body>", "<body>" + bad)), bad


