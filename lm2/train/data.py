"""Training data: the tokenizer, BABILong fine-tuning batches generated on the fly, packed pretraining blocks.

Determinism is what makes resume exact and distributed runs equal to one process: every BABILong sample is a
pure function of (seed, optimizer step, its index in the global batch), and pretraining blocks are read in a
fixed order from a global block index. Process r of N takes the indices [r B/N, (r+1) B/N) of each global
batch of B sequences (then cuts them into micro-batches for accumulation), so the N processes together see
exactly the batch that one process would.
"""

from __future__ import annotations

import functools
import os
import random
import shutil
from collections.abc import Iterator
from pathlib import Path

import torch
from tqdm import tqdm

from lm2.data import babi, babilong
from lm2.data.babi import generate_stories
from lm2.data.babilong import (
    NoQuestionFits,
    build_samples,
    finetune_example,
    parse_length,
    random_train_sample,
    story_finetune_example,
)
from lm2.data.babilong_release import open_release
from lm2.data.corpora import TokenBlocks, background_books
from lm2.data.recall import RecallSpec, build_tokenizer, encode, make_sample, make_samples, stage_spec
from lm2.data.tokenizers import load_tokenizer, train_bpe_tokenizer
from lm2.train.config import TrainConfig, task_weights
from lm2.wheels import cache_dir

# ----------------------------------------------------------------------------- tokenizer


def tokenizer_cache_dir() -> Path:
    return cache_dir() / "tokenizers"


def _bpe_training_texts(book_chars: int = 400_000, babi_samples: int = 400) -> Iterator[str]:
    """The TRAIN books (their first ``book_chars`` characters: enough for a 1-4k vocabulary, and quick) and
    short stories of every bAbI task laid out as fine-tuning prompts, so that names, rooms and the prompt's
    markers ("Question:", "Answer:") get their own tokens."""
    for book in background_books("train"):
        yield book.text[:book_chars]
    for task in babi.TASKS:
        for s in babilong.build_samples(task, "0k", babi_samples, split="train", seed=1):
            yield f"{babilong.finetune_prompt(s)} {s.target}"


def get_tokenizer(spec: str):
    """``bpe:<vocab>``: a byte-level BPE trained once on the books + bAbI text and cached (trained into a
    temporary folder and renamed, so concurrent processes never read a half-written one); anything else goes
    to ``lm2.data.tokenizers.load_tokenizer`` ("gpt2", "smollm2", a folder)."""
    if not spec.startswith("bpe:"):
        return load_tokenizer(spec)
    try:
        vocab = int(spec[4:])
    except ValueError:
        raise ValueError(f"config field data.tokenizer={spec!r} is invalid: write bpe:<vocab size>, "
                         "e.g. bpe:1024") from None
    # "prompt": trained on the prompt layout (before, the markers were spelt letter by letter, "Q" "u" "est" "ion"):
    # a new name, so that a tokenizer cached by an older lm2 is not taken for this one.
    folder = tokenizer_cache_dir() / f"books-babi-prompt-bpe-{vocab}"
    if not (folder / "tokenizer.json").exists():
        tmp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}")
        train_bpe_tokenizer(_bpe_training_texts(), vocab, out_dir=tmp)
        try:
            os.replace(tmp, folder)
        except OSError:  # another process got there first
            shutil.rmtree(tmp, ignore_errors=True)
    return load_tokenizer(folder)


def task_tokenizer(cfg: TrainConfig):
    """The tokenizer a run trains with: the recall diagnostic's word-level one, or ``data.tokenizer``."""
    if cfg.data.task == "recall":
        return build_tokenizer(RecallSpec(**cfg.data.recall))
    return get_tokenizer(cfg.data.tokenizer)


def pad_id(tokenizer) -> int:
    value = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return int(value if value is not None else 0)


# ----------------------------------------------------------------------------- batches


