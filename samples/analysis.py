"""Sample data analysis, run inside the sandbox by `make run-sample`.

Builds a small, seeded sales table, summarises revenue by region with the
standard library, and prints it with `tabulate` (installed per run).
"""

import random
import statistics
from collections import defaultdict

from tabulate import tabulate

rng = random.Random(42)
regions = ["north", "south", "east", "west"]
sales = [
    {"region": rng.choice(regions), "units": rng.randint(1, 20), "price": round(rng.uniform(5, 50), 2)}
    for _ in range(500)
]

by_region = defaultdict(list)
for row in sales:
    by_region[row["region"]].append(row["units"] * row["price"])

table = [
    (region, len(values), round(sum(values), 2), round(statistics.mean(values), 2),
     round(statistics.median(values), 2))
    for region, values in sorted(by_region.items())
]
print(f"{len(sales)} orders, total revenue {sum(sum(v) for v in by_region.values()):,.2f}")
print(tabulate(table, headers=["region", "orders", "revenue", "mean", "median"], floatfmt=".2f"))
