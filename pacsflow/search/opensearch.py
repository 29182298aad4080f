"""The search backend for an OpenSearch cluster (2.x), through opensearch-py.

Documents live in a concrete index ``<alias>-<UTC timestamp>`` reached through an alias, so a
full reindex builds a fresh index beside the live one and swaps the alias in one atomic
``_aliases`` call: searches never see a half-built index. Every index matching ``<alias>-*``
gets its settings and mappings from one index template (:func:`index_template`), written from
:data:`~pacsflow.search.model.FIELDS`, so the mapping is explicit and the same for every index.

Mapping decisions, and why:

- Keywords are exact (``keyword``); text fields are analysed by ``folded`` (standard tokenizer,
  lowercase, asciifolding) so free text is case- and accent-blind, with a ``.keyword``
  sub-field for exact matches, sorting and facets.
- Person names are objects of components. ``Alphabetic`` is text (for free text) with a
  ``.folded`` keyword (lowercase + asciifolding normalizer: term, wildcard and sort are
  case- and accent-blind, as the query model asks) and a ``.keyword`` raw copy for facets; the
  other components are keywords with the same normalizer and a raw ``.keyword``.
- ``tags`` and ``radiomics`` are ``object`` fields mapped dynamically by value type (strings
  keyword, numbers double ignoring values that do not parse, as documents keep a value that
  does not parse as its VR says). DICOM sequences stay ``object``, not ``nested``: a dynamic
  template cannot tell a sequence (a list of objects) from a person name (one object), and
  ``nested`` would need a ``nested`` query and aggregation for every path under it. The cost,
  documented for users: two conditions on the same sequence may match in different items.
- The top level is ``dynamic: strict``: a document with a field outside FIELDS is rejected.
- Dates are ``yyyy-MM-dd``, date-times ``strict_date_optional_time``; ``date_detection`` and
  ``numeric_detection`` are off, so a string in ``tags`` never becomes a date by accident.
  Dates and date-times inside ``tags`` are therefore keywords: their ISO strings compare in
  time order, so term and range queries work on them as in the SQL backend; date histograms
  need a top-level date field.

Query semantics are the SQL backend's (tests/search/suite.py pins them): date-time values are
sent in the documents' canonical UTC form, a date alone on a date-time field means its whole
day; a range is one ``range`` query (a list matches when one value is within every bound), so
of two lower or two upper bounds the stricter is kept; free text is ``multi_match``
``cross_fields`` with ``operator: and`` over the text fields (every word in some field).
"""

from __future__ import annotations

import logging
import math
import re
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final, Literal
from urllib.parse import unquote, urlsplit

import opensearchpy
from opensearchpy import helpers
from opensearchpy.exceptions import RequestError

from pacsflow.search.document import document_field_type
from pacsflow.search.model import (
    FIELDS,
    TEXT_FIELDS,
    Bool,
    Bucket,
    Clause,
    DateHistogramFacet,
    Exists,
    FieldType,
    Range,
    SearchError,
    SearchRequest,
    SearchResult,
    Sort,
    Term,
    Terms,
    TermsFacet,
    Text,
    Wildcard,
    fold,
)

__all__ = [
    "DEFAULT_ALIAS",
    "MAPPING_VERSION",
    "OpenSearchBackend",
    "OpenSearchBackendError",
    "compile_request",
    "connect",
    "index_template",
    "parse_response",
]

logger = logging.getLogger(__name__)

DEFAULT_ALIAS: Final = "pacsflow-series"
MAPPING_VERSION: Final = 1  # bump when index_template() changes; then run `pacsflow reindex`
MAX_RESULT_WINDOW: Final = 10_000  # OpenSearch's default index.max_result_window
TOTAL_FIELDS_LIMIT: Final = 10_000  # tags (private ones too) of many sources exceed 1000
IGNORE_ABOVE: Final = 1024  # longer strings are kept in _source but not indexed
HISTOGRAM_FORMAT: Final = "yyyy-MM-dd"
DATETIME_KEY_FORMAT: Final = "yyyy-MM-dd'T'HH:mm:ss.SSSSSS'Z'"  # UTC, as document.py writes
PERSON_NAME_COMPONENTS: Final = (
    "Alphabetic",
    "FamilyName",
    "GivenName",
    "MiddleName",
    "NamePrefix",
    "NameSuffix",
)
FOLDED: Final = "folded"  # name of both the normalizer and the analyzer

RefreshPolicy = Literal["true", "false", "wait_for"]

# An index name: lowercase, no characters OpenSearch forbids, not starting with - _ +.
_INDEX_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
# Aggregation names may not contain these (they are the aggregation path syntax).
_AGG_NAME_FORBIDDEN = re.compile(r"[\[\]>]")


