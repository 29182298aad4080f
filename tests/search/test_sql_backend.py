"""The embedded search backend on SQLite and PostgreSQL: the shared suite, and what only SQL
shows: facet counts against plain SQL over the index tables, the indexes the planner picks,
values reaching SQL only as bound parameters, and the migration."""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from pacsflow.archive.archive import Archive
from pacsflow.archive.db import alembic_config, make_engine, migrate
from pacsflow.archive.models import Base
from pacsflow.search.model import (
    FIELDS,
    Bool,
    Bucket,
    DateHistogramFacet,
    Exists,
    Range,
    SearchError,
    SearchRequest,
    Sort,
    Term,
    Terms,
    TermsFacet,
    Text,
    Wildcard,
    fold,
)
from pacsflow.search.sql import (
    _COLUMNS,
    _PERSON_NAMES,
    LIST_FIELDS,
    RADIOMICS,
    TAGS,
    SqlSearchBackend,
    words,
)
from tests.conftest import database, migrated_archive
from tests.search.documents import DOCUMENTS, MESH_VOLUME, UID, documents
from tests.search.suite import SearchBackendSuite

SEARCH_TABLES = ("search_documents", "search_fields", "search_keywords", "search_numbers")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def search_archive(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Archive]:
    with migrated_archive(request.param, tmp_path_factory.mktemp(request.param)) as archive:
        yield archive


@pytest.fixture
def backend(search_archive: Archive) -> SqlSearchBackend:
    backend = SqlSearchBackend(search_archive.engine)
    backend.clear()
    return backend


@pytest.fixture
def loaded(backend: SqlSearchBackend) -> SqlSearchBackend:
    backend.index(DOCUMENTS)
    return backend


class TestSqlSearchBackend(SearchBackendSuite):
    """The shared suite, on each database."""


def dialect(backend: SqlSearchBackend) -> str:
    return backend.engine.dialect.name


def fts_is_consistent(backend: SqlSearchBackend) -> None:
    """SQLite: the FTS5 index agrees with search_fields.words (raises if not)."""
    if dialect(backend) == "sqlite":
        with backend.engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO search_text(search_text) VALUES('integrity-check')")


# -------------------------------------------------------------------- facets against SQL


def plain_sql_counts(backend: SqlSearchBackend, field: str, *, listed: bool) -> dict[str, int]:
    """Documents per value of a top-level field, by hand over search_documents' JSON."""
    if dialect(backend) == "postgresql":
        if listed:
            query = (
                "SELECT v, count(DISTINCT series_instance_uid) FROM search_documents, "
                "jsonb_array_elements_text(document -> %(field)s) AS v GROUP BY v"
            )
        else:
            query = (
                "SELECT document ->> %(field)s AS v, count(*) FROM search_documents "
                "WHERE document ? %(field)s GROUP BY v"
            )
        params: Any = {"field": field}
    else:
        if listed:
            query = (
                "SELECT j.value, count(DISTINCT d.series_instance_uid) FROM search_documents d, "
                "json_each(d.document, ?) j GROUP BY j.value"
            )
        else:
            query = (
                "SELECT json_extract(document, ?) AS v, count(*) FROM search_documents "
                "WHERE v IS NOT NULL GROUP BY v"
            )
        params = (f'$."{field}"',)
    with backend.engine.connect() as conn:
        return {str(value): count for value, count in conn.exec_driver_sql(query, params)}


@pytest.mark.parametrize(
    ("field", "listed"),
    [
        ("Modality", False),
        ("BodyPartExamined", False),
        ("PatientID", False),
        ("AnnotationLabels", True),
        ("Project", True),
        ("ModalitiesInStudy", True),
    ],
)
def test_facet_counts_equal_counts_by_plain_sql(
    loaded: SqlSearchBackend, field: str, listed: bool
) -> None:
    result = loaded.search(SearchRequest(limit=0, facets={"f": TermsFacet(field=field, size=1000)}))
    counts = {bucket.key: bucket.count for bucket in result.facets["f"]}
    assert counts == plain_sql_counts(loaded, field, listed=listed)
    assert counts  # not vacuous


