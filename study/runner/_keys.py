"""Names shared by the trial side and the driver: report keys, run tags, storage file names, limits."""

from __future__ import annotations

STATE_FILE = "lamp_study.json"
SPEC_FILE = "spec.yaml"
DEFAULT_STORAGE = "lamp_storage"
STATUS_KEY = "lamp_status"
ERROR_KEY = "lamp_error"
EPOCHS_KEY = "lamp_epochs"  # JSON list of per-epoch metric rows not yet reported
CHECKPOINTED_KEY = "lamp_checkpointed"  # an intermediate report that carries a training checkpoint
TRAIN_STATE_FILE = "train_state.pt"
OBJECTIVE_KEY = "objective"
NODE_KEY = "lamp_node"  # Ray node id of the worker that sent a report
NODE_TAG = "lamp.node_id"
ATTEMPTS_TAG = "lamp.attempts"
MAX_FAILURES = 2  # Tune restarts a trial whose worker or node died, from its last checkpoint
SEGMENTS_DIR = "segments"  # Tune experiments that extend a study or retry its failed trials
