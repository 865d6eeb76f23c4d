"""BABILong: sample lengths and fact placement, determinism, split hygiene, speed, prompts and both scorers."""

from __future__ import annotations

import csv
import random
import re
import time

import pytest

from lm2.data import babilong as bl
from lm2.data.babi import LABELS, BabiSample, generate_samples
from lm2.data.babilong_haystack import background_haystack
from lm2.data.corpora import BOOKS
from lm2.data.tokenizers import count_tokens, gpt2_tokenizer
from lm2.eval.babilong_scoring import exact_match, label_score, score_csv


@pytest.fixture(scope="module")
def test_samples() -> dict[str, list[bl.BabilongSample]]:
    return {length: bl.build_samples("qa2", length, 4, split="test", seed=0) for length in ("0k", "1k", "4k")}


@pytest.fixture(scope="module")
def train_samples() -> list[bl.BabilongSample]:
    return bl.build_samples("qa2", "4k", 4, split="train", seed=0)


# ------------------------------------------------------------------------------------------------ lengths


@pytest.mark.parametrize("text, tokens", [("0k", 0), ("4k", 4000), ("128k", 128000), ("256k", 256000),
                                          ("4000", 4000), ("1m", 1_000_000), (" 8K ", 8000), (1000, 1000)])
def test_parse_length(text, tokens):
    assert bl.parse_length(text) == tokens


@pytest.mark.parametrize("bad", ["4q", "k", "-1k", "1.5k", "", None, -5])
def test_parse_length_rejects_unknown_forms(bad):
    with pytest.raises(ValueError, match="0k, 1k, 2k"):
        bl.parse_length(bad)


def test_length_names():
    assert [bl.length_name(x) for x in ("4000", 128000, "1m", 1500)] == ["4k", "128k", "1000k", "1500"]
    assert set(bl.LENGTHS) == {bl.length_name(v) for v in bl.LENGTHS.values()}


# ------------------------------------------------------------------------------------------------ samples


def test_samples_have_the_requested_length(test_samples):
    longest_sentence = int(background_haystack("test").tokens.max())
    for length in ("1k", "4k"):
        budget = bl.context_budget(length)
        assert budget == bl.parse_length(length) - 300
        for s in test_samples[length]:
            assert s.length == length
            assert s.n_tokens == count_tokens([s.context])[0]
            # filled up to the budget, short of it by less than one background sentence
            assert budget - longest_sentence <= s.n_tokens <= budget + 1, (length, s.n_tokens)


def test_zero_k_is_the_facts_alone(test_samples):
    for s in test_samples["0k"]:
        assert s.context == " ".join(s.facts)


def test_facts_in_order_and_question_absent(test_samples, train_samples):
    for s in [*test_samples["1k"], *test_samples["4k"], *train_samples]:
        position = 0
        for fact in s.facts:
            found = s.context.find(fact, position)
            assert found >= 0, f"fact {fact!r} missing or out of order"
            position = found + len(fact)
        assert s.question not in s.context
        assert s.target and s.question.endswith("?")


def test_same_seed_same_sample_other_seed_other_sample(test_samples):
    again = bl.build_samples("qa2", "4k", 4, split="test", seed=0)
    assert again == test_samples["4k"]
    other = bl.build_samples("qa2", "4k", 4, split="test", seed=1)
    assert [s.context for s in other] != [s.context for s in again]


def test_train_and_test_share_no_book_and_no_passage(train_samples):
    train_books = {b.key for b in BOOKS if b.split == "train"}
    test_books = {b.key for b in BOOKS if b.split == "test"}
    assert train_books and test_books and not train_books & test_books
    assert not {b.author for b in BOOKS if b.split == "train"} & {b.author for b in BOOKS if b.split == "test"}
    train_hay, test_hay = background_haystack("train"), background_haystack("test")
    test_sentences = set(test_hay.sentences)
    assert not set(train_hay.sentences) & test_sentences
    some_test_sentences = test_hay.sentences[::8]
    for s in train_samples:
        assert not any(x in s.context for x in some_test_sentences)


def test_128k_sample_builds_in_seconds():
    background_haystack("test")  # built (or read from lm2's cache) once
    start = time.perf_counter()
    (sample,) = bl.build_samples("qa1", "128k", 1, split="test", seed=3)
    elapsed = time.perf_counter() - start
    print(f"\n128k BABILong sample: {elapsed:.2f} s, {sample.n_tokens} GPT-2 tokens")
    assert elapsed < 30
    assert 127_000 <= sample.n_tokens <= 127_701


