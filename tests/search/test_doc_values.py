"""Doc values on their own: counting, paging and which generation a search gets."""

from __future__ import annotations

import numpy as np

from pacsflow.search.doc_values import Codes, DocValues, Generation, parse_ids

DOC_IDS = np.array([3, 7, 8, 12, 20], np.int64)


def test_ids_parse_from_one_string_sorted() -> None:
    assert parse_ids("12,3,7").tolist() == [3, 7, 12]
    assert parse_ids(None).tolist() == parse_ids("").tolist() == []


def test_single_valued_codes_count_the_selected_documents_holding_a_value() -> None:
    generation = Generation(1, DOC_IDS)
    codes = Codes(np.array([0, 1, 0, -1, 1], np.int32), ["CT", "MR"])  # doc 12: no value
    assert codes.count(generation.select(None)) == [("CT", 2), ("MR", 2)]
    assert codes.count(generation.select(np.array([3, 12, 20]))) == [("CT", 1), ("MR", 1)]
    assert codes.count(generation.select(np.array([12]))) == []


def test_list_codes_count_each_document_once_per_value() -> None:
    generation = Generation(1, DOC_IDS)
    rows = np.array([0, 0, 1, 4], np.int64)  # doc 3: Liver and GTV; 7: Liver; 20: GTV
    codes = Codes(np.array([0, 1, 0, 1], np.int32), ["Liver", "GTV"], rows)
    assert codes.count(generation.select(None)) == [("Liver", 2), ("GTV", 2)]
    assert codes.count(generation.select(np.array([3, 8]))) == [("Liver", 1), ("GTV", 1)]
    assert codes.count(generation.select(np.array([7, 8, 20]))) == [("Liver", 1), ("GTV", 1)]


def test_pages_follow_the_ranks_within_the_selection() -> None:
    generation = Generation(1, DOC_IDS)
    ranks = generation.ranks("newest", lambda: [20, 3, 12, 7, 8])
    everything = generation.select(None)
    assert generation.page(everything, ranks, 0, 2).tolist() == [20, 3]
    assert generation.page(everything, ranks, 2, 10).tolist() == [12, 7, 8]
    assert generation.page(everything, ranks, 5, 10).tolist() == []
    some = generation.select(np.array([7, 8, 12]))
    assert generation.page(some, ranks, 0, 2).tolist() == [12, 7]
    assert generation.page(some, ranks, 1, 1).tolist() == [7]
    assert generation.ranks("newest", lambda: []) is ranks  # read once per generation


def test_only_the_newest_generation_is_kept() -> None:
    values = DocValues()
    reads: list[int] = []

    def ids(number: int) -> np.ndarray:
        reads.append(number)
        return DOC_IDS

    fifth = values.generation(5, lambda: ids(5))
    assert values.generation(5, lambda: ids(5)) is fifth
    older = values.generation(4, lambda: ids(4))  # a search in an older snapshot
    assert older is not fifth and older.number == 4
    assert values.generation(5, lambda: ids(5)) is fifth
    assert values.generation(6, lambda: ids(6)).number == 6
    assert reads == [5, 4, 6]
