"""The QIDO query model: parsing, LIKE escaping, date and time ranges, and the SQL it runs.

Parsing and compiling need no database; the matching semantics run against synthetic
instances on SQLite and PostgreSQL, with values chosen to catch escaping and case mistakes.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from io import BytesIO
from typing import Any

import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage
from sqlalchemy.dialects import postgresql, sqlite

from pacsflow.archive.archive import Archive
from pacsflow.archive.ingest import Source, SourceKind
from pacsflow.archive.query import (
    LIKE_ESCAPE,
    MAX_RESULTS,
    MORE_RESULTS_WARNING,
    Level,
    Query,
    QueryError,
    compile_query,
    like_pattern,
    parse_date_range,
    parse_query,
    parse_tag,
    parse_time_range,
    search,
)
from tests.conftest import migrated_archive

ROOT = "http://pacs.example/dicomweb"
STUDY_A, STUDY_B, STUDY_C = "1.2.826.0.1.1", "1.2.826.0.1.2", "1.2.826.0.1.3"


# -- parsing -----------------------------------------------------------------------------------


def test_like_pattern_escapes_like_metacharacters_and_the_escape_character() -> None:
    assert LIKE_ESCAPE == "!"
    assert like_pattern("50%_off!") == "50!%!_off!!"
    assert like_pattern("a*b?c") == "a%b_c"
    assert like_pattern("%*_?") == "!%%!__"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("20250115", ("20250115", "20250115")),
        ("20250101-20251231", ("20250101", "20251231")),
        ("-20251231", (None, "20251231")),
        ("20250101-", ("20250101", None)),
        ("20250101-20250101", ("20250101", "20250101")),
    ],
)
def test_date_ranges(value: str, expected: tuple[str | None, str | None]) -> None:
    assert parse_date_range("StudyDate", value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2025", "is not a date"),
        ("2025-01-01", "is not a date"),
        ("20251301", "is not a date"),
        ("2025013a", "is not a date"),
        ("-", "needs a start or an end"),
        ("20251231-20250101", "starts after it ends"),
        ("20250101-20250202-", "is not a date"),
    ],
)
def test_bad_date_ranges_name_the_parameter(value: str, message: str) -> None:
    with pytest.raises(QueryError, match=message) as caught:
        parse_date_range("StudyDate", value)
    assert caught.value.parameter == "StudyDate"
    assert "StudyDate" in str(caught.value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1030", ("103000000000", "103059999999")),
        ("10", ("100000000000", "105959999999")),
        ("103000.5", ("103000500000", "103000599999")),
        ("235959.999999", ("235959999999", "235959999999")),
        ("0800-1700", ("080000000000", "170059999999")),
        ("-10", (None, "105959999999")),
        ("103000.5-", ("103000500000", None)),
    ],
)
def test_time_ranges_normalise_to_twelve_digits(
    value: str, expected: tuple[str | None, str | None]
) -> None:
    assert parse_time_range("StudyTime", value) == expected


@pytest.mark.parametrize(
    "value", ["2500", "1060", "1a", "103", "10:30", "1030.5", "1700-0800", "-", "103000.1234567"]
)
def test_bad_times_are_refused(value: str) -> None:
    with pytest.raises(QueryError) as caught:
        parse_time_range("StudyTime", value)
    assert caught.value.parameter == "StudyTime"


def test_tags_by_keyword_or_hex() -> None:
    assert parse_tag("PatientName") == 0x00100010
    assert parse_tag("00100010") == 0x00100010
    assert parse_tag("0020000d") == 0x0020000D
    assert parse_tag("patientname") is None
    assert parse_tag("0010001") is None


@pytest.mark.parametrize(
    ("level", "parameters", "parameter", "message"),
    [
        (Level.STUDY, [("Foo", "1")], "Foo", "unknown query parameter 'Foo'"),
        (Level.STUDY, [("patientname", "x")], "patientname", "did you mean PatientName"),
        (Level.STUDY, [("Modality", "CT")], "Modality", "cannot be matched on in a study-level"),
        (Level.SERIES, [("SOPInstanceUID", "1.2")], "SOPInstanceUID", "series-level"),
        (Level.STUDY, [("PatientAge", "050Y")], "PatientAge", "cannot be matched on"),
        (
            Level.STUDY,
            [("NumberOfStudyRelatedSeries", "3")],
            "NumberOfStudyRelatedSeries",
            "cannot be matched on",
        ),
        (Level.STUDY, [("StudyInstanceUID", "1.2.abc")], "StudyInstanceUID", "not a valid UID"),
        (Level.STUDY, [("StudyInstanceUID", "1.2,")], "StudyInstanceUID", "not a valid UID"),
        (Level.STUDY, [("StudyDate", "yesterday")], "StudyDate", "not a date"),
        (Level.STUDY, [("StudyTime", "25")], "StudyTime", "not a time"),
        (Level.SERIES, [("SeriesNumber", "two")], "SeriesNumber", "must be an integer"),
        (Level.SERIES, [("SeriesNumber", "9" * 20)], "SeriesNumber", "must be an integer"),
        (Level.STUDY, [("PatientID", "a"), ("PatientID", "b")], "PatientID", "more than once"),
        (Level.STUDY, [("ModalitiesInStudy", "CT,,MR")], "ModalitiesInStudy", "empty value"),
        (Level.STUDY, [("limit", "-1")], "limit", "non-negative integer"),
        (Level.STUDY, [("limit", "ten")], "limit", "non-negative integer"),
        (Level.STUDY, [("offset", "1.5")], "offset", "non-negative integer"),
        (Level.STUDY, [("offset", "9" * 20)], "offset", "at most"),
        (Level.STUDY, [("limit", "1"), ("limit", "2")], "limit", "more than once"),
        (Level.STUDY, [("fuzzymatching", "yes")], "fuzzymatching", "true or false"),
        (Level.STUDY, [("includefield", "all,PatientAge")], "includefield", "includefield=all"),
        (
            Level.STUDY,
            [("includefield", "all"), ("includefield", "StudyID")],
            "includefield",
            "includefield=all",
        ),
        (Level.STUDY, [("includefield", "Bogus")], "includefield", "'Bogus' is neither"),
    ],
)
def test_invalid_parameters_are_refused_naming_them(
    level: Level, parameters: list[tuple[str, str]], parameter: str, message: str
) -> None:
    with pytest.raises(QueryError, match=message) as caught:
        parse_query(level, parameters)
    assert caught.value.parameter == parameter


def test_an_invalid_uid_in_the_path_is_refused() -> None:
    with pytest.raises(QueryError, match="in the path") as caught:
        parse_query(Level.SERIES, [], study_uid="not-a-uid")
    assert caught.value.parameter == "StudyInstanceUID"
    with pytest.raises(QueryError, match="in the path") as caught:
        parse_query(Level.INSTANCE, [], study_uid="1.2", series_uid="1.2.x")
    assert caught.value.parameter == "SeriesInstanceUID"


def test_limit_is_capped_and_offset_defaults_to_zero() -> None:
    assert parse_query(Level.STUDY, []).limit == MAX_RESULTS
    assert parse_query(Level.STUDY, [("limit", str(MAX_RESULTS * 10))]).limit == MAX_RESULTS
    query = parse_query(Level.STUDY, [("limit", "5"), ("offset", "10")])
    assert (query.limit, query.offset) == (5, 10)


def test_universal_matching_on_a_non_column_attribute_asks_for_it() -> None:
    query = parse_query(
        Level.STUDY, [("PatientAge", ""), ("includefield", "00081090,Manufacturer")]
    )
    assert query.include_tags == {0x00101010, 0x00081090, 0x00080070}
    assert query.matchers == ()


def test_emptyvaluematching_is_answered_with_a_warning() -> None:
    assert parse_query(Level.STUDY, [("emptyvaluematching", "true")]).warnings
    assert not parse_query(Level.STUDY, [("emptyvaluematching", "false")]).warnings


# -- compiling -------------------------------------------------------------------------------


def sql(query: Query, dialect: Any = None) -> str:
    compiled = compile_query(query).compile(
        dialect=dialect or sqlite.dialect(), compile_kwargs={"literal_binds": True}
    )
    return str(compiled)


def test_wildcards_compile_to_like_with_an_explicit_escape() -> None:
    query = parse_query(Level.STUDY, [("StudyDescription", "50%_*")])
    for dialect in (sqlite.dialect(), postgresql.dialect()):
        compiled = compile_query(query).compile(dialect=dialect)
        assert re.search(r"studies\.study_description LIKE \S+ ESCAPE '!'", str(compiled))
        assert "50!%!_%" in compiled.params.values()


def test_single_values_compile_to_equality_and_star_to_nothing() -> None:
    assert "studies.accession_number = 'A%1'" in sql(
        parse_query(Level.STUDY, [("AccessionNumber", "A%1")])
    )
    assert "WHERE" not in sql(parse_query(Level.STUDY, [("AccessionNumber", "*")]))
    assert "WHERE" not in sql(parse_query(Level.STUDY, [("PatientName", "")]))


def test_person_names_compare_upper_cased_search_columns() -> None:
    text = sql(parse_query(Level.STUDY, [("PatientName", "müller^a*")]))
    assert "studies.patient_name_search LIKE 'MÜLLER^A%' ESCAPE '!'" in text


def test_uid_lists_compile_to_in() -> None:
    text = sql(parse_query(Level.STUDY, [("StudyInstanceUID", "1.2.3,1.2.4\\1.2.5")]))
    assert "studies.study_instance_uid IN ('1.2.3', '1.2.4', '1.2.5')" in text


def test_series_queries_join_the_study_and_instances_join_both() -> None:
    series = sql(parse_query(Level.SERIES, [("PatientID", "X")]))
    assert "FROM series JOIN studies ON series.study_fk = studies.id" in series
    assert "studies.patient_id = 'X'" in series
    instances = sql(parse_query(Level.INSTANCE, [("Modality", "CT")]))
    assert "JOIN series ON instances.series_fk = series.id" in instances
    assert "JOIN studies ON series.study_fk = studies.id" in instances


def test_default_query_reads_no_json_and_asks_one_row_more() -> None:
    text = sql(parse_query(Level.INSTANCE, [("limit", "3")]))
    assert "metadata_json" not in text
    assert "LIMIT 4" in text
    assert "metadata_json" in sql(parse_query(Level.INSTANCE, [("includefield", "all")]))


# -- matching against a database ---------------------------------------------------------------


def synthetic(study: str, series: str, sop: str, **attributes: Any) -> BytesIO:
    """A small Secondary Capture instance with the given attributes, as a Part-10 file."""
    ds = Dataset()
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = sop
    ds.StudyInstanceUID = study
    ds.SeriesInstanceUID = series
    ds.SpecificCharacterSet = "ISO_IR 192"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the retired HH:MM:SS time form is wanted here
        for keyword, value in attributes.items():
            setattr(ds, keyword, value)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = sop
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    buffer.seek(0)
    return buffer


# Three studies whose values differ only where a matching mistake would show.
VALUES_A = {
    "PatientName": "Müller^Anna=ミュラー^アンナ",
    "PatientID": "ID_100%",
    "StudyDescription": "50% off_sale!",
    "StudyDate": "20250115",
    "StudyTime": "1030",
    "ReferringPhysicianName": "House^Gregory",
    "Modality": "MR",
}
VALUES_B = {
    "PatientName": "van der Berg^Jan",
    "PatientID": "ID1100X",
    "StudyDescription": "50X offXsale",
    "StudyDate": "20250301",
    "StudyTime": "103000.5",
}
VALUES_C = {"PatientName": "müller^hans", "PatientID": "id_100%", "StudyTime": "11:20:00"}
SERIES_A, SERIES_B1, SERIES_B2 = "1.2.826.0.1.1.1", "1.2.826.0.1.2.1", "1.2.826.0.1.2.2"
INSTANCES: list[tuple[str, str, str, dict[str, str]]] = [
    (STUDY_A, SERIES_A, "1.2.826.0.1.1.1.1", {**VALUES_A, "Manufacturer": "first"}),
    (STUDY_A, SERIES_A, "1.2.826.0.1.1.1.2", {**VALUES_A, "Manufacturer": "second"}),
    (STUDY_B, SERIES_B1, "1.2.826.0.1.2.1.1", {**VALUES_B, "Modality": "CT"}),
    (STUDY_B, SERIES_B2, "1.2.826.0.1.2.2.1", {**VALUES_B, "Modality": "PT"}),
    (STUDY_C, "1.2.826.0.1.3.1", "1.2.826.0.1.3.1.1", VALUES_C),
]


@dataclass(frozen=True)
class Loaded:
    archive: Archive


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def loaded(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Loaded]:
    """The synthetic studies in a fresh index, shared by this module's read-only tests."""
    home = tmp_path_factory.mktemp("query")
    with migrated_archive(request.param, home) as archive:
        for study, series, sop, attributes in INSTANCES:
            archive.ingest_stream(
                synthetic(study, series, sop, **attributes), Source(SourceKind.IMPORT)
            )
        yield Loaded(archive)