def test_samples_with_too_many_facts_are_skipped():
    for s in bl.build_samples("qa3", "1k", 10, split="test", seed=0):
        assert len(s.facts) <= 1000 / 8


def test_training_draws_cover_every_question_of_a_story_as_the_test_does():
    """Each training draw picks a question among whole stories: its distribution of story lengths matches the
    test samples' (qa1: 2, 4, ..., 10 facts, a fifth each), not only the first question's two facts."""
    import collections

    def shares(samples):
        counts = collections.Counter(len(s.facts) for s in samples)
        return {k: v / len(samples) for k, v in counts.items()}

    train = [bl.random_train_sample("qa1", "0k", random.Random(i)) for i in range(400)]
    test = shares(bl.build_samples("qa1", "0k", 400, split="test", seed=0))
    assert set(shares(train)) == set(test) == {2, 4, 6, 8, 10}
    for k, share in shares(train).items():
        assert abs(share - test[k]) < 0.08, (k, share, test[k])
    # a draw is a training sample like build_samples' (same split, same layout), reproducible from its rng
    a, b = (bl.random_train_sample("qa2", "1k", random.Random("x")) for _ in range(2))
    assert a == b and a.length == "1k"
    assert bl.context_budget("1k") - int(background_haystack("train").tokens.max()) <= a.n_tokens
    assert a.n_tokens <= bl.context_budget("1k") + 1
    assert bl.random_train_sample("qa2", "1k", random.Random("y")) != a


def test_facts_within_puts_the_facts_early_and_changes_nothing_else():
    """facts_within=0.5 (training only) hides every fact in the first half of the background, keeping the facts'
    order, the question and the length; 1.0 draws exactly BABILong's layout (the default, the test's)."""
    from lm2.data.tokenizers import token_counter

    count = token_counter(None)
    near, far = [], []
    for i in range(12):
        rng = random.Random(f"w{i}")
        default = bl.random_train_sample("qa1", "2k", random.Random(f"w{i}"))
        assert bl.random_train_sample("qa1", "2k", random.Random(f"w{i}"), facts_within=1.0) == default
        early = bl.random_train_sample("qa1", "2k", rng, facts_within=0.5)
        assert (early.question, early.target, early.facts) == (default.question, default.target, default.facts)
        assert abs(early.n_tokens - default.n_tokens) <= 1
        for s, out in ((default, near), (early, far)):
            end = s.context.rfind(s.facts[-1]) + len(s.facts[-1])
            out.append(count([s.context[end:]])[0])  # tokens from the last fact to the end of the context
    # half of a 2k context lies after the last fact at least (less the one background sentence the cut rounds up)
    assert min(far) >= 0.5 * bl.context_budget("2k") - int(background_haystack("train").tokens.max())
    assert min(near) < min(far)  # anywhere: some last facts lie close to the question
    with pytest.raises(ValueError, match="facts_within"):
        bl.random_train_sample("qa1", "1k", random.Random(0), facts_within=0.0)


QA1_FILLER = ["went", "moved", "journeyed", "travelled", "back", "to", "the"]


def test_drop_words_compacts_the_statements_only():
    """drop_words (training only) removes whole words from every statement, keeping each person before the room,
    the question and the answer; the same draw without it is the full text."""
    for i in range(6):
        full = bl.random_train_sample("qa1", "1k", random.Random(f"d{i}"))
        compact = bl.random_train_sample("qa1", "1k", random.Random(f"d{i}"), drop_words=QA1_FILLER)
        assert (compact.question, compact.target) == (full.question, full.target)
        assert compact.facts == [f"{f.split()[0]} {f.rstrip('.').split()[-1]}." for f in full.facts]
        assert all(f in compact.context for f in compact.facts)
        assert "the" in compact.context.split()  # the books keep theirs
    sample = BabiSample("qa1", ["Mary went back to the kitchen."], "Where is Mary?", "kitchen", [0])
    assert bl.drop_fact_words(sample, ["the", "Kitchen"]).facts == ["Mary went back to kitchen."]
    assert bl.drop_fact_words(sample, []) is sample
    with pytest.raises(ValueError, match="leaves nothing"):
        bl.drop_fact_words(BabiSample("qa1", ["the the."], "Where is Mary?", "kitchen", [0]), ["the"])


