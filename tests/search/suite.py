"""The search backend suite: what every SearchBackend must do, on the documents of
tests/search/documents.py. Expected results are computed in Python from those documents
(or named, where the point is a semantic choice), never from another backend.

To run it on a backend, subclass :class:`SearchBackendSuite` in a test module (a class named
``Test*``) and give it a ``backend`` fixture that yields an empty backend, one that sees what
was indexed before a search (refresh on write)::

    from tests.search.suite import SearchBackendSuite

    @pytest.fixture
    def backend(...) -> Iterator[SearchBackend]:
        yield make_an_empty_backend()

    class TestMyBackend(SearchBackendSuite):
        pass

A case the backend's test double cannot run can be marked from an autouse fixture in the
module: ``request.applymarker(pytest.mark.xfail(strict=True, reason=...))`` when
``request.node.originalname`` is in the module's list.

Semantics the suite pins (model.py leaves them open; both backends agree on them):

- A list field matches when any of its values does; a range needs one value within all of
  its bounds (radiomics [15230.5, 2100.25] is not in [3000, 5000]).
- Person names compare case- and accent-blind (folded); ``PatientName`` means Alphabetic.
- Free text: every word must be a word of some text field; words split at ``-`` and ``^``;
  case- and accent-blind; whole words only; a query without words matches everything.
- A date alone as a bound on a date-time field covers its whole day (lte, gt).
- must_not keeps documents without the field.
- Sort: documents without the field last, either order; SeriesInstanceUID breaks ties.
- Terms facets: documents per value, count descending then key; numeric keys "2", "2.5".
  Date histograms: buckets with documents only, keyed by their first day, in key order.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any, Literal

import pytest

from pacsflow.search.model import (
    Bool,
    Bucket,
    Clause,
    DateHistogramFacet,
    Exists,
    Facet,
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
from tests.search.documents import BY_NAME, DOCUMENTS, MEAN, MESH_VOLUME, NAME, UID, documents

ALL = len(DOCUMENTS)


# ----------------------------------------------------------------- reference, in Python


def values(document: dict[str, Any], path: str) -> list[Any]:
    """Every value at a dotted path, lists at any level unrolled (as the backends index)."""
    current: list[Any] = [document]
    for part in path.split("."):
        found: list[Any] = []
        for item in current:
            if isinstance(item, dict) and part in item:
                value = item[part]
                found.extend(value if isinstance(value, list) else [value])
        current = found
    return [v["Alphabetic"] if isinstance(v, dict) and "Alphabetic" in v else v for v in current]


def named(predicate: Callable[[dict[str, Any]], bool]) -> set[str]:
    """Names of the documents ``predicate`` holds for."""
    return {NAME[d["SeriesInstanceUID"]] for d in DOCUMENTS if predicate(d)}


def key(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def terms_buckets(names: set[str], path: str, size: int = 20) -> list[Bucket]:
    counts = Counter(
        key(v) for name in names for v in {key(v) for v in values(BY_NAME[name], path)}
    )
    numeric = all(isinstance(v, int | float) for n in names for v in values(BY_NAME[n], path))
    order = sorted(counts.items(), key=lambda kc: (-kc[1], float(kc[0]) if numeric else kc[0]))
    return [Bucket(key=k, count=c) for k, c in order[:size]]


def histogram_buckets(names: set[str], path: str, interval: str) -> list[Bucket]:
    length, suffix = {"year": (4, "-01-01"), "month": (7, "-01"), "day": (10, "")}[interval]
    counts = Counter(
        first
        for name in names
        for first in {v[:length] + suffix for v in values(BY_NAME[name], path)}
    )
    return [Bucket(key=k, count=c) for k, c in sorted(counts.items())]


def default_order(names: set[str]) -> list[str]:
    ordered = sorted(names, key=lambda n: UID[n])
    return sorted(ordered, key=lambda n: BY_NAME[n]["ArrivedAt"], reverse=True)


def ordered_by(path: str, order: str, names: set[str] | None = None) -> list[str]:
    """Names by one field (lists by their least value ascending, greatest descending), those
    without the field last, then by SeriesInstanceUID."""
    names = set(BY_NAME) if names is None else names
    pick = min if order == "asc" else max
    with_field = [n for n in names if values(BY_NAME[n], path)]
    without = sorted((n for n in names if not values(BY_NAME[n], path)), key=lambda n: UID[n])
    by_uid = sorted(with_field, key=lambda n: UID[n])
    ranked = sorted(by_uid, key=lambda n: pick(values(BY_NAME[n], path)), reverse=order == "desc")
    return ranked + without


# --------------------------------------------------------------------------- helpers


def run(backend: SearchBackend, query: Clause | None = None, **options: Any) -> SearchResult:
    return backend.search(SearchRequest(query=query, **{"limit": 1000, **options}))


def found(backend: SearchBackend, query: Clause | None = None, **options: Any) -> set[str]:
    result = run(backend, query, **options)
    names = [NAME[hit["SeriesInstanceUID"]] for hit in result.hits]
    assert result.total == len(names), "total must count every match"
    return set(names)


def hit_names(result: SearchResult) -> list[str]:
    return [NAME[hit["SeriesInstanceUID"]] for hit in result.hits]


def facet(backend: SearchBackend, spec: Facet, query: Clause | None = None) -> list[Bucket]:
    result = backend.search(SearchRequest(query=query, limit=0, facets={"f": spec}))
    return result.facets["f"]


# ----------------------------------------------------------------------------- suite


class SearchBackendSuite:
    """Every SearchBackend behaviour the search API relies on; needs a ``backend`` fixture."""

    @pytest.fixture
    def loaded(self, backend: SearchBackend) -> SearchBackend:
        assert backend.index(DOCUMENTS) == ALL
        return backend

    # -- everything, and the documents as given

    def test_no_query_finds_every_document_as_it_was_indexed(self, loaded: SearchBackend) -> None:
        result = run(loaded)
        assert result.total == ALL
        assert sorted(result.hits, key=lambda d: d["SeriesInstanceUID"]) == sorted(
            DOCUMENTS, key=lambda d: d["SeriesInstanceUID"]
        )

    def test_default_order_is_newest_arrival_first_then_series_uid(
        self, loaded: SearchBackend
    ) -> None:
        assert hit_names(run(loaded)) == default_order(set(BY_NAME))

    def test_empty_bool_matches_everything(self, loaded: SearchBackend) -> None:
        assert found(loaded, Bool()) == set(BY_NAME)

    # -- term, terms

    def test_term_on_a_keyword(self, loaded: SearchBackend) -> None:
        assert found(loaded, Term(field="Modality", value="CT")) == named(
            lambda d: d["Modality"] == "CT"
        )

    def test_term_on_a_keyword_is_case_sensitive(self, loaded: SearchBackend) -> None:
        assert found(loaded, Term(field="Modality", value="ct")) == set()

    def test_term_on_a_keyword_list_matches_any_value(self, loaded: SearchBackend) -> None:
        expected = named(lambda d: "RADIOMICS" in d.get("Project", []))
        assert expected == {
            "S1_SR",
            "S2_CT",
            "S2_SEG",
            "S2_SR",
            "S3_SR",
            "S4_CT",
            "S4_SEG",
            "S6_CT",
        }
        assert found(loaded, Term(field="Project", value="RADIOMICS")) == expected

    def test_term_on_a_number(self, loaded: SearchBackend) -> None:
        assert found(loaded, Term(field="SeriesNumber", value=2)) == {"S1_CT", "S2_CT"}
        assert found(loaded, Term(field="NumberOfInstances", value=312.0)) == {"S1_CT"}

    def test_term_on_a_date(self, loaded: SearchBackend) -> None:
        assert found(loaded, Term(field="StudyDate", value="2024-06-30")) == named(
            lambda d: d["StudyInstanceUID"] == BY_NAME["S3_SEG"]["StudyInstanceUID"]
        )

    def test_term_on_a_date_time(self, loaded: SearchBackend) -> None:
        instant = "2024-06-30T15:10:00.000000Z"
        assert found(loaded, Term(field="ArrivedAt", value=instant)) == {"S3_MR_T1", "S3_MR_T2"}
        # the same instant in another zone
        other = "2024-06-30T17:10:00+02:00"
        assert found(loaded, Term(field="ArrivedAt", value=other)) == {"S3_MR_T1", "S3_MR_T2"}

    def test_terms_on_a_keyword(self, loaded: SearchBackend) -> None:
        query = Terms(field="Modality", values=["SEG", "RTSTRUCT", "XA"])
        assert found(loaded, query) == named(lambda d: d["Modality"] in ("SEG", "RTSTRUCT"))

    def test_terms_on_a_keyword_list(self, loaded: SearchBackend) -> None:
        query = Terms(field="AnnotationLabels", values=["Heart", "Liver"])
        assert found(loaded, query) == {"S1_RTSTRUCT", "S3_SEG", "S4_SEG"}

    def test_terms_on_numbers(self, loaded: SearchBackend) -> None:
        query = Terms(field="SeriesNumber", values=[5, 6, 400])
        assert found(loaded, query) == {"S3_MR_T1", "S3_MR_T2", "S1_SR", "S2_SR", "S3_SR"}

    def test_terms_without_values_match_nothing(self, loaded: SearchBackend) -> None:
        assert found(loaded, Terms(field="Modality", values=[])) == set()

    def test_term_on_study_uid_finds_the_series_of_a_study(self, loaded: SearchBackend) -> None:
        study = BY_NAME["S1_CT"]["StudyInstanceUID"]
        assert found(loaded, Term(field="StudyInstanceUID", value=study)) == {
            "S1_CT",
            "S1_SEG",
            "S1_RTSTRUCT",
            "S1_SR",
        }

    # -- wildcard

    def test_wildcard_on_a_keyword(self, loaded: SearchBackend) -> None:
        assert found(loaded, Wildcard(field="AccessionNumber", pattern="A100?")) == named(
            lambda d: d["AccessionNumber"].startswith("A100")
        )
        assert found(loaded, Wildcard(field="Modality", pattern="*T*")) == named(
            lambda d: "T" in d["Modality"]
        )

    def test_wildcard_on_a_keyword_is_case_sensitive(self, loaded: SearchBackend) -> None:
        assert found(loaded, Wildcard(field="AnnotationLabels", pattern="GTV-*")) == named(
            lambda d: "GTV-1" in d.get("AnnotationLabels", [])
        )
        assert found(loaded, Wildcard(field="AnnotationLabels", pattern="gtv-*")) == set()

    def test_wildcard_question_mark_is_one_character(self, loaded: SearchBackend) -> None:
        assert found(loaded, Wildcard(field="AnnotationLabels", pattern="Lung_?")) == {
            "S1_SEG",
            "S1_RTSTRUCT",
        }
        assert found(loaded, Wildcard(field="AnnotationLabels", pattern="Lung?")) == set()

    def test_wildcard_takes_sql_and_glob_characters_literally(self, loaded: SearchBackend) -> None:
        description = "SeriesDescription"  # "Dose 50% [fx 1]"
        assert found(loaded, Wildcard(field=description, pattern="Dose 50% [fx*")) == {"S3_SEG"}
        assert found(loaded, Wildcard(field=description, pattern="Dose 5_%*")) == set()
        assert found(loaded, Wildcard(field=description, pattern="Dose %")) == set()
        assert found(loaded, Wildcard(field="AnnotationLabels", pattern="Lung%")) == set()

    # -- person names

    def test_person_name_family_name_is_case_and_accent_blind(self, loaded: SearchBackend) -> None:
        patient = named(lambda d: d["PatientID"] == "PAT-001")
        for spelling in ("Müller", "müller", "MULLER", "muller", "MÜLLER"):
            query = Term(field="PatientName.FamilyName", value=spelling)
            assert found(loaded, query) == patient, spelling
        assert found(loaded, Term(field="PatientName.FamilyName", value="Mueller")) == set()

    def test_person_name_folds_letters_without_decomposition(self, loaded: SearchBackend) -> None:
        patient = named(lambda d: d["PatientID"] == "PAT-004")
        assert found(loaded, Term(field="PatientName.FamilyName", value="lukasiewicz")) == patient
        assert found(loaded, Term(field="PatientName.GivenName", value="ZOE")) == patient

    def test_person_name_term_compares_the_whole_alphabetic_name(
        self, loaded: SearchBackend
    ) -> None:
        patient = named(lambda d: d["PatientID"] == "PAT-003")
        assert found(loaded, Term(field="PatientName", value="doe^john")) == patient
        assert found(loaded, Term(field="PatientName", value="doe")) == set()

    def test_person_name_wildcard_is_case_and_accent_blind(self, loaded: SearchBackend) -> None:
        patient = named(lambda d: d["PatientID"] == "PAT-002")
        assert found(loaded, Wildcard(field="PatientName", pattern="o'brien^*")) == patient
        assert found(loaded, Wildcard(field="PatientName", pattern="*SIOBHAN*")) == patient
        assert found(loaded, Wildcard(field="PatientName.GivenName", pattern="Siobh?n")) == patient

    def test_person_name_with_several_words(self, loaded: SearchBackend) -> None:
        patient = named(lambda d: d["PatientID"] == "PAT-005")
        assert found(loaded, Term(field="PatientName.FamilyName", value="Van der Berg")) == patient
        assert found(loaded, Wildcard(field="PatientName", pattern="van *")) == patient

    def test_person_name_components(self, loaded: SearchBackend) -> None:
        patient = named(lambda d: d["PatientID"] == "PAT-002")
        assert found(loaded, Term(field="PatientName.MiddleName", value="mary")) == patient
        assert found(loaded, Term(field="PatientName.NamePrefix", value="DR.")) == patient
        assert found(loaded, Exists(field="PatientName.NamePrefix")) == patient

    def test_referring_physician_name(self, loaded: SearchBackend) -> None:
        query = Term(field="ReferringPhysicianName.FamilyName", value="schmidt")
        assert found(loaded, query) == named(lambda d: d["PatientID"] == "PAT-001")

    # -- free text

    def test_text_matches_words_case_and_accent_blind(self, loaded: SearchBackend) -> None:
        thorax = named(lambda d: "Thorax" in d["StudyDescription"])
        assert found(loaded, Text(text="thorax")) == thorax
        assert found(loaded, Text(text="THORAX")) == thorax
        patient = named(lambda d: d["PatientID"] == "PAT-002")
        assert found(loaded, Text(text="siobhan")) == patient
        assert found(loaded, Text(text="Łukasiewicz")) == named(
            lambda d: d["PatientID"] == "PAT-004"
        )

    def test_text_needs_every_word_in_some_text_field(self, loaded: SearchBackend) -> None:
        # "liver" from StudyDescription (S3) or AnnotationLabels, "tumor" from a label
        assert found(loaded, Text(text="liver tumor")) == {"S3_SEG"}
        # "muller" from the patient's name, "follow" from the study description
        assert found(loaded, Text(text="Müller follow-up")) == named(
            lambda d: d["StudyInstanceUID"] == BY_NAME["S2_CT"]["StudyInstanceUID"]
        )
        assert found(loaded, Text(text="thorax liver")) == set()

    def test_text_splits_labels_into_words(self, loaded: SearchBackend) -> None:
        # labels, and the SR series descriptions "Radiomics GTV-1"
        gtv = {"S1_SEG", "S1_RTSTRUCT", "S2_SEG", "S1_SR", "S2_SR"}
        assert found(loaded, Text(text="GTV-1")) == gtv
        assert found(loaded, Text(text="gtv")) == gtv
        assert found(loaded, Text(text="lung")) == set()  # Lung_L is one word
        assert found(loaded, Text(text="lung_l")) == {"S1_SEG", "S1_RTSTRUCT"}

    def test_text_matches_whole_words_only(self, loaded: SearchBackend) -> None:
        assert found(loaded, Text(text="thor")) == set()

    def test_text_without_words_matches_everything(self, loaded: SearchBackend) -> None:
        assert found(loaded, Text(text="")) == set(BY_NAME)
        assert found(loaded, Text(text="   ")) == set(BY_NAME)

    def test_text_takes_query_syntax_literally(self, loaded: SearchBackend) -> None:
        for text in ('"thorax', "thorax OR liver", "thorax*", "NEAR(thorax)", "thorax & !liver"):
            assert found(loaded, Text(text=text)) <= named(
                lambda d: "Thorax" in d["StudyDescription"]
            ), text

    # -- ranges

    def test_date_range_across_studies(self, loaded: SearchBackend) -> None:
        query = Range(field="StudyDate", gte="2024-06-01", lte="2024-12-31")
        expected = named(lambda d: "2024-06-01" <= d["StudyDate"] <= "2024-12-31")
        assert {n[:2] for n in expected} == {"S3", "S4"}
        assert found(loaded, query) == expected

    def test_date_range_bounds_inclusive_and_exclusive(self, loaded: SearchBackend) -> None:
        assert found(loaded, Range(field="StudyDate", gt="2024-12-31")) == named(
            lambda d: d["StudyDate"] > "2024-12-31"
        )
        assert found(loaded, Range(field="StudyDate", lt="2024-06-30")) == named(
            lambda d: d["StudyDate"] < "2024-06-30"
        )
        assert found(loaded, Range(field="StudyDate", gte="2024-06-30", lte="2024-06-30")) == named(
            lambda d: d["StudyDate"] == "2024-06-30"
        )

    def test_date_alone_on_a_date_time_covers_the_whole_day(self, loaded: SearchBackend) -> None:
        # S5_MR arrived 2025-01-01 23:50 UTC, S4_SEG at 06:00 that day
        upto = found(loaded, Range(field="ArrivedAt", lte="2025-01-01"))
        assert upto == named(lambda d: d["ArrivedAt"] < "2025-01-02")
        assert {"S4_SEG", "S5_MR"} <= upto
        after = found(loaded, Range(field="ArrivedAt", gt="2025-01-01"))
        assert after == named(lambda d: d["ArrivedAt"] >= "2025-01-02")
        day = found(loaded, Range(field="ArrivedAt", gte="2025-01-01", lt="2025-01-02"))
        assert day == {"S4_SEG", "S5_MR"}

    def test_date_time_range_with_a_zone(self, loaded: SearchBackend) -> None:
        # S4_SEG arrived 2025-01-01 06:00 UTC (07:00+01:00), S5_MR at 23:50 UTC (00:50+01:00)
        start, end = "2025-01-01T07:00:00+01:00", "2025-01-02T00:30:00+01:00"
        assert found(loaded, Range(field="ArrivedAt", gte=start, lte=end)) == {"S4_SEG"}
        end = "2025-01-02T00:55:00+01:00"
        assert found(loaded, Range(field="ArrivedAt", gt=start, lte=end)) == {"S5_MR"}

    def test_numeric_range_on_a_field(self, loaded: SearchBackend) -> None:
        assert found(loaded, Range(field="NumberOfInstances", gte=176)) == named(
            lambda d: d["NumberOfInstances"] >= 176
        )
        assert found(loaded, Range(field="SlicePositionMin", lt=-400)) == {"S1_CT", "S6_CT"}
        assert found(loaded, Range(field="SeriesNumber", gt=2, lte=6)) == {
            "S3_MR_T1",
            "S3_MR_T2",
            "S5_MR",
        }

    def test_numeric_range_on_radiomics_matches_any_value(self, loaded: SearchBackend) -> None:
        path = f"radiomics.{MESH_VOLUME}"
        assert found(loaded, Range(field=path, gte=10000)) == {"S1_SR", "S3_SR"}
        assert found(loaded, Range(field=path, lt=5000)) == {"S1_SR", "S3_SR"}
        assert found(loaded, Range(field=f"radiomics.{MEAN}", lt=0)) == {"S1_SR"}

    def test_numeric_range_needs_one_value_within_all_bounds(self, loaded: SearchBackend) -> None:
        # S1_SR [15230.5, 2100.25] has a value >= 3000 and one <= 5000, but none in between
        path = f"radiomics.{MESH_VOLUME}"
        assert found(loaded, Range(field=path, gte=3000, lte=5000)) == {"S3_SR"}
        assert found(loaded, Range(field=path, gt=9800, lt=15230.5)) == set()
        assert found(loaded, Range(field=path, gte=9800, lte=15230.5)) == {"S1_SR", "S2_SR"}

    def test_term_on_radiomics(self, loaded: SearchBackend) -> None:
        assert found(loaded, Term(field=f"radiomics.{MEAN}", value=40.2)) == {"S2_SR"}

    def test_keyword_range_compares_strings(self, loaded: SearchBackend) -> None:
        assert found(loaded, Range(field="PatientID", gte="PAT-002", lt="PAT-004")) == named(
            lambda d: d["PatientID"] in ("PAT-002", "PAT-003")
        )

    # -- exists

    def test_exists(self, loaded: SearchBackend) -> None:
        assert found(loaded, Exists(field="BodyPartExamined")) == named(
            lambda d: "BodyPartExamined" in d
        )
        assert found(loaded, Exists(field="Project")) == named(lambda d: "Project" in d)
        assert found(loaded, Exists(field="SourceAE")) == named(lambda d: "SourceAE" in d)

    def test_exists_on_radiomics(self, loaded: SearchBackend) -> None:
        with_radiomics = named(lambda d: "radiomics" in d)
        assert with_radiomics == {"S1_SR", "S2_SR", "S3_SR"}
        assert found(loaded, Exists(field="radiomics")) == with_radiomics
        assert found(loaded, Exists(field=f"radiomics.{MESH_VOLUME}")) == with_radiomics
        assert found(loaded, Exists(field="radiomics.original_glcm_Contrast")) == set()

    def test_exists_on_tags(self, loaded: SearchBackend) -> None:
        assert found(loaded, Exists(field="tags.SegmentSequence")) == named(
            lambda d: d["Modality"] == "SEG"
        )
        assert found(loaded, Exists(field="tags.ConvolutionKernel")) == named(
            lambda d: "ConvolutionKernel" in d["tags"]
        )

    # -- tags

    def test_term_on_a_tag(self, loaded: SearchBackend) -> None:
        assert found(loaded, Term(field="tags.ConvolutionKernel", value="B30f")) == {
            "S1_CT",
            "S4_CT",
            "S6_CT",
        }

    def test_term_on_a_multi_valued_tag(self, loaded: SearchBackend) -> None:
        assert found(loaded, Term(field="tags.ImageType", value="AXIAL")) == named(
            lambda d: "AXIAL" in d["tags"].get("ImageType", [])
        )

    def test_term_in_a_sequence(self, loaded: SearchBackend) -> None:
        assert found(loaded, Term(field="tags.SegmentSequence.SegmentLabel", value="Liver")) == {
            "S3_SEG",
            "S4_SEG",
        }
        path = "tags.SegmentSequence.SegmentedPropertyCategoryCodeSequence.CodeValue"
        assert found(loaded, Term(field=path, value="49755003")) == {
            "S1_SEG",
            "S2_SEG",
            "S3_SEG",
        }
        referenced = BY_NAME["S1_CT"]["SeriesInstanceUID"]
        path = "tags.ReferencedSeriesSequence.SeriesInstanceUID"
        assert found(loaded, Term(field=path, value=referenced)) == {"S1_SEG"}

    def test_numbers_in_tags(self, loaded: SearchBackend) -> None:
        assert found(loaded, Range(field="tags.SliceThickness", lte=1.5)) == {
            "S1_CT",
            "S2_CT",
            "S5_MR",
        }
        assert found(loaded, Term(field="tags.KVP", value=120)) == named(
            lambda d: "KVP" in d["tags"]
        )
        assert found(loaded, Term(field="tags.SegmentSequence.SegmentNumber", value=2)) == {
            "S1_SEG",
            "S3_SEG",
        }

    def test_person_name_in_tags(self, loaded: SearchBackend) -> None:
        # S5_MR has two operators (a list of names)
        assert found(loaded, Term(field="tags.OperatorsName.FamilyName", value="tech")) == {
            "S1_CT",
            "S4_CT",
            "S5_MR",
        }
        assert found(loaded, Wildcard(field="tags.OperatorsName", pattern="OPERATOR^*")) == {
            "S2_CT",
            "S5_MR",
            "S6_CT",
        }

    def test_wildcard_on_a_tag(self, loaded: SearchBackend) -> None:
        assert found(loaded, Wildcard(field="tags.ConvolutionKernel", pattern="B*")) == named(
            lambda d: "ConvolutionKernel" in d["tags"]
        )

    # -- bool

    def test_bool_must(self, loaded: SearchBackend) -> None:
        query = Bool(
            must=[Term(field="Modality", value="SEG"), Term(field="Project", value="RADIOMICS")]
        )
        assert found(loaded, query) == {"S2_SEG", "S4_SEG"}

    def test_bool_should_needs_one(self, loaded: SearchBackend) -> None:
        query = Bool(
            should=[
                Term(field="Modality", value="RTSTRUCT"),
                Term(field="BodyPartExamined", value="HEAD"),
            ]
        )
        assert found(loaded, query) == {"S1_RTSTRUCT", "S5_MR"}

    def test_bool_must_and_should(self, loaded: SearchBackend) -> None:
        query = Bool(
            must=[Term(field="Modality", value="CT")],
            should=[Text(text="abdomen"), Range(field="StudyDate", gte="2025-06-01")],
        )
        assert found(loaded, query) == {"S4_CT", "S6_CT"}

    def test_bool_must_not_keeps_documents_without_the_field(self, loaded: SearchBackend) -> None:
        query = Bool(must_not=[Term(field="BodyPartExamined", value="CHEST")])
        expected = named(lambda d: d.get("BodyPartExamined") != "CHEST")
        assert {"S1_SR", "S6_CT"} <= expected  # no BodyPartExamined
        assert found(loaded, query) == expected
        query = Bool(must_not=[Range(field="SeriesNumber", gte=100)])
        assert "S4_CT" in found(loaded, query)  # no SeriesNumber

    def test_bool_must_not_on_lists_and_text(self, loaded: SearchBackend) -> None:
        query = Bool(must_not=[Term(field="Project", value="RADIOMICS"), Text(text="thorax")])
        assert found(loaded, query) == named(
            lambda d: (
                "RADIOMICS" not in d.get("Project", []) and "Thorax" not in d["StudyDescription"]
            )
        )

    def test_nested_bool(self, loaded: SearchBackend) -> None:
        query = Bool(
            must=[
                Bool(
                    should=[
                        Term(field="PatientID", value="PAT-001"),
                        Term(field="PatientID", value="PAT-003"),
                    ]
                ),
                Bool(must_not=[Terms(field="Modality", values=["SR", "SEG"])]),
            ]
        )
        assert found(loaded, query) == {"S1_CT", "S1_RTSTRUCT", "S2_CT", "S4_CT"}

    # -- sort and paging

    @pytest.mark.parametrize("order", ["asc", "desc"])
    @pytest.mark.parametrize(
        "path",
        [
            "SeriesNumber",
            "StudyDate",
            "BodyPartExamined",
            "Project",
            "SlicePositionMin",
            "ArrivedAt",
        ],
    )
    def test_sort_by_a_field_puts_missing_last(
        self, loaded: SearchBackend, path: str, order: Literal["asc", "desc"]
    ) -> None:
        result = run(loaded, sort=[Sort(field=path, order=order)])
        assert hit_names(result) == ordered_by(path, order)

    def test_sort_by_person_name_is_folded(self, loaded: SearchBackend) -> None:
        result = run(
            loaded, Terms(field="Modality", values=["CT", "MR"]), sort=[Sort(field="PatientName")]
        )
        patients = list(dict.fromkeys(hit["PatientID"] for hit in result.hits))
        # doe, lukasiewicz, muller, o'brien, van der berg
        assert patients == ["PAT-003", "PAT-004", "PAT-001", "PAT-002", "PAT-005"]

    def test_sort_by_several_fields(self, loaded: SearchBackend) -> None:
        sorts = [Sort(field="Modality"), Sort(field="NumberOfInstances", order="desc")]
        result = run(loaded, sort=sorts)
        expected = sorted(
            BY_NAME,
            key=lambda n: (BY_NAME[n]["Modality"], -BY_NAME[n]["NumberOfInstances"], UID[n]),
        )
        assert hit_names(result) == expected

    def test_sort_by_radiomics_and_tags(self, loaded: SearchBackend) -> None:
        result = run(loaded, Exists(field="radiomics"), sort=[Sort(field=f"radiomics.{MEAN}")])
        assert hit_names(result) == ["S1_SR", "S2_SR", "S3_SR"]  # least values -612.3, 40.2, 80
        result = run(
            loaded, Exists(field="radiomics"), sort=[Sort(field=f"radiomics.{MEAN}", order="desc")]
        )
        assert hit_names(result) == ["S3_SR", "S2_SR", "S1_SR"]  # greatest 110.5, 40.2, 35.1
        result = run(
            loaded, Exists(field="tags.SliceThickness"), sort=[Sort(field="tags.SliceThickness")]
        )
        assert hit_names(result) == ordered_by(
            "tags.SliceThickness", "asc", named(lambda d: "SliceThickness" in d["tags"])
        )

    def test_pages_follow_the_order(self, loaded: SearchBackend) -> None:
        everything = hit_names(run(loaded, sort=[Sort(field="StudyDate")]))
        pages = []
        for offset in range(0, ALL, 4):
            result = run(loaded, sort=[Sort(field="StudyDate")], offset=offset, limit=4)
            assert result.total == ALL
            pages.extend(hit_names(result))
        assert pages == everything

    def test_limit_zero_counts_without_hits(self, loaded: SearchBackend) -> None:
        result = loaded.search(
            SearchRequest(
                query=Term(field="Modality", value="CT"),
                limit=0,
                facets={"m": TermsFacet(field="Modality")},
            )
        )
        assert result.total == len(named(lambda d: d["Modality"] == "CT"))
        assert result.hits == []
        assert result.facets["m"] == [Bucket(key="CT", count=result.total)]

    def test_offset_past_the_end(self, loaded: SearchBackend) -> None:
        result = loaded.search(SearchRequest(offset=ALL, limit=10))
        assert (result.total, result.hits) == (ALL, [])

    def test_default_limit_is_25(self, loaded: SearchBackend) -> None:
        assert len(loaded.search(SearchRequest()).hits) == min(ALL, 25)

    # -- facets

    @pytest.mark.parametrize(
        "path",
        [
            "Modality",
            "BodyPartExamined",
            "Project",
            "AnnotationLabels",
            "ModalitiesInStudy",
            "PatientID",
            "SourceKind",
        ],
    )
    def test_terms_facet_counts_documents_per_value(self, loaded: SearchBackend, path: str) -> None:
        assert facet(loaded, TermsFacet(field=path)) == terms_buckets(set(BY_NAME), path)

    def test_terms_facet_order_and_size(self, loaded: SearchBackend) -> None:
        buckets = facet(loaded, TermsFacet(field="Modality", size=2))
        assert buckets == terms_buckets(set(BY_NAME), "Modality", size=2)
        # CT 4 and SEG 4 (a tie, so by key), then MR 3, SR 3, RTSTRUCT 1
        assert [b.key for b in buckets] == ["CT", "SEG"]
        labels = facet(loaded, TermsFacet(field="AnnotationLabels", size=3))
        assert labels == [
            Bucket(key="GTV-1", count=3),
            Bucket(key="Liver", count=2),
            Bucket(key="Lung_L", count=2),
        ]

    def test_terms_facet_follows_the_query(self, loaded: SearchBackend) -> None:
        dated = Range(field="StudyDate", gte="2025-01-01")
        names = named(lambda d: d["StudyDate"] >= "2025-01-01")
        for path in ("Modality", "Project", "PatientID"):
            assert facet(loaded, TermsFacet(field=path), dated) == terms_buckets(names, path), path
        query = Text(text="liver")
        names = found(loaded, query)
        assert facet(loaded, TermsFacet(field="AnnotationLabels"), query) == terms_buckets(
            names, "AnnotationLabels"
        )

    def test_terms_facet_on_numbers(self, loaded: SearchBackend) -> None:
        buckets = facet(loaded, TermsFacet(field="SeriesNumber"))
        assert buckets == terms_buckets(set(BY_NAME), "SeriesNumber")
        assert buckets[0] == Bucket(key="300", count=4)
        mean = facet(loaded, TermsFacet(field=f"radiomics.{MEAN}", size=100))
        assert {b.key for b in mean} == {"-612.3", "35.1", "40.2", "110.5", "80"}

    def test_terms_facet_on_person_names_counts_them_as_written(
        self, loaded: SearchBackend
    ) -> None:
        buckets = facet(loaded, TermsFacet(field="PatientName"))
        assert buckets == terms_buckets(set(BY_NAME), "PatientName")
        assert Bucket(key="Müller^Hans", count=7) in buckets

    @pytest.mark.parametrize("interval", ["year", "month", "day"])
    @pytest.mark.parametrize("path", ["StudyDate", "ArrivedAt"])
    def test_date_histogram(
        self, loaded: SearchBackend, path: str, interval: Literal["year", "month", "day"]
    ) -> None:
        spec = DateHistogramFacet(field=path, interval=interval)
        assert facet(loaded, spec) == histogram_buckets(set(BY_NAME), path, interval)

    def test_date_histogram_follows_the_query(self, loaded: SearchBackend) -> None:
        query = Term(field="Modality", value="CT")
        spec = DateHistogramFacet(field="StudyDate", interval="year")
        assert facet(loaded, spec, query) == [
            Bucket(key="2024-01-01", count=2),
            Bucket(key="2025-01-01", count=2),
        ]

    def test_several_facets_at_once(self, loaded: SearchBackend) -> None:
        facets: dict[str, Facet] = {
            "modality": TermsFacet(field="Modality"),
            "labels": TermsFacet(field="AnnotationLabels"),
            "studied": DateHistogramFacet(field="StudyDate", interval="month"),
        }
        query = Term(field="Project", value="LUNG-RT")
        result = loaded.search(SearchRequest(query=query, facets=facets))
        names = named(lambda d: "LUNG-RT" in d.get("Project", []))
        assert result.total == len(names)
        assert result.facets == {
            "modality": terms_buckets(names, "Modality"),
            "labels": terms_buckets(names, "AnnotationLabels"),
            "studied": histogram_buckets(names, "StudyDate", "month"),
        }

    def test_facet_of_nothing_is_empty(self, loaded: SearchBackend) -> None:
        query = Term(field="Modality", value="XA")
        assert facet(loaded, TermsFacet(field="Project"), query) == []
        assert facet(loaded, DateHistogramFacet(field="StudyDate"), query) == []

    # -- writing

    def test_index_replaces_a_document_with_the_same_series_uid(
        self, loaded: SearchBackend
    ) -> None:
        changed = documents()[0]  # S1_CT
        changed["Modality"] = "PT"
        changed["AnnotationLabels"] = ["Spleen"]
        changed["StudyDescription"] = "Replaced study"
        changed["SeriesDescription"] = "Replaced series"
        del changed["Project"]
        assert loaded.index([changed]) == 1
        assert run(loaded).total == ALL
        assert found(loaded, Term(field="Modality", value="PT")) == {"S1_CT"}
        assert "S1_CT" not in found(loaded, Term(field="Modality", value="CT"))
        assert found(loaded, Term(field="AnnotationLabels", value="Spleen")) == {"S1_CT"}
        assert "S1_CT" not in found(loaded, Term(field="Project", value="LUNG-RT"))
        assert found(loaded, Text(text="replaced")) == {"S1_CT"}
        assert "S1_CT" not in found(loaded, Text(text="thorax"))
        hit = run(loaded, Term(field="Modality", value="PT")).hits[0]
        assert hit == changed
        assert Bucket(key="Spleen", count=1) in facet(loaded, TermsFacet(field="AnnotationLabels"))

    def test_index_the_same_series_twice_in_one_call_keeps_the_last(
        self, backend: SearchBackend
    ) -> None:
        first, second = documents()[0], documents()[0]
        second["Modality"] = "PT"
        assert backend.index([first, second]) == 2
        assert run(backend).total == 1
        assert found(backend, Term(field="Modality", value="PT")) == {"S1_CT"}

    def test_index_twice_changes_nothing(self, loaded: SearchBackend) -> None:
        before = facet(loaded, TermsFacet(field="AnnotationLabels"))
        assert loaded.index(DOCUMENTS) == ALL
        assert run(loaded).total == ALL
        assert facet(loaded, TermsFacet(field="AnnotationLabels")) == before
        assert found(loaded, Text(text="gtv")) == {
            "S1_SEG",
            "S1_RTSTRUCT",
            "S2_SEG",
            "S1_SR",
            "S2_SR",
        }

    def test_index_accepts_any_iterable(self, backend: SearchBackend) -> None:
        assert backend.index(iter(DOCUMENTS[:3])) == 3
        assert backend.index([]) == 0
        assert run(backend).total == 3

    def test_reindex_replaces_every_document(self, loaded: SearchBackend) -> None:
        kept = documents()[:10]
        kept[0]["Modality"] = "PT"  # S1_CT
        assert loaded.reindex(iter(kept)) == 10
        names = {NAME[d["SeriesInstanceUID"]] for d in kept}
        assert found(loaded) == names
        assert found(loaded, Term(field="Modality", value="PT")) == {"S1_CT"}
        assert found(loaded, Text(text="whole")) == set()  # S6_CT is gone
        assert facet(loaded, TermsFacet(field="Modality")) == [
            Bucket(key=k, count=c)
            for k, c in sorted(
                Counter(d["Modality"] for d in kept).items(), key=lambda kc: (-kc[1], kc[0])
            )
        ]

    def test_searches_find_the_old_documents_during_a_reindex(self, loaded: SearchBackend) -> None:
        totals = []

        def stream() -> Iterator[dict[str, Any]]:
            for position, document in enumerate(documents()[:5]):
                if position == 3:
                    totals.append(run(loaded).total)
                yield document

        assert loaded.reindex(stream()) == 5
        assert totals == [ALL]
        assert run(loaded).total == 5

    def test_reindex_of_nothing_empties_the_index(self, loaded: SearchBackend) -> None:
        assert loaded.reindex([]) == 0
        assert run(loaded).total == 0

    def test_delete(self, loaded: SearchBackend) -> None:
        gone = [UID["S1_SEG"], UID["S3_SEG"], "1.2.3.4.5.6.7.8.9"]
        assert loaded.delete(gone) == 2
        assert loaded.delete(gone) == 0
        assert run(loaded).total == ALL - 2
        assert found(loaded, Term(field="Modality", value="SEG")) == {"S2_SEG", "S4_SEG"}
        assert found(loaded, Text(text="tumor")) == set()
        assert facet(loaded, TermsFacet(field="AnnotationLabels")) == terms_buckets(
            set(BY_NAME) - {"S1_SEG", "S3_SEG"}, "AnnotationLabels"
        )

    def test_delete_nothing(self, loaded: SearchBackend) -> None:
        assert loaded.delete([]) == 0
        assert run(loaded).total == ALL

    def test_clear_then_reindex(self, loaded: SearchBackend) -> None:
        loaded.clear()
        result = loaded.search(SearchRequest(facets={"m": TermsFacet(field="Modality")}))
        assert (result.total, result.hits, result.facets) == (0, [], {"m": []})
        assert found(loaded, Text(text="thorax")) == set()
        assert loaded.index(DOCUMENTS) == ALL
        assert found(loaded, Text(text="thorax")) == named(
            lambda d: "Thorax" in d["StudyDescription"]
        )
        assert run(loaded).total == ALL

    def test_an_empty_index(self, backend: SearchBackend) -> None:
        result = backend.search(SearchRequest(query=Text(text="thorax")))
        assert (result.total, result.hits) == (0, [])

    def test_index_refuses_a_document_without_series_uid(self, backend: SearchBackend) -> None:
        broken = documents()[0]
        del broken["SeriesInstanceUID"]
        with pytest.raises(SearchError, match="SeriesInstanceUID"):
            backend.index([broken])

    # -- errors

    @pytest.mark.parametrize(
        ("request_", "named_field"),
        [
            (SearchRequest(query=Term(field="Modalityy", value="CT")), "Modalityy"),
            (
                SearchRequest(query=Term(field="tags.NoSuchKeyword", value="x")),
                "tags.NoSuchKeyword",
            ),
            (
                SearchRequest(query=Term(field="PatientName.Nickname", value="x")),
                "PatientName.Nickname",
            ),
            (SearchRequest(query=Term(field="radiomics.a.b", value=1)), "radiomics.a.b"),
            (SearchRequest(query=Term(field="tags", value="x")), "tags"),
            (SearchRequest(query=Term(field="SeriesNumber", value="two")), "SeriesNumber"),
            (SearchRequest(query=Term(field="StudyDate", value="20240115")), "StudyDate"),
            (SearchRequest(query=Term(field="StudyDate", value="2024-02-30")), "StudyDate"),
            (SearchRequest(query=Range(field="StudyDate", gte=2024)), "StudyDate"),
            (SearchRequest(query=Range(field="ArrivedAt", lt="yesterday")), "ArrivedAt"),
            (
                SearchRequest(query=Range(field=f"radiomics.{MEAN}", gte="high")),
                f"radiomics.{MEAN}",
            ),
            (SearchRequest(query=Range(field="PatientID", gte=3)), "PatientID"),
            (SearchRequest(query=Range(field="PatientName", gte="a")), "PatientName"),
            (SearchRequest(query=Range(field="StudyDate")), "StudyDate"),
            (SearchRequest(query=Wildcard(field="SeriesNumber", pattern="1*")), "SeriesNumber"),
            (
                SearchRequest(query=Terms(field="NumberOfInstances", values=[1, "x"])),
                "NumberOfInstances",
            ),
            (SearchRequest(query=Bool(must_not=[Exists(field="Nope")])), "Nope"),
            (SearchRequest(sort=[Sort(field="tags")]), "tags"),
            (SearchRequest(sort=[Sort(field="Nope")]), "Nope"),
            (SearchRequest(facets={"f": TermsFacet(field="radiomics")}), "radiomics"),
            (SearchRequest(facets={"f": DateHistogramFacet(field="Modality")}), "Modality"),
            (SearchRequest(facets={"f": DateHistogramFacet(field="Nope")}), "Nope"),
        ],
    )
    def test_search_error_names_the_field(
        self, loaded: SearchBackend, request_: SearchRequest, named_field: str
    ) -> None:
        with pytest.raises(SearchError, match=f"'{named_field}'"):
            loaded.search(request_)
