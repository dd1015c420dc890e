"""Model-based test of the ledger: hypothesis drives random sequences of
credits, debits (with duplicate and conflicting event ids), rate and price
changes, overdraft changes and adjustments against a real database, and after
every step checks the invariants of ``core.ledger`` against a plain-Python
model of what the balances must be."""

from __future__ import annotations

import shutil
import tempfile
from collections import defaultdict
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)
from sqlalchemy import func, select

from core import audit, ledger
from core.errors import Conflict, InsufficientCredits
from core.models import LedgerEntry, UsageDaily, UsageEvent
from core.pricing import MICRO as CR
from core.pricing import usage_cost_ucr
from tests.conftest import Billing, fresh_database, make_test_app
from tests.ledger_helpers import credit

USERS = ("a@example.com", "b@example.com")
EVENT_IDS = [f"e{n}" for n in range(12)]  # a small pool: replays are frequent


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self._dir = Path(tempfile.mkdtemp(prefix="ledger-sm-"))
        self._db_ctx = fresh_database(self._dir)
        self.app = make_test_app(self._db_ctx.__enter__())
        self.billing = Billing(self.app)  # gpt-4o-mini at 0.15 / 0.60, rate 10,000
        self.wallets = {email: self.billing.user(email).wallet.id for email in USERS}
        # The model of the world.
        self.balance = dict.fromkeys(USERS, 0)
        self.rate = 10_000
        self.price = (150_000, 600_000)
        self.overdraft = 0
        self.seen: dict[str, tuple] = {}  # event id -> payload
        self.charged_ids: set[str] = set()
        self.references = 0

    def teardown(self) -> None:
        self.app.extensions["creditline.db"].dispose()
        self._db_ctx.__exit__(None, None, None)
        shutil.rmtree(self._dir, ignore_errors=True)

    # --- rules -------------------------------------------------------------------

    @initialize(overdraft=st.sampled_from([0, 0, 5, 20]))
    def start(self, overdraft: int) -> None:
        # Half the runs start with an overdraft, so debits that go below zero
        # (and their limit) are exercised from the first step.
        if overdraft:
            self.billing.set(overdraft_limit_ucr=overdraft * CR)
            self.overdraft = overdraft * CR

    @rule(user=st.sampled_from(USERS), credits=st.integers(1, 50))
    def top_up(self, user: str, credits: int) -> None:
        self.references += 1
        ref = f"cs_{self.references}"
        credit(self.billing.db, self.wallets[user], credits * CR, "topup", ref)
        self.balance[user] += credits * CR
        # A replay of the same session id changes nothing.
        again = credit(self.billing.db, self.wallets[user], credits * CR, "topup", ref)
        assert again.duplicate

    @rule(
        event_id=st.sampled_from(EVENT_IDS),
        user=st.sampled_from(USERS),
        tokens_in=st.integers(0, 20_000),
        tokens_out=st.integers(0, 20_000),
    )
    def report_usage(self, event_id: str, user: str, tokens_in: int, tokens_out: int) -> None:
        payload = (user, tokens_in, tokens_out)
        known = self.seen.get(event_id)
        try:
            result = self.billing.debit(event_id, user, tokens_in, tokens_out)
        except Conflict:
            assert known is not None and known != payload
            return
        except InsufficientCredits as exc:
            if known is None:
                self.seen[event_id] = payload
                cost = usage_cost_ucr(tokens_in, tokens_out, *self.price, self.rate)
                assert self.balance[user] - cost < -self.overdraft
            else:
                assert known == payload and exc.duplicate  # noqa: PT017
                assert event_id not in self.charged_ids
            return
        if known is not None:
            assert known == payload
            assert result.duplicate and event_id in self.charged_ids
            return
        cost = usage_cost_ucr(tokens_in, tokens_out, *self.price, self.rate)
        assert self.balance[user] - cost >= -self.overdraft
        assert not result.duplicate and result.cost_ucr == cost
        self.seen[event_id] = payload
        self.charged_ids.add(event_id)
        self.balance[user] -= cost
        assert result.balance_ucr == self.balance[user]

    @rule(rate=st.integers(1, 100_000))
    def change_rate(self, rate: int) -> None:
        self.billing.set_rate(rate)
        self.rate = rate

    @rule(input_price=st.integers(0, 5_000_000), output_price=st.integers(0, 20_000_000))
    def change_price(self, input_price: int, output_price: int) -> None:
        self.billing.set_price("gpt-4o-mini", input_price, output_price)
        self.price = (input_price, output_price)

    @rule(credits=st.integers(0, 20))
    def change_overdraft(self, credits: int) -> None:
        # Never below an existing deficit, so "balance >= -limit" stays meaningful.
        limit = max(credits * CR, *(-b for b in self.balance.values()))
        self.billing.set(overdraft_limit_ucr=limit)
        self.overdraft = limit

    @precondition(lambda self: any(b > 0 for b in self.balance.values()))
    @rule(user=st.sampled_from(USERS), share=st.integers(1, 100), negative=st.booleans())
    def adjust(self, user: str, share: int, negative: bool) -> None:
        amount = max(1, self.balance[user] * share // 100) if negative else share * CR
        amount = -amount if negative else amount
        # Only a negative adjustment is refused below zero; a positive one may
        # leave a balance that an overdraft or a refund took below zero still negative.
        if negative and self.balance[user] + amount < 0:
            try:
                with self.billing.db.write() as s:
                    ledger.adjust(s, audit.CLI, user, amount, "sm")
            except InsufficientCredits:
                return
            raise AssertionError("an adjustment created debt")
        with self.billing.db.write() as s:
            ledger.adjust(s, audit.CLI, user, amount, "sm")
        self.balance[user] += amount

    # --- invariants ---------------------------------------------------------------

    @invariant()
    def balances_match_the_model_and_the_ledger(self) -> None:
        assert self.billing.problems() == []
        for user in USERS:
            assert self.billing.balance(user) == self.balance[user]
            assert self.balance[user] >= -self.overdraft

    @invariant()
    def no_event_is_charged_twice(self) -> None:
        with self.billing.db.read_session() as s:
            per_event = s.execute(
                select(LedgerEntry.reference, func.count())
                .where(LedgerEntry.kind == "usage")
                .group_by(LedgerEntry.reference)
            ).all()
            charged = s.scalar(
                select(func.count()).select_from(UsageEvent).where(UsageEvent.status == "charged")
            )
        assert all(n == 1 for _, n in per_event)
        assert len(per_event) == charged == len(self.charged_ids)

    @invariant()
    def rollups_equal_charged_events(self) -> None:
        with self.billing.db.read_session() as s:
            events = defaultdict(lambda: [0, 0, 0, 0])
            for e in s.scalars(select(UsageEvent).where(UsageEvent.status == "charged")):
                key = (e.user_id, e.received_at.date(), e.model_id)
                row = events[key]
                row[0] += 1
                row[1] += e.input_tokens
                row[2] += e.output_tokens
                row[3] += e.cost_ucr
            rollups = {
                (r.user_id, r.day, r.model_id): [
                    r.events,
                    r.input_tokens,
                    r.output_tokens,
                    r.cost_ucr,
                ]
                for r in s.scalars(select(UsageDaily))
            }
        assert rollups == dict(events)


LedgerMachine.TestCase.settings = settings(
    max_examples=30,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestLedgerMachine = LedgerMachine.TestCase
