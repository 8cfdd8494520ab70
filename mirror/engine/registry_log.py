"""What a registry that would not start said, in the lines that matter.

distribution panics at start on a bad storage setup (an unknown driver, a
store whose certificate it cannot verify, an unreachable upstream), and the
panic's message comes before about 15 lines of goroutine trace: the last
lines of the log, all trace, would hide the reason. The message, up to the
blank line that ends it (an AWS error adds a "caused by:" line), is put first.
"""

from __future__ import annotations

MAX_PANIC_LINES = 6


def failure_summary(log: str, tail_lines: int = 15) -> str:
    """The last panic's message (if any), then the last `tail_lines` lines of `log`."""
    lines = log.strip().splitlines()
    tail = "\n".join(lines[-tail_lines:])
    starts = [i for i, line in enumerate(lines) if line.startswith("panic: ")]
    if not starts:
        return tail
    message = []
    for line in lines[starts[-1]:starts[-1] + MAX_PANIC_LINES]:
        if not line.strip() or line.startswith("goroutine "):
            break
        message.append(line)
    panic = "\n".join(message)
    return tail if panic in tail else f"{panic}\n...\n{tail}"
