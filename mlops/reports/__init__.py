"""Reports: every action writes ``<action>.json`` (for machines) and ``<action>.html``
(for people) into its run directory; ``index.html`` links them; a Hydra callback writes
``sweep.json`` + ``sweep.html`` after ``-m`` runs.

The kit
-------
- :func:`mlops.reports.render.write_report` ``(run_dir, action, data, *, title, context=None, run=None)``
  the usual call from an action: writes the JSON, renders ``templates/<action>.html``,
  rebuilds ``index.html``. ``data`` needs ``status`` (ok/warn/fail) and ``headline``.
- :func:`mlops.reports.render.render_report` / :func:`~mlops.reports.render.write_json`
  the two halves, if you need them separately (JSON: NaN -> null, numpy, datetimes).
- :mod:`mlops.reports.svg` inline SVG charts (``histogram_overlay``, ``line_chart``,
  ``forest_plot``, ``calibration_curve``, ``confusion_matrix``, ``bar_chart``,
  ``sparkline_hist``); each returns escaped ``Markup``: pass charts in ``context``, not in
  the JSON ``data``.
- :mod:`mlops.reports.index` ``write_index`` / ``collect_entries``; :mod:`mlops.reports.sweep`.

Writing a template (``templates/monitor.html``)
-----------------------------------------------
``base.html`` already shows the verdict banner (from ``status``, ``headline``, ``reasons``),
the summary cards (from ``cards``) and the footer (from ``run``: id, time, config_hash).
A report template usually only fills ``content`` (the ``import`` line is optional:
``base.html`` already imports the macros as ``m``)::

    {% extends "base.html" %}
    {% import "_macros.html" as m %}
    {% block content %}
    <h2>Features</h2>
    {{ m.table(features, ["name", {"key": "psi", "label": "PSI"}, {"key": "share_missing",
       "label": "missing", "format": "pct"}, {"key": "status", "format": "badge"}], highlight="drifted") }}
    {{ m.chart(psi_chart, "PSI per feature; red bars are past the threshold") }}
    {% call m.details("Reference statistics") %}{{ m.kv(reference) }}{% endcall %}
    {% endblock %}

and the action calls::

    write_report(run_dir, "monitor", {"status": "warn", "headline": "2 of 14 features drifted",
                 "cards": [{"label": "drifted", "value": 2, "unit": "of 14", "status": "warn"}],
                 "features": rows, "reference": ref_stats}, title="Drift monitor",
                 context={"psi_chart": svg.bar_chart(psi, xlabel="PSI", ylabel="feature", threshold=0.2)})

Macros (``_macros.html``): ``verdict(status, headline, reasons=[])``, ``cards(items)``,
``table(rows, columns, highlight=None, numeric_cols=None, caption=None, max_rows=None)``,
``kv(dict)``, ``details(summary, content=None, open=False)`` (or ``{% call %}``),
``chart(svg, caption=None)``, ``badge(status, label=None)``. Filters: ``fmt`` (1,234 /
0.1235 / —), ``pct``, ``ts`` (2024-03-01 12:00 UTC), ``json``, ``duration``, ``status``.
Wrap charts in ``<div class="grid-2">`` to put two side by side (``grid2`` works too).

Rules: everything is autoescaped (data values are untrusted: never use ``|safe`` on
them); undefined variables are errors (guard optional ones with ``is defined``); keep
the HTML self-contained (no links to CDNs, no JS).
"""