def test_histogram_counts_equal_counts_by_plain_sql(loaded: SqlSearchBackend) -> None:
    result = loaded.search(
        SearchRequest(
            limit=0, facets={"f": DateHistogramFacet(field="StudyDate", interval="month")}
        )
    )
    by_day = plain_sql_counts(loaded, "StudyDate", listed=False)
    by_month: dict[str, int] = {}
    for day, count in by_day.items():
        by_month[day[:7] + "-01"] = by_month.get(day[:7] + "-01", 0) + count
    assert {b.key: b.count for b in result.facets["f"]} == by_month


def test_facet_counts_equal_counts_of_the_field_tables(loaded: SqlSearchBackend) -> None:
    with loaded.engine.connect() as conn:
        modalities: dict[str, int] = dict(
            conn.exec_driver_sql(
                "SELECT modality, count(*) FROM search_fields GROUP BY modality"
            ).all()
        )
        labels: dict[str, int] = dict(
            conn.exec_driver_sql(
                "SELECT value, count(*) FROM search_keywords WHERE field = 'AnnotationLabels' "
                "GROUP BY value"
            ).all()
        )
    result = loaded.search(
        SearchRequest(
            limit=0,
            facets={
                "m": TermsFacet(field="Modality", size=1000),
                "l": TermsFacet(field="AnnotationLabels", size=1000),
            },
        )
    )
    assert {b.key: b.count for b in result.facets["m"]} == modalities
    assert {b.key: b.count for b in result.facets["l"]} == labels


# -------------------------------------------------------------------------- query plans


def plan(backend: SqlSearchBackend, request: SearchRequest) -> str:
    """The database's plan for the request's filter (the query of matching doc_ids)."""
    statement = backend.compile(request).matched
    assert statement is not None
    compiled = statement.compile(
        dialect=backend.engine.dialect, compile_kwargs={"render_postcompile": True}
    )
    with backend.engine.connect() as conn:
        if dialect(backend) == "postgresql":
            # a handful of rows: make the planner show which index it can use
            conn.exec_driver_sql("SET enable_seqscan = off")
            rows = conn.exec_driver_sql(f"EXPLAIN {compiled}", compiled.params).all()
            conn.exec_driver_sql("RESET enable_seqscan")
            return "\n".join(row[0] for row in rows)
        params = tuple(compiled.params[name] for name in compiled.positiontup or ())
        rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}", params).all()
        return "\n".join(str(row[-1]) for row in rows)


@pytest.mark.parametrize(
    ("query", "postgresql_index", "sqlite_index"),
    [
        (
            Term(field="Modality", value="CT"),
            "ix_search_fields_modality",
            "ix_search_fields_modality",
        ),
        (
            Terms(field="AnnotationLabels", values=["Liver", "GTV-1"]),
            "search_keywords_pkey",
            "USING PRIMARY KEY (field=? AND value=?)",  # search_keywords
        ),
        (Text(text="liver tumor"), "ix_search_fields_words", "VIRTUAL TABLE INDEX"),
        (
            Range(field=f"radiomics.{MESH_VOLUME}", gte=3000, lte=5000),
            "search_numbers_pkey",
            "USING PRIMARY KEY (field=? AND value>? AND value<?)",  # search_numbers
        ),
        (
            Range(field="StudyDate", gte="2024-06-01", lte="2024-12-31"),
            "ix_search_fields_study_date",
            "ix_search_fields_study_date",
        ),
        (
            Terms(field="tags.ConvolutionKernel", values=["B30f", "Br40"]),
            "ix_search_documents_document",
            "SCAN search_documents",  # SQLite reads the JSON of every document
        ),
        (
            Wildcard(field="PatientName.FamilyName", pattern="mul*"),
            "ix_search_fields_patient_family_name",
            "ix_search_fields_patient_family_name",
        ),
    ],
)
def test_filters_use_indexes(
    loaded: SqlSearchBackend, query: Any, postgresql_index: str, sqlite_index: str
) -> None:
    expected = postgresql_index if dialect(loaded) == "postgresql" else sqlite_index
    assert expected in plan(loaded, SearchRequest(query=query))


