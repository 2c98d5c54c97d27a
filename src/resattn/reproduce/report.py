"""Aggregate an experiment's runs into ``results.json`` and write a Markdown report and a
self-contained HTML page (plots embedded as base64 PNG) that a reviewer reads without our code.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import math
from pathlib import Path

import numpy as np
from torch.utils.data import Subset

from ..engine.provenance import environment
from ..engine.tracking import read_log
from ..errors import ConfigError
from ..io import atomic_write_text, jsonable, read_json
from ..report import markdown_table, new_figure, save_figure
from .config import Cell, Experiment
from .runner import DONE, run_dir


def _seed_metrics(test: dict, per_class: str | None) -> dict[str, float]:
    """The scalar metrics of one run's scores, and ``per_class`` ones as ``key/class``."""
    out = {k: float(v) for k, v in test.items()
           if isinstance(v, int | float) and not isinstance(v, bool) and k != "n"}
    if per_class:
        for name, scores in test["per_class"].items():
            out[f"{per_class}/{name}"] = float(scores[per_class])
    return out


def paired_test(ours: list[float], base: list[float]) -> dict | None:
    """Paired t-test over seeds (same seeds, same splits) of a cell against the baseline."""
    if len(ours) != len(base) or len(ours) < 2:
        return None
    from scipy import stats

    diff = np.asarray(ours) - np.asarray(base)
    half = float(stats.t.ppf(0.975, len(diff) - 1) * diff.std(ddof=1) / math.sqrt(len(diff)))
    if np.allclose(diff, diff[0]):
        p = 1.0 if diff[0] == 0 else 0.0
    else:
        p = float(stats.ttest_rel(ours, base).pvalue)
    mean = float(diff.mean())
    return {"mean_difference": mean, "ci95": [mean - half, mean + half], "p_value": p,
            "n": len(diff)}


def source_cell(exp: Experiment, cell: Cell) -> Cell:
    """The cell whose runs hold ``cell``'s scores: itself, or for a reference method the
    cell it is read from (``of``, default the baseline)."""
    return cell if cell.reference is None else exp.cell(cell.of or exp.baseline)


def cell_scores(exp: Experiment, cell: Cell, summary: dict) -> dict:
    """``cell``'s test metrics in a run's summary, as the task lays them out."""
    task = exp.registered_task
    if cell.reference is None:
        return task.cell_metrics(summary)
    refs = task.reference_metrics(summary)
    if cell.reference not in refs:
        raise ConfigError(f"{exp.where}cell {cell.name!r}: the runs of "
                          f"{source_cell(exp, cell).name!r} score no {cell.reference!r} "
                          f"(they hold {sorted(refs)})")
    return refs[cell.reference]


def _summaries(exp: Experiment, out: Path, cell: Cell) -> list[dict]:
    source = source_cell(exp, cell)
    return [read_json(run_dir(out, source, s) / DONE) for s in range(exp.seeds)
            if (run_dir(out, source, s) / DONE).exists()]


