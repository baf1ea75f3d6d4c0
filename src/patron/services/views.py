"""What services answer with: plain, JSON-ready models shared by the API, the CLI and stored replies."""

from datetime import date, datetime
from typing import Any, TypedDict

from pydantic import BaseModel, ConfigDict, TypeAdapter


class Balance(BaseModel):
    available: int
    pending: int
    owed: int  # points clawed back after they were spent; new points settle them first


class LotView(BaseModel):
    points: int
    remaining: int
    status: str
    earned_at: datetime
    available_at: datetime
    expires_at: datetime | None
    order_id: str | None


class TierView(BaseModel):
    """The member's tier and the distance to the next ("240 points to Gold")."""

    tier: str | None
    name: str | None
    since: datetime | None
    qualify_on: str
    window: str
    qualifying: str
    next_tier: str | None
    missing: str | None
    progress: str
    earn_multiplier: str
    free_shipping: bool
    dedicated_service: bool


class RecognitionView(BaseModel):
    """What staff need to greet a regular: "the usual", how often they come, since when."""

    usual_sku: str | None
    usual_category: str | None
    visits: int
    last_visit: datetime | None
    member_since: datetime
    tier: str | None
    scores: dict[str, int]


class TierChangeView(BaseModel):
    from_tier: str | None
    to_tier: str | None
    reason: str
    occurred_at: datetime


class RewardGiven(BaseModel):
    """A reward given for free (a full stamp card, a campaign, a birthday): which, and why."""

    reward_id: str
    reward_kind: str
    source: str
    reason: str


class GrantView(RewardGiven):
    """A reward given, with the coupon code that redeems it."""

    coupon_code: str
    granted_at: datetime


class OccasionReportView(BaseModel):
    occasion: str
    members: int
    points: int
    coupons: int


class TierReviewView(BaseModel):
    members: int
    changes: int


class MemberView(BaseModel):
    member_id: str
    email: str | None
    phone: str | None
    birthday: date | None
    locale: str | None
    attributes: dict[str, Any]
    marketing_consent: bool
    member_since: datetime
    balance: Balance
    expiring_soon: list[LotView]
    tier: TierView | None = None
    recognition: RecognitionView | None = None
    timezone: str | None = None  # the member's own, for birthdays; None: the program's


class MemberPage(BaseModel):
    members: list[MemberView]
    next_cursor: str | None


class RuleResult(BaseModel):
    model_config = ConfigDict(frozen=True)  # shared between the receipts of a batch (receipts_of)

    rule_id: str
    fired: bool
    points: int
    reason: str


class GrantedReward(RewardGiven):
    """A reward an event gave, on its receipt."""

    coupon_code: str | None  # none on a dry run: nothing was issued


class EventReceipt(BaseModel):
    event_id: str
    member_id: str
    type: str
    program_version: int
    points: int
    pending_points: int
    transaction_id: int | None
    rules: list[RuleResult]
    notes: list[str]
    balance: Balance
    grants: list[GrantedReward] = []
    dry_run: bool = False


class RuleResultData(TypedDict):
    rule_id: str
    fired: bool
    points: int
    reason: str


class BalanceData(TypedDict):
    available: int
    pending: int
    owed: int


class GrantedRewardData(TypedDict):
    reward_id: str
    reward_kind: str
    source: str
    reason: str
    coupon_code: str | None


class EventReceiptData(TypedDict):
    """An EventReceipt as plain JSON-ready data, exactly as `EventReceipt.model_dump(mode="json")` gives it.

    Batch ingest builds a thousand receipts a transaction: as plain dicts they cost a fraction of a model built,
    copied and dumped each, and are stored as they are; `receipts_of` makes the models the callers get, in one
    validation per receipt.
    """

    event_id: str
    member_id: str
    type: str
    program_version: int
    points: int
    pending_points: int
    transaction_id: int | None
    rules: list[RuleResultData]
    notes: list[str]
    balance: BalanceData
    grants: list[GrantedRewardData]
    dry_run: bool


_RECEIPTS: TypeAdapter[list[EventReceipt]] = TypeAdapter(list[EventReceipt])


def receipts_of(data: list[EventReceiptData]) -> list[EventReceipt]:
    """The receipts as models. Most rule results repeat from one receipt to the next (a rule that did not fire
    says why in the same words for every event), so each distinct one is made once and shared: a model per rule
    per event was most of the cost."""
    shared: dict[tuple[str, bool, int, str], RuleResult] = {}
    prepared = []
    for receipt in data:
        rules = []
        for rule in receipt["rules"]:
            key = (rule["rule_id"], rule["fired"], rule["points"], rule["reason"])
            found = shared.get(key)
            if found is None:
                found = shared[key] = RuleResult.model_validate(rule)
            rules.append(found)
        prepared.append({**receipt, "rules": rules})
    return _RECEIPTS.validate_python(prepared)


class PostingView(BaseModel):
    account: str
    amount: int


class HistoryEntry(BaseModel):
    transaction_id: int
    kind: str
    memo: str
    reference: str | None
    occurred_at: datetime
    posted_at: datetime
    postings: list[PostingView]


class HistoryPage(BaseModel):
    entries: list[HistoryEntry]
    next_cursor: str | None


class RedemptionView(BaseModel):
    redemption_id: int
    member_id: str
    reward_id: str
    reward_kind: str
    cost: int
    coupon_code: str | None
    transaction_id: int
    created_at: datetime
    balance: Balance


class AdjustmentView(BaseModel):
    member_id: str
    points: int
    reason: str
    transaction_id: int
    balance: Balance
