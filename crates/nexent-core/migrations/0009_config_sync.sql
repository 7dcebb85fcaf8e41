-- Issue 18. Config Sync's variables (Nexent's names: APP_NAME, LLM_MODEL_NAME, SELECTED_KB_NAMES, ...)
-- when a deployment shares its database; an embedded data dir keeps them in its `.env` file.
CREATE TABLE config_sync (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
