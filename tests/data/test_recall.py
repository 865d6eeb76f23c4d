"""The recall diagnostic's data: the pairs really are in the first segment, only the memory can reach them,
every query is answerable, and samples are reproducible and disjoint from training."""

import random

import pytest

from lm2.data.recall import ANSWER, QUERY, TEST_SEED, RecallSpec, build_tokenizer, encode, make_sample, make_samples


@pytest.mark.parametrize("distractors", [0, 1, 5])
@pytest.mark.parametrize("pairs,queries", [(1, 1), (4, 4), (8, 3)])
def test_pairs_in_first_segment_and_queries_answerable(distractors, pairs, queries):
    spec = RecallSpec(pairs=pairs, queries=queries, segment_length=24)
    s = spec.segment_length
    for sample in make_samples(spec, distractors, 30, seed=3):
        words = sample.words
        assert len(words) == (distractors + 2) * s
        first = words[:s]
        stated = dict(zip(first[0 : 2 * pairs : 2], first[1 : 2 * pairs : 2]))
        assert stated == dict(sample.pairs) and len(stated) == pairs  # distinct keys, all in segment 0
        # nothing between the first segment and the queries is a key, a value or the query marker
        assert all(w.startswith("f") for w in words[2 * pairs : len(words) - 3 * queries])
        assert len(sample.answers) == queries
        asked = set()
        for pos in sample.answers:
            key, value = words[pos - 1], words[pos]
            assert words[pos - 2] == QUERY and stated[key] == value
            asked.add(key)
            # the attention window (one segment) cannot reach the stated pair once a distractor segment exists
            if distractors >= 1:
                assert pos - 1 - (2 * pairs - 1) >= s
        assert len(asked) == queries  # every query asks a different key


@pytest.mark.parametrize("gap", [1, 3])
def test_a_gap_puts_fillers_between_each_key_and_its_value(gap):
    spec = RecallSpec(pairs=4, queries=4, gap=gap, segment_length=24)
    s, seen = spec.segment_length, set()
    for sample in make_samples(spec, 2, 40, seed=5):
        first = sample.words[:s]
        keys = [i for i, w in enumerate(first) if w.startswith("k")]
        values = [i for i, w in enumerate(first) if w.startswith("v")]
        assert [first[i] for i in keys] == [k for k, _ in sample.pairs]  # the pairs, in order, in segment 0
        assert [first[i] for i in values] == [v for _, v in sample.pairs]
        for k, v in zip(keys, values):
            assert 1 <= v - k <= gap + 1 and all(w.startswith("f") for w in first[k + 1 : v])
            seen.add(v - k - 1)
        assert not any(w[0] in "kv?" for w in sample.words[values[-1] + 1 : sample.answers[0] - 2])
        for pos in sample.answers:  # the queries still ask for the stated values
            assert dict(sample.pairs)[sample.words[pos - 1]] == sample.words[pos]
    assert seen == set(range(gap + 1))  # every gap from 0 to ``gap`` occurs


@pytest.mark.parametrize("query_gap,queries", [(2, 2), (4, 4)])
def test_a_query_gap_puts_markers_between_a_queried_key_and_its_answer(query_gap, queries):
    spec = RecallSpec(pairs=4, queries=queries, query_gap=query_gap, segment_length=16)
    tokenizer = build_tokenizer(spec)
    assert ANSWER in tokenizer.get_vocab() and ANSWER not in build_tokenizer(RecallSpec()).get_vocab()
    width = 3 + query_gap
    for sample in make_samples(spec, 2, 30, seed=9):
        words = sample.words
        query_segments = -(-width * queries // 16)  # as many last segments as the queries need: 1 or 2 here
        assert query_segments == (1 if queries == 2 else 2)
        assert len(words) == (1 + 2 + query_segments) * 16  # segment 0, 2 distractor segments, the queries
        assert all(w.startswith("f") for w in words[16 : 48])  # the distractors are fillers only
        assert sample.answers[-1] == len(words) - 1  # the last query ends the sample
        for pos in sample.answers:
            key = words[pos - 1 - query_gap]
            assert words[pos - 2 - query_gap] == QUERY and key.startswith("k")
            assert list(words[pos - query_gap : pos]) == [ANSWER] * query_gap
            assert dict(sample.pairs)[key] == words[pos]  # still answerable: the stated value of that key
        ids, labels = encode(sample, tokenizer)
        assert [i for i, lab in enumerate(labels) if lab != -100] == list(sample.answers)


def test_no_gap_keeps_each_value_next_to_its_key():
    # (that gap 0 draws exactly the samples of before is tests/golden's data_recall case)
    sample = make_sample(RecallSpec(pairs=3, queries=2), 1, random.Random(7))
    assert list(sample.words[:6]) == [w for pair in sample.pairs for w in pair]


def test_encode_supervises_exactly_the_answers():
    spec = RecallSpec(pairs=3, queries=2)
    tok = build_tokenizer(spec)
    sample = make_sample(spec, 2, random.Random(0))
    ids, labels = encode(sample, tok)
    assert tok.convert_ids_to_tokens(ids) == list(sample.words)
    assert [i for i, lab in enumerate(labels) if lab != -100] == list(sample.answers)
    assert all(labels[i] == ids[i] for i in sample.answers)


def test_samples_are_reproducible_and_the_test_seed_is_not_a_training_seed():
    spec = RecallSpec()
    assert make_samples(spec, 3, 5) == make_samples(spec, 3, 5, seed=TEST_SEED)
    assert make_samples(spec, 3, 5, seed=1) != make_samples(spec, 3, 5, seed=2)
    # training draws its seeds from string-seeded RNGs: they never produce the test seed's samples
    train_rng = random.Random("recall/0/0/0")
    assert make_sample(spec, 3, train_rng) not in make_samples(spec, 3, 50)


@pytest.mark.parametrize("fields,message", [
    ({"pairs": 0}, "pairs=0"),
    ({"pairs": 9, "segment_length": 16}, "too short"),
    ({"queries": 5, "pairs": 4}, "queries=5"),
    ({"num_keys": 2, "pairs": 3, "queries": 1}, "num_keys=2"),
    ({"gap": -1}, "gap=-1"),
    ({"pairs": 4, "gap": 3, "segment_length": 16}, "too short"),
    ({"query_gap": -2}, "query_gap=-2"),
    ({"query_gap": True}, "query_gap=True"),
])
def test_invalid_spec_is_a_clear_error(fields, message):
    with pytest.raises(ValueError, match=message):
        RecallSpec(**fields)
