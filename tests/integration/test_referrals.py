"""Referrals against real databases: the IP-burst cap under concurrent sign-ups, and rewards dated at the
qualifying purchase's time (not when it was processed), on PostgreSQL and SQLite."""

import threading
from concurrent.futures import ThreadPoolExecutor

from patron.domain.program import ProgramDocument
from patron.domain.referrals import Status
from patron.services import referrals
from patron.store.database import Database
from tests.conftest import T0
from tests.helpers import program_document, set_up

IP = "203.0.113.9"
BURST = 3


def scheme_program(**scheme: object) -> ProgramDocument:
    base = {"referrer": {"points": 100}, "referee": {"points": 50}, "min_spend": "20.00", "within_days": 30}
    return ProgramDocument.model_validate(program_document().model_dump(mode="json") | {"referrals": base | scheme})


def test_the_ip_burst_cap_holds_when_sign_ups_from_one_ip_race(db: Database):
    # Each newcomer uses a different referrer's code, so the referrers' row locks do not serialise the sign-ups:
    # only the burst check itself can keep the cap.
    n = 8
    document = scheme_program(max_per_referrer_per_week=None, ip_burst={"max_signups": BURST, "minutes": 60})
    referrers = tuple(f"r{i}" for i in range(n))
    newcomers = tuple(f"n{i}" for i in range(n))
    setup = set_up(db, document, member_ids=(*referrers, *newcomers), now=T0)
    codes = [referrals.code_for(db, setup.program_id, r, now=T0)[0].code for r in referrers]
    barrier = threading.Barrier(n, timeout=30)

    def sign(i: int) -> Status:
        barrier.wait()
        view = referrals.sign_up(db, setup.cache, setup.program_id, newcomers[i], codes[i], ip=IP, now=T0)
        return view.status

    with ThreadPoolExecutor(max_workers=n) as pool:
        statuses = list(pool.map(sign, range(n)))
    assert statuses.count(Status.PENDING) == BURST
    assert statuses.count(Status.NOT_ELIGIBLE) == n - BURST


def test_another_ip_is_not_held_up_by_a_burst(db: Database):
    document = scheme_program(max_per_referrer_per_week=None, ip_burst={"max_signups": 1, "minutes": 60})
    setup = set_up(db, document, member_ids=("ann", "bob", "cat", "dan"), now=T0)
    code = referrals.code_for(db, setup.program_id, "ann", now=T0)[0].code
    sign = referrals.sign_up
    assert sign(db, setup.cache, setup.program_id, "bob", code, ip=IP, now=T0).status is Status.PENDING
    assert sign(db, setup.cache, setup.program_id, "cat", code, ip=IP, now=T0).status is Status.NOT_ELIGIBLE
    assert sign(db, setup.cache, setup.program_id, "dan", code, ip="198.51.100.1", now=T0).status is Status.PENDING