class OpenSearchBackendError(RuntimeError):
    """The cluster failed a request that was well formed (unavailable shards, rejections...)."""


# ---------------------------------------------------------------------------- connection


def connect(
    url: str,
    *,
    username: str | None = None,
    password: str | None = None,
    ca_certs: str | None = None,
    verify_certs: bool = True,
    client_cert: str | None = None,
    client_key: str | None = None,
    timeout: float = 30.0,
) -> opensearchpy.OpenSearch:
    """A client for ``url`` (``http(s)://host[:port][/prefix]``, e.g. PACSFLOW_SEARCH_URL).

    Credentials come from the arguments or from the URL's user part; TLS options need https
    (without ``ca_certs`` the server is checked against certifi's CAs). Every call has a
    timeout; a failed connection is retried twice. The transport is opensearch-py's default,
    urllib3: the ``requests`` one lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE in the environment
    replace the CA given here (psf/requests#4726), so a configured CA would silently not apply.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(
            f"search URL {parts.scheme}://…: the scheme must be http or https "
            "(e.g. https://search.example.org:9200)"
        )
    if not parts.hostname:
        raise ValueError("search URL has no host name (e.g. https://search.example.org:9200)")
    if parts.query or parts.fragment:
        raise ValueError("search URL must not have a query or fragment")
    tls = parts.scheme == "https"
    if not tls and (ca_certs or client_cert or client_key):
        raise ValueError("CA certificates and client certificates need an https:// search URL")
    if client_key and not client_cert:
        raise ValueError("a client key was given without its client certificate")
    if ca_certs and not verify_certs:
        raise ValueError("CA certificates were given but certificate verification is off")
    user = username if username is not None else _unquoted(parts.username)
    secret = password if password is not None else _unquoted(parts.password)
    if (user is None) != (secret is None):
        raise ValueError("search credentials need both a user name and a password")
    try:
        port = parts.port
    except ValueError as error:
        raise ValueError(f"search URL has an invalid port: {error}") from None
    host: dict[str, Any] = {
        "host": parts.hostname,
        "port": port or (443 if tls else 9200),
        "use_ssl": tls,
    }
    if parts.path.strip("/"):
        host["url_prefix"] = parts.path.rstrip("/")
    return opensearchpy.OpenSearch(
        hosts=[host],
        http_auth=(user, secret) if user is not None else None,
        use_ssl=tls,
        verify_certs=verify_certs,
        ca_certs=ca_certs,
        client_cert=client_cert,
        client_key=client_key,
        timeout=timeout,
        max_retries=2,
        retry_on_timeout=True,
    )


def _unquoted(value: str | None) -> str | None:
    return unquote(value) if value is not None else None


# ---------------------------------------------------------------------------- mapping


def _keyword(**extra: Any) -> dict[str, Any]:
    return {"type": "keyword", "ignore_above": IGNORE_ABOVE, **extra}


def _text() -> dict[str, Any]:
    return {"type": "text", "analyzer": FOLDED, "fields": {"keyword": _keyword()}}


def _person_name_alphabetic() -> dict[str, Any]:
    return {
        "type": "text",
        "analyzer": FOLDED,
        "fields": {"folded": _keyword(normalizer=FOLDED), "keyword": _keyword()},
    }


def _person_name_component() -> dict[str, Any]:
    return _keyword(normalizer=FOLDED, fields={"keyword": _keyword()})


def _person_name() -> dict[str, Any]:
    properties = {name: _person_name_component() for name in PERSON_NAME_COMPONENTS}
    properties["Alphabetic"] = _person_name_alphabetic()
    return {"type": "object", "properties": properties}


def _field_mapping(name: str, field_type: FieldType) -> dict[str, Any]:
    match field_type:
        case FieldType.KEYWORD:
            if name in TEXT_FIELDS:  # exact, and searched by words too
                return _keyword(fields={"text": {"type": "text", "analyzer": FOLDED}})
            return _keyword()
        case FieldType.TEXT:
            return _text()
        case FieldType.DATE:
            return {"type": "date", "format": "yyyy-MM-dd"}
        case FieldType.DATETIME:
            return {"type": "date", "format": "strict_date_optional_time"}
        case FieldType.NUMBER:
            return {"type": "double"}
        case FieldType.PERSON_NAME:
            return _person_name()
        case FieldType.OBJECT:
            return {"type": "object", "dynamic": True}
    raise AssertionError(f"no mapping for field type {field_type}")  # pragma: no cover


def _dynamic_templates() -> list[dict[str, Any]]:
    def numbers(prefix: str) -> list[dict[str, Any]]:
        return [
            {
                f"{prefix}_{kind}": {
                    "path_match": f"{prefix}.*",
                    "match_mapping_type": kind,
                    # a value that does not parse is left unindexed, not the document
                    "mapping": {"type": "double", "ignore_malformed": True},
                }
            }
            for kind in ("long", "double")
        ]

    components = "|".join(name for name in PERSON_NAME_COMPONENTS if name != "Alphabetic")
    return [
        {
            "tags_person_name_alphabetic": {
                "path_match": "tags.*",
                "match": "Alphabetic",
                "match_mapping_type": "string",
                "mapping": _person_name_alphabetic(),
            }
        },
        {
            "tags_person_name_components": {
                "path_match": "tags.*",
                "match_pattern": "regex",
                "match": f"^({components})$",
                "match_mapping_type": "string",
                "mapping": _person_name_component(),
            }
        },
        {
            "tags_strings": {
                "path_match": "tags.*",
                "match_mapping_type": "string",
                "mapping": _keyword(),
            }
        },
        *numbers("tags"),
        *numbers("radiomics"),
    ]


def index_template(
    alias: str = DEFAULT_ALIAS,
    *,
    number_of_shards: int = 1,
    number_of_replicas: int | None = None,
) -> dict[str, Any]:
    """The body of ``PUT _index_template/<alias>``: settings and explicit mappings for every
    index named ``<alias>-*``. One shard holds some millions of series documents; replicas
    default to the cluster's setting. Changed numbers apply to the next reindex."""
    index_settings: dict[str, Any] = {
        "number_of_shards": number_of_shards,
        "mapping": {"total_fields": {"limit": TOTAL_FIELDS_LIMIT}},
    }
    if number_of_replicas is not None:
        index_settings["number_of_replicas"] = number_of_replicas
    folding = ["lowercase", "asciifolding"]
    return {
        "index_patterns": [f"{alias}-*"],
        "priority": 100,
        "version": MAPPING_VERSION,
        "_meta": {"description": "pacsflow series documents", "alias": alias},
        "template": {
            "settings": {
                "index": index_settings,
                "analysis": {
                    "normalizer": {FOLDED: {"type": "custom", "filter": folding}},
                    "analyzer": {
                        FOLDED: {"type": "custom", "tokenizer": "standard", "filter": folding}
                    },
                },
            },
            "mappings": {
                "dynamic": "strict",
                "date_detection": False,
                "numeric_detection": False,
                "_meta": {"pacsflow_mapping_version": MAPPING_VERSION},
                "dynamic_templates": _dynamic_templates(),
                "properties": {
                    name: _field_mapping(name, field_type) for name, field_type in FIELDS.items()
                },
            },
        },
    }