def test_default_sort_reads_the_recent_index(loaded: SqlSearchBackend) -> None:
    statement = loaded.compile(SearchRequest()).ranking
    assert statement is not None
    compiled = statement.compile(dialect=loaded.engine.dialect)
    with loaded.engine.connect() as conn:
        if dialect(loaded) == "postgresql":
            conn.exec_driver_sql("SET enable_seqscan = off")
            rows = conn.exec_driver_sql(f"EXPLAIN {compiled}", compiled.params).all()
        else:
            params = tuple(compiled.params[name] for name in compiled.positiontup or ())
            rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}", params).all()
    text = "\n".join(str(row[-1]) for row in rows)
    assert "ix_search_fields_recent" in text
    assert "TEMP B-TREE" not in text and "Sort" not in text.split("Index")[0]


# ---------------------------------------------------------------------- bound parameters

HOSTILE = "x'); DROP TABLE search_documents; -- \" \\ % _ * ? [ ] $ @ || ' & ! :*"


def test_values_reach_sql_only_as_bound_parameters(loaded: SqlSearchBackend) -> None:
    request = SearchRequest(
        query=Bool(
            should=[
                Term(field="Modality", value=HOSTILE),
                Terms(field="AnnotationLabels", values=[HOSTILE, "GTV-1"]),
                Wildcard(field="PatientName", pattern=HOSTILE),
                Wildcard(field="SeriesDescription", pattern=HOSTILE),
                Range(field="PatientID", gte=HOSTILE),
                Text(text=HOSTILE),
                Term(field="tags.ConvolutionKernel", value=HOSTILE),
                Wildcard(field="tags.OperatorsName", pattern=HOSTILE),
                Term(field="tags.OperatorsName.FamilyName", value=HOSTILE),
            ],
            must_not=[Terms(field="Project", values=[HOSTILE])],
        ),
        sort=[Sort(field="tags.ConvolutionKernel"), Sort(field="Project")],
        facets={
            "k": TermsFacet(field="tags.ConvolutionKernel"),
            "p": TermsFacet(field="PatientName"),
        },
    )
    compiled = loaded.compile(request)
    statements = [compiled.matched, compiled.counts, compiled.page]
    for statement in statements:
        assert statement is not None
        sql = str(statement.compile(dialect=loaded.engine.dialect))
        for fragment in ("DROP TABLE", "x')", HOSTILE[:5]):
            assert fragment not in sql
    result = loaded.search(request)
    # only the GTV-1 label matches (the hostile values match nothing); tables intact
    assert {hit["SeriesInstanceUID"] for hit in result.hits} == {
        UID[name] for name in ("S1_SEG", "S1_RTSTRUCT", "S2_SEG")
    }
    assert loaded.search(SearchRequest(limit=0)).total == len(DOCUMENTS)


@pytest.mark.parametrize(
    "query",
    [
        Term(field="Modality", value="C\x00T"),
        Terms(field="AnnotationLabels", values=["a", "\x00"]),
        Wildcard(field="PatientName", pattern="a\x00*"),
        Range(field="PatientID", gte="\x00"),
    ],
)
def test_nul_characters_are_refused_naming_the_field(loaded: SqlSearchBackend, query: Any) -> None:
    with pytest.raises(SearchError, match="NUL"):
        loaded.search(SearchRequest(query=query))


def test_hostile_values_in_documents_are_stored_and_found(backend: SqlSearchBackend) -> None:
    document = documents()[0]
    document["AnnotationLabels"] = [HOSTILE]
    document["SeriesDescription"] = HOSTILE
    document["tags"]["ConvolutionKernel"] = HOSTILE
    backend.index([document])
    for query in (
        Term(field="AnnotationLabels", value=HOSTILE),
        Term(field="SeriesDescription", value=HOSTILE),
        Term(field="tags.ConvolutionKernel", value=HOSTILE),
        Wildcard(field="SeriesDescription", pattern="x'); DROP*"),
        Wildcard(field="tags.ConvolutionKernel", pattern="*% _ * ? [ ] $*"),
        Text(text="drop table search_documents"),
    ):
        assert backend.search(SearchRequest(query=query)).total == 1, query
    fts_is_consistent(backend)


# --------------------------------------------------------------------------- the tables


def test_every_document_field_has_a_place() -> None:
    placed = {*_COLUMNS, *_PERSON_NAMES, *LIST_FIELDS, RADIOMICS, TAGS}
    assert placed == set(FIELDS)


