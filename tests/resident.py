"""How much of the files beneath a directory this process has resident, from /proc/self/smaps."""

from pathlib import Path


def resident_kib(directory: Path) -> int:
    """The resident KiB of this process's mappings of files beneath `directory`."""
    prefix = f"{directory}/"
    total, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split(" ", 1)[0]
        if "-" in head and not head.endswith(":"):  # a mapping's first line: its range, then its file
            inside = prefix in line
        elif inside and line.startswith("Rss:"):
            total += int(line.split()[1])
    return total
