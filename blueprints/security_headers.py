"""Security headers on every response.

The CSP allows only this site's own scripts and styles: Creditline has no
inline script or style, and htmx runs without eval because no hx-trigger
filters or hx-on attributes are used (see static/app.js). Forms may post here
and redirect to Stripe Checkout, whose origin is configurable for tests.
"""

from __future__ import annotations

from flask import Flask, Response


def init_app(app: Flask) -> None:
    checkout = app.config["STRIPE_CHECKOUT_ORIGIN"]
    policy = "; ".join(
        (
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'self'",
            "frame-ancestors 'none'",
            f"form-action 'self' {checkout}",
        )
    )

    defaults = [
        ("Content-Security-Policy", policy),
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "same-origin"),
        ("X-Frame-Options", "DENY"),
        ("Permissions-Policy", "camera=(), microphone=(), geolocation=()"),
    ]

    @app.after_request
    def _headers(response: Response) -> Response:
        headers = response.headers
        # A view may set its own value; otherwise the default applies.
        present = {name.lower() for name in headers.keys()}  # noqa: SIM118 (Headers)
        for name, value in defaults:
            if name.lower() not in present:
                headers.add(name, value)
        return response