def _fake_sample(n_facts: int) -> BabiSample:
    return BabiSample("qa1", ["Mary went to the kitchen."] * n_facts, "Where is Mary?", "kitchen", [n_facts - 1])


def test_length_too_small_is_a_clear_error():
    assert not bl.fits(_fake_sample(200), "1k")
    with pytest.raises(ValueError, match="does not fit length 1k"):
        bl.build_sample(_fake_sample(200), "1k")
    with pytest.raises(ValueError, match="no room for a context"):
        bl.build_sample(_fake_sample(2), 305)
    with pytest.raises(ValueError, match="fit length"):
        bl.build_samples("qa1", 310, 1, split="test", max_tries=50)
    with pytest.raises(ValueError, match="unknown bAbI task"):
        bl.build_samples("qa21", "1k", 1)
    with pytest.raises(ValueError, match="unknown split"):
        bl.build_samples("qa1", "1k", 1, split="dev")


def test_pluggable_counter_measures_in_its_own_units():
    chars = lambda texts: [len(t) for t in texts]  # noqa: E731  (a "tokenizer" that counts characters)
    (s,) = bl.build_samples("qa1", "2k", 1, split="test", tokenizer=chars)
    longest = int(background_haystack("test", chars).tokens.max())
    assert s.n_tokens == len(s.context) and 1700 - longest <= s.n_tokens <= 1700


def test_jsonl_round_trip(tmp_path, test_samples):
    path = tmp_path / "s.jsonl"
    bl.save_jsonl(test_samples["1k"], path)
    assert bl.load_jsonl(path) == test_samples["1k"]
    (tmp_path / "bad.jsonl").write_text('{"task": "qa1"}\n')
    with pytest.raises(ValueError, match="bad.jsonl:1"):
        bl.load_jsonl(tmp_path / "bad.jsonl")


# ------------------------------------------------------------------------------------------------ prompts


def test_finetune_example_masks_exactly_answer_and_eos(test_samples):
    tok = gpt2_tokenizer()
    s = test_samples["1k"][0]
    ids, labels = bl.finetune_example(s, tok)
    assert len(ids) == len(labels)
    start = next(i for i, lab in enumerate(labels) if lab != -100)
    assert all(lab == -100 for lab in labels[:start])
    assert labels[start:] == ids[start:]
    assert ids[-1] == tok.eos_token_id
    assert tok.decode(ids[start:-1]) == " " + s.target
    assert tok.decode(ids[:start]) == bl.finetune_prompt(s)
    assert bl.finetune_prompt(s).endswith("\n" + bl.ANSWER_MARKER)


