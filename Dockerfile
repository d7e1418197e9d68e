# citywatch image: ingest + detector + alerts + API (`citywatch run`) and the simulators.
# Multi-stage: uv builds a locked virtual environment, the runtime stage copies only it
# and runs as an unprivileged user.
FROM python:3.11-slim-bookworm AS build
COPY --from=ghcr.io/astral-sh/uv:0.9.30 /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/citywatch
WORKDIR /src
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY telemetry telemetry
COPY simulators simulators
COPY ingest ingest
COPY anomaly anomaly
COPY alerts alerts
COPY api api
COPY citywatch citywatch
RUN uv sync --frozen --no-dev --no-editable

FROM python:3.11-slim-bookworm AS runtime
RUN groupadd --system citywatch && useradd --system --gid citywatch --home /data citywatch \
    && mkdir -p /data && chown citywatch:citywatch /data
COPY --from=build /opt/citywatch /opt/citywatch
# The detector kernel compiles on the first start and is cached in the data volume.
ENV PATH=/opt/citywatch/bin:$PATH PYTHONUNBUFFERED=1 NUMBA_CACHE_DIR=/data/numba-cache
USER citywatch
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8000 9108
HEALTHCHECK --interval=15s --timeout=3s --retries=5 \
    CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2)" || exit 1
ENTRYPOINT ["citywatch"]
CMD ["run"]
