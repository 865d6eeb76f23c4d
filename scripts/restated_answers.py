"""Does a qa1 training story at 1k need the memory? How far back lies what each supervised answer needs.

With ``data.supervise: story`` every question of a story is answered where it is asked, and with
``data.ask_everyone`` every question point asks where each person placed so far is. An earlier answer ("Where is
Mary? / Answer: kitchen") then restates a fact close to the later questions about the same person: a later answer
can copy it within attention's reach even when the statement itself lies far back. Evaluation contexts hold
statements only, so there the far statement has to come through the memory.

For N generated qa1 training stories laid out as the demo's last 1k stage lays them out (BABILong's text), this
counts the supervised answers whose fact ends more than --reach tokens before the question (the reach of stacked
attention windows), and those for which also every earlier answer about the same person is that far back: the
answers that only a carried memory can give. Printed for the full story and for one question point per story (a
curriculum stage's ``one_point_at``, with ``one_point`` last or random: no earlier answer about the same person
exists). Nothing here runs a model.

    python scripts/restated_answers.py --n 150 --length 1k --reach 512
"""

from __future__ import annotations

import argparse
import random
import re

from lm2.data.babi import generate_stories
from lm2.data.babilong import story_finetune_example
from lm2.train.data import get_tokenizer

MOVE = r"{who} (?:went|moved|journeyed|travelled)(?: back)? to the \w+\."


def _tokens(tokenizer, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def reach_counts(n: int, length: str, reach: int, one_point: str | None, tokenizer, seed: int = 0) -> tuple:
    """(answers, answers whose fact is > reach tokens back, answers for which the fact and every earlier answer
    about the same person are > reach tokens back) over n stories drawn from ``seed``."""
    answers = far_fact = only_memory = 0
    for i in range(n):
        rng = random.Random(f"restated/{seed}/{i}")
        story = generate_stories("qa1", 1, split="train", seed=rng.randrange(2**31))[0]
        ids, _ = story_finetune_example(story, length, "train", rng, tokenizer, ask_everyone=True,
                                        one_point=one_point)
        text = tokenizer.decode(ids)

        for m in re.finditer(r"Where is (\w+)\?\nAnswer: (\w+)", text):
            who, room, asked = m.group(1), m.group(2), m.start()
            fact = [f.end() for f in re.finditer(MOVE.format(who=who), text[:asked])][-1]
            earlier = [a.end() for a in re.finditer(rf"Where is {who}\?\nAnswer: {room}\b", text[:asked])]
            answers += 1
            far_fact += _tokens(tokenizer, text[fact:asked]) > reach
            only_memory += _tokens(tokenizer, text[max([fact, *earlier]):asked]) > reach
    return answers, far_fact, only_memory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=150, help="stories")
    parser.add_argument("--length", default="1k")
    parser.add_argument("--reach", type=int, default=512, help="tokens attention reaches back (window x blocks)")
    parser.add_argument("--tokenizer", default="bpe:1024", help="as data.tokenizer (the demo's: bpe:1024)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    tokenizer = get_tokenizer(args.tokenizer)
    print(f"qa1 training stories at {args.length} (ask_everyone, BABILong's text), {args.n} stories, seed {args.seed}; "
          f"tokens counted with {args.tokenizer}")
    print(f"| questions kept | answers | fact > {args.reach} back | fact and every earlier answer about the "
          f"person > {args.reach} back |")
    print("|---|---:|---:|---:|")
    for one_point in (None, "last", "random"):
        a, f, m = reach_counts(args.n, args.length, args.reach, one_point, tokenizer, args.seed)
        kept = f"one point's ({one_point})" if one_point else "every point's"
        print(f"| {kept} | {a} | {f} ({100 * f / a:.1f}%) | {m} ({100 * m / a:.1f}%) |")


if __name__ == "__main__":
    main()