@pytest.mark.parametrize("task,length", [("qa1", "0k"), ("qa2", "1k"), ("qa5", "0k")])
def test_story_example_answers_every_question_after_its_facts(task, length):
    import random

    from lm2.data.babi import generate_stories, story_samples

    tok = gpt2_tokenizer()
    story = generate_stories(task, 1, split="train", seed=4)[0]
    questions = [q for q in story_samples(story) if bl.fits(q, length)]
    ids, labels = bl.story_finetune_example(story, length, "train", random.Random(0), tok)
    assert len(ids) == len(labels)
    # the supervised tokens are exactly " answer<eos>" per question, in the story's order
    answers, current = [], []
    for token, label in zip(ids, labels):
        if label != -100:
            assert label == token
            current.append(token)
            if token == tok.eos_token_id:
                answers.append(tok.decode(current[:-1]))
                current = []
    assert answers == [" " + q.answer for q in questions] and not current
    # each question comes after every fact it may use and before the facts that follow it
    text, cursor = tok.decode([t for t in ids if t != tok.eos_token_id]), 0
    all_facts = story_samples(story)[-1].facts
    for q in questions:
        asked = text.index(f"\n{bl.QUESTION_PREFIX} {q.question}\n{bl.ANSWER_MARKER} {q.answer}", cursor)
        last_fact = text.rfind(q.facts[-1], 0, asked)
        assert cursor <= last_fact  # its last fact is stated since the previous question
        if len(all_facts) > len(q.facts):  # and the next fact only after it
            assert text.find(all_facts[len(q.facts)], last_fact + len(q.facts[-1])) > asked
        cursor = asked + 1
    if length != "0k":  # hidden in background text like an evaluation sample of this length
        assert len(ids) > 600
    # with the fact loss the statements and questions are supervised too, the background and markers never
    # compacted statements: the same questions and answers, each statement without the dropped words
    if task == "qa1":
        ids3, labels3 = bl.story_finetune_example(story, length, "train", random.Random(0), tok,
                                                  drop_words=QA1_FILLER)
        supervised = [t for t, lab in zip(ids, labels) if lab != -100]
        assert [t for t, lab in zip(ids3, labels3) if lab != -100] == supervised
        text3 = tok.decode(ids3)
        stated = all_facts[:len(questions[-1].facts)]
        assert all(f"{f.split()[0]} {f.rstrip('.').split()[-1]}." in text3 for f in stated)
        assert not any(f in text3 for f in all_facts)
        # bare questions: the name asked about, then the answer, no markers
        ids4, labels4 = bl.story_finetune_example(story, length, "train", random.Random(0), tok,
                                                  drop_words=[*QA1_FILLER, "Where", "is"], bare_questions=True)
        assert [t for t, lab in zip(ids4, labels4) if lab != -100] == supervised
        text4 = tok.decode(ids4)
        assert bl.QUESTION_PREFIX not in text4 and bl.ANSWER_MARKER not in text4
        for q in questions:
            assert f"\n{q.question.split()[-1].rstrip('?')} {q.answer}{tok.eos_token}" in text4
    ids2, labels2 = bl.story_finetune_example(story, length, "train", random.Random(0), tok, fact_loss=True)
    assert ids2 == ids
    supervised = tok.decode([t for t, lab in zip(ids2, labels2) if lab != -100 and t != tok.eos_token_id])
    facts = story_samples(story)[-1].facts[:len(questions[-1].facts)]
    expected = "".join(f" {f}" if i else f for i, f in enumerate(facts))
    assert all(f in supervised for f in questions[-1].facts) and all(q.question in supervised for q in questions)
    assert bl.ANSWER_MARKER not in supervised
    assert len(supervised) < len(expected) + sum(len(q.question) + len(q.answer) + 20 for q in questions)


@pytest.mark.parametrize("length", ["0k", "1k"])
def test_ask_everyone_asks_each_placed_person_with_the_room_the_facts_give(length):
    """ask_everyone: after each of the story's question points, one question per person placed so far (each once),
    answered with that person's last room in the facts so far, worked out here from the facts by hand."""
    from lm2.data.babi import generate_stories, story_samples

    tok = gpt2_tokenizer()
    story = generate_stories("qa1", 1, split="train", seed=7)[0]
    points = [q for q in story_samples(story) if bl.fits(q, length)]
    ids, labels = bl.story_finetune_example(story, length, "train", random.Random(1), tok, ask_everyone=True)
    text = tok.decode(ids).replace(tok.eos_token, " ")
    blocks = text.split(f"\n{bl.QUESTION_PREFIX} ")[1:]
    asked = [(b.split("?")[0].split()[-1], b.split(f"\n{bl.ANSWER_MARKER} ")[1].split()[0]) for b in blocks]
    expected: list[set] = []
    for q in points:
        rooms = {}
        for fact in q.facts:  # "Mary went back to the kitchen." -> Mary: kitchen, the later fact winning
            rooms[fact.split()[0]] = fact.rstrip(".").split()[-1]
        expected.append(set(rooms.items()))
    cursor = 0
    for people in expected:  # each point's questions, in some order, then the next point's
        assert set(asked[cursor : cursor + len(people)]) == people
        cursor += len(people)
    assert cursor == len(asked)
    assert sum(len(p) for p in expected) > len(points)  # more answers than the story's own questions
    supervised = [t for t, lab in zip(ids, labels) if lab != -100]
    assert supervised.count(tok.eos_token_id) == len(asked)
    with pytest.raises(ValueError, match="qa1, qa2, qa3, qa4, qa5, not qa6"):
        bl.story_finetune_example(generate_stories("qa6", 1, split="train", seed=7)[0], "0k", "train",
                                  random.Random(1), tok, ask_everyone=True)


