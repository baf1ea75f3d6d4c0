"""The schema. Migrations (store/migrations) create exactly this; a test keeps the two in step."""

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)

from patron.store.types import Id, MoneyColumn, UtcDateTime

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
    }
)

programs = Table(
    "programs",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("slug", String(64), nullable=False, unique=True),
    Column("created_at", UtcDateTime, nullable=False),
)

program_versions = Table(
    "program_versions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("program_id", ForeignKey("programs.id"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("effective_from", UtcDateTime, nullable=False),
    Column("published_at", UtcDateTime, nullable=False),
    Column("published_by", String(128), nullable=False),
    Column("document", JSON, nullable=False),
    UniqueConstraint("program_id", "version"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("program_id", ForeignKey("programs.id"), nullable=False),
    Column("name", String(128), nullable=False),
    Column("prefix", String(16), nullable=False, unique=True),
    Column("secret_hash", String(64), nullable=False),
    Column("scopes", String(128), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("revoked_at", UtcDateTime),
)

members = Table(
    "members",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("program_id", ForeignKey("programs.id"), nullable=False),
    Column("external_id", String(128), nullable=False),
    Column("email", String(320)),
    Column("phone", String(32)),
    Column("birthday", Date),
    Column("locale", String(35)),
    Column("timezone", String(64)),  # the member's own, for birthdays; the program's when not given
    Column("attributes", JSON, nullable=False),
    # Marketing mail is opt-in (GDPR, the Polish and Chinese rules on commercial e-mail): false until given.
    Column("marketing_consent", Boolean, nullable=False, server_default=false()),
    Column("consent_changed_at", UtcDateTime),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    UniqueConstraint("program_id", "external_id"),
)

# Cached balances, one row per member, changed only in the transaction that posts to the journal.
# Program accounts have no cached row: summing their postings keeps them off the hot path of every write.
balances = Table(
    "balances",
    metadata,
    Column("member_id", ForeignKey("members.id"), primary_key=True),
    Column("available", BigInteger, nullable=False),
    Column("pending", BigInteger, nullable=False),
    Column("debt", BigInteger, nullable=False),
    # The floors of invariant 4, held by the database too: a bug upstream fails the transaction instead.
    CheckConstraint("available >= 0 AND pending >= 0 AND debt <= 0", name="floors"),
)

events = Table(
    "events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("program_id", Id, nullable=False),  # no FK: see migration 0009
    Column("event_id", String(128), nullable=False),
    Column("member_id", ForeignKey("members.id"), nullable=False),
    Column("type", String(16), nullable=False),
    Column("occurred_at", UtcDateTime, nullable=False),
    Column("request_hash", String(64), nullable=False),
    Column("response", JSON, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    # Exactly-once ingestion: the same id cannot be written twice, whatever the race.
    UniqueConstraint("program_id", "event_id"),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("program_id", ForeignKey("programs.id"), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("operation", String(64), nullable=False),
    Column("request_hash", String(64), nullable=False),
    Column("status_code", Integer, nullable=False),
    Column("response", JSON, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)

journal = Table(
    "journal",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("program_id", ForeignKey("programs.id"), nullable=False),
    Column("member_id", ForeignKey("members.id")),  # null for program-wide transactions such as an expiry run
    Column("kind", String(16), nullable=False),
    Column("event_id", ForeignKey("events.id")),
    Column("program_version", Integer),
    Column("reference", String(255)),
    Column("memo", Text, nullable=False),
    Column("occurred_at", UtcDateTime, nullable=False),
    Column("posted_at", UtcDateTime, nullable=False),
    Index(None, "member_id", "id"),
)

postings = Table(
    "postings",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("transaction_id", ForeignKey("journal.id"), nullable=False),
    Column("program_id", Id, nullable=False),  # no FK: see migration 0009
    Column("member_id", ForeignKey("members.id")),  # null for program accounts
    Column("account", String(16), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Index(None, "transaction_id"),
    Index(None, "member_id", "account"),
)

# Lots are updated in bulk by expiry and activation: indexes only on columns those updates never touch,
# so PostgreSQL can keep the updates heap-only (and the table gets fillfactor 50 in the migration).
lots = Table(
    "lots",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("program_id", Id, nullable=False),  # no FK: see migration 0009
    Column("member_id", ForeignKey("members.id"), nullable=False),
    Column("transaction_id", ForeignKey("journal.id"), nullable=False),
    Column("order_id", String(128)),
    Column("points", BigInteger, nullable=False),
    Column("remaining", BigInteger, nullable=False),
    Column("status", String(16), nullable=False),
    Column("earned_at", UtcDateTime, nullable=False),
    Column("available_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime),
    CheckConstraint("remaining >= 0 AND remaining <= points", name="remaining_within_points"),
    Index(None, "member_id"),
    Index(None, "expires_at"),
    Index(None, "available_at"),
)

orders = Table(
    "orders",
    metadata,
    Column("program_id", Id, primary_key=True),  # no FK: see migration 0009
    Column("order_id", String(128), primary_key=True),
    Column("member_id", ForeignKey("members.id"), nullable=False),
    Column("total", MoneyColumn, nullable=False),
    Column("earned", BigInteger, nullable=False),
    Column("refunded", MoneyColumn, nullable=False),
    Column("clawed_back", BigInteger, nullable=False),
    Column("occurred_at", UtcDateTime, nullable=False),
    # The lapsed-member query groups a program's orders by member and takes each one's latest purchase. Not led by
    # the program, which would make it look as good as the primary key for finding an order by id (migration 0011).
    Index(None, "member_id", "occurred_at", "program_id"),
)

rule_usage = Table(
    "rule_usage",
    metadata,
    Column("member_id", ForeignKey("members.id"), primary_key=True),
    Column("rule_id", String(64), primary_key=True),
    Column("period_key", String(32), primary_key=True),
    Column("times", Integer, nullable=False),
    Column("points", BigInteger, nullable=False),
)

redemptions = Table(
    "redemptions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("program_id", ForeignKey("programs.id"), nullable=False),
    Column("member_id", ForeignKey("members.id"), nullable=False),
    Column("reward_id", String(64), nullable=False),
    Column("reward_kind", String(16), nullable=False),
    Column("cost", BigInteger, nullable=False),
    Column("coupon_code", String(32), unique=True),
    Column("transaction_id", ForeignKey("journal.id"), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Index(None, "member_id", "reward_id"),
)

# Gifts in stock: the count given out, raised only by a conditional UPDATE that refuses to pass the stock.
reward_stock = Table(
    "reward_stock",
    metadata,
    Column("program_id", ForeignKey("programs.id"), primary_key=True),
    Column("reward_id", String(64), primary_key=True),
    Column("given", Integer, nullable=False),
    CheckConstraint("given >= 0", name="given_not_negative"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("program_id", ForeignKey("programs.id"), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("action", String(64), nullable=False),
    Column("member_id", ForeignKey("members.id")),
    Column("reason", Text, nullable=False),
    Column("detail", JSON, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)

# Email waiting to be sent, written in the transaction of the change that causes it (see patron.mail).
# The dedupe key makes a scheduled message (a birthday, a reminder for one period) queued at most once.
mail_outbox = Table(
    "mail_outbox",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("program_id", ForeignKey("programs.id"), nullable=False),
    Column("member_id", ForeignKey("members.id"), nullable=False),
    Column("template", String(32), nullable=False),
    Column("category", String(16), nullable=False),
    Column("recipient", String(320), nullable=False),
    Column("locale", String(35), nullable=False),
    Column("context", JSON, nullable=False),
    Column("dedupe_key", String(160)),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UtcDateTime, nullable=False),
    Column("last_error", Text),
    Column("created_at", UtcDateTime, nullable=False),
    Column("sent_at", UtcDateTime),
    UniqueConstraint("program_id", "dedupe_key"),
    Index(None, "status", "next_attempt_at"),
    Index(None, "member_id"),
)

# Coupon batches: the offer every code of the batch gives (domain.coupons.Offer), and how its codes were made.
coupon_batches = Table(
    "coupon_batches",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("program_id", ForeignKey("programs.id"), nullable=False),
    Column("name", String(64), nullable=False),
    Column("offer", JSON, nullable=False),
    Column("pattern", String(64), nullable=False),
    Column("created_by", String(128), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    UniqueConstraint("program_id", "name"),
)

# One row per code. `uses` is raised only by a conditional UPDATE that refuses to pass the offer's uses per
# code, so a single-use code is used once however many checkouts race for it.
coupons = Table(
    "coupons",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("program_id", ForeignKey("programs.id"), nullable=False),
    Column("batch_id", ForeignKey("coupon_batches.id"), nullable=False),
    Column("code", String(64), nullable=False),
    Column("member_id", ForeignKey("members.id")),  # set when the code was given to one member only
    Column("uses", Integer, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("revoked_at", UtcDateTime),  # e.g. a referral reward whose qualifying order was refunded
    CheckConstraint("uses >= 0", name="uses_not_negative"),
    UniqueConstraint("program_id", "code"),
    Index(None, "batch_id"),
    Index(None, "member_id"),
)

coupon_redemptions = Table(
    "coupon_redemptions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("program_id", ForeignKey("programs.id"), nullable=False),
    Column("coupon_id", ForeignKey("coupons.id"), nullable=False),
    Column("batch_id", ForeignKey("coupon_batches.id"), nullable=False),
    Column("member_id", ForeignKey("members.id")),
    Column("order_id", String(128)),
    Column("cart_total", MoneyColumn, nullable=False),
    Column("discount", MoneyColumn, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Index(None, "coupon_id"),
    Index(None, "member_id", "batch_id"),
)

# What the engine remembers of a member beyond points (domain.progress.Progress): tier and its tallies, stamp
# cards, categories bought, references already rewarded. Changed only under the member's lock.
member_progress = Table(
    "member_progress",
    metadata,
    Column("member_id", ForeignKey("members.id"), primary_key=True),
    Column("state", JSON, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

# Every tier change with its reason, append-only.
tier_changes = Table(
    "tier_changes",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("program_id", ForeignKey("programs.id"), nullable=False),
    Column("member_id", ForeignKey("members.id"), nullable=False),
    Column("from_tier", String(64)),
    Column("to_tier", String(64)),
    Column("reason", Text, nullable=False),
    Column("occurred_at", UtcDateTime, nullable=False),
    Column("event_id", ForeignKey("events.id")),  # null when the tier review job made the change
    Column("recorded_at", UtcDateTime, nullable=False),
    Index(None, "member_id", "id"),
)

# Rewards given for free (a full stamp card, a campaign, a birthday), each with its own coupon code.
reward_grants = Table(
    "reward_grants",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("program_id", ForeignKey("programs.id"), nullable=False),
    Column("member_id", ForeignKey("members.id"), nullable=False),
    Column("reward_id", String(64), nullable=False),
    Column("reward_kind", String(16), nullable=False),
    Column("source", String(80), nullable=False),
    Column("reason", Text, nullable=False),
    Column("coupon_code", String(32), nullable=False, unique=True),
    Column("event_id", ForeignKey("events.id")),
    Column("granted_at", UtcDateTime, nullable=False),
    Index(None, "member_id", "id"),
)

# Points a budgeted campaign has given, raised only by a conditional UPDATE that refuses to pass the budget.
campaign_budgets = Table(
    "campaign_budgets",
    metadata,
    Column("program_id", ForeignKey("programs.id"), primary_key=True),
    Column("campaign_id", String(64), primary_key=True),
    Column("spent", BigInteger, nullable=False),
    CheckConstraint("spent >= 0", name="spent_not_negative"),
)

# Win-back offers announced to lapsed members: the primary key keeps an offer to one per campaign and member,
# long after the outbox row that announced it is pruned.
campaign_offers = Table(
    "campaign_offers",
    metadata,
    Column("program_id", ForeignKey("programs.id"), primary_key=True),
    Column("campaign_id", String(64), primary_key=True),
    Column("member_id", ForeignKey("members.id"), primary_key=True),
    Column("offered_at", UtcDateTime, nullable=False),
)

# Birthday and anniversary grants: the primary key makes `patron grant birthdays` idempotent per member per year.
occasion_grants = Table(
    "occasion_grants",
    metadata,
    Column("member_id", ForeignKey("members.id"), primary_key=True),
    Column("occasion", String(16), primary_key=True),
    Column("year", Integer, primary_key=True),
    Column("program_id", ForeignKey("programs.id"), nullable=False),
    Column("points", BigInteger, nullable=False),
    Column("transaction_id", ForeignKey("journal.id")),
    Column("granted_at", UtcDateTime, nullable=False),
)

# Points raffles. `seed` stays secret until the draw; `seed_hash` (its SHA-256) is public from creation.
raffles = Table(
    "raffles",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("program_id", ForeignKey("programs.id"), nullable=False),
    Column("name", String(64), nullable=False),
    Column("prize_reward_id", String(64), nullable=False),
    Column("winners", Integer, nullable=False),
    Column("entry_cost", BigInteger, nullable=False),
    Column("max_entries_per_member", Integer, nullable=False),
    Column("draws_at", UtcDateTime, nullable=False),
    Column("opens_at", UtcDateTime, nullable=False),  # entries before it are refused: when its version starts
    Column("refund_losers", Boolean, nullable=False),
    Column("seed", String(64), nullable=False),
    Column("seed_hash", String(64), nullable=False),
    Column("drawn_at", UtcDateTime),
    Column("created_by", String(128), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    CheckConstraint("winners > 0 AND entry_cost > 0 AND max_entries_per_member > 0", name="positive"),
    UniqueConstraint("program_id", "name"),
)

# One row per purchase of entries; `lots` keeps the lots it drew on (id, points, expiry) so a refund can give
# the points back with the expiry they had.
raffle_entries = Table(
    "raffle_entries",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("raffle_id", ForeignKey("raffles.id"), nullable=False),
    Column("member_id", ForeignKey("members.id"), nullable=False),
    Column("tickets", Integer, nullable=False),
    Column("points", BigInteger, nullable=False),
    Column("transaction_id", ForeignKey("journal.id"), nullable=False),
    Column("lots", JSON, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Index(None, "raffle_id", "member_id"),
)

raffle_winners = Table(
    "raffle_winners",
    metadata,
    Column("raffle_id", ForeignKey("raffles.id"), primary_key=True),
    Column("rank", Integer, primary_key=True),
    Column("member_id", ForeignKey("members.id"), nullable=False),
    Column("ticket", String(64), nullable=False),
    Column("prize_code", String(32)),
    UniqueConstraint("raffle_id", "member_id"),
)

# Each member's own referral code, made when first asked for. `fingerprints`: hashed payment/device fingerprints
# the merchant sent for the member, compared with those of the members they refer.
referral_codes = Table(
    "referral_codes",
    metadata,
    Column("member_id", ForeignKey("members.id"), primary_key=True),
    Column("program_id", ForeignKey("programs.id"), nullable=False),
    Column("code", String(32), nullable=False),
    Column("fingerprints", JSON, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    UniqueConstraint("program_id", "code"),
)

# One row per referred member (a member is referred once). Refusals stay, with their reason, for the referrer.
referrals = Table(
    "referrals",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("program_id", ForeignKey("programs.id"), nullable=False),
    Column("referrer_id", ForeignKey("members.id"), nullable=False),
    Column("referee_id", ForeignKey("members.id"), nullable=False, unique=True),
    Column("status", String(16), nullable=False),
    Column("reason", Text),
    Column("ip", String(45)),
    Column("fingerprints", JSON, nullable=False),
    Column("order_id", String(128)),  # the qualifying order, once it came
    Column("rewards", JSON, nullable=False),  # what each side got: points, transaction ids, coupon codes
    Column("created_at", UtcDateTime, nullable=False),
    Column("decided_at", UtcDateTime),
    Index(None, "referrer_id", "created_at"),
    Index(None, "program_id", "ip", "created_at"),
)