def aggregate(exp: Experiment, out: Path, quick: bool = False) -> dict:
    """``results.json``: per cell the seeds' metrics (mean, std with ddof 1), the published
    figures and a paired comparison against the baseline cell."""
    cells, per_seed = [], {}
    for cell in exp.cells:
        runs = _summaries(exp, out, cell)
        values = [_seed_metrics(cell_scores(exp, cell, r), exp.per_class) for r in runs]
        per_seed[cell.name] = values
        keys = sorted(set().union(*values)) if values else []
        metrics = {}
        for k in keys:
            v = np.asarray([m[k] for m in values if k in m and m[k] is not None], dtype=float)
            metrics[k] = {"mean": float(v.mean()),
                          "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
                          "values": v.tolist()}
        cells.append({"name": cell.name, "model": cell.model, "options": cell.options,
                      "init": cell.init,
                      **({"reference": cell.reference, "of": source_cell(exp, cell).name}
                         if cell.reference else {}),
                      "n_seeds": len(runs), "metrics": metrics, "published": cell.published,
                      "epochs_run": [r.get("epochs_run") for r in runs],
                      "best_epoch": [r.get("best_epoch") for r in runs]})
    if exp.baseline:
        base = per_seed[exp.baseline]
        for c in cells:
            c["vs_baseline"] = {k: paired_test([m[k] for m in per_seed[c["name"]]],
                                               [m[k] for m in base]) for k in exp.metrics
                                if all(k in m for m in per_seed[c["name"]] + base)}
    timings = read_json(out / "timings.json") if (out / "timings.json").exists() else {}
    return {"experiment": exp.name, "paper": exp.paper, "task": exp.task,
            "data": ", ".join(map(str, exp.data_paths)), "mode": "quick" if quick else "full",
            "seeds": exp.seeds, "epochs": exp.epochs, "recipe": exp.recipe,
            "task_options": jsonable(dataclasses.asdict(exp.options)),
            "baseline": exp.baseline, "metrics": exp.metrics, "cells": cells,
            "complete": all(c["n_seeds"] == exp.seeds for c in cells),
            "wall_seconds": round(sum(timings.values()), 1), "caveats": exp.caveats,
            "environment": runs_environment(exp, out), "report_environment": environment()}


ENV_KEYS = ("resattn", "torch", "python", "git_commit", "cpu_model", "cpu_count")


def short_commit(commit: str | None) -> str | None:
    """``0e7ab5f3291b…-dirty`` → ``0e7ab5f3291b-dirty``."""
    if not commit:
        return commit
    sha, _, rest = commit.partition("-")
    return sha[:12] + (f"-{rest}" if rest else "")


def runs_environment(exp: Experiment, out: Path) -> dict:
    """Where the runs were trained (from their checkpoints' provenance, not from the machine
    that writes the report): each field's distinct values, joined by ' / ' when they differ."""
    seen: dict[str, list] = {k: [] for k in ENV_KEYS}
    for cell in exp.trained_cells():
        for seed in range(exp.seeds):
            meta = exp.registered_task.training_dir(run_dir(out, cell, seed)) / "model.json"
            env = read_json(meta).get("environment", {}) if meta.exists() else {}
            env = {**env, "git_commit": short_commit(env.get("git_commit"))}
            for k in ENV_KEYS:
                if env.get(k) is not None and env[k] not in seen[k]:
                    seen[k].append(env[k])
    return {k: " / ".join(map(str, v)) if v else None for k, v in seen.items()}