@pytest.mark.parametrize("length", ["0k", "1k"])
def test_one_point_last_keeps_the_last_points_questions_and_the_same_context(length):
    """one_point="last": the sequence is the full one with every question block but the last point's cut out (the
    same background, statements and draws, up to the space after a block), so no earlier answer restates a fact;
    the kept questions are the last point's, one per person placed, each answered with that person's last room in
    all the facts."""
    from lm2.data.babi import generate_stories

    tok = gpt2_tokenizer()
    story = generate_stories("qa1", 1, split="train", seed=7)[0]
    full_ids, _ = bl.story_finetune_example(story, length, "train", random.Random(1), tok, ask_everyone=True)
    ids, labels = bl.story_finetune_example(story, length, "train", random.Random(1), tok, ask_everyone=True,
                                            one_point="last")
    full, text = tok.decode(full_ids), tok.decode(ids)
    block = f"\n{bl.QUESTION_PREFIX} [^\n]*\n{bl.ANSWER_MARKER} \\w+{re.escape(tok.eos_token)}"
    blocks = [m.span() for m in re.finditer(block, full)]
    last_statement = full.rindex(".", 0, blocks[-1][0])
    kept = [span for span in blocks if span[0] > last_statement]
    cut = "".join(full[a:b] for a, b in zip([0] + [e for _, e in blocks if (_, e) not in kept],
                                           [s for s, e in blocks if (s, e) not in kept] + [len(full)]))
    # (a piece after a question block has no leading space: compare without the whitespace)
    assert re.sub(r"\s+", "", text) == re.sub(r"\s+", "", cut) and len(kept) < len(blocks)
    rooms = {}
    for fact in re.findall(r"(\w+) (?:went|moved|journeyed|travelled)(?: back)? to the (\w+)\.", text):
        rooms[fact[0]] = fact[1]
    asked = re.findall(f"Where is (\\w+)\\?\n{bl.ANSWER_MARKER} (\\w+)", text)
    assert dict(asked) == rooms and len(asked) == len(rooms)
    supervised = [t for t, lab in zip(ids, labels) if lab != -100]
    assert supervised.count(tok.eos_token_id) == len(asked)


def test_one_point_random_cuts_the_story_at_a_drawn_point_as_an_evaluation_sample():
    """one_point="random": the statements are the story's up to one of its question points, drawn per story (so a
    point before the last too), and the questions are that point's, one per person placed, with the room the
    statements give; the context is laid out as the evaluation sample of that point's question is."""
    from lm2.data.babi import generate_stories, story_samples

    tok = gpt2_tokenizer()
    move = r"(\w+) (?:went|moved|journeyed|travelled)(?: back)? to the (\w+)\."
    chosen = set()
    for seed in range(8):
        story = generate_stories("qa1", 1, split="train", seed=seed)[0]
        points = [q for q in story_samples(story) if bl.fits(q, "1k")]
        ids, labels = bl.story_finetune_example(story, "1k", "train", random.Random(seed), tok, ask_everyone=True,
                                                one_point="random")
        text = tok.decode(ids)
        facts = re.findall(move, text)
        point = [q for q in points if len(q.facts) == len(facts)]
        assert point, "the statements are a question point's"
        assert [f"{who} {room}" for who, room in facts] == [
            " ".join(f.split()[::len(f.split()) - 1]).rstrip(".") for f in point[0].facts]
        asked = re.findall(f"Where is (\\w+)\\?\n{bl.ANSWER_MARKER} (\\w+)", text)
        assert dict(asked) == dict(facts) and len(asked) == len(dict(facts))
        assert text.index(f"\n{bl.QUESTION_PREFIX}") > text.rindex(".", 0, text.index(f"\n{bl.QUESTION_PREFIX}") - 1)
        chosen.add(len(facts) < len(points[-1].facts))
        supervised = [t for t, lab in zip(ids, labels) if lab != -100]
        assert supervised.count(tok.eos_token_id) == len(asked)
    assert chosen == {True, False}  # earlier points and the last are both drawn


