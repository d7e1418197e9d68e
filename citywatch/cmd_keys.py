"""``citywatch keys``: create, list and revoke API keys in the alert store."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Annotated

import typer

from alerts.model import Role, parse_lang
from telemetry import is_valid_id
from telemetry.wards import nearest_wards, ward_names

if TYPE_CHECKING:
    from alerts.store import AlertStore

keys_app = typer.Typer(
    help="API keys (stored hashed; a new key is shown once).", no_args_is_help=True
)

StoreOption = Annotated[
    str,
    typer.Option(
        "--store",
        envvar="CITYWATCH_STORE_URL",
        help="Alert store: sqlite:///PATH or postgresql://USER@HOST/DB",
    ),
]


async def _open(url: str) -> AlertStore:
    from alerts.engine import StoreUrlError  # the store stack loads only when a key is used
    from alerts.store import AlertStore

    try:
        return await AlertStore.open(url)
    except StoreUrlError as exc:
        typer.echo(f"invalid --store: {exc}", err=True)
        raise typer.Exit(2) from None


@keys_app.command("create")
def create(
    role: Annotated[Role, typer.Option("--role", help="noc | crew | admin")],
    store: StoreOption,
    ward: Annotated[
        list[str] | None,
        typer.Option("--ward", help="A ward the crew key may see (repeat for several)"),
    ] = None,
    name: Annotated[
        str, typer.Option("--name", help="Who holds the key (shown in timelines)")
    ] = "",
    any_ward: Annotated[
        bool,
        typer.Option(
            "--any-ward", help="Accept --ward values outside the ward catalogue (another city)"
        ),
    ] = False,
    lang: Annotated[
        str | None,
        typer.Option(
            "--lang",
            help="vi | en: the language the key's holder reads (crew page, unless they "
            "switch it there); default: the browser's",
        ),
    ] = None,
) -> None:
    """Create a key and print it as the LAST line of output (it is not stored in clear)."""
    wards = ward or []
    try:
        key_lang = None if lang is None else parse_lang(lang)
    except ValueError:
        typer.echo(f"invalid --lang {lang!r}: use vi (Vietnamese) or en (English)", err=True)
        raise typer.Exit(2) from None
    bad = [w for w in wards if not is_valid_id(w)]
    if bad:
        typer.echo(f"invalid --ward {bad[0]!r}: use a ward codename (a-z, 0-9, _ and -)", err=True)
        raise typer.Exit(2)
    known = ward_names()
    unknown = [w for w in wards if w not in known and not any_ward]
    if unknown:
        # A typo would give a crew a page that stays empty: refuse, and say what was meant.
        near = nearest_wards(unknown[0])
        hint = f"; did you mean {' or '.join(near)}?" if near else ""
        typer.echo(
            f"unknown --ward {unknown[0]!r}: not in the ward catalogue{hint} "
            "(--any-ward takes a ward outside it)",
            err=True,
        )
        raise typer.Exit(2)

    async def run() -> str:
        alert_store = await _open(store)
        try:
            record, key = await alert_store.create_api_key(role, wards, name=name, lang=key_lang)
        finally:
            await alert_store.close()
        scope = ", ".join(record.wards) or "all wards"
        reads = f", reads {record.lang}" if record.lang else ""
        typer.echo(f"created {record.role.value} key {record.id} ({scope}{reads})")
        return key

    try:
        key = asyncio.run(run())
    except ValueError as exc:
        typer.echo(f"cannot create the key: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(key)


@keys_app.command("list")
def list_keys(store: StoreOption) -> None:
    """List keys (ids, roles, wards; never secrets)."""

    async def run() -> None:
        alert_store = await _open(store)
        try:
            for key in await alert_store.list_api_keys():
                state = "revoked" if key.revoked_at else "active"
                wards = ",".join(key.wards) or "-"
                lang = key.lang or "-"
                typer.echo(
                    f"{key.id}  {key.role.value:<5}  {state:<7}  {lang:<2}  {wards}  {key.name}"
                )
        finally:
            await alert_store.close()

    asyncio.run(run())


@keys_app.command("revoke")
def revoke(
    key_id: Annotated[str, typer.Argument(help="The key id (the part after cw_)")],
    store: StoreOption,
) -> None:
    """Revoke a key at once (its SSE tickets stop working too)."""
    from alerts.store import NotFoundError

    async def run() -> None:
        alert_store = await _open(store)
        try:
            await alert_store.revoke_api_key(key_id)
        finally:
            await alert_store.close()

    try:
        asyncio.run(run())
    except NotFoundError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    typer.echo(f"revoked {key_id}")