def test_words_and_fold() -> None:
    assert fold("Müller Łukasiewicz ZOË Straße Ørsted") == "muller lukasiewicz zoe strasse orsted"
    assert words("Müller^Hans O'Brien GTV-1 Lung_L 1.5 mm, müller") == [
        "muller",
        "hans",
        "obrien",
        "gtv",
        "1",
        "lung_l",
        "1.5",
        "mm",
    ]
    assert words(" -- ") == []


def test_text_index_stays_in_step_with_replacements_and_deletes(loaded: SqlSearchBackend) -> None:
    changed = documents()[:5]
    for document in changed:
        document["StudyDescription"] = "Replaced"
    loaded.index(changed)
    loaded.delete([UID["S3_SEG"], UID["S1_CT"]])
    fts_is_consistent(loaded)
    result = loaded.search(SearchRequest(query=Text(text="replaced"), limit=100))
    assert result.total == 4  # S1_CT was replaced, then deleted
    loaded.clear()
    fts_is_consistent(loaded)
    with loaded.engine.connect() as conn:
        for table in SEARCH_TABLES:
            assert conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar_one() == 0


def test_documents_with_non_finite_numbers_are_stored_with_null(
    backend: SqlSearchBackend,
) -> None:
    document = documents()[3]  # S1_SR
    document["SlicePositionMin"] = math.nan
    document["radiomics"][MESH_VOLUME].append(math.inf)
    backend.index([document])
    result = backend.search(SearchRequest(query=Exists(field="radiomics")))
    hit = result.hits[0]
    assert hit["SlicePositionMin"] is None
    assert hit["radiomics"][MESH_VOLUME][-1] is None
    assert backend.search(SearchRequest(query=Exists(field="SlicePositionMin"))).total == 0


def test_index_is_one_transaction(backend: SqlSearchBackend) -> None:
    broken = documents()[1]
    del broken["SeriesInstanceUID"]
    with pytest.raises(ValueError, match="document #1"):
        backend.index([documents()[0], broken])
    assert backend.search(SearchRequest()).total == 0


def test_index_in_several_batches(search_archive: Archive) -> None:
    backend = SqlSearchBackend(search_archive.engine, batch_size=4)
    backend.clear()
    assert backend.index(iter(DOCUMENTS)) == len(DOCUMENTS)
    result = backend.search(SearchRequest(limit=100, facets={"m": TermsFacet(field="Modality")}))
    assert result.total == len(DOCUMENTS)
    assert sum(b.count for b in result.facets["m"]) == len(DOCUMENTS)