def test_ask_at_end_asks_the_points_questions_after_the_whole_context():
    """ask_at_end: the same context as without it (statements and background, the same draws), then the kept
    point's questions, the first laid out as an evaluation prompt ends; nothing follows the last answer."""
    from lm2.data.babi import generate_stories

    tok = gpt2_tokenizer()
    block = f"\n{bl.QUESTION_PREFIX} [^\n]*\n{bl.ANSWER_MARKER} \\w+{re.escape(tok.eos_token)}"
    for seed in range(4):
        story = generate_stories("qa1", 1, split="train", seed=seed)[0]
        kwargs = dict(ask_everyone=True, one_point="random")
        inline, _ = bl.story_finetune_example(story, "1k", "train", random.Random(seed), tok, **kwargs)
        ids, labels = bl.story_finetune_example(story, "1k", "train", random.Random(seed), tok, ask_at_end=True,
                                                **kwargs)
        inline_text, text = tok.decode(inline), tok.decode(ids)
        blocks = re.findall(block, inline_text)
        context = re.sub(block, "", inline_text)
        assert text.endswith("".join(blocks)) and len(blocks) > 0  # the same questions, in the same order
        assert re.sub(r"\s+", "", text[: len(text) - len("".join(blocks))]) == re.sub(r"\s+", "", context)
        assert text.index(f"\n{bl.QUESTION_PREFIX}") == len(text) - len("".join(blocks))
        assert sum(1 for t, lab in zip(ids, labels) if lab == tok.eos_token_id) == len(blocks)
    with pytest.raises(ValueError, match="ask_at_end needs one_point"):
        bl.story_finetune_example(story, "1k", "train", random.Random(0), tok, ask_at_end=True)


def test_instruction_prompt_layout(test_samples):
    s = test_samples["1k"][0]
    text = bl.instruction_prompt(s)  # no tokenizer: plain text ending with the answer marker
    assert f"<context>\n{s.context}\n</context>" in text
    assert text.index("<example>") < text.index("<context>\n" + s.context)
    assert text.endswith(f"Question: {s.question}\n{bl.ANSWER_MARKER}")
    plain = bl.instruction_text(s, examples=0)
    assert "<example>" not in plain and bl.INSTRUCTIONS["qa2"] in plain and bl.ANSWER_FORMATS["qa2"] in plain
    # examples come from the bAbI train split and are solved 0k samples
    for e in bl.default_examples("qa2", 2):
        assert e.length == "0k" and f"{bl.ANSWER_MARKER} {e.target}" in text

    class ChatTokenizer:
        chat_template = "{{ messages }}"

        def apply_chat_template(self, messages, tokenize, add_generation_prompt):
            assert not tokenize and add_generation_prompt and messages[0]["role"] == "user"
            return "<user>" + messages[0]["content"] + "<assistant>"

    chat = bl.instruction_prompt(s, ChatTokenizer(), examples=0)
    assert chat == "<user>" + plain + "<assistant>"


def test_every_task_has_an_instruction():
    from lm2.data.babi import TASKS

    assert set(bl.INSTRUCTIONS) == set(bl.ANSWER_FORMATS) == set(TASKS)


# ------------------------------------------------------------------------------------------------ scoring

LABEL_CASES = [
    # (output, target, question, task, correct)
    ("kitchen", "kitchen", "Where is Mary?", "qa1", True),
    ("Mary is in the Kitchen.", "kitchen", "Where is Mary?", "qa1", True),
    ("The kitchen. Before that the office", "kitchen", "Where is Mary?", "qa1", True),  # cut at "."
    ("the office. no, the kitchen", "kitchen", "Where is Mary?", "qa1", False),
    ("kitchen<context>office hallway", "kitchen", "Where is Mary?", "qa1", True),  # cut at "<context>"
    ("kitchen <example> garden", "kitchen", "Where is Mary?", "qa1", True),  # cut at "<example>"
    ("kitchen or office", "kitchen", "Where is Mary?", "qa1", False),  # two labels found
    ("hallway", "kitchen", "Where is Mary?", "qa1", False),
    ("", "kitchen", "Where is Mary?", "qa1", False),
    # labels in the question never count: "office" is excluded for qa3 "before the office"
    ("It was in the office, then the garden", "garden", "Where was the apple before the office?", "qa3", True),
    ("office", "garden", "Where was the apple before the office?", "qa3", False),
    ("Fred gave it", "Fred", "Who gave the milk to Jeff?", "qa5", True),
    ("the milk", "milk", "What did Fred give to Jeff?", "qa5", True),
    ("Jeff", "Fred", "Who gave the milk to Jeff?", "qa5", False),  # Jeff is in the question: nothing found
    ("yes", "yes", "Is Mary in the office?", "qa6", True),
    ("Not in the office", "no", "Is Mary in the office?", "qa6", True),  # "not" contains "no"
    ("yes, not", "yes", "Is Mary in the office?", "qa6", False),
    ("nope", "no", "Is Mary in the office?", "qa9", True),
    ("one", "one", "How many objects is Mary carrying?", "qa7", True),
    ("two objects", "two", "How many objects is Mary carrying?", "qa7", True),
    ("none", "none", "How many objects is Mary carrying?", "qa7", False),  # "none" contains "one": published quirk
    ("maybe", "maybe", "Is Bill in the park?", "qa10", True),
    ("no", "maybe", "Is Bill in the park?", "qa10", False),
    # qa8 lists
    ("apple,milk", "apple,milk", "What is Mary carrying?", "qa8", True),
    ("Milk and apple", "apple,milk", "What is Mary carrying?", "qa8", True),  # order does not matter
    ("apple", "apple,milk", "What is Mary carrying?", "qa8", False),  # a part missing
    ("apple, milk, football", "apple,milk", "What is Mary carrying?", "qa8", False),  # an extra item
    ("nothing", "nothing", "What is Mary carrying?", "qa8", True),
    ("nothing, apple", "nothing", "What is Mary carrying?", "qa8", False),
    ("football", "nothing", "What is Mary carrying?", "qa8", False),
]


