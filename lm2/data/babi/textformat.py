"""The bAbI text format: reading (real v1.2 files included) and writing stories.

Real bAbI files load with `read_babi`, so everything downstream works on the published data too.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

from lm2.data.babi.common import TASKS, BabiLine, Story, check_task


def format_babi(stories: Iterable[Story]) -> str:
    """Stories in the bAbI text format (what `write_babi` writes)."""
    out = []
    for story in stories:
        task = check_task(story.task)
        # Real files keep a space before the tab after a question, except qa4's.
        gap = "" if task == "qa4" else " "
        for position, line in enumerate(story.lines, 1):
            if line.id != position:
                raise ValueError(f"{task} story: line ids must count 1, 2, 3, ...; found {line.id} at {position}")
            if "\t" in line.text or "\n" in line.text:
                raise ValueError(f"{task} line {line.id}: text may not contain tabs or newlines: {line.text!r}")
            if line.answer is None:
                out.append(f"{line.id} {line.text}\n")
            else:
                support = " ".join(str(i) for i in line.supporting)
                out.append(f"{line.id} {line.text}{gap}\t{line.answer}\t{support}\n")
    return "".join(out)


def write_babi(stories: Iterable[Story], path_or_file: str | os.PathLike | TextIO) -> None:
    """Write stories in the bAbI text format to a path or an open text file."""
    text = format_babi(stories)
    if hasattr(path_or_file, "write"):
        path_or_file.write(text)
    else:
        Path(path_or_file).write_text(text, encoding="utf-8")


_LINE = re.compile(r"(\d+) (.+)")


def read_babi(path_or_text: str | os.PathLike | TextIO, task: str | None = None) -> list[Story]:
    """Read stories in the bAbI text format (real v1.2 files included) from a path, an open file or text.

    `task` defaults to the "qaN_" prefix of the file name, or else is told from the questions.
    A malformed line raises ValueError naming the file and the line number.
    """
    name, text = _load(path_or_text)
    stories: list[Story] = []
    lines: list[BabiLine] = []
    for number, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue

        def bad(why: str) -> ValueError:
            return ValueError(f"{name}, line {number}: {why}: {raw!r}")  # noqa: B023  (called in this iteration only)

        match = _LINE.fullmatch(raw.rstrip("\r"))
        if not match:
            raise bad("expected 'N sentence' (an id, a space, then the text)")
        line_id, body = int(match[1]), match[2]
        if line_id == 1:
            lines = []
            stories.append(Story("", lines))
        elif not stories or line_id != len(lines) + 1:
            raise bad(f"ids must restart at 1 for each story and count up by one; expected {len(lines) + 1}")
        if "\t" not in body:
            lines.append(BabiLine(line_id, body.strip()))
            continue
        parts = body.split("\t")
        if len(parts) != 3:
            raise bad("a question line needs 'question<TAB>answer<TAB>supporting ids'")
        question, answer, support = parts[0].strip(), parts[1].strip(), parts[2].split()
        if not question or not answer:
            raise bad("a question line needs a question and an answer")
        if not all(s.isdigit() for s in support):
            raise bad("supporting ids must be whole numbers separated by spaces")
        lines.append(BabiLine(line_id, question, answer, [int(s) for s in support]))
    if task is None:
        task = _task_from_name(name) or _task_from_content(stories, name)
    task = check_task(task)
    for story in stories:
        story.task = task
    return stories


def _load(source) -> tuple[str, str]:
    """(name for messages, text) of a path, an open file or a bAbI text."""
    if hasattr(source, "read"):
        return getattr(source, "name", "<file>"), source.read()
    if isinstance(source, os.PathLike):
        return str(source), Path(source).read_text(encoding="utf-8")
    if not isinstance(source, str):
        raise ValueError(f"read_babi takes a path, an open file or bAbI text, got {type(source).__name__}")
    # Text has a newline or starts like a bAbI line ("1 Mary ..."); anything else is a path.
    if "\n" in source or _LINE.match(source):
        return "<text>", source
    return source, Path(source).read_text(encoding="utf-8")


def _task_from_name(name: str) -> str | None:
    match = re.match(r"qa(\d+)_", os.path.basename(name))
    return f"qa{int(match[1])}" if match and f"qa{int(match[1])}" in TASKS else None


def _task_from_content(stories: list[Story], name: str) -> str:
    """Tell the task from its question forms (and, for the three yes/no tasks, from its statements)."""
    questions = [ln.text for s in stories for ln in s.lines if ln.answer is not None]
    statements = [ln.text for s in stories for ln in s.lines if ln.answer is None]
    answers = {ln.answer for s in stories for ln in s.lines if ln.answer is not None}
    rules = (
        ("qa7", r"How many objects is \w+ carrying\?"),
        ("qa8", r"What is [A-Z]\w* carrying\?"),
        ("qa3", r"Where was the \w+ before the \w+\?"),
        ("qa2", r"Where is the \w+\?"),
        ("qa1", r"Where is [A-Z]\w*\?"),
        ("qa4", r"What is (the \w+ \w+ of|\w+ of the \w+)\?"),
        ("qa5", r"(What did|Who gave|Who received|Who did) .*\?"),
    )
    for task, pattern in rules:
        if questions and all(re.fullmatch(pattern, q) for q in questions):
            return task
    if questions and all(re.fullmatch(r"Is \w+ in the \w+\?", q) for q in questions):
        if "maybe" in answers or any(" is either in the " in s for s in statements):
            return "qa10"
        if any(re.fullmatch(r"\w+ is (not |no longer )?in the \w+\.", s) for s in statements):
            return "qa9"
        return "qa6"
    raise ValueError(f"{name}: cannot tell which bAbI task this is from its questions; pass task='qaN'")