def run(
    loaded: Loaded, level: Level, *parameters: tuple[str, str], **path: str
) -> list[dict[str, Any]]:
    query = parse_query(level, list(parameters), **path)
    with loaded.archive.sessions() as session:
        return search(session, query, ROOT).matches


def case_id(value: object) -> str:
    """Test ids that read like the query string, and the number of expected matches."""
    if isinstance(value, list) and value and isinstance(value[0], tuple):
        return "&".join(f"{name}={text}" for name, text in value)
    return f"{len(value)}-found" if isinstance(value, list) else str(value)


def studies(loaded: Loaded, *parameters: tuple[str, str]) -> list[str]:
    return [m["0020000D"]["Value"][0] for m in run(loaded, Level.STUDY, *parameters)]


@pytest.mark.parametrize(
    ("parameters", "expected"),
    [
        # LIKE metacharacters in values match literally; the escape character too.
        ([("StudyDescription", "50%*")], [STUDY_A]),
        ([("StudyDescription", "*off_sale*")], [STUDY_A]),
        ([("StudyDescription", "*!")], [STUDY_A]),
        ([("StudyDescription", "50? off?sale*")], [STUDY_A, STUDY_B]),
        ([("StudyDescription", "50% off_sale!")], [STUDY_A]),
        # Everything but person names is case-sensitive.
        ([("PatientID", "ID_100%")], [STUDY_A]),
        ([("PatientID", "id*")], [STUDY_C]),
        ([("PatientID", "ID?100*")], [STUDY_A, STUDY_B]),
        ([("PatientID", "*")], [STUDY_A, STUDY_B, STUDY_C]),
        # Person names: case-insensitive, whole value, alphabetic group, wildcards, fuzzy.
        ([("PatientName", "MÜLLER^ANNA")], [STUDY_A]),
        ([("PatientName", "müller*")], [STUDY_A, STUDY_C]),
        ([("PatientName", "müller")], []),
        ([("PatientName", "hans"), ("fuzzymatching", "true")], [STUDY_C]),
        ([("PatientName", "ber"), ("fuzzymatching", "true")], [STUDY_B]),
        ([("PatientName", "er"), ("fuzzymatching", "true")], []),
        ([("PatientName", "アン"), ("fuzzymatching", "true")], [STUDY_A]),
        ([("PatientName", "*hans"), ("fuzzymatching", "true")], [STUDY_C]),
        ([("ReferringPhysicianName", "house^gregory")], [STUDY_A]),
        # Times: prefixes, ranges, fractions, the retired colon form; empty never matches.
        ([("StudyTime", "1030")], [STUDY_A, STUDY_B]),
        ([("StudyTime", "103000.4-103001")], [STUDY_B]),
        ([("StudyTime", "-1030")], [STUDY_A, STUDY_B]),
        ([("StudyTime", "1120")], [STUDY_C]),
        ([("StudyTime", "1100-")], [STUDY_C]),
        # Dates: single, closed and open ranges; an empty date is in no range.
        ([("StudyDate", "20250301")], [STUDY_B]),
        ([("StudyDate", "20250101-20250131")], [STUDY_A]),
        ([("StudyDate", "-20250201")], [STUDY_A]),
        ([("StudyDate", "20250201-")], [STUDY_B]),
        # ModalitiesInStudy: any value of a list; wildcards ask the series.
        ([("ModalitiesInStudy", "PT")], [STUDY_B]),
        ([("ModalitiesInStudy", "CT,MR")], [STUDY_A, STUDY_B]),
        ([("ModalitiesInStudy", "CT\\MR")], [STUDY_A, STUDY_B]),
        ([("ModalitiesInStudy", "?T")], [STUDY_B]),
        ([("ModalitiesInStudy", "T*")], []),
        # UID lists and repeated UID parameters.
        ([("StudyInstanceUID", f"{STUDY_A},{STUDY_C}")], [STUDY_A, STUDY_C]),
        ([("StudyInstanceUID", STUDY_A), ("StudyInstanceUID", STUDY_B)], [STUDY_A, STUDY_B]),
    ],
    ids=case_id,
)
def test_study_matching(
    loaded: Loaded, parameters: list[tuple[str, str]], expected: list[str]
) -> None:
    assert studies(loaded, *parameters) == expected


