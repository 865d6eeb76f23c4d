"""BABILong (Kuratov et al. 2024): bAbI facts hidden in book text, as samples and in its two prompt formats.

A sample is one bAbI question with every earlier statement of its story as the facts. The facts are
scattered, in order, among sentences of public-domain books until the sample reaches its length, measured
in GPT-2 tokens (1k = 1000 tokens). About 300 tokens of each length are left for the prompt, so the context
of an "Nk" sample holds at most N*1000 - 300 tokens; "0k" is the facts alone. See BABI_SPEC.md.

The background is a run of consecutive book sentences (``lm2.data.babilong_haystack``). Facts go before randomly
drawn background sentences (drawn with replacement and sorted, so their order is kept). Train and test samples come
from disjoint books (``lm2.data.corpora``) and disjoint bAbI stories (``lm2.data.babi``'s split).

Two prompt formats:
* ``instruction_prompt``: for instruction-tuned models (the task explained, optional solved examples, an
  answer-format line, ``<context>...</context>``, the question), through the chat template if there is one.
* ``finetune_example``: for memory models trained on the task: ``context \\nQuestion: q\\nAnswer: a<eos>``
  with the loss on the answer and eos only. Evaluation generates after ``ANSWER_MARKER``.

The scoring rules (``label_score``, ``exact_match``, ``score_csv``) are in ``lm2.eval.babilong_scoring``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import random
import re
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from lm2.data.babi import BabiSample, Story, check_task, generate_samples, story_samples
from lm2.data.babi.questions import every_question, with_step
from lm2.data.babilong_haystack import MIN_SENTENCE_TOKENS, background_sentences
from lm2.data.corpora import jsonl_records
from lm2.data.tokenizers import TokenCounter, token_counter

LENGTHS = {"0k": 0, "1k": 1000, "2k": 2000, "4k": 4000, "8k": 8000, "16k": 16000, "32k": 32000,
           "64k": 64000, "128k": 128000}
PROMPT_RESERVE = 300  # tokens of each length left for the instruction, question and answer
FACTS_PER_TOKEN = 1 / 8  # a sample with more than length/8 facts is skipped at that length
ANSWER_MARKER = "Answer:"  # fine-tuning format: the model answers after this
QUESTION_PREFIX = "Question:"


# ------------------------------------------------------------------------------------------------ lengths


def parse_length(length: str | int) -> int:
    """Tokens of a length name: "4k" -> 4000, "4000" -> 4000, "1m" -> 1000000, 4000 -> 4000."""
    if isinstance(length, (int, np.integer)) and not isinstance(length, bool):
        if length >= 0:
            return int(length)
    elif isinstance(length, str):
        match = re.fullmatch(r"\s*(\d+)\s*([km]?)\s*", length.lower())
        if match:
            return int(match[1]) * {"": 1, "k": 1000, "m": 1_000_000}[match[2]]
    raise ValueError(
        f"unknown BABILong length {length!r}: use {', '.join(LENGTHS)} (any '<n>k' works, 1k = 1000 GPT-2 "
        f"tokens), '<n>m', or a plain token count such as 4000"
    )


def length_name(length: str | int) -> str:
    """Canonical name of a length: 4000 -> "4k", "4000" -> "4k", 1500 -> "1500"."""
    tokens = parse_length(length)
    return f"{tokens // 1000}k" if tokens % 1000 == 0 else str(tokens)


def context_budget(length: str | int) -> int:
    """The most tokens a context of this length may hold (the length minus the prompt's share)."""
    tokens = parse_length(length)
    return 0 if tokens == 0 else tokens - PROMPT_RESERVE


# ------------------------------------------------------------------------------------------------ samples


@dataclass
class BabilongSample:
    task: str
    length: str  # canonical name, e.g. "4k"
    context: str  # background sentences with the facts hidden among them (only the facts at 0k)
    question: str
    target: str  # the bAbI answer, e.g. "kitchen", "apple,milk", "no"
    facts: list[str]
    n_tokens: int  # tokens of `context` (GPT-2 unless another tokenizer measured it)
    supporting: list[int] = field(default_factory=list)  # indices into `facts`


def fits(sample: BabiSample, length: str | int, tokenizer: Any = None) -> bool:
    """Whether a bAbI sample can be a BABILong sample of this length (facts <= length/8 and within budget)."""
    return _misfit(sample, parse_length(length), token_counter(tokenizer)) is None


def _misfit(sample: BabiSample, tokens: int, counter: TokenCounter) -> str | None:
    if tokens == 0:
        return None
    if tokens < PROMPT_RESERVE + MIN_SENTENCE_TOKENS:
        return f"a {tokens}-token length leaves no room for a context after the {PROMPT_RESERVE}-token prompt"
    if len(sample.facts) > tokens * FACTS_PER_TOKEN:
        return f"{len(sample.facts)} facts are more than length/8 = {tokens * FACTS_PER_TOKEN:g}"
    fact_tokens = sum(counter([" " + f for f in sample.facts]))
    if fact_tokens > tokens - PROMPT_RESERVE:
        return f"the facts take {fact_tokens} tokens, more than the {tokens - PROMPT_RESERVE}-token context budget"
    return None


def build_sample(sample: BabiSample, length: str | int, split: str = "test", rng: random.Random | None = None,
                 tokenizer: Any = None, facts_within: float = 1.0) -> BabilongSample:
    """Hide one bAbI sample's facts in background text of the split's books.

    ``facts_within`` < 1 (training only) hides the facts among the first that fraction of the background
    sentences, so that the question lies far from them; 1.0 is BABILong's layout (anywhere), which the test uses.
    Raises ValueError if the facts do not fit this length (see ``fits``) or the books are too short.
    """
    tokens = parse_length(length)
    counter = token_counter(tokenizer)
    problem = _misfit(sample, tokens, counter)
    if problem:
        raise ValueError(f"{sample.task} sample does not fit length {length_name(tokens)}: {problem}")
    rng = rng or random.Random(0)
    context = " ".join(piece for piece, _ in _context_pieces(sample, tokens, split, rng, tokenizer, facts_within))
    return BabilongSample(
        task=sample.task, length=length_name(tokens), context=context, question=sample.question,
        target=sample.answer, facts=list(sample.facts), n_tokens=counter([context])[0],
        supporting=list(sample.supporting),
    )


def _context_pieces(sample: BabiSample, tokens: int, split: str, rng: random.Random,
                    tokenizer: Any, facts_within: float = 1.0) -> list[tuple[str, int | None]]:
    """The context's sentences in order, each with its fact index (None for background)."""
    facts = list(sample.facts)
    if tokens == 0:
        return [(f, i) for i, f in enumerate(facts)]
    counter = token_counter(tokenizer)
    budget = context_budget(tokens) - sum(counter([" " + f for f in facts]))
    background = background_sentences(split, budget, rng, tokenizer)
    return _interleave(background, facts, rng, facts_within)


def _interleave(background: list[str], facts: list[str], rng: random.Random,
                facts_within: float = 1.0) -> list[tuple[str, int | None]]:
    """Facts among background sentences (the first ``facts_within`` of them), each sentence with its fact index
    (None for background)."""
    if not 0 < facts_within <= 1:
        raise ValueError(f"facts_within must be in (0, 1], got {facts_within!r}")
    if not background:
        return [(f, i) for i, f in enumerate(facts)]
    # Each fact goes before a background sentence drawn with replacement; sorting keeps the facts' order.
    # With facts_within = 1 the span is the whole background, the draws exactly BABILong's.
    span = max(1, math.ceil(len(background) * facts_within))
    positions = sorted(rng.randrange(span) for _ in facts)
    out, f = [], 0
    for i, sentence in enumerate(background):
        while f < len(facts) and positions[f] == i:
            out.append((facts[f], f))
            f += 1
        out.append((sentence, None))
    return out


def build_samples(task: str, length: str | int, n: int, split: str = "test", seed: int = 0,
                  tokenizer: Any = None, max_tries: int | None = None) -> list[BabilongSample]:
    """``n`` BABILong samples of a task and length, reproducible from (task, length, split, seed).

    The questions are the first bAbI samples of the split's stream (``generate_samples``) whose facts fit the
    length; the rest are skipped (more facts than length/8, or facts longer than the context budget). Raises
    ValueError if fewer than ``n`` fit among ``max_tries`` questions (default 20 n + 1000).
    """
    return list(iter_samples(task, length, n, split, seed, tokenizer, max_tries))


def iter_samples(task: str, length: str | int, n: int, split: str = "test", seed: int = 0,
                 tokenizer: Any = None, max_tries: int | None = None) -> Iterator[BabilongSample]:
    """``build_samples`` one sample at a time (for progress bars); the questions are chosen up front, so
    a length that fits too few of them fails before any background is built."""
    task = check_task(task)
    tokens = parse_length(length)
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"the number of samples must be a non-negative integer, got {n!r}")
    if split not in ("train", "test"):
        raise ValueError(f"unknown split {split!r}: expected 'train' or 'test'")
    chosen = _choose_questions(task, tokens, n, split, seed, token_counter(tokenizer), max_tries or 20 * n + 1000)
    for i, sample in enumerate(chosen):
        rng = random.Random(f"babilong/{task}/{tokens}/{split}/{seed}/{i}")
        yield build_sample(sample, tokens, split, rng, tokenizer)


