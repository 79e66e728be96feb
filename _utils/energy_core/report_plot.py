"""The report's picture: power per container over the window, stacked per machine, and joules per
container, drawn with matplotlib (on the master, when it is installed there)."""

import io

INSTALL = ("plot: matplotlib is not installed in salt-master's Python ({python}). Fix: {python} -m pip install "
           "matplotlib (or apt-get install python3-matplotlib for Debian's Salt); the numbers above are complete")


def _series(found, buckets, width_s):
    """``[(label, [watts per bucket])]`` of one machine's containers, monitor's last."""
    rows = []
    for monitor, group in ((False, found["containers"]), (True, found["monitor"])):
        for row in group:
            label = row["name"] + (" [monitor]" if monitor else "")
            energy = row.get("buckets") or [0.0] * buckets
            rows.append((label, [joules / width_s for joules in energy]))
    return rows


def draw(doc, buckets, fmt):
    """The picture (bytes, ``png`` or ``svg``) of a report document whose containers carry
    ``buckets`` joules per time bucket. Raises ImportError when matplotlib is missing."""
    import matplotlib  # pylint: disable=import-outside-toplevel

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

    machines = doc["machines"] or [{"minion": "no machine", "containers": [], "monitor": []}]
    width_s = doc["seconds"] / buckets if buckets else doc["seconds"]
    times = [i * width_s for i in range(buckets)]
    figure, axes = plt.subplots(len(machines), 2, figsize=(13, 3.6 * len(machines)), squeeze=False,
                                gridspec_kw={"width_ratios": [3, 2]})
    for (power, energy), found in zip(axes, machines):
        rows = _series(found, buckets, width_s)
        if rows and buckets:
            power.stackplot(times, *[watts for _l, watts in rows], labels=[label for label, _w in rows], step="post")
            power.legend(loc="upper left", fontsize="small")
        power.set_title(f"{found['minion']}: power per container (stacked)")
        power.set_xlabel("seconds since the window's start")
        power.set_ylabel("W")
        labels = [label for label, _w in rows]
        joules = [row["joules"] for group in (found["containers"], found["monitor"]) for row in group]
        energy.barh(labels, joules)
        energy.set_title(f"{found['minion']}: energy per container")
        energy.set_xlabel("J")
    figure.tight_layout()
    out = io.BytesIO()
    figure.savefig(out, format=fmt)
    plt.close(figure)
    return out.getvalue()