@pytest.mark.parametrize("output, target, question, task, correct", LABEL_CASES)
def test_label_score(output, target, question, task, correct):
    assert label_score(output, target, question, task) is correct


@pytest.mark.parametrize("output, target, correct", [
    ("kitchen", "kitchen", True), (" Kitchen.\n", "kitchen", True), ("kitchen<|endoftext|>junk", "kitchen", True),
    ("kitchen\nQuestion: where", "kitchen", True), ("the kitchen", "kitchen", False),
    ("apple, milk", "apple,milk", True), ("milk,apple", "apple,milk", False), ("", "kitchen", False),
])
def test_exact_match(output, target, correct):
    assert exact_match(output, target) is correct


def _write_csv(path, rows, columns=("target", "output", "question")):
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        writer.writerows(rows)


def test_score_csv(tmp_path):
    rows = [(t, o, q) for o, t, q, task, _ in LABEL_CASES if task == "qa1"]
    path = tmp_path / "out.csv"
    _write_csv(path, rows)
    expected = 100 * sum(c for *_, task, c in LABEL_CASES if task == "qa1") / len(rows)
    assert score_csv(path, "qa1") == pytest.approx(expected)
    assert score_csv(path, "qa1", rule="exact") == pytest.approx(100 * 1 / len(rows))
    _write_csv(tmp_path / "bad.csv", [("kitchen", "kitchen")], columns=("target", "answer"))
    with pytest.raises(ValueError, match="missing column"):
        score_csv(tmp_path / "bad.csv", "qa1")
    _write_csv(tmp_path / "empty.csv", [])
    with pytest.raises(ValueError, match="no rows"):
        score_csv(tmp_path / "empty.csv", "qa1")
    with pytest.raises(FileNotFoundError):
        score_csv(tmp_path / "missing.csv", "qa1")
    with pytest.raises(ValueError, match="rule"):
        score_csv(path, "qa1", rule="fuzzy")


def test_scorer_on_generated_samples_is_consistent():
    rng = random.Random(0)
    for task in ("qa1", "qa5", "qa8", "qa10"):
        for s in generate_samples(task, 20, split="test"):
            assert label_score(f"{s.answer}.", s.answer, s.question, task)
            wrong = rng.choice([x for x in LABELS[task] if x.lower() != s.answer.lower()])
            assert not label_score(wrong, s.answer, s.question, task)


def test_fact_spans_find_each_statement_in_its_own_place():
    """A repeated statement is found at its second place, not its first; a missing one is None and does not move
    the search; every span cuts exactly its fact out of the text."""
    text = "Mary went home. Noise here. Mary went home. John left."
    facts = ["Mary went home.", "Mary went home.", "Sandra came.", "John left."]
    spans = bl.fact_spans(text, facts)
    assert spans == [(0, 15), (28, 43), None, (44, 54)]
    assert [text[a:b] for a, b in (s for s in spans if s)] == ["Mary went home.", "Mary went home.", "John left."]
    for sample in bl.build_samples("qa1", "1k", 5, split="test", seed=0):
        found = bl.fact_spans(sample.context, sample.facts)
        assert None not in found and all(a[1] <= b[0] for a, b in zip(found, found[1:]))
