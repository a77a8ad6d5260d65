-- 002: tasks. A task is a row before any worker sees it, so a restart finds every
-- task that was queued (run it) or running (it was interrupted).
CREATE TABLE task (
    id          TEXT PRIMARY KEY,
    type        TEXT NOT NULL,
    state       TEXT NOT NULL DEFAULT 'queued'
                CHECK (state IN ('queued', 'running', 'completed')),
    result      TEXT NOT NULL DEFAULT 'pending'
                CHECK (result IN ('pending', 'success', 'error', 'revoked')),
    progress    INTEGER NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
    params_json TEXT NOT NULL DEFAULT '{}',
    result_json TEXT NOT NULL DEFAULT '{}',
    result_msg  TEXT NOT NULL DEFAULT '',
    owner       TEXT NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL,
    started_at  INTEGER NOT NULL DEFAULT 0,
    finished_at INTEGER NOT NULL DEFAULT 0
);
-- Workers take the oldest queued row; the janitor drops old completed ones.
CREATE INDEX task_state ON task(state, created_at);
