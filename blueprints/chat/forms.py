"""The chat's message box."""

from flask_wtf import FlaskForm
from wtforms import HiddenField, TextAreaField
from wtforms.validators import DataRequired, Length

from core.dify import MAX_QUERY_CHARS


class MessageForm(FlaskForm):
    """A message, and the conversation it continues (blank: a new one)."""

    query = TextAreaField(
        "Message", validators=[DataRequired("Write a message first."), Length(max=MAX_QUERY_CHARS)]
    )
    conversation_id = HiddenField()