def test_threads_index_and_search_at_once(backend: SqlSearchBackend) -> None:
    failures: list[BaseException] = []

    def work(part: int) -> None:
        try:
            for _ in range(3):
                backend.index(DOCUMENTS[part::3])
                backend.search(SearchRequest(facets={"m": TermsFacet(field="Modality")}))
        except BaseException as error:  # noqa: BLE001 - reported below
            failures.append(error)

    threads = [threading.Thread(target=work, args=(part,)) for part in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert backend.search(SearchRequest(limit=0)).total == len(DOCUMENTS)
    fts_is_consistent(backend)


FILTERED_FACETS = {
    "m": TermsFacet(field="Modality", size=1000),
    "l": TermsFacet(field="AnnotationLabels", size=1000),
    "y": DateHistogramFacet(field="StudyDate", interval="year"),
    "k": TermsFacet(field="tags.ConvolutionKernel", size=1000),
}


def counts_over(hits: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """What FILTERED_FACETS must count, computed from the documents themselves."""
    counted: dict[str, Counter[str]] = {name: Counter() for name in FILTERED_FACETS}
    for hit in hits:
        counted["m"][hit["Modality"]] += 1
        counted["l"].update(hit.get("AnnotationLabels", []))
        counted["y"][hit["StudyDate"][:4] + "-01-01"] += 1
        if "ConvolutionKernel" in hit["tags"]:
            counted["k"][hit["tags"]["ConvolutionKernel"]] += 1
    return {name: dict(counter) for name, counter in counted.items()}


@pytest.mark.parametrize(
    "query",
    [
        None,
        Term(field="Modality", value="CT"),
        Text(text="liver"),
        Range(field=f"radiomics.{MESH_VOLUME}", gte=1000),
        Bool(must_not=[Terms(field="Modality", values=["SEG", "RTSTRUCT"])]),
    ],
)
def test_facet_counts_equal_counts_over_the_hits(loaded: SqlSearchBackend, query: Any) -> None:
    result = loaded.search(SearchRequest(query=query, limit=1000, facets=FILTERED_FACETS))
    assert result.total == len(result.hits) > 0
    facets = {name: {b.key: b.count for b in buckets} for name, buckets in result.facets.items()}
    assert facets == counts_over(result.hits)


def test_searches_see_what_another_process_wrote(search_archive: Archive) -> None:
    """Each process keeps its own doc values; a write elsewhere makes them stale at once."""
    reader = SqlSearchBackend(search_archive.engine)
    writer = SqlSearchBackend(search_archive.engine)
    writer.clear()
    writer.index(DOCUMENTS[:6])
    request = SearchRequest(limit=1000, facets=FILTERED_FACETS)
    assert reader.search(request).total == 6
    writer.index(DOCUMENTS[6:])
    writer.delete([DOCUMENTS[0]["SeriesInstanceUID"]])
    result = reader.search(request)
    assert result.total == len(DOCUMENTS) - 1
    assert DOCUMENTS[0]["SeriesInstanceUID"] not in {h["SeriesInstanceUID"] for h in result.hits}
    facets = {name: {b.key: b.count for b in buckets} for name, buckets in result.facets.items()}
    assert facets == counts_over(result.hits)
    newest = reader.search(request.model_copy(update={"limit": 3}))
    assert (
        newest.hits
        == SqlSearchBackend(search_archive.engine)
        .search(request.model_copy(update={"limit": 3}))
        .hits
    )


def test_facet_keys_of_numbers(loaded: SqlSearchBackend) -> None:
    result = loaded.search(
        SearchRequest(limit=0, facets={"n": TermsFacet(field="tags.SliceThickness")})
    )
    assert Bucket(key="1", count=2) in result.facets["n"]  # 1.0 -> "1"


# Autogenerate neither honours Index.ddl_if nor compares expression indexes: these differ by
# dialect on purpose (GIN indexes, NULLS LAST), and SQLite's FTS5 table keeps its own tables.
DIALECT_SPECIFIC = (
    "ix_search_documents_document",
    "ix_search_fields_words",
    "ix_search_fields_recent",
    "search_text",
)


def _dialect_specific(difference: Any) -> bool:
    return any(name in repr(difference) for name in DIALECT_SPECIFIC)


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_migration_downgrades_and_matches_the_models(kind: str, tmp_path: Path) -> None:
    with database(kind, tmp_path) as url:
        migrate(url)
        config = alembic_config(url)
        command.downgrade(config, "0003")
        engine = make_engine(url)
        try:
            with engine.connect() as conn:
                tables = set(sa.inspect(conn).get_table_names())
            assert not tables & {*SEARCH_TABLES, "search_text"}
            migrate(url)
            with engine.connect() as conn:
                context = MigrationContext.configure(conn)
                differences = [
                    d
                    for d in compare_metadata(context, Base.metadata)
                    if "search" in repr(d) and not _dialect_specific(d)
                ]
        finally:
            engine.dispose()
    assert differences == []


def test_reindex_replaces_in_batches_and_keeps_what_others_index_meanwhile(
    search_archive: Archive,
) -> None:
    backend = SqlSearchBackend(search_archive.engine, batch_size=2)
    backend.clear()
    backend.index(DOCUMENTS)
    newcomer = documents()[0]
    newcomer["SeriesInstanceUID"] = "1.2.826.0.1.3680043.10.1234.99"
    totals = []

    def stream() -> Iterator[dict[str, Any]]:
        for position, document in enumerate(documents()[1:9]):
            if position == 5:  # two batches written
                totals.append(backend.search(SearchRequest(limit=0)).total)
                backend.index([newcomer])  # a series arriving during the reindex
            document["StudyDescription"] = "Reindexed"
            yield document

    assert backend.reindex(stream()) == 8
    assert totals == [len(DOCUMENTS)]  # nothing missing while the reindex ran
    result = backend.search(SearchRequest(limit=100))
    assert {hit["SeriesInstanceUID"] for hit in result.hits} == {
        *(d["SeriesInstanceUID"] for d in DOCUMENTS[1:9]),
        newcomer["SeriesInstanceUID"],
    }
    assert backend.search(SearchRequest(query=Text(text="reindexed"))).total == 8
    fts_is_consistent(backend)
