"""A refused request, in OpenAI's error shape: clients (the official one included) read
`error.message` and show it, so each message is one line naming the problem and the fix."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None,
                 code: str | None = None, kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.kind = kind

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.param, self.code, self.kind)


def error_body(message: str, param: str | None = None, code: str | None = None,
               kind: str = "invalid_request_error") -> dict[str, Any]:
    """{"error": {"message", "type", "param", "code"}}, as OpenAI's API answers a refusal."""
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}
