"""What the crew page needs to write alerts in words: ward names and metric units.

``GET /catalogue`` serves the ward catalogue (codename → Vietnamese name) and the metric
catalogue (unit and default alarm limits), so the page shows ``Phường Định Công`` where
the alert carries ``phuong_dinh_cong`` and writes ``48 °C, vượt ngưỡng cảnh báo 45 °C``
from an alert's metric and value. One small answer (the page's service worker keeps it
like ``/me``), the same for every key: the catalogues are the platform's, not a crew's.
"""

from functools import cache

from fastapi import APIRouter

from api.deps import Reader
from api.errors import UNAUTHORIZED
from api.schemas import CataloguePublic, MetricInfoPublic, WardPublic
from telemetry.catalogue import METRICS_BY_ID
from telemetry.wards import load_wards

router = APIRouter(tags=["catalogue"], responses=UNAUTHORIZED)


@cache
def _catalogue() -> CataloguePublic:
    return CataloguePublic(
        wards=[WardPublic(codename=w.codename, name=w.name) for w in load_wards()],
        metrics=[
            MetricInfoPublic(
                kind=m.kind,
                name=m.name,
                unit="" if m.dtype == "bool" else m.unit,
                warn_low=m.warn_low,
                warn_high=m.warn_high,
                crit_low=m.crit_low,
                crit_high=m.crit_high,
            )
            for m in sorted(METRICS_BY_ID.values(), key=lambda m: m.id)
        ],
    )


@router.get(
    "/catalogue", response_model=CataloguePublic, summary="Ward names and metric units to display"
)
async def read_catalogue(principal: Reader) -> CataloguePublic:  # noqa: ARG001 (any key)
    return _catalogue()
