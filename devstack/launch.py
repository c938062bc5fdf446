"""`python -m devstack.launch FILE`: become the program FILE describes (its argv, with exactly its
environment). supervisord runs every program through it, so no value needs quoting in its
config."""

from __future__ import annotations

import json
import os
import sys


def main() -> None:
    """Replace this process with the program (the same process id)."""
    with open(sys.argv[1], encoding="utf-8") as file:
        program = json.load(file)
    os.execvpe(program["argv"][0], program["argv"], program["env"])  # noqa: S606


if __name__ == "__main__":
    main()
