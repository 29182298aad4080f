"""The audit trail for admins: filtered as JSON, or exported as JSON lines."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from flask import Blueprint, Response, jsonify, request
from flask.typing import ResponseReturnValue
from flask_login import current_user

from pacsflow.audit import AuditKind, read_events
from pacsflow.dicom.uid import check_uid
from pacsflow.web.dicomweb.common import archive
from pacsflow.web.security import is_admin

MAX_EVENTS = 100_000


class _BadParameter(ValueError):
    pass


def _moment(name: str) -> datetime | None:
    """An ISO date or date-time parameter, in UTC (naive, as stored)."""
    value = request.args.get(name)
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise _BadParameter(f"{name!r} must be an ISO date or date-time, not {value!r}") from None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def _kind() -> AuditKind | None:
    kind = request.args.get("event")
    if kind is None:
        return None
    if kind not in {k.value for k in AuditKind}:
        raise _BadParameter(f"'event' must be one of {', '.join(k.value for k in AuditKind)}")
    return AuditKind(kind)


def _study() -> str | None:
    study = request.args.get("study")
    if study is None:
        return None
    try:
        return check_uid(study, "study")
    except ValueError as error:
        raise _BadParameter(str(error)) from None


def _limit() -> int:
    try:
        limit = int(request.args.get("limit", 1000))
    except ValueError:
        raise _BadParameter("'limit' must be a whole number") from None
    if not 1 <= limit <= MAX_EVENTS:
        raise _BadParameter(f"'limit' must be from 1 to {MAX_EVENTS}")
    return limit


def audit_events() -> ResponseReturnValue:
    if not is_admin(current_user):
        return jsonify({"error": "only admins read the audit trail"}), 403
    archive().audit.flush()  # this process's pending records (others' within a second)
    try:
        events = read_events(
            archive().engine,
            user=request.args.get("user"),
            kind=_kind(),
            study=_study(),
            since=_moment("since"),
            until=_moment("until"),
            limit=_limit(),
        )
    except _BadParameter as error:
        return jsonify({"error": str(error)}), 400
    if request.args.get("format") == "jsonl":
        lines = "".join(json.dumps(event, sort_keys=True) + "\n" for event in events)
        return Response(
            lines,
            mimetype="application/x-ndjson",
            headers={"Content-Disposition": 'attachment; filename="pacsflow-audit.jsonl"'},
        )
    return jsonify({"events": events})


def register(blueprint: Blueprint) -> None:
    blueprint.add_url_rule("/audit", view_func=audit_events, methods=["GET"])
