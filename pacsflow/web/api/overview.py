"""The numbers behind the dashboard's overview charts, in one request.

What Kaapana's meta dashboard shows without OpenSearch Dashboards: studies per modality
(from the archive index, which knows studies), series arrivals per day and segmentation
labels (facets of the search index); all of it over the studies the user may see.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy import distinct, func, select

from pacsflow.archive.models import Series, Study
from pacsflow.search.model import Bucket, DateHistogramFacet, Range, SearchRequest, TermsFacet
from pacsflow.web.access import visible_studies
from pacsflow.web.api.search import visible_search
from pacsflow.web.dicomweb.common import archive
from pacsflow.web.security import Permission, require

ARRIVAL_DAYS = 30
LABELS = 30


@require(Permission.READ)
def overview() -> ResponseReturnValue:
    studies = func.count(distinct(Series.study_fk))
    query = select(Series.modality, studies)
    if (visible := visible_studies()) is not None:
        query = query.join(Study, Series.study_fk == Study.id).where(visible)
    with archive().engine.connect() as conn:
        modalities = conn.execute(
            query.group_by(Series.modality).order_by(studies.desc(), Series.modality)
        ).all()
    days = [datetime.now(UTC).date() - timedelta(days=n) for n in range(ARRIVAL_DAYS - 1, -1, -1)]
    since = days[0].isoformat()
    found = visible_search(
        SearchRequest(
            query=Range(field="ArrivedAt", gte=since),
            limit=0,
            facets={
                "arrivals": DateHistogramFacet(field="ArrivedAt", interval="day"),
            },
        )
    )
    labels = visible_search(
        SearchRequest(limit=0, facets={"labels": TermsFacet(field="AnnotationLabels", size=LABELS)})
    )
    return jsonify(
        {
            "studies_per_modality": [
                {"key": modality or "(none)", "count": count} for modality, count in modalities
            ],
            "series_arrivals_per_day": _every_day(days, found.facets["arrivals"]),
            "segmentation_labels": [b.model_dump() for b in labels.facets["labels"]],
        }
    )


def _every_day(days: list[date], buckets: list[Bucket]) -> list[dict[str, object]]:
    """Buckets for every day, zero where nothing arrived (the facet omits empty days)."""
    counts = {bucket.key[:10]: bucket.count for bucket in buckets}
    return [{"key": day.isoformat(), "count": counts.get(day.isoformat(), 0)} for day in days]


def register(blueprint: Blueprint) -> None:
    blueprint.add_url_rule("/overview", view_func=overview, methods=["GET"])
