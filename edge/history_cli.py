"""`fer-edge history`: the visits the daemon kept, printed as JSON lines or CSV (newest last)."""

from __future__ import annotations

import json
import sys
import time

from edge.classifier import ModelCard, card_path_for
from edge.config import Config
from edge.history import HistoryError, HistoryStore, parse_time, visits_csv
from edge.visits import day_start


def print_history(cfg: Config, since: str | None, until: str | None, as_csv: bool) -> int:
    store = HistoryStore(cfg.history)
    try:
        start = parse_time(since) if since else day_start(time.time())
        end = parse_time(until) if until else time.time() + 1
        visits = store.visits(start, end)[::-1]
    except (ValueError, HistoryError) as e:
        print(f"fer-edge history: error: {e}", file=sys.stderr)
        return 2
    if not store.path.exists():
        print(f"fer-edge history: no history at {store.path} yet (history.path sets another place)", file=sys.stderr)
    if as_csv:
        sys.stdout.write(visits_csv(visits, ModelCard.load(card_path_for(cfg.model.path)).labels))
    else:
        for v in visits:
            print(json.dumps(v))
    return 0
