"""The OpenSearch Dashboards saved objects (compose and Helm import the same file): every
object they reference is in the file, and every field they aggregate on is mapped by
pacsflow's index template, with a type OpenSearch can aggregate."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from pacsflow.search.opensearch import DEFAULT_ALIAS, index_template
from tests.deploy.conftest import REPO

SAVED_OBJECTS = REPO / "helm" / "pacsflow" / "files" / "opensearch-dashboards.ndjson"
AGGREGATABLE = {"keyword", "date", "double"}


def saved_objects() -> list[dict[str, Any]]:
    return [json.loads(line) for line in SAVED_OBJECTS.read_text().splitlines()]


def aggregated_fields(objects: list[dict[str, Any]]) -> Iterator[tuple[str, str]]:
    for obj in objects:
        if obj["type"] == "visualization":
            for agg in json.loads(obj["attributes"]["visState"])["aggs"]:
                if "field" in agg["params"]:
                    yield obj["id"], agg["params"]["field"]


def test_references_resolve_within_the_file() -> None:
    objects = saved_objects()
    ids = {(obj["type"], obj["id"]) for obj in objects}
    assert len(ids) == len(objects)
    for obj in objects:
        for reference in obj["references"]:
            assert (reference["type"], reference["id"]) in ids, (obj["id"], reference)
    (dashboard,) = (obj for obj in objects if obj["type"] == "dashboard")
    panels = json.loads(dashboard["attributes"]["panelsJSON"])
    assert {p["panelRefName"] for p in panels} == {r["name"] for r in dashboard["references"]}
    assert len(panels) == sum(obj["type"] == "visualization" for obj in objects)


def test_the_index_pattern_is_pacsflows_alias() -> None:
    (pattern,) = (obj for obj in saved_objects() if obj["type"] == "index-pattern")
    assert pattern["attributes"]["title"] == DEFAULT_ALIAS
    mapping = index_template()["template"]["mappings"]["properties"]
    assert mapping[pattern["attributes"]["timeFieldName"]]["type"] == "date"


def test_visualizations_aggregate_on_mapped_fields() -> None:
    mapping = index_template()["template"]["mappings"]["properties"]
    fields = list(aggregated_fields(saved_objects()))
    assert len(fields) >= 7
    for visualization, field in fields:
        assert field in mapping, (visualization, field)
        assert mapping[field]["type"] in AGGREGATABLE, (visualization, field)
