"""``/notifications/me``: the caller's notifications (any signed-in role) — the list with the unread
count, marking read, and the kinds they choose to receive. The same store and functions as the web
pages' ``/notifications`` (:class:`gateway.notifications.NotificationStore`), kept by the
notification service (``python -m serums.notifications``, started by ``serums up``)."""

from __future__ import annotations

from flask import current_app
from flask_smorest import Blueprint
from marshmallow import fields, validate

from .. import problems as P
from .. import schemas as S
from ..notifications import KINDS, Notification, NotificationStore
from ..security import login_required, principal, services
from .common import when

bp = Blueprint("notifications", __name__, url_prefix="/notifications/me",
               description="My notifications: who opened my record, break-glass, refusals, revocations, reviews")

NOTIFICATION_NOT_FOUND = P.problem_type(
    "notification-not-found", 404, "Notification not found",
    "The caller has no notification with that id (it does not exist, or it is someone else's).",
)
MAX_LIST = 100


class NotificationsQuery(S.Schema):
    limit = fields.Integer(load_default=50, validate=validate.Range(1, MAX_LIST),
                           metadata={"description": f"how many, newest first (1-{MAX_LIST}, default 50)"})


class NotificationOut(S.Schema):
    id = fields.Integer()
    kind = fields.String(metadata={"description": f"one of {', '.join(KINDS)}"})
    kind_label = fields.String()
    text = fields.String()
    ref = fields.String(metadata={"description": "the grant or request it is about"})
    at = fields.String(metadata={"description": "ISO 8601 UTC"})
    read_at = fields.String(allow_none=True)


class NotificationsOut(S.Schema):
    unread = fields.Integer()
    notifications = fields.List(fields.Nested(NotificationOut))


class MarkReadIn(S.Schema):
    id = fields.Integer(strict=True, load_default=None, allow_none=True, validate=validate.Range(min=1),
                        metadata={"description": "the notification to mark read; omitted or null: all of them"})


class MarkedOut(S.Schema):
    marked = fields.Integer()
    unread = fields.Integer()


class KindOut(S.Schema):
    kind = fields.String()
    label = fields.String()
    enabled = fields.Boolean()


class KindsOut(S.Schema):
    kinds = fields.List(fields.Nested(KindOut))


class KindsIn(S.Schema):
    enabled = fields.List(S.Choice(tuple(KINDS)), required=True, validate=validate.Length(max=len(KINDS)),
                          metadata={"description": "the kinds to receive; every other kind is switched off"})


def store() -> NotificationStore:
    """The pages' store (``gateway.web`` creates it); this API alone creates its own on the same database."""
    ext = current_app.extensions
    if "serums_notifications" not in ext:
        ext["serums_notifications"] = NotificationStore(services().auth.engine)
        ext["serums_notifications"].create_tables()
    return ext["serums_notifications"]


def _out(n: Notification) -> dict:
    return {"id": n.id, "kind": n.kind, "kind_label": KINDS.get(n.kind, n.kind), "text": n.text, "ref": n.ref,
            "at": when(n.created_at), "read_at": when(n.read_at) if n.read_at is not None else None}


def _kinds(user_id: str) -> dict:
    return {"kinds": [{"kind": k, "label": KINDS[k], "enabled": on} for k, on in store().kinds(user_id).items()]}


@bp.route("", methods=["GET"])
@login_required
@bp.arguments(NotificationsQuery, location="query")
@bp.response(200, NotificationsOut)
def my_notifications(query):
    """My notifications, newest first, and how many are unread."""
    me = principal().user_id
    return {"unread": store().unread_count(me), "notifications": [_out(n) for n in store().list(me, query["limit"])]}


@bp.route("/read", methods=["POST"])
@login_required
@bp.arguments(MarkReadIn)
@bp.response(200, MarkedOut)
def mark_read(body):
    """Mark one notification (``id``) or all of them read; ``marked`` says how many were unread."""
    me = principal().user_id
    if body["id"] is not None and store().get(me, body["id"]) is None:
        raise P.Problem(NOTIFICATION_NOT_FOUND, f"you have no notification {body['id']}")
    marked = store().mark_read(me, body["id"])
    return {"marked": marked, "unread": store().unread_count(me)}


@bp.route("/kinds", methods=["GET"])
@login_required
@bp.response(200, KindsOut)
def my_kinds():
    """Every kind of notification and whether I receive it (all of them until I choose)."""
    return _kinds(principal().user_id)


@bp.route("/kinds", methods=["PUT"])
@login_required
@bp.arguments(KindsIn)
@bp.response(200, KindsOut)
def choose_kinds(body):
    """Choose the kinds I receive: a kind switched off is neither stored nor published to MQTT."""
    me = principal().user_id
    store().set_kinds(me, body["enabled"])
    return _kinds(me)
