"""Opaque page tokens for keyset pagination over (created_at, id).

A token is the last row's sort key plus the filter it was issued under, base64-encoded JSON; a
token replayed with another filter, or edited, is refused rather than silently skipping rows.
"""

import base64
import binascii
import json
from datetime import datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict, ValidationError

from lethe.edits.errors import InvalidArgument

MAX_PAGE_SIZE = 1000


class PageKey(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    created_at: AwareDatetime
    id: str
    filter: str | None


def encode(created_at: datetime, id: str, filter: str | None) -> str:
    key = PageKey(created_at=created_at, id=id, filter=filter)
    return base64.urlsafe_b64encode(key.model_dump_json().encode()).decode()


def decode(token: str, filter: str | None) -> PageKey:
    try:
        key = PageKey.model_validate(json.loads(base64.urlsafe_b64decode(token.encode())))
    except (binascii.Error, ValueError, ValidationError, UnicodeError):
        raise InvalidArgument("page_token is not one this store issued; pass the token it returned") from None
    if key.filter != filter:
        raise InvalidArgument(
            f"page_token was issued for the filter {key.filter!r}, not {filter!r}: "
            "keep the filter the same across pages, or start again without a token"
        )
    return key


def check_size(page_size: int) -> None:
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise InvalidArgument(f"page_size must be between 1 and {MAX_PAGE_SIZE}, not {page_size}")
