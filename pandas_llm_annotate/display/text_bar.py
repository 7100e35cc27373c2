"""The text view: a tqdm bar on stderr, for terminals."""

from __future__ import annotations

import sys
from typing import Any

from .snapshot import Snapshot, batches_text, final_line, summary


class TextView:
    """A tqdm bar on stderr; the final line stays."""

    def __init__(self, total: int, file: Any = None) -> None:
        from tqdm.std import tqdm

        self.file = file if file is not None else sys.stderr
        self.bar = tqdm(total=total, unit="row", desc="annotate", file=self.file, leave=True,
                        dynamic_ncols=True, mininterval=0, miniters=0,
                        bar_format="{desc} {percentage:3.0f}%|{bar}| {postfix}")

    def draw(self, s: Snapshot) -> None:
        self.bar.n = s.done
        self.bar.set_postfix_str(" · ".join(filter(None, (summary(s), batches_text(s)))),
                                 refresh=False)
        self.bar.refresh()

    def close(self, s: Snapshot) -> None:
        self.draw(s)
        self.bar.close()
        print(final_line(s), file=self.file, flush=True)
