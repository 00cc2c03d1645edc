"""The built-in web UI: one static page at ``/ui`` and its scripts and style sheet under ``/ui/...``.

The page holds no data of its own: it calls the AEP API from the browser with the credentials the user
types in, so serving it needs none. Everything it loads is local (no CDN), and the Content-Security-Policy
below makes the browser enforce that.
"""

from __future__ import annotations

import re
from importlib.resources import files

from fastapi import APIRouter
from fastapi.responses import Response

from openseg.errors import NotFound

router = APIRouter(prefix="/ui", tags=["ui"], include_in_schema=False)

PAGE = "ui.html"

#: Media types of the assets the page may load, by suffix; anything else under /ui is not served.
MEDIA_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".html": "text/html; charset=utf-8",
}

#: Plain file names only: no directories, so no way out of ``static/``.
_ASSET_NAME = re.compile(r"^[A-Za-z0-9_-]+\.(css|js)$")

#: Same-origin only: the page's own scripts, styles and API calls; charts are inline SVG built by script.
#: No inline script or style, so injected markup (a segment named ``<script>``) cannot run.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    # The page accepts credentials in its URL for convenience; never pass that URL on to another site.
    "Referrer-Policy": "no-referrer",
    # Small files that change with each release: revalidate rather than serve a stale script to a new page.
    "Cache-Control": "no-cache",
}


def read_asset(name: str) -> bytes:
    """The bytes of one file of the packaged ``api/static`` directory.

    Args:
        name: a file name such as ``ui.js``.

    Returns:
        The file's content.

    Raises:
        NotFound: when no such file ships with openseg.
    """
    resource = files("openseg.api").joinpath("static", name)
    if not resource.is_file():
        raise NotFound.of("UI asset", name)
    return resource.read_bytes()


def _serve(name: str) -> Response:
    suffix = name[name.rindex("."):]
    return Response(read_asset(name), media_type=MEDIA_TYPES[suffix], headers=_HEADERS)


@router.get("")
def page() -> Response:
    """The UI page: credentials form, segment definitions, jobs with charts, exports."""
    return _serve(PAGE)


@router.get("/{name}")
def asset(name: str) -> Response:
    """A script or style sheet the page loads (``/ui/ui.js``, ``/ui/charts.js``, ``/ui/ui.css``)."""
    if not _ASSET_NAME.match(name):
        raise NotFound.of("UI asset", name)
    return _serve(name)


__all__ = ["CONTENT_SECURITY_POLICY", "MEDIA_TYPES", "PAGE", "asset", "page", "read_asset", "router"]
