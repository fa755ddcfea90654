"""Sample data analysis, run inside the sandbox by `make run-sample`.

Reads the uploaded sales CSV with pandas, writes a summary table to
outputs/summary.csv and a monthly revenue chart to outputs/revenue.png
(ai-data-agent returns both as artifacts), and prints the table.
"""

import matplotlib.pyplot as plt
import pandas as pd

sales = pd.read_csv("data/sales.csv", parse_dates=["date"])
sales["revenue"] = sales["units"] * sales["unit_price"]

summary = (
    sales.groupby("region")
    .agg(orders=("revenue", "size"), units=("units", "sum"), revenue=("revenue", "sum"))
    .sort_values("revenue", ascending=False)
    .round(2)
)
summary.to_csv("outputs/summary.csv")

monthly = (
    sales.set_index("date").groupby([pd.Grouper(freq="MS"), "region"])["revenue"].sum().unstack()
)
monthly.index = monthly.index.strftime("%b %Y")
ax = monthly.plot(kind="bar", figsize=(8, 4.5), title="Revenue by month", rot=0)
ax.set_xlabel("")
ax.set_ylabel("revenue")
plt.tight_layout()
plt.savefig("outputs/revenue.png", dpi=100)

print(f"{len(sales)} orders, revenue {sales['revenue'].sum():,.2f}")
print(summary.to_string())
