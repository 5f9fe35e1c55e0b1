"""The long schemathesis run, outside CI: `python -m bench.fuzz_api [--examples N] [--seed S]`.

Runs tests/hardening/test_fuzz_api.py (every operation of the OpenAPI schema, in-process, with an
admin's token, then sequences of calls chained by inferred links) with many more generated inputs
per operation and many more sequences than `make test` does, a random seed (printed, so a failure
can be replayed with --seed) and schemathesis' coverage phase (boundary and type-violating values
for every parameter). The sequences are not driven by the seed: a failing one is printed with
hypothesis' reproduction blob instead. Needs PostgreSQL like `make test`;
the test database is TEST_DATABASE_NAME (default test_fuzz_api). Extra arguments go to pytest,
e.g. `-k events` for the ingestion endpoint only or `-x` to stop at the first failure.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fuzz_api", description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=200, help="generated inputs per operation and phase")
    parser.add_argument("--seed", type=int, default=None, help="replay a run (default: a random seed)")
    parser.add_argument("--no-coverage", action="store_true", help="skip the coverage phase")
    args, pytest_args = parser.parse_known_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**31)
    env = {
        **os.environ,
        "FUZZ_MAX_EXAMPLES": str(args.examples),
        "FUZZ_SEED": str(seed),
        "FUZZ_COVERAGE": "" if args.no_coverage else "1",
    }
    env.setdefault("TEST_DATABASE_NAME", "test_fuzz_api")
    print(f"fuzz_api: {args.examples} examples per operation, seed {seed} (replay with --seed {seed})", flush=True)
    command = [sys.executable, "-m", "pytest", "tests/hardening/test_fuzz_api.py", "-q", "-p", "no:cacheprovider"]
    return subprocess.call([*command, *pytest_args], cwd=BASE_DIR, env=env)


if __name__ == "__main__":
    sys.exit(main())
