#!/usr/bin/env python3
"""Writes test/fixtures/eval/pyrandom.json: outputs of CPython's random.Random for a fixed
program of calls per seed, replayed by test/unit/eval-pyrandom.test.ts against src/eval/pyrandom.ts.

    python3 scripts/make-pyrandom-vectors.py [out.json]

Every case is one Random(seed) instance running the ops in order, so the stream position carries
from op to op (as in the benchmark scripts). Integers that may exceed 2**53 are written as strings.
The algorithms used here are the same in CPython 3.11 and 3.12.
"""
import json
import os
import random
import sys

SEEDS = [0, 1, 2334, 2**32 - 1, 2**32, 2**32 + 5, -7, -2334, 2**100 + 12345, 3**200]

# (n, k) for sample(range(n), k). setsize is 21 for k <= 5 and 21 + 4**ceil(log4(3k)) above:
# k = 6 -> 85, k = 22 -> 277. The pairs sit on both sides of those boundaries.
SAMPLES = [(2, 2), (5, 0), (7, 7), (20, 2), (21, 2), (22, 2), (23, 5), (60, 2), (60, 5),
           (22, 6), (85, 6), (86, 6), (100, 6), (277, 22), (278, 22), (1000, 40), (37, 5)]

CHOICE_LENGTHS = [1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 31, 32, 33, 100, 1000, 2**31, 2**32 - 1, 2**32, 2**32 + 1,
                  2**40 + 3, 2**53 - 1]

RANDRANGE = [(10, None, 1), (0, 10, 1), (-5, 5, 1), (3, 100, 7), (100, 3, -7), (0, 2**33, 3), (7, 8, 1)]


def ops_for(seed):
    """The call program, identical for every seed (a short one) plus long raw streams for two seeds
    (crossing the 624-word regeneration several times)."""
    ops = []
    for k in range(0, 71):
        ops.append({"op": "getrandbits", "k": k})
    ops.extend({"op": "random"} for _ in range(12))
    for n in CHOICE_LENGTHS:
        ops.append({"op": "choice", "n": n})
    for n, k in SAMPLES:
        ops.append({"op": "sample", "n": n, "k": k})
    for n in [0, 1, 2, 3, 10, 50]:
        ops.append({"op": "shuffle", "n": n})
    for a, b, s in RANDRANGE:
        ops.append({"op": "randrange", "start": a, "stop": b, "step": s})
    for k in [96, 128, 200, 33, 64, 65]:
        ops.append({"op": "getrandbits", "k": k})
    if seed in (2334, 0):
        ops.append({"op": "uint32", "count": 1400})
    return ops


def run(seed):
    r = random.Random(seed)
    ops = ops_for(seed)
    for op in ops:
        kind = op["op"]
        if kind == "getrandbits":
            op["out"] = str(r.getrandbits(op["k"]))
        elif kind == "random":
            op["out"] = r.random()
        elif kind == "choice":
            # choice over a range is _randbelow(len) without materialising the sequence
            op["out"] = r.choice(range(op["n"]))
        elif kind == "sample":
            op["out"] = r.sample(range(op["n"]), op["k"])
        elif kind == "shuffle":
            x = list(range(op["n"]))
            r.shuffle(x)
            op["out"] = x
        elif kind == "randrange":
            if op["stop"] is None:
                op["out"] = r.randrange(op["start"])
            else:
                op["out"] = r.randrange(op["start"], op["stop"], op["step"])
        elif kind == "uint32":
            op["out"] = [r.getrandbits(32) for _ in range(op["count"])]
    return {"seed": str(seed), "ops": ops}


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "test", "fixtures", "eval", "pyrandom.json")
    data = {
        "generator": "scripts/make-pyrandom-vectors.py",
        "python": sys.version.split()[0],
        "cases": [run(s) for s in SEEDS],
    }
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump(data, f, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    main()
