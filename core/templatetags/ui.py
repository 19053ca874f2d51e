"""The shared page components as template tags (a builtin: no {% load %} needed).

    {% page_header %}Title{% subtitle %}What the page is for{% actions %}<a class="btn">…</a>{% endpage_header %}

renders components/page_header.html: one header for every page (title, optional subtitle and actions),
so pages look and wrap alike on a phone. The parts are rendered in the page's context, so {% translate %},
{% url %} and {% if can.… %} work inside them."""

from __future__ import annotations

from typing import Any

from django import template
from django.template.base import Parser, Token
from django.template.loader import render_to_string
from django.utils.safestring import mark_safe

register = template.Library()

PARTS = ("subtitle", "actions")


class PageHeaderNode(template.Node):
    def __init__(self, title: template.NodeList, parts: dict[str, template.NodeList]) -> None:
        self.title, self.parts = title, parts

    def render(self, context: Any) -> str:
        rendered = {name: mark_safe(nodes.render(context).strip()) for name, nodes in self.parts.items()}
        return render_to_string(
            "components/page_header.html",
            {"title": mark_safe(self.title.render(context).strip()), **rendered},
        )


@register.tag("page_header")
def page_header(parser: Parser, token: Token) -> PageHeaderNode:
    title = parser.parse((*PARTS, "endpage_header"))
    parts: dict[str, template.NodeList] = {}
    while True:
        name = parser.next_token().contents.strip()
        if name == "endpage_header":
            break
        if name not in PARTS or name in parts:
            raise template.TemplateSyntaxError(f"page_header: unexpected {{% {name} %}}")
        parts[name] = parser.parse((*PARTS, "endpage_header"))
    return PageHeaderNode(title, parts)
