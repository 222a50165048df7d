"""``action=score_merge``: verify every shard of a sharded score run is present, complete
and disjoint, and write them as one ``predictions.parquet``."""
from __future__ import annotations

import glob

from mlops.actions.context import RunContext
from mlops.actions.outputs import ActionResult, facts, write_report
from mlops.errors import DataError
from mlops.serving.shards import merge_shards


def run(ctx: RunContext) -> ActionResult:
    """Merge ``serving.input`` (the shard files) of ``serving.num_shards`` shards."""
    sc = ctx.cfg.serving
    if not sc.input:
        raise DataError("score_merge needs the shard files", key="serving.input",
                        fix="pass serving.input='<sweep dir>/*/predictions-*.parquet'")
    n = int(sc.num_shards)
    out = ctx.output_dir / "predictions.parquet"
    plan, _ = ctx.deployment().plan(str(sc.alias), ctx.plan)
    rep = merge_shards(sorted(glob.glob(str(sc.input))), n, entity=plan.entity,
                       event_id=ctx.event_id, out=out)
    result = {"status": "ok", "headline": f"{n} shards, {rep.rows:,} rows, "
              f"{rep.entities:,} entities, no duplicates", "shards": n, "files": rep.files,
              "rows": rep.rows, "entities": rep.entities, "output": out.name}
    write_report(ctx, "score", result, title="Sharded scoring: merged",
                 context={"facts": facts(result, ("output", "shards", "rows", "entities"))})
    return ActionResult(result=result, report="score.html")
