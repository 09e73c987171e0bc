#!/usr/bin/env python3
"""Bar chart of a benchmark run: changes/s per tool, with the ratio to the first bar.

    chart.py OUT.png TITLE NAME=WALL_SECONDS... CHANGES
"""
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

out, title, *bars, changes = sys.argv[1:]
changes = int(changes)
names = [b.split("=", 1)[0] for b in bars]
rates = [changes / float(b.split("=", 1)[1]) for b in bars]
fig, ax = plt.subplots(figsize=(7, 3.2), dpi=110)
ax.barh(names[::-1], rates[::-1], color=(["#999999"] + ["#3b75af"] * (len(rates) - 1))[::-1])
for i, r in enumerate(rates[::-1]):
    ax.text(r, i, f"  {r:,.0f}/s  ({r / rates[0]:.2f}×)", va="center", fontsize=8)
ax.set_xlabel("changes per second (wall clock)")
ax.set_title(title, fontsize=10)
ax.set_xlim(0, max(rates) * 1.35)
fig.tight_layout()
fig.savefig(out)
