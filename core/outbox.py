"""The outbox: emails and webhook events, written with the event that causes them.

Nothing here talks to the network. Each function adds rows to
``outbox_messages`` on the caller's cursor, inside the caller's transaction,
so a message exists exactly when its cause committed: a rolled-back debit
leaves no message behind. ``core.outbox_worker`` delivers the rows later,
outside any transaction.

Two channels:

* ``email``: one row per message to a user. Rows are always written; when no
  mail server is configured the worker marks them ``skipped``.
* ``webhook``: one row per event, written only while an admin has set a
  webhook URL (``settings.webhook_url``). The body is the JSON the receiver
  gets: ``{"id", "type", "created", "data": {...}}``.

Low balance: ``note_wallets`` runs after every balance change (the ledger's
writers call it). A user whose available credits (balance − reserved) are
below their threshold is told once (``balance_alerts.low``); the alert
re-arms only when a later change finds them at or above it again.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from core import commit_hooks
from core.clock import utcnow
from core.pricing import format_cents, format_credits_display
from core.rawdb import RawCursor
from core.settings import Settings, from_rows

_INSERT = (
    "INSERT INTO outbox_messages (channel, event_type, event_uid, user_id, recipient,"
    " subject, body, status, attempts, next_attempt_at, created_at)"
    " VALUES (:channel, :event_type, :event_uid, :user_id, :recipient, :subject, :body,"
    " 'pending', 0, :now, :now)"
)


_written = threading.local()


def _add(cur: RawCursor, row: Mapping[str, Any]) -> None:
    cur.execute(_INSERT, row)
    mark_due()


def mark_due() -> None:
    """This thread's transaction makes outbox rows due: once it has committed
    (``core.commit_hooks``; never if it rolls back), ``take_written`` says so."""
    commit_hooks.after_commit(_committed)


def _committed() -> None:
    _written.pending = True


def take_written() -> bool:
    """Whether this thread committed outbox rows since it last asked (and forget it).

    The delivery thread is woken after a commit only when the committing
    thread wrote to the outbox, not after every debit.
    """
    pending = getattr(_written, "pending", False)
    _written.pending = False
    return pending


def _settings(cur: RawCursor) -> Settings:
    return from_rows(cur.execute("SELECT key, value FROM settings").fetchall())


def _uid(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def enqueue_email(
    cur: RawCursor, event_type: str, user_id: int | None, to: str, subject: str, text: str
) -> None:
    """One email to ``to``, delivered after the transaction commits."""
    now = cur.db_value(utcnow())
    _add(
        cur,
        {
            "channel": "email",
            "event_type": event_type,
            "event_uid": _uid("msg"),
            "user_id": user_id,
            "recipient": to,
            "subject": subject,
            "body": text,
            "now": now,
        },
    )


def enqueue_webhook(
    cur: RawCursor, event_type: str, data: Mapping[str, Any], *, user_id: int | None = None
) -> None:
    """One webhook event, if a webhook URL is set."""
    if not _settings(cur).webhook_url:
        return
    now = utcnow()
    uid = _uid("evt")
    body = json.dumps(
        {"id": uid, "type": event_type, "created": _unix(now), "data": dict(data)},
        separators=(",", ":"),
    )
    _add(
        cur,
        {
            "channel": "webhook",
            "event_type": event_type,
            "event_uid": uid,
            "user_id": user_id,
            "recipient": None,
            "subject": None,
            "body": body,
            "now": cur.db_value(now),
        },
    )


def _unix(moment: datetime) -> int:
    return int((moment - datetime(1970, 1, 1)).total_seconds())


_DEFAULT_THRESHOLD = Settings().default_low_balance_threshold_ucr


def _owners(cur: RawCursor, wallet_ids: Iterable[int]) -> dict[int, int]:
    """wallet id -> user id."""
    where, params = cur.is_one_of("id", "ids", wallet_ids)
    return dict(cur.execute(f"SELECT id, user_id FROM wallets WHERE {where}", params).fetchall())


# --- low balance -----------------------------------------------------------------


# What the low-balance check needs of a wallet, as columns of ``wallets``; a
# balance update returns them (``core.ledger.set_balances``) so the check
# costs no query of its own.
ALERT_COLUMNS = (
    "user_id, (SELECT email FROM users WHERE users.id = wallets.user_id), id,"
    " balance_ucr, reserved_ucr,"
    " (SELECT low_balance_threshold_ucr FROM users WHERE users.id = wallets.user_id),"
    " (SELECT low FROM balance_alerts WHERE balance_alerts.user_id = wallets.user_id),"
    " (SELECT value FROM settings WHERE key = 'default_low_balance_threshold_ucr')"
)


def note_wallets(cur: RawCursor, wallet_ids: Iterable[int], *, lock: bool = False) -> None:
    """After a balance change: alert users who just crossed below their
    threshold, re-arm those back at or above it. ``lock``: lock the wallets
    first (PostgreSQL; for a caller whose transaction has not locked them)."""
    ids = sorted(set(wallet_ids))
    if not ids:
        return
    where, params = cur.is_one_of("id", "ids", ids)
    locked = " ORDER BY id FOR UPDATE" if lock and not cur.is_sqlite else ""
    rows = cur.execute(f"SELECT {ALERT_COLUMNS} FROM wallets WHERE {where}{locked}", params)
    note_balances(cur, rows.fetchall())


def note_balances_committed(cur: RawCursor, rows: Iterable[Sequence[Any]]) -> None:
    """``note_balances`` for balance changes whose transaction has committed
    already (its COMMIT went out with its last statement:
    ``RawCursor.execute_all(commit=True)``). A wallet whose alert must change
    is read again, locked, in the cursor's next transaction, and noted as it
    is then; its owner commits that one. Between the two commits the alert
    lags the balance; if the process dies in between, the wallet's next
    balance change puts the alert right (it compares with the stored state)."""
    note_wallets(cur, [row[2] for row in rows if _alert_change(row) is not None], lock=True)


def _alert_change(row: Sequence[Any]) -> tuple[bool, int] | None:
    """For a wallet's ``ALERT_COLUMNS``: (whether it is now low, its
    threshold) if that differs from its stored alert state; else None."""
    balance, reserved, threshold, low, default = row[3:]
    if threshold is None:
        threshold = json.loads(default) if default else _DEFAULT_THRESHOLD
    is_low = balance - reserved < threshold
    return None if bool(low) == is_low else (is_low, threshold)


def note_balances(cur: RawCursor, rows: Iterable[Sequence[Any]]) -> None:
    """``note_wallets`` for wallets already read (``ALERT_COLUMNS``, after the change)."""
    now = cur.db_value(utcnow())
    for row in rows:
        change = _alert_change(row)
        if change is None:
            continue
        is_low, threshold = change
        user_id, email, wallet_id, balance, reserved, _, low, _ = row
        if low is None:
            cur.execute(
                "INSERT INTO balance_alerts (user_id, low, changed_at) VALUES (:u, :low, :now)",
                {"u": user_id, "low": is_low, "now": now},
            )
        else:
            cur.execute(
                "UPDATE balance_alerts SET low = :low, changed_at = :now WHERE user_id = :u",
                {"u": user_id, "low": is_low, "now": now},
            )
        if not is_low:
            continue
        available = balance - reserved
        enqueue_email(
            cur,
            "balance.low",
            user_id,
            email,
            "Your Creditline balance is low",
            f"Your available balance is {format_credits_display(available)} credits, "
            f"below your alert level of {format_credits_display(threshold)} credits.\n"
            "Top up to keep your requests running.\n",
        )
        enqueue_webhook(
            cur,
            "balance.low",
            {
                "user_id": user_id,
                "email": email,
                "wallet_id": wallet_id,
                "balance_ucr": balance,
                "reserved_ucr": reserved,
                "available_ucr": available,
                "threshold_ucr": threshold,
            },
            user_id=user_id,
        )


# --- events ----------------------------------------------------------------------


def _email_of(cur: RawCursor, user_id: int) -> str:
    return str(cur.scalar("SELECT email FROM users WHERE id = :u", {"u": user_id}))


def topup_paid(
    cur: RawCursor, topup_id: int, user_id: int, amount_cents: int, credits_ucr: int, balance: int
) -> None:
    """A card top-up was credited."""
    email = _email_of(cur, user_id)
    enqueue_email(
        cur,
        "topup.paid",
        user_id,
        email,
        "Your Creditline top-up receipt",
        f"Thank you: your {format_cents(amount_cents)} top-up added "
        f"{format_credits_display(credits_ucr)} credits.\n"
        f"Your balance is now {format_credits_display(balance)} credits.\n",
    )
    enqueue_webhook(
        cur,
        "topup.paid",
        {
            "topup_id": topup_id,
            "user_id": user_id,
            "email": email,
            "amount_cents": amount_cents,
            "credits_ucr": credits_ucr,
            "balance_ucr": balance,
        },
        user_id=user_id,
    )


def topup_refunded(
    cur: RawCursor, topup_id: int, user_id: int, amount_cents: int, debited_ucr: int, memo: str
) -> None:
    """Credits were taken back for a refund of a card top-up."""
    email = _email_of(cur, user_id)
    enqueue_email(
        cur,
        "topup.refunded",
        user_id,
        email,
        "Your Creditline top-up was refunded",
        f"{format_credits_display(debited_ucr)} credits were removed: {memo} "
        f"on your {format_cents(amount_cents)} top-up.\n",
    )
    enqueue_webhook(
        cur,
        "topup.refunded",
        {
            "topup_id": topup_id,
            "user_id": user_id,
            "email": email,
            "amount_cents": amount_cents,
            "debited_ucr": debited_ucr,
        },
        user_id=user_id,
    )


def usage_rejected(cur: RawCursor, refusals: Sequence[Mapping[str, Any]]) -> None:
    """Usage events refused for want of credits; each mapping has ``user_id``,
    ``email``, ``event_id``, ``model`` and ``cost_ucr``."""
    for r in refusals:
        enqueue_email(
            cur,
            "usage.rejected",
            r["user_id"],
            r["email"],
            "A Creditline request was refused",
            f"A {r['model']} request costing {format_credits_display(r['cost_ucr'])} credits "
            "was refused because your balance is too low. Top up to continue.\n",
        )
        enqueue_webhook(cur, "usage.rejected", dict(r), user_id=r["user_id"])


def holds_expired(cur: RawCursor, holds: Sequence[tuple[int, int, int | None, int]]) -> None:
    """Holds (id, wallet id, user key id, amount) that expired uncharged."""
    if not holds or not _settings(cur).webhook_url:
        return
    owners = _owners(cur, [h[1] for h in holds])
    for hold_id, wallet_id, key_id, amount in holds:
        enqueue_webhook(
            cur,
            "hold.expired",
            {
                "hold_id": hold_id,
                "user_id": owners.get(wallet_id),
                "wallet_id": wallet_id,
                "user_key_id": key_id,
                "amount_ucr": amount,
            },
            user_id=owners.get(wallet_id),
        )