TRAIN_QUESTION_WINDOW = 20  # questions (several whole stories) that one training draw chooses among


def random_train_sample(task: str, length: str | int, rng: random.Random, tokenizer: Any = None,
                        window: int = TRAIN_QUESTION_WINDOW, facts_within: float = 1.0,
                        drop_words: Sequence[str] = ()) -> BabilongSample:
    """One training sample for ``rng``: a question drawn uniformly from the first ``window`` questions that fit
    ``length`` in a fresh train-split stream, hidden in background text.

    Drawing among whole stories matters: the first question of a bAbI story always follows exactly two
    statements, so taking the first fitting question of each stream (``build_samples(..., 1, ...)``) would train
    on two-fact stories only, while the test samples run through every position of their stories (2-10 facts
    on qa1). ``drop_words`` compacts the statements (``drop_fact_words``); the question is chosen on the full text.
    """
    task = check_task(task)
    tokens = parse_length(length)
    seed = rng.randrange(2**31)
    chosen = _choose_questions(task, tokens, window, "train", seed, token_counter(tokenizer), 20 * window + 1000)
    i = rng.randrange(len(chosen))
    return build_sample(drop_fact_words(chosen[i], drop_words), tokens, "train",
                        random.Random(f"babilong/{task}/{tokens}/train/{seed}/{i}"), tokenizer, facts_within)