def test_counts_and_modalities_come_from_the_index(loaded: Loaded) -> None:
    a, b, c = run(loaded, Level.STUDY)
    assert (a["00201206"]["Value"], a["00201208"]["Value"]) == ([1], [2])
    assert (b["00201206"]["Value"], b["00201208"]["Value"]) == ([2], [2])
    assert b["00080061"] == {"vr": "CS", "Value": ["CT", "PT"]}
    assert c["00080061"] == {"vr": "CS"}  # no modality given
    assert a["00100010"] == {
        "vr": "PN",
        "Value": [{"Alphabetic": "Müller^Anna", "Ideographic": "ミュラー^アンナ"}],
    }
    assert a["00081190"] == {"vr": "UR", "Value": [f"{ROOT}/studies/{STUDY_A}"]}
    assert a["00080005"] == {"vr": "CS", "Value": ["ISO_IR 192"]}
    assert "00080201" not in a  # TimezoneOffsetFromUTC only when present


def test_includefield_reads_the_first_instance_of_each_study(loaded: Loaded) -> None:
    a, b, c = run(loaded, Level.STUDY, ("includefield", "Manufacturer,00080060"))
    assert a["00080070"] == {"vr": "LO", "Value": ["first"]}
    assert a["00080060"] == {"vr": "CS", "Value": ["MR"]}
    assert b["00080060"] == {"vr": "CS", "Value": ["CT"]}
    assert "00080070" not in b  # not in its first instance


