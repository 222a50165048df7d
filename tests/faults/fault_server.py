"""A real uvicorn server on the serving tests' world, for the fault suite:
``python fault_server.py PORT DIR '{"log_flush_records": 100000, ...}'`` (JSON: ServingSettings
fields; ``store`` a dict of StoreSettings fields). The prediction log is ``DIR/plog`` (replica
``server`` unless the settings name another: ``DIR/plog/server``, kept across restarts on
another port), the SQLite store ``DIR/online.sqlite`` unless the settings say otherwise."""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serving"))

from serving_world import build_world  # noqa: E402

from mlops.serving.http.app import serve  # noqa: E402
from mlops.serving.settings import ServingSettings, StoreSettings  # noqa: E402
from mlops.serving.state import open_state  # noqa: E402

if __name__ == "__main__":
    port, workdir, given = int(sys.argv[1]), Path(sys.argv[2]), json.loads(sys.argv[3])
    store = {"path": str(workdir / "online.sqlite"), **given.pop("store", {})}
    settings = ServingSettings(port=port, log_dir=str(workdir / "plog"), log_flush_seconds=3600,
                               **{"replica_id": "server", **given}, store=StoreSettings(**store))
    world = build_world()
    state = open_state(world.plan, world.model, world.info, settings,
                       reference=world.reference, source_schema=world.events.schema)
    serve(state)
