"""The admin's form for a Dify app (``core.dify_apps``)."""

from flask_wtf import FlaskForm
from wtforms import BooleanField, IntegerField, PasswordField, SelectField, StringField
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from core.dify_apps import DEFAULT_MAX_INPUT, DEFAULT_MAX_OUTPUT
from core.gateway.routing import MAX_TOKENS_LIMIT


class DifyAppForm(FlaskForm):
    """An app's name, address, key (blank keeps the stored one), billing model and
    per-message hold; the slug only when adding one."""

    slug = StringField(
        "Slug", validators=[Length(max=60)], description="in the chat's URL, e.g. support-bot"
    )
    name = StringField("Name", validators=[DataRequired(), Length(max=100)])
    base_url = StringField(
        "Dify API base URL",
        validators=[DataRequired(), Length(max=500)],
        description="e.g. https://dify.example.com/v1",
    )
    api_key = PasswordField(
        "App API key",
        validators=[Length(max=500)],
        description="From the app's API Access page; never shown again.",
    )
    billing_model = SelectField("Billing model", choices=[])
    max_input_tokens = IntegerField(
        "Max input tokens per message",
        default=DEFAULT_MAX_INPUT,
        validators=[Optional(), NumberRange(min=1, max=MAX_TOKENS_LIMIT)],
    )
    max_output_tokens = IntegerField(
        "Max output tokens per message",
        default=DEFAULT_MAX_OUTPUT,
        validators=[Optional(), NumberRange(min=1, max=MAX_TOKENS_LIMIT)],
    )
    enabled = BooleanField("Enabled", default=True)
