"""The citywatch HTTP API (FastAPI): alerts, incidents, silences, devices, SSE, crew page.

``create_app(settings)`` builds the app; ``ApiSettings`` reads ``CITYWATCH_*``.
"""

from api.app import create_app
from api.settings import ApiSettings, Environment

__all__ = ["ApiSettings", "Environment", "create_app"]
