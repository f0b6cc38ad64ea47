"""The one exception type tito reports as a single clear line."""


class TitoError(Exception):
    """A user-facing error: `message` says what went wrong, `hint` what to do."""

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} {self.hint}".strip()
