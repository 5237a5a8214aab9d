"""The text of a preview's comment on a pull or merge request: one per target, found again by a
hidden marker, and kept within the Git host's size limit.

Pure: the target, the run's summary, its per-object diffs and the run page's link in; the
comment's Markdown out.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from typing import Final

from hooksync.diffs import ObjectDiff
from hooksync.providers import Provider

# Characters a comment body may hold on each host. GitHub answers 422 above 65,536; a GitLab
# note holds 1,000,000. Gitea documents no limit for comment bodies (the column is unbounded
# text), so it gets GitHub's, which keeps a comment readable in any case.
LIMITS: Final[dict[Provider, int]] = {"github": 65_536, "gitlab": 1_000_000, "gitea": 65_536}

_WORDS: Final = {"create": "would create", "change": "would change", "prune": "would prune"}
_MARKER_PREFIX: Final = "<!-- hooksync-preview target="
_BACKTICKS = re.compile(r"`+")


def marker(target: str) -> str:
    """The hidden first line that names the comment's target; it is how the comment is found
    again on the next head (target names are DNS labels, so they cannot end the HTML comment)."""
    return f"{_MARKER_PREFIX}{target} -->"


def is_marked(body: str, target: str) -> bool:
    """Whether a comment `body` is this target's preview comment."""
    return body.split("\n", 1)[0].strip() == marker(target)


def fence_for(text: str) -> str:
    """A backtick fence longer than any run of backticks in `text`, so the text cannot close
    the code block it is shown in (at least three, as Markdown needs)."""
    longest = max((len(run) for run in _BACKTICKS.findall(text)), default=0)
    return "`" * max(3, longest + 1)


def object_block(diff: ObjectDiff) -> str:
    """One object's collapsible section: what would happen to it, and its diff."""
    title = f"<code>{html.escape(diff.object)}</code> {_WORDS.get(diff.would, diff.would)}"
    if not diff.text:
        return f"<details><summary>{title}</summary>\n\n(no diff to show)\n\n</details>\n"
    body = diff.text if diff.text.endswith("\n") else diff.text + "\n"
    fence = fence_for(body)
    return f"<details><summary>{title}</summary>\n\n{fence}diff\n{body}{fence}\n\n</details>\n"


def comment_text(
    target: str,
    sha: str,
    summary: str,
    diffs: Sequence[ObjectDiff],
    run_url: str | None,
    limit: int,
) -> str:
    """The whole comment, within `limit` characters.

    Objects that would not change are counted, not shown. When the sections do not all fit,
    whole sections are left out from the end and the comment says how many, pointing to the
    run page, which shows them all.
    """
    shown = [d for d in diffs if d.would != "unchanged"]
    unchanged = len(diffs) - len(shown)
    head = [
        marker(target),
        f"**hooksync preview** of `{sha[:7]}` for target `{target}`: {summary}",
    ]
    if unchanged:
        head.append(f"{unchanged} unchanged object{'s' if unchanged != 1 else ''} not shown.")
    if not diffs:
        head.append("The preview logged no per-object changes.")
    link = f"[Run page]({run_url})" if run_url else ""
    head_text = "\n\n".join(head) + "\n\n"
    tail = f"{link}\n" if link else ""
    blocks = [object_block(d) for d in shown]
    text = head_text + "".join(blocks) + ("\n" if blocks and tail else "") + tail
    if len(text) <= limit:
        return text
    size = len(head_text) + 1
    count = 0
    for block in blocks:
        if size + len(block) + len(_cut_note(len(blocks) - count - 1, run_url)) > limit:
            break
        size += len(block)
        count += 1
    text = head_text + "".join(blocks[:count]) + "\n" + _cut_note(len(blocks) - count, run_url)
    # Only a limit smaller than the summary itself cuts further; the marker stays first, so
    # the comment is still found again.
    return text[: max(0, limit)]


def _cut_note(left: int, run_url: str | None) -> str:
    objects = f"{left} more object{'s' if left != 1 else ''}"
    if run_url:
        return f"{objects}: see the [run page]({run_url}).\n"
    return f"{objects}: see the run page.\n"
