"""The admin's forms. Every form that changes something an admin must justify
inherits ``ReasonForm`` (the reason field and core.audit's rule); amounts are
parsed by ``parsed_amount`` with core.pricing's parsers (blueprints.form_rules).
"""

import functools

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    Field,
    IntegerField,
    PasswordField,
    SelectField,
    StringField,
    TextAreaField,
    ValidationError,
)
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from blueprints.form_rules import ReasonRule, parsed_amount
from core.bounds import MAX_TOKENS_PER_EVENT, MAX_TOPUP_OPTION_USD
from core.enums import Role
from core.gateway.routing import MAX_TOKENS_LIMIT
from core.pricing import parse_credits, parse_rate, parse_usd_per_m
from core.settings import REGISTRATION_MODES


def field_named(form: FlaskForm, name: object, default: Field) -> Field:
    """The field a domain error names in its ``field`` detail, else ``default``."""
    return form._fields.get(str(name), default)


class ApiKeyForm(FlaskForm):
    name = StringField(
        "Name", validators=[DataRequired(), Length(max=100)], description="e.g. dify-production"
    )


class ConfirmForm(FlaskForm):
    """A button that changes state: only the CSRF token."""


class ReasonForm(FlaskForm):
    """A change an admin must justify: the reason, required and bounded as
    core.audit.clean_reason stores it. Also the form of a bare reason (unflag)."""

    reason = TextAreaField("Reason", validators=[DataRequired(), ReasonRule()])


class RateForm(ReasonForm):
    credits_per_usd = StringField(
        "New rate (credits per USD)",
        validators=[DataRequired(), Length(max=20), parsed_amount(parse_rate)],
    )

    @property
    def rate_value(self) -> int:
        return self.credits_per_usd.parsed


class ModelForm(ReasonForm):
    name = StringField(
        "Model id (as integrations send it)", validators=[DataRequired(), Length(max=100)]
    )
    display_name = StringField("Display name", validators=[Length(max=200)])
    input_usd = StringField(
        "Input, USD per 1M tokens",
        validators=[DataRequired(), Length(max=30), parsed_amount(parse_usd_per_m)],
    )
    output_usd = StringField(
        "Output, USD per 1M tokens",
        validators=[DataRequired(), Length(max=30), parsed_amount(parse_usd_per_m)],
    )
    enabled = BooleanField("Enabled", default=True)

    @property
    def input_uusd(self) -> int:
        return self.input_usd.parsed

    @property
    def output_uusd(self) -> int:
        return self.output_usd.parsed


def _credits_field(label: str) -> StringField:
    """Credits as an admin types them, "1,000.5": thousands commas allowed."""
    return StringField(
        label,
        validators=[DataRequired(), Length(max=30), parsed_amount(parse_credits, thousands=True)],
    )


class SettingsForm(ReasonForm):
    topup_options = StringField(
        "Top-up options (whole USD, comma-separated)", validators=[DataRequired(), Length(max=200)]
    )
    max_tokens = StringField("Max tokens per event", validators=[DataRequired(), Length(max=20)])
    max_credits = _credits_field("Max credits per event")
    overdraft = _credits_field("Overdraft limit (credits)")
    threshold = _credits_field("Default low-balance alert (credits)")
    # Absent from a submission: left as it is (core.settings checks the value).
    registration = SelectField(
        "Sign-up (open, invite: by invitation link, closed)",
        choices=list(REGISTRATION_MODES),
        validate_choice=False,
    )
    webhook_url = StringField("Webhook URL (empty: none)", validators=[Length(max=500)])
    webhook_secret = PasswordField("New webhook secret", validators=[Length(max=200)])

    def validate_topup_options(self, field: StringField) -> None:
        parts = [p.strip() for p in (field.data or "").split(",") if p.strip()]
        # isascii: str.isdigit() is also true for "²" and other digits int() refuses.
        if not parts or not all(p.isascii() and p.isdigit() and len(p) <= 5 for p in parts):
            raise ValidationError("List whole dollar amounts, e.g. 5, 10, 25.")
        values = tuple(int(p) for p in parts)
        if not all(1 <= v <= MAX_TOPUP_OPTION_USD for v in values):
            raise ValidationError(
                f"Top-up options are whole dollar amounts from 1 to {MAX_TOPUP_OPTION_USD:,}."
            )
        field.parsed = values

    def validate_max_tokens(self, field: StringField) -> None:
        raw = (field.data or "").strip().replace(",", "")
        if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_TOKENS_PER_EVENT:
            raise ValidationError(
                f"A whole number of tokens, at least 1 and at most {MAX_TOKENS_PER_EVENT:,}."
            )
        field.parsed = int(raw)

    @property
    def values(self) -> dict[str, object]:
        """The parsed values, by setting name (all of them once the form is valid)."""
        fields = {
            "topup_options_usd": self.topup_options,
            "max_tokens_per_event": self.max_tokens,
            "max_credits_per_event_ucr": self.max_credits,
            "overdraft_limit_ucr": self.overdraft,
            "default_low_balance_threshold_ucr": self.threshold,
        }
        values = {k: f.parsed for k, f in fields.items() if getattr(f, "parsed", None) is not None}
        if self.registration.data:
            values["registration"] = self.registration.data
        values["webhook_url"] = (self.webhook_url.data or "").strip()
        return values


class AdjustForm(ReasonForm):
    amount = StringField(
        "Credits (negative removes)",
        validators=[
            DataRequired(),
            Length(max=30),
            parsed_amount(functools.partial(parse_credits, allow_negative=True), thousands=True),
        ],
    )

    @property
    def amount_ucr(self) -> int:
        return self.amount.parsed


class AccessForm(ReasonForm):
    role = SelectField("Role", choices=[role.value for role in Role])
    disabled = BooleanField("Disabled (cannot sign in; usage refused)")


class UpstreamForm(FlaskForm):
    """An upstream's base URL, a new secret (blank keeps the stored one) and
    enabled flag; the name only when adding one."""

    name = StringField("Name", validators=[Length(max=100)], description="e.g. openai")
    base_url = StringField(
        "Base URL", validators=[DataRequired(), Length(max=500)], description="ending in /v1"
    )
    secret = PasswordField(
        "Secret key", validators=[Length(max=500)], description="Never shown again."
    )
    enabled = BooleanField("Enabled", default=True)


def _tokens_field(label: str) -> IntegerField:
    """A token limit; blank keeps the route's current value (or the default)."""
    return IntegerField(
        label,
        validators=[Optional(), NumberRange(min=0, max=MAX_TOKENS_LIMIT)],
        description="blank: keep",
    )


class RouteForm(FlaskForm):
    """A priced model's route: its upstream, the model name there and the limits."""

    model = SelectField("Model", choices=[])
    upstream = SelectField("Upstream", choices=[])
    upstream_model = StringField(
        "Upstream model", validators=[Length(max=200)], description="blank: the same name"
    )
    context_window = _tokens_field("Context window (tokens)")
    max_output = _tokens_field("Max output (tokens)")
    default_output_cap = _tokens_field("Default output cap (tokens)")
    overhead = _tokens_field("Overhead (tokens)")
    enabled = BooleanField("Enabled", default=True)