def collate(examples: list[tuple[list[int], list[int]]], pad: int) -> dict[str, torch.Tensor]:
    """Right-pad (input_ids, labels) pairs to the longest: padding is masked out of attention and memory writes
    (attention_mask 0) and out of the loss (label -100). Right padding keeps every sequence starting at
    position 0, so memory update boundaries fall where they would without padding."""
    longest = max(len(ids) for ids, _ in examples)
    input_ids = torch.full((len(examples), longest), pad, dtype=torch.long)
    labels = torch.full((len(examples), longest), -100, dtype=torch.long)
    mask = torch.zeros((len(examples), longest), dtype=torch.long)
    for row, (ids, lab) in enumerate(examples):
        input_ids[row, : len(ids)] = torch.as_tensor(ids)
        labels[row, : len(lab)] = torch.as_tensor(lab)
        mask[row, : len(ids)] = 1
    return {"input_ids": input_ids, "attention_mask": mask, "labels": labels}


def rank_indices(batch_size: int, rank: int, world_size: int, micro: int) -> list[list[int]]:
    """This process's share of a global batch, as micro-batches of global sample indices."""
    per_rank = batch_size // world_size
    mine = list(range(rank * per_rank, (rank + 1) * per_rank))
    return [mine[i : i + micro] for i in range(0, per_rank, micro)]


STORY_DRAWS = 100  # stories drawn for one training sample before a length is called too short for the task


class BabilongStream:
    """BABILong fine-tuning examples, a pure function of (seed, step, index): nothing to save but the step."""

    def __init__(self, cfg: TrainConfig, tokenizer, rank: int = 0, world_size: int = 1, micro: int | None = None):
        self.cfg, self.tokenizer = cfg, tokenizer
        self.rank, self.world_size = rank, world_size
        self.micro = micro or cfg.train.batch_size // world_size
        self.pad = pad_id(tokenizer)
        self.release = None  # the official training data, when data.babilong_path names a local copy
        self.task_weights = task_weights(cfg.data) if cfg.data.task == "babilong" else None
        if cfg.data.task == "babilong" and cfg.data.babilong_path is not None:
            self.release = open_release(cfg.data.babilong_path, what="config field data.babilong_path")

    def example(self, step: int, index: int) -> tuple[list[int], list[int]]:
        rng = random.Random(f"babilong/{self.cfg.train.seed}/{step}/{index}")
        _, stage = self.cfg.stage_at(step)
        if self.task_weights is None:  # uniform: the draw every run made before data.task_weights existed
            task = rng.choice(self.cfg.data.babi_tasks)
        else:
            task = rng.choices(self.cfg.data.babi_tasks, weights=self.task_weights)[0]
        length = rng.choice(stage["lengths"])  # drawn either way, so that the sample's other draws stay the same
        if stage.get("length_per_step"):  # the whole batch, on every process, at one length: no padding to a longer
            length = random.Random(f"babilong/{self.cfg.train.seed}/{step}/length").choice(stage["lengths"])
        # a stage's compact layout, for all its samples or (compact_share) a share of them, drawn per sample
        compact = "compact_share" not in stage or rng.random() < stage["compact_share"]
        drop = stage.get("drop_words", ()) if compact else ()
        if self.cfg.data.supervise == "story":
            # the answers written with their step in all the stage's stories or (step_share) a share, drawn per story
            with_steps = "step_share" not in stage or rng.random() < stage["step_share"]
            # one question point per story at this stage's one_point_at lengths (asked at the end with ask_at_end)
            one = parse_length(length) in {parse_length(n) for n in stage.get("one_point_at", ())}
            one_point = stage.get("one_point", "random") if one else None
            ask_at_end = one and stage.get("ask_at_end", False)
            # a story none of whose questions fits the length is drawn again (about one qa3 story in 5,000 at 1k,
            # more than half at 400 tokens); a story that fits is the first one drawn, as before this redraw existed
            for _ in range(STORY_DRAWS):
                story = generate_stories(task, 1, split="train", seed=rng.randrange(2**31))[0]
                try:
                    return story_finetune_example(story, length, "train", rng, self.tokenizer,
                                                  self.cfg.data.fact_loss, self.cfg.data.ask_everyone, drop,
                                                  compact and stage.get("bare_questions", False),
                                                  answer_steps=self.cfg.data.answer_steps if with_steps else (),
                                                  one_point=one_point, ask_at_end=ask_at_end)
                except NoQuestionFits:
                    continue
            raise ValueError(f"none of {STORY_DRAWS} {task} stories drawn has a question that fits length {length}: "
                             f"train {task} at a longer length (data.curriculum)")
        if self.cfg.data.babilong_path is not None:
            sample = self.release.random_sample(task, length, rng)
        else:
            sample = random_train_sample(task, length, rng, facts_within=self.cfg.data.facts_within,
                                         drop_words=drop)
        ids, labels = finetune_example(sample, self.tokenizer)
        return list(ids), list(labels)

    def micro_batches(self, step: int) -> list[dict[str, torch.Tensor]]:
        return [collate([self.example(step, i) for i in idx], self.pad)
                for idx in rank_indices(self.cfg.train.batch_size, self.rank, self.world_size, self.micro)]

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class RecallStream(BabilongStream):
    """Recall diagnostic samples, a pure function of (seed, step, index) like BABILong's."""

    def __init__(self, cfg: TrainConfig, tokenizer, rank: int = 0, world_size: int = 1, micro: int | None = None):
        super().__init__(cfg, tokenizer, rank, world_size, micro)
        self.spec = RecallSpec(**cfg.data.recall)
        self.stage_specs = [stage_spec(self.spec, stage) for stage in cfg.data.curriculum]  # once, not per sample

    def example(self, step: int, index: int) -> tuple[list[int], list[int]]:
        rng = random.Random(f"recall/{self.cfg.train.seed}/{step}/{index}")
        number, stage = self.cfg.stage_at(step)
        distractors = rng.choice(stage["distractors"])
        return encode(make_sample(self.stage_specs[number], distractors, rng), self.tokenizer)


