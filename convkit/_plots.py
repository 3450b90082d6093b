"""Charts of profile_model results (matplotlib, Agg backend; optional: the 'plot' extra).

pie_chart: one slice per layer in the style of Jia's thesis figure, labelled with the layer
name, slices of one layer type in shades of that type's colour. device_bars: CPU vs GPU
milliseconds per layer type.
"""
from __future__ import annotations

from .profile import KINDS

# one colour map per layer type; the layers of a type take successive shades of it
_CMAPS = {"conv": "Blues", "fc": "Reds", "pool": "Greens", "relu": "Purples", "norm": "Oranges",
          "dropout": "Greys", "other": "RdPu"}


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def pie_chart(res, path, title=None):
    """Write a pie of the per-layer time shares of one profile_model result to ``path``."""
    plt = _pyplot()
    layers = [r for r in res["layers"] if r["share"] > 0]
    count = {k: sum(r["kind"] == k for r in layers) for k in KINDS}
    seen = dict.fromkeys(KINDS, 0)
    colours = []
    for r in layers:                       # i-th layer of its type: a lighter shade each time
        i, n = seen[r["kind"]], count[r["kind"]]
        seen[r["kind"]] += 1
        colours.append(plt.get_cmap(_CMAPS[r["kind"]])(0.8 - 0.5 * i / max(n - 1, 1)))
    fig, ax = plt.subplots(figsize=(9, 9))
    labels = [r["name"] if r["share"] >= 0.01 else "" for r in layers]
    ax.pie([r["share"] for r in layers], labels=labels, colors=colours,
           startangle=90, counterclock=False, labeldistance=1.05, textprops={"fontsize": 8},
           wedgeprops={"linewidth": 0.5, "edgecolor": "white"})
    handles = [plt.Rectangle((0, 0), 1, 1, color=plt.get_cmap(_CMAPS[k])(0.7)) for k in KINDS
               if res["by_type"][k]["share"] > 0]
    ax.legend(handles, [f"{k} {100 * res['by_type'][k]['share']:.1f}%" for k in KINDS
                        if res["by_type"][k]["share"] > 0], loc="lower left", fontsize=8)
    what = "forward+backward" if res["backward"] else "forward"
    ax.set_title(title or f"{res['device'].upper()} {what} time per layer (batch {res['batch']}); "
                          f"conv+fc {100 * res['conv_fc_share']:.0f}%")
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def device_bars(results, path):
    """Write a grouped bar chart of milliseconds per layer type for each device in ``results``."""
    plt = _pyplot()
    kinds = [k for k in KINDS if any(res["by_type"][k]["ms"] > 0 for res in results.values())]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    width = 0.8 / max(len(results), 1)
    for j, (device, res) in enumerate(results.items()):
        ax.bar([i + j * width for i in range(len(kinds))], [res["by_type"][k]["ms"] for k in kinds],
               width, label=f"{device.upper()} (batch {res['batch']})")
    ax.set_xticks([i + width * (len(results) - 1) / 2 for i in range(len(kinds))], kinds)
    ax.set_ylabel("ms")
    ax.set_yscale("log")
    ax.set_title("forward time per layer type")
    ax.legend()
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