def drop_fact_words(sample: BabiSample, words: Sequence[str] = ()) -> BabiSample:
    """``sample`` with the given words removed from its statements (training only; case-sensitive, whole words,
    the final full stop kept): with qa1's verbs, "to" and "the" dropped, "Mary went back to the kitchen." becomes
    "Mary kitchen.", the person right before the room. The question and the answer are left as they are."""
    if not words:
        return sample
    drop = set(words)

    def compact(fact: str) -> str:
        kept = [w for w in fact.rstrip(".").split() if w not in drop]
        if not kept:
            raise ValueError(f"dropping {sorted(drop)} leaves nothing of the statement {fact!r}")
        return " ".join(kept) + "." if fact.endswith(".") else " ".join(kept)

    return dataclasses.replace(sample, facts=[compact(f) for f in sample.facts])


def _choose_questions(task: str, tokens: int, n: int, split: str, seed: int, counter: TokenCounter,
                      max_tries: int) -> list[BabiSample]:
    chosen: list[BabiSample] = []
    pool, seen, last_problem = max(n, 1), 0, None
    while len(chosen) < n and seen < max_tries:
        pool = min(pool, max_tries)
        # generate_samples is prefix-stable, so growing the pool only appends new questions.
        for sample in generate_samples(task, pool, split=split, seed=seed)[seen:]:
            problem = _misfit(sample, tokens, counter)
            if problem is None:
                chosen.append(sample)
                if len(chosen) == n:
                    break
            else:
                last_problem = problem
        seen, pool = pool, pool * 2
    if len(chosen) < n:
        raise ValueError(f"only {len(chosen)} of the first {seen} {task} questions fit length {length_name(tokens)} "
                         f"(e.g. {last_problem}); use a longer length or fewer samples")
    return chosen


def save_jsonl(samples: Sequence[BabilongSample], path: str | os.PathLike) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for s in samples:
            f.write(json.dumps(asdict(s), ensure_ascii=False) + "\n")