class TokenBlockStream:
    """Packed pretraining blocks; global block index = step * batch_size + position in the global batch."""

    def __init__(self, cfg: TrainConfig, tokenizer, rank: int = 0, world_size: int = 1, micro: int | None = None,
                 start_step: int = 0):
        self.cfg, self.tokenizer = cfg, tokenizer
        self.rank, self.world_size = rank, world_size
        self.micro = micro or cfg.train.batch_size // world_size
        self._restart(start_step)

    def _restart(self, step: int) -> None:
        self.next_step = step
        # TokenBlocks deals global blocks round-robin over ranks; blocks [s B, (s+1) B) are step s's batch.
        self.blocks = iter(TokenBlocks(self.cfg.data.source, self.tokenizer, self.cfg.data.block_size,
                                       start_block=step * self.cfg.train.batch_size, rank=self.rank,
                                       world_size=self.world_size))

    def micro_batches(self, step: int) -> list[dict[str, torch.Tensor]]:
        if step != self.next_step:
            self._restart(step)
        per_rank = self.cfg.train.batch_size // self.world_size
        try:
            blocks = [next(self.blocks) for _ in range(per_rank)]
        except StopIteration:
            raise ValueError(f"data.source={self.cfg.data.source!r} ran out of text at step {step}: use fewer "
                             f"train.steps or a smaller batch") from None
        self.next_step = step + 1
        out = []
        for i in range(0, per_rank, self.micro):
            ids = torch.stack(blocks[i : i + self.micro])
            out.append({"input_ids": ids, "attention_mask": None, "labels": ids.clone()})
        return out

    def state_dict(self) -> dict:
        return {"next_step": self.next_step}

    def load_state_dict(self, state: dict) -> None:
        self._restart(int(state["next_step"]))


def make_stream(cfg: TrainConfig, tokenizer, rank: int, world_size: int, micro: int, start_step: int = 0):
    if cfg.data.task == "babilong":
        return BabilongStream(cfg, tokenizer, rank, world_size, micro)
    if cfg.data.task == "recall":
        return RecallStream(cfg, tokenizer, rank, world_size, micro)
    return TokenBlockStream(cfg, tokenizer, rank, world_size, micro, start_step)