# ---------------------------------------------------------------------------- fields


@dataclass(frozen=True)
class _Field:
    """How one query path is searched: which indexed field each kind of clause uses (None:
    that clause kind does not apply), and how values compare."""

    path: str  # as the query names it; also what exists checks
    type: FieldType
    exact: str | None  # term, terms, wildcard, range, sort
    facet: str | None  # terms facet
    text: str | None = None  # free text (analysed)
    folded: bool = False  # person names: compare case- and accent-blind
    histogram: bool = False  # a date-typed field: date histograms allowed
    unmapped_type: str | None = None  # dynamic fields may be unmapped: sort needs a type


def _person_name_field(path: str, name: str, component: str, *, dynamic: bool) -> _Field:
    """``path`` as queried: the name (meaning its Alphabetic form) or one of its components."""
    base = f"{name}.{component}"
    unmapped = "keyword" if dynamic else None
    if component == "Alphabetic":
        return _Field(
            path=path,
            type=FieldType.PERSON_NAME,
            exact=f"{base}.folded",
            facet=f"{base}.keyword",
            text=base,
            folded=True,
            unmapped_type=unmapped,
        )
    return _Field(
        path=path,
        type=FieldType.PERSON_NAME,
        exact=base,
        facet=f"{base}.keyword",
        folded=True,
        unmapped_type=unmapped,
    )


