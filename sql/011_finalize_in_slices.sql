-- Issue 13: mailbeacon.finalize closes at most a minute of look-ahead
-- windows a call. After the batcher had been stopped or PostgreSQL down,
-- final_before jumped over everything loaded meanwhile in one call, whose
-- alert candidates (every person's hit of that time) were an unbounded
-- array built while classifier_state's row was held, stalling every batch
-- behind it (batcher_faults.sh took 88 s, 361 s and over 600 s in three
-- runs of the same build). Called every 250 ms, it catches up at four
-- minutes of events a second.

CREATE OR REPLACE FUNCTION mailbeacon.finalize(cutoff timestamptz, reopen interval)
RETURNS TABLE (final_before timestamptz, alerts bigint) LANGUAGE plpgsql AS $$
DECLARE
  f_old timestamptz;
  f_new timestamptz;
  n bigint := 0;
BEGIN
  SELECT s.final_before INTO f_old FROM mailbeacon.classifier_state s FOR NO KEY UPDATE;
  -- at most a minute of events a call: a batcher that was behind (stopped,
  -- PostgreSQL down) catches up in slices, each a bounded set of candidates,
  -- instead of one transaction over everything since, holding the row
  f_new := greatest(f_old, CASE WHEN f_old = '-infinity' THEN cutoff ELSE least(cutoff, f_old + interval '1 minute') END);
  IF f_new > f_old THEN
    UPDATE mailbeacon.classifier_state SET final_before = f_new;
    n := mailbeacon.make_alerts(ARRAY(
      SELECT ROW(e.event_id, e.kind, e.message, e.recipient_idx, e.link_idx, e.occurred_at, e.class, e.url)::mailbeacon.alert_candidate
        FROM mailbeacon.events e
       WHERE e.class = 'human' AND e.kind IN ('open', 'click') AND e.occurred_at >= f_old AND e.occurred_at < f_new),
      reopen);
  END IF;
  RETURN QUERY SELECT f_new, n;
END $$;
