"""Run a real uvicorn server on the test world: ``python serving_server_main.py PORT DIR
[FLUSH_RECORDS [buffered]]`` (FLUSH_RECORDS: journal segment size of the prediction log;
``buffered``: the non-durable log mode). The log is ``DIR/plog/server`` (replica ``server``).

Used by test_serving_server.py (a subprocess) to talk HTTP to the real thing.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from serving_world import build_world  # noqa: E402

from mlops.serving.http.app import serve  # noqa: E402
from mlops.serving.settings import ServingSettings, StoreSettings  # noqa: E402
from mlops.serving.state import open_state  # noqa: E402

if __name__ == "__main__":
    port, workdir = int(sys.argv[1]), Path(sys.argv[2])
    world = build_world()
    flush = int(sys.argv[3]) if len(sys.argv) > 3 else 100_000
    settings = ServingSettings(port=port, log_dir=str(workdir / "plog"), replica_id="server",
                               log_flush_records=flush, log_flush_seconds=3600,
                               log_durable=sys.argv[4:5] != ["buffered"],
                               store=StoreSettings(path=str(workdir / "online.sqlite")))
    state = open_state(world.plan, world.model, world.info, settings,
                       reference=world.reference, source_schema=world.events.schema)
    serve(state)
