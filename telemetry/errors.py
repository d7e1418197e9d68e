"""The contract's exceptions: each names what was wrong and where."""


class ContractError(ValueError):
    """Base of every error raised when input does not honour the contract."""


class TopicError(ContractError):
    """A topic string that is not a valid citywatch device topic."""


class DecodeError(ContractError):
    """A payload that cannot be accepted.

    ``field`` is a JSON path (``$.metrics.temp_inside``) or ``"$"`` for the whole message,
    ``reason`` a short machine-friendly code (used as a metric label), ``detail`` the
    human explanation.
    """

    def __init__(self, field: str, reason: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}")
        self.field = field
        self.reason = reason
        self.detail = detail