def load_jsonl(path: str | os.PathLike) -> list[BabilongSample]:
    names = {f.name for f in fields(BabilongSample)}
    required = {f.name for f in fields(BabilongSample) if f.name != "supporting"}
    out = []
    with open(path, encoding="utf-8") as f:
        for lineno, record in jsonl_records(f, path):
            missing = required - set(record) if isinstance(record, dict) else required
            if missing:
                raise ValueError(f"{path}:{lineno}: a BABILong sample needs the fields {sorted(missing)}")
            out.append(BabilongSample(**{k: v for k, v in record.items() if k in names}))
    return out


# ------------------------------------------------------------------------------------------------ prompts

_FACTS_INTRO = ("The text below is long and mostly unrelated book passages. Hidden among them are short "
                "statements about a few people, places and things.")

INSTRUCTIONS = {
    "qa1": "They tell where people go. Find the most recent statement about the person in the question and "
           "say which room that person is in now.",
    "qa2": "They tell where people go and which objects they pick up or put down. An object is where it was "
           "last put down, or wherever the person carrying it is. Say where the object in the question is.",
    "qa3": "They tell where people go and which objects they pick up or put down. Follow the object in the "
           "question from place to place and say where it was just before it reached the place named.",
    "qa4": "They tell how rooms lie to one another (north, south, east or west). Say which room lies in the "
           "direction the question asks about.",
    "qa5": "They tell where people go and how objects are taken and handed from one person to another. Say "
           "who gave or received the object, or which object was given, as the question asks.",
    "qa6": "They tell where people go and what they carry. Use the most recent statement about the person "
           "in the question to decide whether that person is in the room named.",
    "qa7": "They tell where people go and which objects they take, drop or hand over. Count how many "
           "objects the person in the question is carrying now.",
    "qa8": "They tell where people go and which objects they take, drop or hand over. Name the objects the "
           "person in the question is carrying now.",
    "qa9": "Some say where a person is, others say where a person is not. Use the most recent statement "
           "about the person in the question to decide whether they are in the place named.",
    "qa10": "Some say exactly where a person is, others only that the person is in one of two places. Use "
            "the most recent statement about the person in the question: if it does not settle the matter, "
            "the answer is maybe.",
}

ANSWER_FORMATS = {
    "qa1": "Reply with the room only, in a single word.",
    "qa2": "Reply with the room only, in a single word.",
    "qa3": "Reply with the room only, in a single word.",
    "qa4": "Reply with the room only, in a single word.",
    "qa5": "Reply with one word: a person's name or an object.",
    "qa6": "Reply with yes or no only.",
    "qa7": "Reply with one number word only: none, one, two or three.",
    "qa8": "Reply with the objects separated by commas, or with nothing if the person carries no object.",
    "qa9": "Reply with yes or no only.",
    "qa10": "Reply with yes, no or maybe only.",
}


@functools.lru_cache(maxsize=32)
def default_examples(task: str, k: int = 2) -> tuple[BabilongSample, ...]:
    """``k`` short solved 0k examples from the bAbI train split: the fewest facts first, distinct answers
    preferred, so that examples cost few of the prompt's 300 tokens."""
    task = check_task(task)
    candidates = sorted(generate_samples(task, 60, split="train", seed=0), key=lambda s: len(s.facts))
    picked: list[BabiSample] = []
    for s in candidates:
        if len(picked) < k and all(s.answer != p.answer for p in picked):
            picked.append(s)
    for s in candidates:  # not enough distinct answers: fill up with the next shortest
        if len(picked) < k and s not in picked:
            picked.append(s)
    return tuple(build_sample(s, 0) for s in picked)


def _example_block(example: BabilongSample) -> str:
    return (f"<example>\n<context>\n{example.context}\n</context>\n{QUESTION_PREFIX} {example.question}\n"
            f"{ANSWER_MARKER} {example.target}\n</example>")


def instruction_text(sample: BabilongSample, examples: int | Sequence[BabilongSample] = 2) -> str:
    """The instruction-format prompt as plain text (no chat template): instruction, examples, answer format,
    ``<context>...</context>`` and the question."""
    task = check_task(sample.task)
    if isinstance(examples, int):
        examples = default_examples(task, examples) if examples > 0 else ()
    parts = [f"{_FACTS_INTRO} {INSTRUCTIONS[task]}"]
    if examples:
        parts.append("Solved examples:\n" + "\n".join(_example_block(e) for e in examples))
    parts.append(ANSWER_FORMATS[task])
    parts.append(f"<context>\n{sample.context}\n</context>")
    parts.append(f"{QUESTION_PREFIX} {sample.question}")
    return "\n\n".join(parts)


