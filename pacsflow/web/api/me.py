"""Who the caller is: lets other systems (Airflow's sign-in) check a pacsflow account.

Any signed-in user may ask about themselves; the login guard answers 401 to everyone else,
so a wrong password and an unknown user look the same.
"""

from __future__ import annotations

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue
from flask_login import current_user


def get_me() -> ResponseReturnValue:
    return jsonify(
        {
            "username": current_user.username,
            "roles": sorted(role.name for role in current_user.roles),
        }
    )


def register(blueprint: Blueprint) -> None:
    blueprint.add_url_rule("/me", view_func=get_me, methods=["GET"])