# ---------------------------------------------------------------------------------- plots
def _metric_chart(results: dict, key: str, path: Path) -> Path:
    cells = results["cells"]
    fig = new_figure((max(5.0, 1.1 * len(cells) + 2), 3.6))
    ax = fig.add_subplot()
    x = np.arange(len(cells))
    means = [c["metrics"].get(key, {}).get("mean", np.nan) for c in cells]
    stds = [c["metrics"].get(key, {}).get("std", 0.0) for c in cells]
    ax.bar(x - 0.18, means, 0.36, yerr=stds, capsize=3, label="ours (mean ± std)")
    pub = [c["published"].get(key, np.nan) for c in cells]
    if not all(math.isnan(p) for p in pub):
        ax.bar(x + 0.18, pub, 0.36, color="tab:gray", alpha=0.7, label="published (theirs)")
    ax.set_xticks(x, [c["name"] for c in cells], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(key)
    finite = [v for v in means + pub if v == v]
    ax.set_ylim(max(0.0, min(finite, default=0) - 0.1), 1.0 if key != "log_loss" else None)
    ax.legend(fontsize=8)
    ax.set_title(f"{key} per cell")
    return save_figure(fig, path)


def _ablation_chart(results: dict, key: str, path: Path) -> Path:
    """Each cell minus the baseline (paired over seeds): mean with its 95 % t interval, and
    the published difference where the paper gives both figures."""
    base = next(c for c in results["cells"] if c["name"] == results["baseline"])
    cells = [c for c in results["cells"] if c is not base]
    fig = new_figure((7.0, 0.45 * len(cells) + 1.6))
    ax = fig.add_subplot()
    y = np.arange(len(cells))[::-1]
    for yi, c in zip(y, cells, strict=True):
        vs = (c.get("vs_baseline") or {}).get(key)
        if vs:
            lo, hi = vs.get("ci95", [vs["mean_difference"]] * 2)
            ax.errorbar(vs["mean_difference"], yi, xerr=[[vs["mean_difference"] - lo],
                        [hi - vs["mean_difference"]]], fmt="o", color="tab:blue", capsize=3,
                        label="ours: mean, 95 % CI" if yi == y[0] else None)
        pub, pub_base = c["published"].get(key), base["published"].get(key)
        if pub is not None and pub_base is not None:
            ax.plot(pub - pub_base, yi, "D", color="tab:gray",
                    label="published (theirs)" if yi == y[0] else None)
    ax.axvline(0.0, color="black", lw=0.8)
    ax.set_yticks(y, [c["name"] for c in cells], fontsize=8)
    ax.set_ylim(-0.6, len(cells) - 0.4)
    ax.set_xlabel(f"{key} minus {base['name']} (paired over seeds)")
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def _curves(exp: Experiment, out: Path, path: Path) -> Path:
    fig = new_figure((7.0, 3.6))
    ax = fig.add_subplot()
    for cell in exp.trained_cells():
        run = exp.registered_task.training_dir(run_dir(out, cell, 0))
        rows = read_log(run / "metrics.jsonl")
        if rows:
            ax.plot([r["epoch"] for r in rows], [r["val_loss"] for r in rows], marker=".",
                    label=cell.name)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation loss (seed 0)")
    ax.set_yscale("log")
    ax.legend(fontsize=7)
    return save_figure(fig, path)


def _confusions(exp: Experiment, out: Path, path: Path) -> Path:
    n = len(exp.cells)
    cols = min(n, 4)
    rows = math.ceil(n / cols)
    fig = new_figure((3.0 * cols, 2.9 * rows))
    for i, cell in enumerate(exp.cells):
        ax = fig.add_subplot(rows, cols, i + 1)
        done = run_dir(out, source_cell(exp, cell), 0) / DONE
        if not done.exists():
            ax.set_axis_off()
            continue
        test = cell_scores(exp, cell, read_json(done))
        cm = np.asarray(test["confusion"])
        ax.imshow(cm, cmap="Blues")
        for (r, c), v in np.ndenumerate(cm):
            ax.text(c, r, str(v), ha="center", va="center", fontsize=7,
                    color="white" if v > cm.max() / 2 else "black")
        names = test.get("class_names") or list(test["per_class"])
        ax.set_xticks(range(len(names)), names, rotation=90, fontsize=6)
        ax.set_yticks(range(len(names)), names, fontsize=6)
        ax.set_title(cell.name, fontsize=8)
    fig.suptitle("test confusion matrices, seed 0 (rows true, columns predicted)", fontsize=9)
    return save_figure(fig, path)


def _per_class(results: dict, key: str, path: Path) -> Path:
    cells = results["cells"]
    classes = sorted({k.split("/", 1)[1] for c in cells for k in c["metrics"]
                      if k.startswith(key + "/")})
    fig = new_figure((max(6.0, 0.9 * len(classes) * max(1, len(cells)) / 2 + 3), 3.6))
    ax = fig.add_subplot()
    width = 0.8 / max(1, len(cells))
    x = np.arange(len(classes))
    for j, c in enumerate(cells):
        m = [c["metrics"].get(f"{key}/{k}", {}) for k in classes]
        ax.bar(x + j * width, [v.get("mean", np.nan) for v in m], width,
               yerr=[v.get("std", 0.0) for v in m], capsize=2, label=c["name"])
        pub = [c["published"].get(f"{key}/{k}") for k in classes]
        if any(p is not None for p in pub):
            ax.scatter(x + j * width, [np.nan if p is None else p for p in pub], marker="_",
                       s=200, color="black", label="published (theirs)", zorder=3)
    ax.set_xticks(x + width * (len(cells) - 1) / 2, classes, rotation=30, ha="right",
                  fontsize=8)
    ax.set_ylabel(f"{key} per class (mean ± std)")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=7, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(cells) + 1,
              frameon=False)  # above the axes: bars and published marks reach 1.0
    return save_figure(fig, path)