def batch_tokens(batch: dict[str, torch.Tensor]) -> int:
    """The tokens a batch trains on: padding (attention_mask 0) not counted."""
    mask = batch.get("attention_mask")
    return batch["input_ids"].numel() if mask is None else int(mask.sum())


def budget_tokens(cfg: TrainConfig, tokenizer, progress: bool = False) -> int:
    """The tokens a config trains on up to its ``last_step()`` (padding not counted), read from the same
    deterministic stream as training without building the model: ``lm2 train CONFIG --count-tokens``."""
    stream = make_stream(cfg, tokenizer, 0, 1, cfg.train.batch_size)
    return sum(batch_tokens(batch) for step in tqdm(range(cfg.last_step()), desc="counting", unit="step",
                                                    disable=not progress)
               for batch in stream.micro_batches(step))


# ----------------------------------------------------------------------------- held-out data


# Validation samples for BABILong: the TRAIN split with a seed that training never draws (training seeds are
# below 2**31, see lm2.data.babilong.random_train_sample), so that choosing the best checkpoint never looks at
# the test split, which `lm2 eval babilong` scores.
BABILONG_VALIDATION_SEED = 2**31 + 12345


@functools.lru_cache(maxsize=64)
def babilong_validation_samples(task: str, length: str, n: int, seed: int = BABILONG_VALIDATION_SEED) -> tuple:
    return tuple(build_samples(task, length, n, split="train", seed=seed))


# Validation samples of the recall diagnostic: a seed that neither training (string seeds) nor the test
# (lm2.data.recall.TEST_SEED) uses, so that choosing the best checkpoint never looks at test data.
RECALL_VALIDATION_SEED = 2**40 + 3


def eval_lengths(cfg: TrainConfig) -> list:
    """BABILong lengths, or numbers of distractor segments for the recall diagnostic, to evaluate at."""
    if cfg.eval.lengths:
        return list(cfg.eval.lengths)
    key = "distractors" if cfg.data.task == "recall" else "lengths"
    seen: list = []
    for stage in cfg.data.curriculum:
        seen += [length for length in stage[key] if length not in seen]
    return seen


def recall_validation_samples(cfg: TrainConfig, distractors: int, n: int) -> list:
    return make_samples(RecallSpec(**cfg.data.recall), distractors, n, seed=RECALL_VALIDATION_SEED)


def validation_batches(cfg: TrainConfig, tokenizer, micro: int) -> list[dict[str, torch.Tensor]]:
    """Held-out batches for the validation loss: BABILong test samples (answer-only loss) at the eval lengths,
    or the first blocks of ``data.val_source``. ``eval.val_batches`` counts global batches (``train.batch_size``
    sequences each), so the held-out set does not change with ``train.micro_batch_size`` or the number of
    processes; ``micro`` only sets how many sequences go through the model at once."""
    n = cfg.eval.val_batches * cfg.train.batch_size
    if n == 0:
        return []
    if cfg.data.task == "recall":
        lengths = eval_lengths(cfg)
        per = -(-n // len(lengths))
        examples = [encode(s, tokenizer) for d in lengths for s in recall_validation_samples(cfg, d, per)]
        return [collate(examples[i : i + micro], pad_id(tokenizer)) for i in range(0, len(examples), micro)]
    if cfg.data.task == "babilong":
        examples = []
        lengths, tasks = eval_lengths(cfg), cfg.data.babi_tasks
        per = -(-n // (len(lengths) * len(tasks)))
        for task in tasks:
            for length in lengths:
                for s in babilong_validation_samples(task, length, max(per, cfg.eval.samples))[:per]:
                    ids, labels = finetune_example(s, tokenizer)
                    examples.append((list(ids), list(labels)))
        return [collate(examples[i : i + micro], pad_id(tokenizer)) for i in range(0, len(examples), micro)]
    blocks = []
    for block in TokenBlocks(cfg.data.val_source, tokenizer, cfg.data.block_size):
        blocks.append(block)
        if len(blocks) == n:
            break
    return [{"input_ids": torch.stack(blocks[i : i + micro]), "attention_mask": None,
             "labels": torch.stack(blocks[i : i + micro])} for i in range(0, len(blocks), micro)]
