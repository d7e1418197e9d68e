"""The crew page: one static HTML page with vanilla JS and CSS (no CDN: phones in the field
and this server may have no internet). Its assets are mounted at ``/crew/assets``.

It installs as a web app: ``/crew/manifest.webmanifest`` and a service worker at
``/crew/sw.js`` whose scope is ``/crew`` (``Service-Worker-Allowed``), which keeps the page
and the last alert list for when the phone has no network (``static/crew-sw.js`` says what
it keeps where)."""

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

STATIC = Path(__file__).resolve().parent.parent / "static"

router = APIRouter(include_in_schema=False)

SECURITY_HEADERS = {
    # Only our own script, styles, manifest, service worker and API; no framing
    # (clickjacking the action buttons).
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; manifest-src 'self'; worker-src 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
WORKER_HEADERS = {
    # The worker's own policy governs what it fetches: this origin only.
    "Content-Security-Policy": "default-src 'none'; connect-src 'self'; img-src 'self'",
    "Service-Worker-Allowed": "/crew",
    "X-Content-Type-Options": "nosniff",
}


@router.get("/crew")
async def crew_page() -> FileResponse:
    return FileResponse(
        STATIC / "crew.html", headers={"Cache-Control": "no-cache", **SECURITY_HEADERS}
    )


@router.get("/crew/sw.js")
async def crew_worker() -> FileResponse:
    return FileResponse(
        STATIC / "crew-sw.js",
        media_type="text/javascript",
        headers={"Cache-Control": "no-cache", **WORKER_HEADERS},
    )


@router.get("/crew/manifest.webmanifest")
async def crew_manifest() -> FileResponse:
    return FileResponse(
        STATIC / "manifest.webmanifest",
        media_type="application/manifest+json",
        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
    )
