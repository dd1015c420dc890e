"""Email addresses as account names: one canonical spelling per address.

Two spellings that look the same in the admin list must not be two accounts.
So every address is stored, and every lookup is made, in one canonical form:

* ``normalise_email`` applies Unicode NFKC, which turns compatibility forms
  into the plain characters they stand for (full-width ``ａ`` -> ``a``, the
  ideographic space -> a space, ligatures -> letters), strips surrounding
  whitespace and lower-cases. It is total: it never refuses input, because
  the API and the rate limits use it on whatever a client sent. A look-alike
  that NFKC can map is thereby mapped to the canonical account.
* ``check_email`` decides which canonical spellings may name a *new* account:
  no invisible or control characters at all (Unicode categories Cc, Cf, Zs,
  Zl, Zp, Co, Cs and unassigned Cn: zero-width spaces and joiners, bidi
  overrides, soft hyphens, NUL...), no dot at the end of the domain (the DNS
  root: ``example.com.`` is ``example.com``), and the plain shape
  ``local@label.label`` with no empty labels. Since no account can be created
  with such characters, a lookup that carries them (a zero-width space in an
  API report) matches no account, so it is refused as an unknown user
  rather than guessed at.

Lower-case rather than ``casefold``: every address stored before this module
existed was ``strip().lower()``-ed, and for those (ASCII ones in particular)
``normalise_email`` gives the same string, so no data migration is needed and
no existing account changes its name. ``casefold`` would map ``ß`` to ``ss``,
merging mailboxes that are in fact different.

Look-alikes across scripts (a Cyrillic ``а`` for a Latin ``a``) are not
folded: that needs a confusables table, and an address in one script is a
legitimate address.
"""

from __future__ import annotations

import re
import unicodedata

from core.errors import ValidationError

MAX_EMAIL_LENGTH = 254
INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cn", "Co", "Cs", "Zl", "Zp", "Zs"})

# Domain labels: letters and digits (any script) with inner hyphens, no empty label.
_LABEL = r"[^\W_](?:(?:[^\W_]|-)*[^\W_])?"
_EMAIL = re.compile(rf"[^@\s]+@{_LABEL}(?:\.{_LABEL})+")


def normalise_email(email: str) -> str:
    """The canonical spelling of ``email``: NFKC, trimmed, lower-cased. Never raises."""
    canonical = unicodedata.normalize("NFKC", email).strip().lower()
    # Lower-casing can leave a sequence NFKC would compose differently.
    return unicodedata.normalize("NFKC", canonical)


def check_email(email: str) -> None:
    """Refuse a canonical spelling (``normalise_email``'s output) that may not
    name an account, with a message the person who typed it can act on."""
    if any(unicodedata.category(ch) in INVISIBLE_CATEGORIES for ch in email):
        raise ValidationError(
            "Email addresses cannot contain spaces, invisible or control characters.",
            field="email",
        )
    if email.endswith("."):
        raise ValidationError("Remove the dot at the end of the email address.", field="email")
    if len(email) > MAX_EMAIL_LENGTH or not _EMAIL.fullmatch(email):
        raise ValidationError("Enter a valid email address.", field="email")