def instruction_prompt(sample: BabilongSample, tokenizer: Any = None,
                       examples: int | Sequence[BabilongSample] = 2) -> str:
    """The prompt for an instruction-tuned model: through the tokenizer's chat template when it has one
    (one user turn, generation prompt added), else the plain text followed by a line with ``ANSWER_MARKER``."""
    text = instruction_text(sample, examples)
    if tokenizer is not None and getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                             add_generation_prompt=True)
    return f"{text}\n{ANSWER_MARKER}"


def finetune_prompt(sample: BabilongSample) -> str:
    """The fine-tuning text up to and including the answer marker: what a trained model continues."""
    return f"{sample.context}\n{QUESTION_PREFIX} {sample.question}\n{ANSWER_MARKER}"


def finetune_example(sample: BabilongSample, tokenizer: Any, add_bos: bool = False) -> tuple[list[int], list[int]]:
    """(input_ids, labels) for answer-only fine-tuning: ``finetune_prompt`` + " " + answer + eos.

    Labels are -100 on the prompt and equal the ids on the answer tokens and the eos, so the loss covers
    exactly the answer and the end of text. Prompt and answer are tokenized separately, so the boundary is
    exact whatever the tokenizer merges.
    """
    eos = tokenizer.eos_token_id
    if eos is None:
        raise ValueError("the tokenizer has no eos token; the fine-tuning format ends every answer with one")
    prompt = list(tokenizer(finetune_prompt(sample), add_special_tokens=False)["input_ids"])
    if add_bos:
        if tokenizer.bos_token_id is None:
            raise ValueError("add_bos=True but the tokenizer has no bos token")
        prompt = [tokenizer.bos_token_id, *prompt]
    answer = [*tokenizer(" " + sample.target, add_special_tokens=False)["input_ids"], eos]
    return prompt + answer, [-100] * len(prompt) + answer


def fact_spans(text: str, facts: Sequence[str]) -> list[tuple[int, int] | None]:
    """The character span (begin, end) of each fact in ``text``, searched in order so that a repeated statement is
    found at its own place, not at its first copy; None for a fact that is not there (the search goes on after the
    last fact found)."""
    spans, cursor = [], 0
    for fact in facts:
        at = text.find(fact, cursor)
        spans.append(None if at < 0 else (at, at + len(fact)))
        cursor = cursor if at < 0 else at + len(fact)
    return spans


def qa1_places(facts: Sequence[str]) -> dict[str, tuple[str, int]]:
    """{person: (room, index of the fact)} of each person's last move in qa1 facts
    ("<person> <verb ...> the <room>.")."""
    last: dict[str, tuple[str, int]] = {}
    for i, fact in enumerate(facts):
        words = fact.rstrip(".").split()
        last[words[0]] = (words[-1], i)
    return last


def _everyone(sample: BabiSample, rng: random.Random) -> list[BabiSample]:
    """Every question the sample's statements answer where it is asked (``every_question``), shuffled."""
    asked = every_question(sample)
    rng.shuffle(asked)
    return asked


class NoQuestionFits(ValueError):
    """A story none of whose questions fits the length (even the first one's statements exceed its budget)."""