def _resolve(path: str) -> _Field:
    """The indexed fields behind a query path; SearchError naming the path if there is none."""
    parts = path.split(".")
    head = parts[0]
    top = FIELDS.get(head)
    if top is None or "" in parts:
        raise SearchError(
            f"unknown field {path!r}: use a document field ({', '.join(FIELDS)}), "
            "tags.<DICOM keyword> or radiomics.<feature>"
        )
    if len(parts) == 1:
        match top:
            case FieldType.TEXT:
                return _Field(
                    path, top, exact=f"{path}.keyword", facet=f"{path}.keyword", text=path
                )
            case FieldType.PERSON_NAME:
                return _person_name_field(path, path, "Alphabetic", dynamic=False)
            case FieldType.OBJECT:
                return _Field(path, top, exact=None, facet=None)
            case _:
                text = f"{path}.text" if path in TEXT_FIELDS else None
                dated = top in (FieldType.DATE, FieldType.DATETIME)
                return _Field(path, top, exact=path, facet=path, text=text, histogram=dated)
    if top is FieldType.PERSON_NAME:
        if len(parts) == 2 and parts[1] in PERSON_NAME_COMPONENTS:
            return _person_name_field(path, head, parts[1], dynamic=False)
        raise SearchError(
            f"unknown field {path!r}: a person name has the components "
            f"{', '.join(PERSON_NAME_COMPONENTS)}"
        )
    if head == "radiomics":
        if len(parts) == 2:
            return _Field(path, FieldType.NUMBER, exact=path, facet=path, unmapped_type="double")
        raise SearchError(f"unknown field {path!r}: use radiomics.<feature name>")
    if head != "tags":
        raise SearchError(f"unknown field {path!r}: {head} has no sub-fields")
    parent = ".".join(parts[:-1])
    if parts[-1] in PERSON_NAME_COMPONENTS and document_field_type(parent) is FieldType.PERSON_NAME:
        return _person_name_field(path, parent, parts[-1], dynamic=True)
    found = document_field_type(path)
    match found:
        case None:
            raise SearchError(
                f"unknown field {path!r}: not a DICOM keyword (or a sequence item keyword)"
            )
        case FieldType.PERSON_NAME:
            return _person_name_field(path, path, "Alphabetic", dynamic=True)
        case FieldType.OBJECT:
            return _Field(path, found, exact=None, facet=None)
        case FieldType.NUMBER:
            return _Field(path, found, exact=path, facet=path, unmapped_type="double")
        case _:  # strings of every VR are keywords under tags
            return _Field(path, found, exact=path, facet=path, unmapped_type="keyword")


# ---------------------------------------------------------------------------- compiler


def _exact(field: _Field, clause: str) -> str:
    if field.exact is None:
        raise SearchError(
            f"field {field.path!r} holds nested fields; {clause} needs one of them "
            f"(e.g. {field.path}.<name>), or use exists"
        )
    return field.exact


def _keyword_value(value: object) -> str:
    """A keyword compared with a non-string: as DICOM writes it (and OpenSearch coerces)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _canonical(moment: datetime) -> str:
    """The form documents hold date-times in (UTC, fixed width); naive times are UTC."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.isoformat(timespec="microseconds") + "Z"


