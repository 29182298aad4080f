"""REST for personal access tokens: issue, list and revoke your own (admins: anyone's).

Tokens are managed with a login (session, Basic or JWT), never with a token: a leaked
token cannot mint itself successors.
"""

from __future__ import annotations

from dataclasses import asdict

from flask import Blueprint, g, jsonify, request
from flask.typing import ResponseReturnValue
from flask_login import current_user

from pacsflow.web.dicomweb.common import archive
from pacsflow.web.security import VIA_ACCESS_TOKEN, is_admin
from pacsflow.web.tokens import MAX_DAYS, issue, revoke, tokens_of

DEFAULT_DAYS = 90


def _error(status: int, message: str) -> ResponseReturnValue:
    return jsonify({"error": message}), status


def _refuse_tokens() -> ResponseReturnValue | None:
    if g.get(VIA_ACCESS_TOKEN):
        return _error(403, "access tokens cannot manage tokens; sign in with your password")
    return None


def list_tokens() -> ResponseReturnValue:
    return _refuse_tokens() or jsonify(
        {"tokens": [asdict(t) for t in tokens_of(archive().engine, current_user.id)]}
    )


def create_token() -> ResponseReturnValue:
    refused = _refuse_tokens()
    if refused:
        return refused
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return _error(400, 'send a JSON object: {"name": "...", "expires_in_days": 90}')
    name, days = body.get("name"), body.get("expires_in_days", DEFAULT_DAYS)
    if not isinstance(name, str) or not 1 <= len(name.strip()) <= 100:
        return _error(400, '"name" must be a text of 1 to 100 characters, saying what uses it')
    if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= MAX_DAYS:
        return _error(400, f'"expires_in_days" must be a whole number from 1 to {MAX_DAYS}')
    info, token = issue(archive().engine, current_user.id, name.strip(), days)
    return jsonify({**asdict(info), "token": token}), 201


def revoke_token(token_id: int) -> ResponseReturnValue:
    refused = _refuse_tokens()
    if refused:
        return refused
    owner = None if is_admin(current_user) else current_user.id
    if not revoke(archive().engine, token_id, owner):
        return _error(404, f"no token {token_id} of yours that is still valid")
    return "", 204


def register(blueprint: Blueprint) -> None:
    blueprint.add_url_rule("/tokens", view_func=list_tokens, methods=["GET"])
    blueprint.add_url_rule("/tokens", view_func=create_token, methods=["POST"])
    blueprint.add_url_rule("/tokens/<int:token_id>", view_func=revoke_token, methods=["DELETE"])
