from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

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


class PasswordForm(FlaskForm):
    current = PasswordField("Current password", validators=[DataRequired()])
    new = new_password_field("New password")
    confirm = repeat_field("Repeat new password", "new")