def _date(field: _Field, value: object, clause: str) -> date:
    if isinstance(value, str) and _DATE.fullmatch(value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise SearchError(f"{clause} on {field.path!r} needs a date as YYYY-MM-DD, not {value!r}")


def _instant(field: _Field, value: object, clause: str) -> tuple[str, str | None]:
    """A date-time value in canonical form; for a date alone, also the next day's start (a
    date alone means its whole day)."""
    if isinstance(value, str) and _DATE.fullmatch(value):
        day = _date(field, value, clause)
        start = datetime(day.year, day.month, day.day)
        return _canonical(start), _canonical(start + timedelta(days=1))
    try:
        if not isinstance(value, str) or not value[:1].isdigit():
            raise ValueError(value)
        return _canonical(datetime.fromisoformat(value)), None
    except (ValueError, OverflowError):
        raise SearchError(
            f"{clause} on {field.path!r} needs an ISO 8601 date or date-time, not {value!r}"
        ) from None


def _scalar(field: _Field, value: object, clause: str) -> Any:
    """``value`` as the index compares it (date-times: see _instant); SearchError if it is not
    of the field's type."""
    match field.type:
        case FieldType.NUMBER:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise SearchError(f"{clause} on {field.path!r} needs a number, not {value!r}")
            if not math.isfinite(value):
                raise SearchError(f"{clause} on {field.path!r} needs a finite number")
            return float(value)
        case FieldType.DATE:
            return _date(field, value, clause).isoformat()
        case FieldType.PERSON_NAME:
            return fold(_keyword_value(value))
    return value if isinstance(value, str) else _keyword_value(value)


def _equal(field: _Field, values: Sequence[object], clause: str) -> dict[str, Any]:
    """Documents with any of ``values``; a date alone on a date-time field matches its day."""
    target = _exact(field, clause)
    if not values:
        return {"terms": {target: []}}  # matches nothing
    if field.type is not FieldType.DATETIME:
        checked = [_scalar(field, value, clause) for value in values]
        return {"term": {target: checked[0]}} if clause == "term" else {"terms": {target: checked}}
    instants, days = [], []
    for value in values:
        start, next_day = _instant(field, value, clause)
        if next_day:
            days.append({"range": {target: {"gte": start, "lt": next_day}}})
        else:
            instants.append(start)
    if clause == "term":
        return days[0] if days else {"term": {target: instants[0]}}
    if not days:
        return {"terms": {target: instants}}
    alternatives = [*days, {"terms": {target: instants}}] if instants else days
    return {"bool": {"should": alternatives, "minimum_should_match": 1}}


def _compile_text(clause: Text) -> dict[str, Any]:
    if not clause.text.strip():
        return {"match_all": {}}
    fields = []
    for path in TEXT_FIELDS:
        text = _resolve(path).text
        assert text is not None, path
        fields.append(text)
    return {
        "multi_match": {
            "query": clause.text,
            "fields": fields,
            "type": "cross_fields",
            "operator": "and",
            "zero_terms_query": "all",
        }
    }


def _compile_wildcard(clause: Wildcard) -> dict[str, Any]:
    field = _resolve(clause.field)
    target = _exact(field, "wildcard")
    if field.type not in (FieldType.KEYWORD, FieldType.TEXT, FieldType.PERSON_NAME):
        raise SearchError(
            f"wildcard on {clause.field!r} needs a text or keyword field, not {field.type}"
        )
    pattern = fold(clause.pattern) if field.folded else clause.pattern
    query: dict[str, Any] = {"value": pattern.replace("\\", "\\\\")}  # only * and ? are special
    if field.folded:
        query["case_insensitive"] = True
    return {"wildcard": {target: query}}


def _compile_range(clause: Range) -> dict[str, Any]:
    """One range query: a list field matches when one of its values is within every bound,
    so several lower (or upper) bounds become the strictest one, not several queries."""
    field = _resolve(clause.field)
    target = _exact(field, "range")
    if field.type in (FieldType.TEXT, FieldType.PERSON_NAME):
        raise SearchError(
            f"range on {clause.field!r} needs a number, date or keyword field, not {field.type}"
        )
    given = [(op, getattr(clause, op)) for op in ("gte", "gt", "lte", "lt")]
    given = [(op, value) for op, value in given if value is not None]
    if not given:
        raise SearchError(f"range on {clause.field!r} needs at least one of gte, gt, lte, lt")
    lower: list[tuple[str, Any]] = []
    upper: list[tuple[str, Any]] = []
    for op, value in given:
        if field.type is FieldType.KEYWORD and not isinstance(value, str):
            raise SearchError(
                f"range {op} on {clause.field!r} (a keyword) needs a string, not {value!r}"
            )
        if field.type is FieldType.DATETIME:
            start, next_day = _instant(field, value, f"range {op}")
            if next_day and op in ("lte", "gt"):  # the whole day is in (lte) or out (gt)
                op, value = ("lt" if op == "lte" else "gte"), next_day
            else:
                value = start
        else:
            value = _scalar(field, value, f"range {op}")
        (lower if op in ("gt", "gte") else upper).append((op, value))
    bounds: dict[str, Any] = {}
    if lower:
        op, value = max(lower, key=lambda bound: (bound[1], bound[0] == "gt"))
        bounds[op] = value
    if upper:
        op, value = min(upper, key=lambda bound: (bound[1], bound[0] != "lt"))
        bounds[op] = value
    return {"range": {target: bounds}}


def _compile_bool(clause: Bool) -> dict[str, Any]:
    compiled: dict[str, Any] = {}
    for occur in ("must", "should", "must_not"):
        clauses: list[Clause] = getattr(clause, occur)
        if clauses:
            compiled[occur] = [_compile_clause(sub) for sub in clauses]
    if not compiled:
        return {"match_all": {}}
    if "should" in compiled:
        compiled["minimum_should_match"] = 1
    return {"bool": compiled}


def _compile_clause(clause: Clause) -> dict[str, Any]:
    match clause:
        case Text():
            return _compile_text(clause)
        case Term():
            return _equal(_resolve(clause.field), [clause.value], "term")
        case Terms():
            return _equal(_resolve(clause.field), clause.values, "terms")
        case Wildcard():
            return _compile_wildcard(clause)
        case Range():
            return _compile_range(clause)
        case Exists():
            return {"exists": {"field": _resolve(clause.field).path}}
        case Bool():
            return _compile_bool(clause)
    raise AssertionError(f"no compiler for {clause!r}")  # pragma: no cover


DEFAULT_SORT: Final = (Sort(field="ArrivedAt", order="desc"),)
TIEBREAK: Final = "SeriesInstanceUID"


def _compile_sort(sorts: Sequence[Sort]) -> list[dict[str, Any]]:
    compiled = []
    for sort in sorts or DEFAULT_SORT:
        field = _resolve(sort.field)
        target = _exact(field, "sort")
        options: dict[str, Any] = {"order": sort.order, "missing": "_last"}
        if field.unmapped_type:
            options["unmapped_type"] = field.unmapped_type
        compiled.append({target: options})
    if not any(TIEBREAK in entry for entry in compiled):
        compiled.append({TIEBREAK: {"order": "asc"}})  # a total order: stable pages
    return compiled


def _compile_facet(name: str, facet: TermsFacet | DateHistogramFacet) -> dict[str, Any]:
    if _AGG_NAME_FORBIDDEN.search(name) or not name:
        raise SearchError(f"facet name {name!r} must be non-empty and not contain [, ] or >")
    field = _resolve(facet.field)
    if isinstance(facet, TermsFacet):
        if field.facet is None:
            raise SearchError(f"terms facet on {facet.field!r}: it holds nested fields")
        terms: dict[str, Any] = {
            "field": field.facet,
            "size": facet.size,
            "order": [{"_count": "desc"}, {"_key": "asc"}],
        }
        if field.histogram and field.type is FieldType.DATETIME:
            terms["format"] = DATETIME_KEY_FORMAT  # keys as documents write date-times
        return {"terms": terms}
    if not field.histogram or field.exact is None:
        raise SearchError(
            f"date histogram on {facet.field!r} needs a top-level date or date-time field"
        )
    return {
        "date_histogram": {
            "field": field.exact,
            "calendar_interval": facet.interval,
            "format": HISTOGRAM_FORMAT,
            "min_doc_count": 1,
        }
    }


def compile_request(request: SearchRequest) -> dict[str, Any]:
    """The ``_search`` body for ``request``; SearchError naming the field for a request the
    index cannot answer (unknown field, value or bound of the wrong type...)."""
    if request.offset + request.limit > MAX_RESULT_WINDOW:
        raise SearchError(
            f"offset + limit may not exceed {MAX_RESULT_WINDOW} on OpenSearch "
            "(index.max_result_window): narrow the query instead of paging further"
        )
    body: dict[str, Any] = {
        "query": _compile_clause(request.query) if request.query else {"match_all": {}},
        "sort": _compile_sort(request.sort),
        "from": request.offset,
        "size": request.limit,
        "track_total_hits": True,
    }
    if request.facets:
        body["aggs"] = {name: _compile_facet(name, facet) for name, facet in request.facets.items()}
    return body


def _bucket_key(bucket: Mapping[str, Any]) -> str:
    if "key_as_string" in bucket:
        return str(bucket["key_as_string"])
    key = bucket["key"]
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, float) and key.is_integer():
        return str(int(key))
    return str(key)


