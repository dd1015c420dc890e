"""Refuse NUL characters in query strings and form fields, for every route.

No text in Creditline may contain NUL, and PostgreSQL cannot even compare
against one: a NUL reaching a query is a driver error (a 500). One check at
the edge covers every form and filter; JSON bodies are validated by the API.
"""

from __future__ import annotations

from flask import Flask, abort, request


def init_app(app: Flask) -> None:
    @app.before_request
    def _refuse_nul() -> None:
        sources = []
        if request.query_string:  # parse args only when there are any
            sources.append(request.args)
        if request.mimetype != "application/json":
            sources.append(request.form)
        for source in sources:
            for key, value in source.items(multi=True):
                if "\x00" in key or "\x00" in value:
                    abort(400, "Text may not contain NUL characters.")
