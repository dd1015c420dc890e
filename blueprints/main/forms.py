from datetime import datetime, time

from flask_wtf import FlaskForm
from wtforms import DateField, PasswordField, StringField
from wtforms.validators import DataRequired, Length, Optional

from blueprints.auth.forms import new_password_field, repeat_field
from blueprints.form_rules import parsed_amount
from core.pricing import parse_credits


class ThresholdForm(FlaskForm):
    threshold = StringField(
        "Alert me when my balance is below (credits)",
        description="Leave empty to use the default.",
        validators=[Length(max=40), parsed_amount(parse_credits)],
    )

    @property
    def threshold_ucr(self) -> int | None:
        """The threshold in µcr, or None (blank) for the default."""
        return self.threshold.parsed


class TimeZoneForm(FlaskForm):
    time_zone = StringField(
        "Time zone",
        description="An IANA name such as Europe/Berlin; pages show times in it.",
        validators=[Length(max=64)],
    )


class PasswordForm(FlaskForm):
    current = PasswordField("Current password", validators=[DataRequired()])
    new = new_password_field("New password")
    confirm = repeat_field("Repeat new password", "new")


class UserKeyForm(FlaskForm):
    """A new key of mine for the gateway: a name, an optional credit limit and expiry."""

    name = StringField(
        "Name", validators=[DataRequired(), Length(max=100)], description="e.g. laptop"
    )
    limit = StringField(
        "Credit limit (optional)",
        description="Spending through this key stops at this many credits.",
        validators=[Length(max=30), parsed_amount(parse_credits, thousands=True)],
    )
    expires = DateField(
        "Expires on (optional)",
        description="The key stops working at the start of this day (UTC).",
        validators=[Optional()],
    )

    @property
    def limit_ucr(self) -> int | None:
        return self.limit.parsed

    @property
    def expires_at(self) -> datetime | None:
        """The start of the expiry day, UTC (naive, as stored)."""
        day = self.expires.data
        return None if day is None else datetime.combine(day, time.min)


class ConfirmForm(FlaskForm):
    """A button that changes state: only the CSRF token."""