def parse_response(response: Mapping[str, Any], request: SearchRequest) -> SearchResult:
    """The SearchResult in a ``_search`` response to ``compile_request(request)``."""
    hits = response["hits"]
    total = hits["total"]
    aggregations = response.get("aggregations", {})
    facets = {}
    for name in request.facets:
        buckets = aggregations.get(name, {}).get("buckets", [])
        facets[name] = [
            Bucket(key=_bucket_key(bucket), count=int(bucket["doc_count"])) for bucket in buckets
        ]
    return SearchResult(
        total=int(total["value"] if isinstance(total, Mapping) else total),
        hits=[dict(hit["_source"]) for hit in hits["hits"]],
        facets=facets,
    )


# ---------------------------------------------------------------------------- backend


class OpenSearchBackend:
    """SearchBackend on an OpenSearch cluster: documents by SeriesInstanceUID behind ``alias``.

    The first call that needs the index installs the template and creates the first index
    (:meth:`setup`); :meth:`reindex` rebuilds everything into a new index and swaps the alias.
    Writes go through the alias, so documents indexed while a reindex runs land in the old
    index and are gone after the swap: index them again (by ArrivedAt) after a reindex.
    """

    def __init__(
        self,
        client: opensearchpy.OpenSearch,
        alias: str = DEFAULT_ALIAS,
        *,
        refresh: RefreshPolicy = "wait_for",
        chunk_size: int = 500,
        request_timeout: float = 60.0,
        number_of_shards: int = 1,
        number_of_replicas: int | None = None,
    ) -> None:
        if not _INDEX_NAME.match(alias) or len(alias) > 200:
            raise ValueError(
                f"alias {alias!r}: use lowercase letters, digits, '-', '_' or '.', "
                "starting with a letter or digit"
            )
        if refresh not in ("true", "false", "wait_for"):
            raise ValueError(f"refresh {refresh!r}: use 'true', 'false' or 'wait_for'")
        if chunk_size < 1:
            raise ValueError(f"chunk_size {chunk_size}: must be at least 1")
        if number_of_shards < 1 or (number_of_replicas is not None and number_of_replicas < 0):
            raise ValueError("number_of_shards must be at least 1, number_of_replicas at least 0")
        self._client = client
        self._alias = alias
        self._refresh = refresh
        self._chunk_size = chunk_size
        self._timeout = request_timeout
        self._shards = number_of_shards
        self._replicas = number_of_replicas
        self._ready = False
        self._lock = threading.Lock()
        self._last_stamp = 0

    @property
    def alias(self) -> str:
        return self._alias

    @property
    def client(self) -> opensearchpy.OpenSearch:
        return self._client

    def index_template(self) -> dict[str, Any]:
        return index_template(
            self._alias, number_of_shards=self._shards, number_of_replicas=self._replicas
        )

    # -- setup

    def setup(self) -> None:
        """Install the index template and, if the alias points nowhere, create the first
        index behind it. Safe to call again, and from several processes at once: the first
        index has a fixed name, so only one of them creates it."""
        self._put_template()
        if self._client.indices.exists_alias(name=self._alias, request_timeout=self._timeout):
            self._warn_if_outdated()
            self._ready = True
            return
        if self._client.indices.exists(index=self._alias, request_timeout=self._timeout):
            raise OpenSearchBackendError(
                f"an index named {self._alias!r} exists where the alias should be "
                "(written before pacsflow set it up?): delete it, then run pacsflow reindex"
            )
        name = self.first_index
        try:
            self._client.indices.create(
                index=name, body={"aliases": {self._alias: {}}}, request_timeout=self._timeout
            )
            logger.info("created search index %s behind alias %s", name, self._alias)
        except RequestError as error:
            if error.error != "resource_already_exists_exception":
                raise
            if not self._client.indices.exists_alias(
                name=self._alias, request_timeout=self._timeout
            ):
                raise OpenSearchBackendError(
                    f"index {name!r} exists without the alias {self._alias!r}: run pacsflow reindex"
                ) from None
        self._ready = True

    @property
    def first_index(self) -> str:
        """The index setup creates when there is none; reindexes name theirs by time."""
        return f"{self._alias}-{0:020d}"

    def _put_template(self) -> None:
        self._client.indices.put_index_template(
            name=self._alias, body=self.index_template(), request_timeout=self._timeout
        )

    def _warn_if_outdated(self) -> None:
        mappings = self._client.indices.get_mapping(
            index=self._alias, request_timeout=self._timeout
        )
        for name, entry in mappings.items():
            meta = entry.get("mappings", {}).get("_meta", {})
            if meta.get("pacsflow_mapping_version") != MAPPING_VERSION:
                logger.warning(
                    "search index %s has mapping version %s, this pacsflow writes %s: "
                    "run `pacsflow reindex`",
                    name,
                    meta.get("pacsflow_mapping_version"),
                    MAPPING_VERSION,
                )

    def _ensure_ready(self) -> None:
        if self._ready:
            return
        with self._lock:
            if not self._ready:
                self.setup()

    def _new_index_name(self) -> str:
        """``<alias>-<UTC timestamp>``, later than any this backend named before."""
        stamp = int(f"{datetime.now(UTC):%Y%m%d%H%M%S%f}")
        self._last_stamp = max(stamp, self._last_stamp + 1)
        return f"{self._alias}-{self._last_stamp}"

    def _alias_indices(self) -> list[str]:
        if not self._client.indices.exists_alias(name=self._alias, request_timeout=self._timeout):
            return []
        found = self._client.indices.get_alias(name=self._alias, request_timeout=self._timeout)
        return sorted(found)

    # -- SearchBackend

    def index(self, documents: Iterable[dict[str, Any]]) -> int:
        """Add or replace documents by SeriesInstanceUID, in bulk requests of ``chunk_size``.
        OpenSearch has no transactions: if a document is refused, those before it in the
        call may be indexed already (indexing again is harmless)."""
        self._ensure_ready()
        return self._bulk_index(self._alias, documents, refresh=self._refresh)

    def delete(self, series_instance_uids: Sequence[str]) -> int:
        self._ensure_ready()
        actions = ({"_op_type": "delete", "_id": uid} for uid in series_instance_uids)
        deleted, errors = helpers.bulk(
            self._client,
            actions,
            index=self._alias,
            chunk_size=self._chunk_size,
            raise_on_error=False,
            refresh=self._refresh,
            require_alias=True,
            request_timeout=self._timeout,
        )
        failed = [error for error in errors if error["delete"].get("status") != 404]
        if failed:
            raise OpenSearchBackendError(_bulk_failure("delete", failed))
        return int(deleted)

    def search(self, request: SearchRequest) -> SearchResult:
        body = compile_request(request)
        self._ensure_ready()
        try:
            response = self._client.search(
                index=self._alias, body=body, request_timeout=self._timeout
            )
        except RequestError as error:
            raise SearchError(f"OpenSearch rejected the query: {_reason(error)}") from None
        return parse_response(response, request)

    def clear(self) -> None:
        self._ensure_ready()
        self._client.delete_by_query(
            index=self._alias,
            body={"query": {"match_all": {}}},
            refresh=True,
            conflicts="proceed",
            request_timeout=self._timeout,
        )

    # -- reindex

    def reindex(self, documents: Iterable[dict[str, Any]]) -> int:
        """Load ``documents`` into a new index, then point the alias at it and delete the
        old ones; the live index serves searches until the swap. Returns how many."""
        self._put_template()
        name = self._new_index_name()
        self._client.indices.create(index=name, request_timeout=self._timeout)
        try:
            count = self._bulk_index(name, documents, refresh="false", through_alias=False)
            self._client.indices.refresh(index=name, request_timeout=self._timeout)
            old = self._alias_indices()
            actions: list[dict[str, Any]] = [
                {"remove": {"index": index, "alias": self._alias}} for index in old
            ]
            actions.append({"add": {"index": name, "alias": self._alias}})
            self._client.indices.update_aliases(
                body={"actions": actions}, request_timeout=self._timeout
            )
        except BaseException:
            self._client.indices.delete(index=name, ignore=404, request_timeout=self._timeout)
            raise
        for index in old:
            self._client.indices.delete(index=index, ignore=404, request_timeout=self._timeout)
        self._ready = True
        logger.info(
            "reindexed %d series into %s; alias %s moved from %s",
            count,
            name,
            self._alias,
            ", ".join(old) or "nothing",
        )
        return count

    # -- bulk

    def _bulk_index(
        self,
        target: str,
        documents: Iterable[dict[str, Any]],
        *,
        refresh: RefreshPolicy,
        through_alias: bool = True,
    ) -> int:
        # Through the alias, require it: should it vanish, OpenSearch would otherwise create
        # an index of that name with a guessed mapping.
        options = {"require_alias": True} if through_alias else {}
        indexed, errors = helpers.bulk(
            self._client,
            _index_actions(documents),
            index=target,
            chunk_size=self._chunk_size,
            raise_on_error=False,
            refresh=refresh,
            request_timeout=self._timeout,
            **options,
        )
        if errors:
            rejected = [error for error in errors if error["index"].get("status") == 400]
            message = _bulk_failure("index", errors)
            if len(rejected) == len(errors):
                raise SearchError(message)
            raise OpenSearchBackendError(message)
        return int(indexed)


