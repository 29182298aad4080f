"""/api/v1/search: find series by their headers and results, with facets.

GET takes free text (``q``) and DICOM keywords as filters the way QIDO-RS does
(``?q=lung&Modality=CT&StudyDate=20250101-20251231&PatientName=Doe*``); POST takes the full
query model (:mod:`pacsflow.search.model`). Tasks keep the index in step through
``POST /api/v1/search/series/{uid}`` and rebuild it with ``POST /api/v1/search/reindex``.
"""

from __future__ import annotations

import re

from flask import Blueprint, current_app, jsonify, request
from flask.typing import ResponseReturnValue
from pydantic import ValidationError
from pydicom.datadict import keyword_dict

from pacsflow.archive.access import Action, project_names
from pacsflow.search.document import document_field_type
from pacsflow.search.indexing import open_backend, refresh, reindex
from pacsflow.search.model import (
    FIELDS,
    Bool,
    Clause,
    DateHistogramFacet,
    Facet,
    FieldType,
    Range,
    SearchBackend,
    SearchError,
    SearchRequest,
    SearchResult,
    Sort,
    Term,
    Terms,
    TermsFacet,
    Text,
    Wildcard,
)
from pacsflow.web.access import current_access
from pacsflow.web.dicomweb.common import archive
from pacsflow.web.security import Permission, require

BACKEND_EXTENSION = "pacsflow_search"
CONTROL_PARAMETERS = frozenset({"q", "limit", "offset", "sort", "facet"})
DEFAULT_FACETS: dict[str, Facet] = {
    "Modality": TermsFacet(field="Modality"),
    "BodyPartExamined": TermsFacet(field="BodyPartExamined"),
    "StudyDate": DateHistogramFacet(field="StudyDate", interval="year"),
    "Project": TermsFacet(field="Project"),
    "AnnotationLabels": TermsFacet(field="AnnotationLabels"),
    "SourceAE": TermsFacet(field="SourceAE"),
}
QIDO_DATE = re.compile(r"^(\d{4})(\d{2})(\d{2})$")
WILDCARD = re.compile(r"[*?]")


def backend() -> SearchBackend:
    """The app's search backend, opened on first use."""
    found: SearchBackend | None = current_app.extensions.get(BACKEND_EXTENSION)
    if found is None:
        found = open_backend(current_app.config["PACSFLOW_SETTINGS"], archive())
        current_app.extensions[BACKEND_EXTENSION] = found
    return found


def visible_to_request() -> Clause | None:
    """What this request may find, as a clause AND-ed to every search; None: everything.

    Documents carry the projects of their study, so hits, totals and facet counts all
    stay within the user's projects.
    """
    access = current_access()
    if access.anywhere(Action.READ):
        return None
    with archive().engine.connect() as conn:
        names = project_names(conn, access.project_ids(Action.READ))
    return Terms(field="Project", values=list(names))  # no projects: matches nothing


def visible_search(search: SearchRequest) -> SearchResult:
    """Run ``search`` over what the current user may see."""
    scope = visible_to_request()
    if scope is not None:
        clauses = [c for c in (search.query, scope) if c is not None]
        search = search.model_copy(update={"query": Bool(must=clauses)})
    return backend().search(search)


def _search(search: SearchRequest) -> ResponseReturnValue:
    return jsonify(visible_search(search).model_dump())


@require(Permission.READ)
def search_get() -> ResponseReturnValue:
    return _search(request_from_parameters(request.args.to_dict(flat=False)))


@require(Permission.READ)
def search_post() -> ResponseReturnValue:
    try:
        search = SearchRequest.model_validate(request.get_json(silent=True) or {})
    except ValidationError as error:
        raise SearchError(f"not a search request: {_first_problem(error)}") from None
    return _search(search)


def _indexing_refused() -> ResponseReturnValue | None:
    """Indexing is for the workflows' account and admins: its counts span every project."""
    if current_access().anywhere(Action.WRITE):
        return None
    return jsonify({"error": "indexing takes the Admin or Operator role"}), 403


@require(Permission.WRITE)
def index_series(series_uid: str) -> ResponseReturnValue:
    return _indexing_refused() or jsonify({"indexed": refresh(archive(), backend(), [series_uid])})


@require(Permission.WRITE)
def reindex_all() -> ResponseReturnValue:
    return _indexing_refused() or jsonify({"indexed": reindex(archive(), backend())})


# ----------------------------------------------------------- GET parameters -> request


