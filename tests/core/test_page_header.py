"""The shared page header: one component for every page of the app's shell."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.template import Context, Template, TemplateSyntaxError

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
WORKSPACES = ("inbox/inbox.html", "kanban/board.html", "analytics/dashboard.html")


def test_the_header_renders_title_subtitle_and_actions_in_the_page_context() -> None:
    html = Template(
        "{% page_header %}{{ title }}{% subtitle %}For {{ who }}{% actions %}<a class=btn>Go</a>{% endpage_header %}"
    ).render(Context({"title": "Contatos <b>", "who": "agents"}))
    assert '<header class="page-header" data-testid="page-header">' in html
    assert "<h1>Contatos &lt;b&gt;</h1>" in html  # the page's variables stay escaped
    assert '<p class="muted">For agents</p>' in html
    assert '<div class="page-header-actions row"><a class=btn>Go</a></div>' in html


def test_a_bare_header_has_no_empty_subtitle_or_actions() -> None:
    html = Template("{% page_header %}Equipe{% endpage_header %}").render(Context())
    assert "<h1>Equipe</h1>" in html
    assert "muted" not in html and "page-header-actions" not in html


@pytest.mark.parametrize(
    "source",
    ["{% page_header %}A{% actions %}x{% actions %}y{% endpage_header %}", "{% page_header %}A{% endblock %}"],
)
def test_a_malformed_header_is_a_template_error(source: str) -> None:
    with pytest.raises(TemplateSyntaxError):
        Template(source)


def test_every_page_of_the_shell_titles_itself_with_the_shared_header() -> None:
    """A page in the app's shell has no hand-made <h1>: the header component gives them one look."""
    pages = {
        p.relative_to(TEMPLATES).as_posix(): p.read_text()
        for p in TEMPLATES.rglob("*.html")
        if '{% extends "shell.html" %}' in p.read_text()
    }
    for workspace in WORKSPACES:  # full-screen tools: the top bar names them, their own chrome fills the page
        del pages[workspace]
    assert len(pages) > 50
    assert [name for name, text in pages.items() if re.search(r"<h1[\s>]", text)] == []
    assert [name for name, text in pages.items() if "{% page_header %}" not in text] == []