def _index_actions(documents: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for position, document in enumerate(documents):
        if not isinstance(document, Mapping):
            raise SearchError(f"document #{position} is not an object")
        uid = document.get("SeriesInstanceUID")
        if not isinstance(uid, str) or not uid:
            raise SearchError(f"document #{position} has no SeriesInstanceUID")
        yield {"_op_type": "index", "_id": uid, "_source": document}


def _bulk_failure(operation: str, errors: Sequence[Mapping[str, Any]]) -> str:
    """Which documents failed and why, without the documents' values (no PHI in messages:
    OpenSearch quotes a preview of the offending value in some reasons)."""
    shown = []
    for error in errors[:5]:
        item = error[operation]
        cause = item.get("error")
        if isinstance(cause, Mapping):
            reason = str(cause.get("reason", "")).split(". Preview of field's value")[0]
            cause = f"{cause.get('type')}: {reason}"
        shown.append(f"{item.get('_id')} (status {item.get('status')}: {cause})")
    more = f" and {len(errors) - 5} more" if len(errors) > 5 else ""
    return f"{len(errors)} document(s) failed to {operation}: {'; '.join(shown)}{more}"


def _reason(error: RequestError) -> str:
    info = error.info
    if isinstance(info, Mapping):
        cause = info.get("error", {})
        if isinstance(cause, Mapping):
            root = cause.get("root_cause") or [cause]
            first = root[0] if isinstance(root, list) and root else cause
            return f"{first.get('type')}: {first.get('reason')}"
    return str(error.error)
