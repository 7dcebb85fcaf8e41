-- Issue 21. How many times the process stopped while a binary-format parser was reading the task's file
-- (`parse_started_at` set at a restart). `attempts` counts every interruption, so a task stopped once while
-- embedding and once while parsing read as "stopped the server twice" and a good file was failed; a task is
-- now failed as possibly hostile only when its parser was running at two interruptions.
ALTER TABLE ingest_task ADD COLUMN parse_interruptions INTEGER NOT NULL DEFAULT 0;
