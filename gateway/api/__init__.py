"""The HTTP API: one blueprint per role, all validated by marshmallow schemas and documented in
the OpenAPI document at ``/openapi.json``.

========================  ==========================================================
``/auth``                 enrolment by invitation, login, second factors, sessions
``/patients/me``          a patient's record, preferences, share codes, access log
``/doctors``              requests and tokens, records, grants, break-glass
``/admin``                a hospital admin's users, treating relationships, rules
``/audit``                auditors: the trail, reviews, ledger verification, exports
``/hospitals``            the network's hospitals and their rules
``/analytics``            research jobs gated by cohorts and ε budgets, dataset budgets, releases
``/notifications/me``     anyone's notifications: list and unread count, mark read, kinds received
========================  ==========================================================
"""

from __future__ import annotations

from flask import Flask

from auth import configure_flask

from .. import schemas as S
from ..errors import install_error_mappers
from ..security import SECURITY_SCHEME
from . import admin, analytics, audit, auth, common, doctors, notifications, patients

BLUEPRINTS = (auth.bp, patients.bp, doctors.bp, admin.bp, audit.bp, common.bp, analytics.bp, notifications.bp)


def register_api(app: Flask, services) -> None:
    """Wire ``services`` into ``app``: JWT sessions, error mapping, every blueprint."""
    app.extensions["serums_services"] = services
    configure_flask(app, services.auth, register_error_handler=False)
    install_error_mappers(app)
    api = app.extensions["serums_api"]
    api.spec.components.security_scheme("bearerAuth", SECURITY_SCHEME)
    api.spec.components.schema("Problem", schema=S.ProblemSchema)
    for bp in BLUEPRINTS:
        api.register_blueprint(bp)


__all__ = ["BLUEPRINTS", "register_api"]
