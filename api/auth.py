"""Who is calling: API keys sent as ``Authorization: Bearer <key>``, and what each role may do.

Roles: ``noc`` sees and acts on everything; ``crew`` sees and acts (acknowledge, comment,
assign itself, resolve) only in its wards; ``admin`` manages keys and silences and may read
everything. An alert, incident or device outside a crew's wards answers **404**, exactly as
one that does not exist, so a crew cannot even learn which ids exist elsewhere.
"""

import hashlib
from dataclasses import dataclass

from alerts.model import ApiKey, Role
from api.errors import forbidden, not_found


@dataclass(frozen=True, slots=True)
class Principal:
    """The verified caller."""

    key: ApiKey

    @property
    def role(self) -> Role:
        return self.key.role

    @property
    def actor(self) -> str:
        """The name written into timelines and comments: never the key's id, which
        names the key in a stream ticket (an unnamed key gets a stable pseudonym)."""
        if self.key.name:
            return self.key.name
        digest = hashlib.sha256(f"citywatch-actor:{self.key.id}".encode()).hexdigest()
        return f"{self.key.role.value} {digest[:6]}"

    @property
    def ward_scope(self) -> list[str] | None:
        """The wards this caller may see (``None``: every ward)."""
        return list(self.key.wards) if self.role is Role.CREW else None

    def sees(self, ward: str) -> bool:
        scope = self.ward_scope
        return scope is None or ward in scope

    def require(self, *roles: Role) -> None:
        if self.role not in roles:
            allowed = " or ".join(r.value for r in roles)
            raise forbidden(f"this needs a {allowed} key; yours is {self.role.value}")

    def check_ward(self, ward: str, what: str) -> None:
        """404 for anything outside a crew's wards (see the module doc)."""
        if not self.sees(ward):
            raise not_found(what)

    def narrow(self, wards: list[str] | None) -> list[str] | None:
        """The requested wards (``None``: all) intersected with what the caller may see."""
        scope = self.ward_scope
        if scope is None:
            return wards
        if wards is None:
            return scope
        return [w for w in wards if w in scope]
