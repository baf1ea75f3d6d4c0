"""A member's profile as the merchant sends it. Balances and tiers are never part of it."""

from datetime import date
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

AttributeValue = str | int | bool | None


class MemberProfile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    email: Annotated[str, Field(max_length=320, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")] | None = None
    phone: Annotated[str, Field(max_length=32, pattern=r"^\+?[0-9 ()-]{3,31}$")] | None = None
    birthday: date | None = None
    locale: Annotated[str, Field(max_length=35, pattern=r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$")] | None = None
    timezone: Annotated[str, Field(max_length=64)] | None = Field(
        default=None, description="IANA time zone for birthdays; the program's when not given"
    )
    attributes: dict[Annotated[str, Field(max_length=64)], AttributeValue] = Field(default_factory=dict)
    # Whether the member agreed to marketing email. None = not stated: a new member starts without consent
    # and an update keeps what is stored, so a profile sync cannot undo an unsubscribe by leaving the field out.
    marketing_consent: bool | None = None

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError) as exc:
                raise ValueError(f"unknown time zone {value!r}") from exc
        return value