def request_from_parameters(parameters: dict[str, list[str]]) -> SearchRequest:
    """QIDO-style parameters as a search request; SearchError names a parameter it can't use."""
    clauses: list[Clause] = []
    for text in parameters.get("q", []):
        if text.strip():
            clauses.append(Text(text=text))
    for name, values in parameters.items():
        if name not in CONTROL_PARAMETERS:
            clauses.extend(_filter(name, value) for value in values)
    query = clauses[0] if len(clauses) == 1 else Bool(must=clauses) if clauses else None
    return SearchRequest(
        query=query,
        sort=[_sort(s) for v in parameters.get("sort", []) for s in v.split(",") if s],
        offset=_count("offset", parameters, 0),
        limit=_count("limit", parameters, 25),
        facets=_facets(parameters.get("facet")),
    )


def _field(name: str) -> tuple[str, FieldType]:
    """A parameter's document path and type: a top-level field, a keyword in ``tags``, or a
    dotted path (``radiomics.original_shape_MeshVolume``)."""
    path = name if name in FIELDS or "." in name else f"tags.{name}"
    if path.startswith("tags.") and path.removeprefix("tags.") not in keyword_dict:
        raise SearchError(f"parameter {name!r} is neither a search field nor a DICOM keyword")
    field_type = document_field_type(path)
    if field_type is None:
        raise SearchError(f"parameter {name!r} is not a field that can be searched")
    return path, field_type


def _filter(name: str, value: str) -> Clause:
    path, field_type = _field(name)
    if field_type in (FieldType.DATE, FieldType.DATETIME, FieldType.NUMBER) and _is_range(value):
        low, high = (part.strip() for part in value.split("-", 1))
        return Range(field=path, gte=_bound(low, field_type), lte=_bound(high, field_type))
    if WILDCARD.search(value) or field_type in (FieldType.PERSON_NAME, FieldType.TEXT):
        return Wildcard(field=path, pattern=value)
    values = [v for v in re.split(r"[,\\]", value) if v]
    if len(values) > 1:
        return Terms(field=path, values=[_bound(v, field_type) or v for v in values])
    return Term(field=path, value=_bound(value, field_type) or value)


def _is_range(value: str) -> bool:
    """``a-b``, ``a-`` or ``-b``; a negative number alone is not a range."""
    return "-" in value.lstrip("-") or value.endswith("-")


def _bound(value: str, field_type: FieldType) -> str | float | None:
    if not value:
        return None
    if field_type is FieldType.NUMBER:
        try:
            return float(value)
        except ValueError:
            raise SearchError(f"{value!r} is not a number") from None
    if field_type in (FieldType.DATE, FieldType.DATETIME):
        match = QIDO_DATE.match(value)
        return "-".join(match.groups()) if match else value
    return value


def _sort(text: str) -> Sort:
    descending = text.startswith("-")
    return Sort(field=_field(text.lstrip("-"))[0], order="desc" if descending else "asc")


def _count(name: str, parameters: dict[str, list[str]], default: int) -> int:
    values = parameters.get(name)
    if not values:
        return default
    try:
        return int(values[-1])
    except ValueError:
        raise SearchError(f"parameter {name!r} must be a whole number") from None


def _facets(names: list[str] | None) -> dict[str, Facet]:
    """``facet=Modality&facet=StudyDate:month``; none given: the dashboard's facets."""
    if names is None:
        return DEFAULT_FACETS
    facets: dict[str, Facet] = {}
    for name in (n for value in names for n in value.split(",") if n):
        field_name, _, interval = name.partition(":")
        path, field_type = _field(field_name)
        if field_type in (FieldType.DATE, FieldType.DATETIME):
            try:
                facets[field_name] = DateHistogramFacet.model_validate(
                    {"field": path, "interval": interval or "month"}
                )
            except ValidationError:
                raise SearchError(f"facet {name!r}: the interval is year, month or day") from None
        else:
            facets[field_name] = TermsFacet(field=path)
    return facets


def _first_problem(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    return f"{where}: {first['msg']}" if where else str(first["msg"])


def _refused(error: SearchError) -> ResponseReturnValue:
    return jsonify({"error": str(error)}), 400


def register(blueprint: Blueprint) -> None:
    blueprint.add_url_rule("/search", view_func=search_get, methods=["GET"])
    blueprint.add_url_rule("/search", view_func=search_post, methods=["POST"])
    blueprint.add_url_rule("/search/series/<series_uid>", view_func=index_series, methods=["POST"])
    blueprint.add_url_rule("/search/reindex", view_func=reindex_all, methods=["POST"])
    blueprint.register_error_handler(SearchError, _refused)
