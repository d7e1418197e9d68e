"""The crew page: one static HTML page with vanilla JS and CSS (no CDN: phones in the field
and this server may have no internet). Its assets are mounted at ``/crew/assets``."""

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

STATIC = Path(__file__).resolve().parent.parent / "static"

router = APIRouter(include_in_schema=False)

SECURITY_HEADERS = {
    # Only our own script, styles and API; no framing (clickjacking the action buttons).
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@router.get("/crew")
async def crew_page() -> FileResponse:
    return FileResponse(
        STATIC / "crew.html", headers={"Cache-Control": "no-cache", **SECURITY_HEADERS}
    )
