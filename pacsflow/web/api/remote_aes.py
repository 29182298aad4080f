"""Known DICOM peers, read by workflows that forward series to them by AE title."""

from __future__ import annotations

from dataclasses import asdict

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from pacsflow.archive.remote_aes import find_peer
from pacsflow.web.dicomweb.common import archive
from pacsflow.web.security import Permission, require


@require(Permission.READ)
def get_remote_ae(ae_title: str) -> ResponseReturnValue:
    peer = find_peer(archive(), ae_title)
    if peer is None:
        message = f"no DICOM peer {ae_title!r}; register it with `pacsflow ae add`"
        return jsonify({"error": message}), 404
    return jsonify(asdict(peer))


def register(blueprint: Blueprint) -> None:
    blueprint.add_url_rule("/remote-aes/<ae_title>", view_func=get_remote_ae, methods=["GET"])
