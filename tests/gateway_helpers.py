"""Helpers shared by the gateway tests."""

from bananaweb.gateway import services


def issue_token(user, name: str = "script") -> str:
    return services.api_token_create(user=user, name=name)[1]


def bearer(raw: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {raw}"}
