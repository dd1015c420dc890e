"""Creditline's domain: money, ledger, pricing, accounts and the database.

Nothing in this package imports Flask's ``request`` or renders templates, so
every rule here can be exercised without an HTTP request.
"""
