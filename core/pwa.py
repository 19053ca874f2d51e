"""Installable app: the web manifest, a service worker served from the site root, an offline page."""

from __future__ import annotations

import json

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.templatetags.static import static
from django.views.decorators.cache import cache_control

APP_NAME = "Control Panel"


@cache_control(max_age=3600)
def manifest(request: HttpRequest) -> JsonResponse:
    body = {
        "name": APP_NAME,
        "short_name": "Panel",
        "start_url": "/",
        "scope": "/",
        "display": "standalone",
        "background_color": "#f6f7f9",
        "theme_color": "#0f766e",
        "icons": [
            {"src": static("icons/icon-192.png"), "sizes": "192x192", "type": "image/png"},
            {"src": static("icons/icon-512.png"), "sizes": "512x512", "type": "image/png"},
            {"src": static("icons/icon-512.png"), "sizes": "512x512", "type": "image/png", "purpose": "maskable"},
        ],
    }
    return JsonResponse(body, content_type="application/manifest+json")


@cache_control(max_age=0, no_cache=True)
def service_worker(request: HttpRequest) -> HttpResponse:
    precache = [
        "/offline/",
        static("css/app.css"),
        static("js/app.js"),
        static("vendor/htmx/htmx.min.js"),
        static("vendor/alpinejs/cdn.min.js"),
        static("icons/icon-192.png"),
    ]
    context = {"precache_json": json.dumps(precache)}  # our own static paths, JSON-encoded for JS
    response = render(request, "pwa/sw.js", context, content_type="application/javascript")
    response["Service-Worker-Allowed"] = "/"
    return response


def offline(request: HttpRequest) -> HttpResponse:
    return render(request, "pwa/offline.html")