def _gradcam_examples(exp: Experiment, out: Path, folder: Path, n: int = 3) -> list[Path]:
    """Grad-CAM of the seed-0 model of the last cell on a few test items."""
    from ..engine.checkpoint import load_model, resolve_stem
    from ..explain import grad_cam

    if not exp.registered_task.explains:
        return []  # Grad-CAM figures of classification inputs only
    cell = exp.trained_cells()[-1]
    run = run_dir(out, cell, 0)
    if not (run / DONE).exists():
        return []
    if not resolve_stem(run).with_suffix(".safetensors").exists():
        return sorted(folder.glob("gradcam_*.png"))  # weights not committed: keep their figures
    model, meta = load_model(run)
    task = exp.registered_task
    test = task.test_items(meta, exp.data, read_json(run / "split.json"))
    items = Subset(test, np.unique(np.linspace(0, len(test) - 1, n).astype(int)).tolist())
    paths = []
    names = meta.get("class_names") or []
    for i in range(min(n, len(items))):
        x, y = items[i]
        cam = grad_cam(model, x[None])[0]
        title = f"{cell.name}: true {names[y] if y < len(names) else y}"
        path = folder / f"gradcam_{i}.png"
        task.plot_cam(x, cam, path, title)
        paths.append(path)
    return paths


# ---------------------------------------------------------------------------------- text
def _fmt(m: dict | None, key: str) -> str:
    if not m or key not in m:
        return "–"
    if len(m[key].get("values", ())) == 1:  # one seed: no spread to show
        return f"{m[key]['mean']:.4f}"
    return f"{m[key]['mean']:.4f} ± {m[key]['std']:.4f}"


def results_rows(results: dict) -> tuple[list[str], list[list]]:
    keys = results["metrics"]
    headers = ["cell", "seeds"]
    for k in keys:
        headers += [f"{k} (ours)", f"{k} (published)", "difference"]
    headers.append("vs baseline (paired t-test p)")
    rows = []
    for c in results["cells"]:
        row = [c["name"], c["n_seeds"]]
        for k in keys:
            pub = c["published"].get(k)
            mean = c["metrics"].get(k, {}).get("mean")
            row += [_fmt(c["metrics"], k), "–" if pub is None else f"{pub:.4f}",
                    "–" if pub is None or mean is None else f"{mean - pub:+.4f}"]
        vs = c.get("vs_baseline") or {}
        first = vs.get(keys[0]) if keys else None
        row.append("baseline" if c["name"] == results["baseline"] else
                   "–" if not first else f"{first['mean_difference']:+.4f} "
                   f"({_p_value(first['p_value'])})")
        rows.append(row)
    return headers, rows


