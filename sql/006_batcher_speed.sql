-- Issue 12, the batcher's speed with the classifier: two indexes every
-- loaded event paid for, for little.
--
-- events_clicks: judge_context reads a message's clicks in a window through
-- events_message (message, occurred_at) as well; an index of its own cost
-- an insertion for every click loaded.
--
-- events_occurred_at (BRIN): a starting batcher asked it for the newest
-- event in PostgreSQL (what other batchers loaded). The batch's transaction
-- now keeps that in classifier_state instead, one row per batch rather than
-- an index entry per event.
ALTER TABLE mailbeacon.classifier_state ADD COLUMN newest_loaded timestamptz;
UPDATE mailbeacon.classifier_state
   SET newest_loaded = (SELECT max(occurred_at) FROM mailbeacon.events WHERE occurred_at > now() - interval '1 day');
DROP INDEX mailbeacon.events_clicks;
DROP INDEX mailbeacon.events_occurred_at;