def story_finetune_example(story: Story, length: str | int, split: str, rng: random.Random, tokenizer: Any,
                           fact_loss: bool = False, ask_everyone: bool = False,
                           drop_words: Sequence[str] = (), bare_questions: bool = False,
                           answer_steps: Sequence[str] = (), one_point: str | None = None,
                           ask_at_end: bool = False) -> tuple[list[int], list[int]]:
    """(input_ids, labels) that supervise every question of a bAbI story in one sequence (training only).

    The story's statements are hidden in background text as ``build_sample`` hides one sample's facts (the same
    budget for this length), and each question, with its answer marker, answer and eos, follows the last statement
    it may use; the loss covers every answer and eos. A story with five questions gives five supervised answers
    for the context of one, and its last question is laid out as an evaluation prompt is. Questions whose facts do
    not fit the length (``fits``) are dropped from the end of the story. With ``fact_loss`` the statements and the
    questions are language-modelled too (the background never is), ten times the supervised tokens; measured on
    qa1 it made the tiny model give one room to every question (RESULTS.md 1c), so it is off by default.
    With ``ask_everyone`` (qa1-qa5) each question point asks every question its statements answer, in random order
    (``every_question``: in qa1 where every person placed so far is, in qa2 every placed object, in qa5 the latest
    give in all five forms), instead of one: more answers per story, and in qa1, where the person of the last
    statement is the answer of 45% of bAbI's own questions, "the last room mentioned" no longer pays.
    ``drop_words`` compacts every statement (``drop_fact_words``). ``bare_questions`` asks without the prompt's
    markers and with the question's words less ``drop_words`` and "?", the answer right after: "\nMary kitchen"
    (with "Where" and "is" dropped), the layout in which a tiny model first learns to look a person up.
    The answers of the tasks in ``answer_steps`` (qa2, qa3) are written after the person their first hop finds,
    "Mary kitchen" (``with_step``), and supervised whole.
    ``one_point`` keeps the questions of one question point only (with ``ask_everyone``, all of them), "last": the
    story's last point, "random": a point drawn uniformly, the story cut there (its statements up to that point
    spread over the whole length, as an evaluation sample of that question is). With every point kept, an earlier
    answer ("Where is Mary? / Answer: kitchen") restates a fact close to the later questions, which can copy it
    within attention's reach instead of recalling the statement; with one point, every answer comes from the
    statements, as in evaluation, where the context holds statements only. "last" draws nothing: the other random
    draws are the same as with every point kept. ``ask_at_end`` (with ``one_point``) asks that point's questions
    after the whole context, background included, as an evaluation prompt does, instead of right after the
    point's last statement: the statement a question needs may then lie far back even when it was the story's last.
    """
    eos = tokenizer.eos_token_id
    if eos is None:
        raise ValueError("the tokenizer has no eos token; the fine-tuning format ends every answer with one")
    questions = [s for s in story_samples(story) if fits(s, length, None)]
    if not questions:
        raise NoQuestionFits(f"no question of this {story.task} story fits length {length_name(length)}")
    if ask_everyone:  # worked out from the full statements, before any words are dropped
        questions = [asked for q in questions for asked in _everyone(q, rng)]
    steps = {check_task(task) for task in answer_steps}
    questions = [with_step(q) if q.task in steps else q for q in questions]  # from the full statements
    questions = [drop_fact_words(q, drop_words) for q in questions]
    if ask_at_end and one_point is None:
        raise ValueError("ask_at_end needs one_point: the questions of every point cannot all come at the end")
    if one_point is not None:
        points = sorted({len(q.facts) for q in questions})
        if one_point not in ("last", "random"):
            raise ValueError(f"one_point={one_point!r}: expected 'last', 'random' or None")
        point = points[-1] if one_point == "last" else rng.choice(points)
        questions = [q for q in questions if len(q.facts) == point]
    asked_after: dict[int, list[BabiSample]] = {}  # fact index -> the questions right after that fact
    for q in questions:
        asked_after.setdefault(len(q.facts) - 1, []).append(q)
    ids: list[int] = []
    labels: list[int] = []

    def add(text: str, supervised: bool) -> None:
        piece = list(tokenizer(text, add_special_tokens=False)["input_ids"])
        ids.extend(piece)
        labels.extend(piece if supervised else [-100] * len(piece))

    def ask(q: BabiSample) -> None:
        if bare_questions:
            add("\n" + " ".join(w for w in q.question.rstrip("?").split() if w not in drop_words), fact_loss)
        else:
            add(f"\n{QUESTION_PREFIX} {q.question}", fact_loss)
            add(f"\n{ANSWER_MARKER}", False)
        add(" " + q.answer, True)
        ids.append(eos)
        labels.append(eos)

    # Pieces are tokenized one by one (with the leading space they have in the context), so the label of every
    # token is exact whatever the tokenizer merges.
    first = True
    for piece, fact in _context_pieces(questions[-1], parse_length(length), split, rng, None):
        add(piece if first else " " + piece, fact_loss and fact is not None)
        first = False
        if ask_at_end or fact is None:
            continue
        for q in asked_after.get(fact, []):
            ask(q)
            first = True
    if ask_at_end:
        for q in questions:
            ask(q)
    return ids, labels