def test_limit_and_offset_page_in_id_order(loaded: Loaded) -> None:
    query = parse_query(Level.STUDY, [("limit", "2")])
    with loaded.archive.sessions() as session:
        first = search(session, query, ROOT)
        rest = search(session, parse_query(Level.STUDY, [("limit", "2"), ("offset", "2")]), ROOT)
    assert [m["0020000D"]["Value"][0] for m in first.matches] == [STUDY_A, STUDY_B]
    assert first.more and first.warnings == [MORE_RESULTS_WARNING]
    assert [m["0020000D"]["Value"][0] for m in rest.matches] == [STUDY_C]
    assert not rest.more and rest.warnings == []


def test_series_and_instances_match_on_parent_attributes(loaded: Loaded) -> None:
    series = run(loaded, Level.SERIES, ("PatientName", "van*"))
    assert [s["0020000E"]["Value"][0] for s in series] == [SERIES_B1, SERIES_B2]
    assert all(s["0020000D"]["Value"] == [STUDY_B] for s in series)
    assert series[0]["00100010"]["Value"] == [{"Alphabetic": "van der Berg^Jan"}]
    instances = run(loaded, Level.INSTANCE, ("Modality", "MR"), ("StudyDate", "20250101-"))
    assert [i["00080018"]["Value"][0] for i in instances] == [
        "1.2.826.0.1.1.1.1",
        "1.2.826.0.1.1.1.2",
    ]
    assert instances[0]["00080060"] == {"vr": "CS", "Value": ["MR"]}
    assert instances[0]["0020000E"] == {"vr": "UI", "Value": [SERIES_A]}


def test_path_uids_restrict_the_search(loaded: Loaded) -> None:
    assert len(run(loaded, Level.INSTANCE, study_uid=STUDY_B)) == 2
    assert len(run(loaded, Level.INSTANCE, study_uid=STUDY_B, series_uid=SERIES_B2)) == 1
    assert run(loaded, Level.SERIES, study_uid="1.2.999") == []
