"""``citywatch keys create`` and ``citywatch api`` as an operator runs them."""

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from typer.testing import CliRunner, Result

from alerts.model import Role
from alerts.store import AlertStore
from citywatch.cli import app
from citywatch.local_services import free_port

CITYWATCH = str(Path(sys.executable).parent / "citywatch")


def _run(*args: str, env: dict[str, str] | None = None) -> Result:
    """In-process (a subprocess per call would spend seconds importing)."""
    return CliRunner().invoke(app, list(args), env=env)


async def _verify(url: str, key: str) -> tuple[Role, tuple[str, ...], str] | None:
    store = await AlertStore.open(url)
    try:
        record = await store.verify_api_key(key)
    finally:
        await store.close()
    return None if record is None else (record.role, record.wards, record.name)


async def _lang(url: str, key: str) -> str | None:
    store = await AlertStore.open(url)
    try:
        record = await store.verify_api_key(key)
    finally:
        await store.close()
    assert record is not None
    return record.lang


def test_keys_create_prints_the_key_last(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'alerts.db'}"
    done = _run(
        "keys", "create", "--role", "crew", "--ward", "phuong_kim_lien",
        "--ward", "phuong_dinh_cong", "--name", "crew 7", "--store", url,
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    key = done.stdout.strip().splitlines()[-1]
    assert asyncio.run(_verify(url, key)) == (
        Role.CREW,
        ("phuong_dinh_cong", "phuong_kim_lien"),
        "crew 7",
    )
    # A typo would give the crew an empty page: refused, with the ward it meant.
    typo = _run("keys", "create", "--role", "crew", "--ward", "phuong_dinh_cog", "--store", url)
    assert typo.exit_code == 2
    assert "unknown --ward 'phuong_dinh_cog'" in typo.stderr
    assert "did you mean phuong_dinh_cong" in typo.stderr
    elsewhere = _run(
        "keys", "create", "--role", "crew", "--ward", "ward_b", "--any-ward", "--store", url
    )  # fmt: skip
    assert elsewhere.exit_code == 0, elsewhere.output

    no_ward = _run("keys", "create", "--role", "crew", "--store", url)
    assert no_ward.exit_code == 2
    assert "a crew key needs at least one ward" in no_ward.stderr
    bad_ward = _run("keys", "create", "--role", "crew", "--ward", "Ward A", "--store", url)
    assert bad_ward.exit_code == 2
    assert "invalid --ward 'Ward A'" in bad_ward.stderr
    bad_store = _run("keys", "create", "--role", "noc", "--store", "mysql://db")
    assert bad_store.exit_code == 2
    assert "unsupported store URL scheme 'mysql'" in bad_store.stderr


def test_keys_create_takes_the_language_its_holder_reads(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'alerts.db'}"
    made = _run(
        "keys", "create", "--role", "crew", "--ward", "phuong_dinh_cong", "--lang", "en",
        "--name", "noc en", "--store", url,
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    assert "reads en" in made.stdout
    assert asyncio.run(_lang(url, made.stdout.strip().splitlines()[-1])) == "en"
    upper = _run("keys", "create", "--role", "noc", "--lang", "VI", "--store", url)
    assert upper.exit_code == 0, upper.output
    assert asyncio.run(_lang(url, upper.stdout.strip().splitlines()[-1])) == "vi"
    unset = _run("keys", "create", "--role", "noc", "--store", url)
    assert asyncio.run(_lang(url, unset.stdout.strip().splitlines()[-1])) is None
    listed = _run("keys", "list", "--store", url).stdout.splitlines()
    assert [line.split()[3] for line in listed] == ["en", "vi", "-"]

    for bad in ("fr", "vi-VN", "english", ""):
        refused = _run("keys", "create", "--role", "noc", "--lang", bad, "--store", url)
        assert refused.exit_code == 2, bad
        assert f"invalid --lang {bad!r}: use vi (Vietnamese) or en (English)" in refused.stderr
    assert len(_run("keys", "list", "--store", url).stdout.splitlines()) == 3  # none made


def test_api_command_serves_and_refuses_default_secret_in_production(
    tmp_path: Path,
    influx,  # type: ignore[no-untyped-def]
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'alerts.db'}"
    key = _run("keys", "create", "--role", "noc", "--store", url).stdout.strip().splitlines()[-1]

    refused = _run(
        "api", "--store", url, "--influx", influx.url, "--port", str(free_port()),
        env={"CITYWATCH_ENVIRONMENT": "production"},
    )  # fmt: skip
    assert refused.exit_code == 2
    assert "CITYWATCH_TICKET_SECRET must be set" in refused.stderr

    port = free_port()
    log = tmp_path / "api.log"
    server = subprocess.Popen(
        [CITYWATCH, "api", "--store", url, "--influx", influx.url, "--port", str(port)],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        env={**os.environ, "COLUMNS": "200"},
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "citywatch api did not come up"
            time.sleep(0.1)
        assert httpx.get(f"{base}/ready").json()["status"] == "ready"
        me = httpx.get(f"{base}/me", headers={"Authorization": f"Bearer {key}"})
        assert me.json()["role"] == "noc"
        assert "<title>citywatch" in httpx.get(f"{base}/crew").text
    finally:
        server.terminate()
        server.wait(timeout=20)
    # uvicorn shuts down gracefully, then re-raises the SIGTERM it caught.
    assert server.returncode in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in log.read_text()