def _p_value(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def per_class_rows(results: dict, key: str) -> tuple[list[str], list[list]]:
    """One row per class: each cell's mean ± std of ``key`` (e.g. recall = sensitivity) and
    the published figure where the paper gives one (no column for a cell it gives none)."""
    cells = results["cells"]
    classes = sorted({k.split("/", 1)[1] for c in cells for k in c["metrics"]
                      if k.startswith(key + "/")})
    published = [any(k.startswith(key + "/") for k in c["published"]) for c in cells]
    headers = ["class"]
    for c, has in zip(cells, published, strict=True):
        headers += [f"{c['name']} (ours)"] + [f"{c['name']} (published)"] * has
    rows = []
    for name in classes:
        row = [name]
        for c, has in zip(cells, published, strict=True):
            pub = c["published"].get(f"{key}/{name}")
            row += [_fmt(c["metrics"], f"{key}/{name}")]
            row += ["–" if pub is None else f"{pub:.4f}"] * has
        rows.append(row)
    return headers, rows


def write_report(exp: Experiment, out: Path, results: dict) -> Path:
    figs = out / "figures"
    figures: list[tuple[str, Path]] = []
    for key in exp.metrics:
        figures.append((f"{key} per cell, ours beside the published figure",
                        _metric_chart(results, key, figs / f"{key}.png")))
    if exp.baseline and len(exp.cells) > 1 and results["seeds"] > 1:
        key = exp.metrics[0]
        figures.append((f"Ablation: {key} of each cell minus the baseline",
                        _ablation_chart(results, key, figs / "ablation.png")))
    figures.append(("Validation loss per epoch (seed 0)",
                    _curves(exp, out, figs / "curves.png")))
    figures.append(("Test confusion matrices (seed 0)",
                    _confusions(exp, out, figs / "confusion.png")))
    if exp.per_class:
        figures.append((f"Per-class {exp.per_class} (mean ± std over seeds)",
                        _per_class(results, exp.per_class, figs / "per_class.png")))
    for p in _gradcam_examples(exp, out, figs):
        figures.append(("Grad-CAM example (last cell, seed 0, test item)", p))
    tables = [("Results", *results_rows(results))]
    if exp.per_class:
        tables.append((f"Per-class {exp.per_class} (mean ± std over seeds)",
                       *per_class_rows(results, exp.per_class)))
    env, here = results["environment"], results["report_environment"]
    env_line = (f"trained with resattn {env['resattn']}, torch {env['torch']}, Python "
                f"{env['python']}, commit {env['git_commit']}, CPU {env['cpu_model']} "
                f"({env['cpu_count']} cores); report written at commit "
                f"{short_commit(here.get('git_commit'))} on {here.get('cpu_model')}")
    summary = (f"{results['mode']} mode, {results['seeds']} seed(s) per cell, at most "
               f"{results['epochs']} epochs; the runs' wall times sum to "
               f"{results['wall_seconds'] / 60:.1f} min on {env['cpu_model']} (timings.json). "
               f"Standard deviations are over seeds (ddof 1); "
               f"'published' is the paper's figure (theirs), on their data.")
    md = "\n\n".join([
        f"# {exp.name}", f"Paper: {exp.paper}", summary,
        *[f"**{title}.**\n\n{markdown_table(h, r)}" for title, h, r in tables],
        f"**Data caveats.** {exp.caveats}" if exp.caveats else "",
        *[f"![{t}](figures/{p.name})" for t, p in figures],
        f"Environment: {env_line}.",
        "Run logs (metrics.jsonl per run, split.json, test_metrics.json) are under `runs/`.",
    ])
    atomic_write_text(out / "report.md", md + "\n")
    atomic_write_text(out / "report.html", _html(exp, summary, tables, figures, env_line))
    return out / "report.md"


def _html_table(title: str, headers: list[str], rows: list[list]) -> str:
    esc = html.escape
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{esc(str(v))}</td>" for v in r) + "</tr>"
                   for r in rows)
    return f"<h2>{esc(title)}</h2><table><tr>{head}</tr>{body}</table>"


def _html(exp: Experiment, summary: str, tables: list[tuple[str, list[str], list[list]]],
          figures: list[tuple[str, Path]], env_line: str) -> str:
    esc = html.escape
    imgs = "".join(
        f"<figure><img alt='{esc(t)}' src='data:image/png;base64,"
        f"{base64.b64encode(p.read_bytes()).decode()}'><figcaption>{esc(t)}</figcaption>"
        "</figure>" for t, p in figures)
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #bbb;"
             "padding:3px 6px}th{background:#eee}img{max-width:100%}figure{margin:1.5em 0}"
             ".caveat{background:#fff6e0;padding:.6em;border-left:4px solid #e0a000}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{esc(exp.name)}</title>"
            f"<style>{style}</style></head><body><h1>{esc(exp.name)}</h1>"
            f"<p>Paper: {esc(exp.paper)}</p><p>{esc(summary)}</p>"
            + "".join(_html_table(*t) for t in tables)
            + (f"<p class='caveat'><b>Data caveats.</b> {esc(exp.caveats)}</p>"
               if exp.caveats else "")
            + f"{imgs}<p>Environment: {esc(env_line)}</p></body></html>\n")
