"""Signed access tokens: what lets a viewer without a session follow one object."""

from __future__ import annotations

from typing import Any

from django.core import signing

from django_jobprogress import conf


class SignedAccess:
    """Mixin for models whose bearer token grants read and cancel on one row."""

    token_salt: str = ""
    pk: Any

    def access_token(self) -> str:
        """A signed token that lets its bearer read and cancel this object."""
        return signing.dumps(str(self.pk), salt=self.token_salt, compress=True)

    def check_access_token(self, token: str | None) -> bool:
        if not token:
            return False
        try:
            value = signing.loads(token, salt=self.token_salt, max_age=conf.get("TOKEN_MAX_AGE"))
        except signing.BadSignature:
            return False
        return value == str(self.pk)
