-- Issue 13: only the events that may still alert become alert candidates.
-- Under a steady load of people's opens (bench/run-alerts.sh: 8,500 a
-- second, every recipient alerted already within alert_reopen_seconds),
-- finalize handed every person's hit of its slice to make_alerts, which
-- built an array of them and probed the alerts twice for each: over half
-- a second a call on the loaded machine, and the batcher, which waits for
-- it between batches, fell behind the stream and did not catch up.
--
-- mailbeacon.alert_candidates drops, by an anti-join the planner may do
-- with a hash, the opens of a recipient whose open was alerted less than
-- `reopen` before (they cannot be a first open nor an "opened again") and
-- the clicks of a link whose click was alerted (not a first click). What
-- is dropped is exactly what make_alerts would not alert; what is left
-- goes to it unchanged, so the alerts made are the same.

CREATE FUNCTION mailbeacon.alert_candidates(lo timestamptz, hi timestamptz, reopen interval, msgs uuid[], fb timestamptz)
RETURNS mailbeacon.alert_candidate[] LANGUAGE plpgsql STABLE AS $$
BEGIN
  -- msgs NULL: the person's hits in [lo, hi) (finalize); otherwise the
  -- events of messages msgs in [lo, hi] loaded by this transaction that
  -- are final as they are loaded: a proxy's open, or a person's hit older
  -- than fb (alerts_loaded). One probe of the alerts per event.
  RETURN ARRAY(
    SELECT ROW(e.event_id, e.kind, e.message, e.recipient_idx, e.link_idx, e.occurred_at, e.class, e.url)::mailbeacon.alert_candidate
      FROM (SELECT e.event_id, e.kind, e.message, e.recipient_idx, e.link_idx, e.occurred_at, e.class, e.url
              FROM mailbeacon.events e
             WHERE msgs IS NULL AND e.class = 'human' AND e.kind IN ('open', 'click') AND e.occurred_at >= lo AND e.occurred_at < hi
            UNION ALL
            SELECT e.event_id, e.kind, e.message, e.recipient_idx, e.link_idx, e.occurred_at, e.class, e.url
              FROM mailbeacon.events e
             WHERE msgs IS NOT NULL AND e.message = ANY (msgs) AND e.occurred_at BETWEEN lo AND hi AND e.loaded_at = now()
               AND ((e.class = 'proxy' AND e.kind = 'open')
                    OR (e.class = 'human' AND e.kind IN ('open', 'click') AND e.occurred_at < fb))) e
     WHERE NOT EXISTS (SELECT 1 FROM mailbeacon.alerts a
                        WHERE a.message = e.message AND a.recipient_idx = e.recipient_idx
                          AND CASE e.kind
                                WHEN 'open' THEN (a.kind IN ('open', 'reopen') OR a.implied_open)
                                                 AND a.occurred_at > e.occurred_at - reopen
                                ELSE a.kind = 'click' AND a.link_idx = e.link_idx
                              END));
END $$;

CREATE OR REPLACE FUNCTION mailbeacon.alerts_loaded(msgs uuid[], lo timestamptz, hi timestamptz, reopen interval)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
  fb timestamptz;
BEGIN
  SELECT s.final_before INTO fb FROM mailbeacon.classifier_state s FOR NO KEY UPDATE;
  RETURN mailbeacon.make_alerts(mailbeacon.alert_candidates(lo, hi, reopen, msgs, fb), reopen);
END $$;

CREATE OR REPLACE FUNCTION mailbeacon.finalize(cutoff timestamptz, reopen interval)
RETURNS TABLE (final_before timestamptz, alerts bigint) LANGUAGE plpgsql AS $$
DECLARE
  f_old timestamptz;
  f_new timestamptz;
  n bigint := 0;
BEGIN
  SELECT s.final_before INTO f_old FROM mailbeacon.classifier_state s FOR NO KEY UPDATE;
  -- at most a minute of events a call (011)
  f_new := greatest(f_old, CASE WHEN f_old = '-infinity' THEN cutoff ELSE least(cutoff, f_old + interval '1 minute') END);
  IF f_new > f_old THEN
    UPDATE mailbeacon.classifier_state SET final_before = f_new;
    n := mailbeacon.make_alerts(mailbeacon.alert_candidates(f_old, f_new, reopen, NULL, NULL), reopen);
  END IF;
  RETURN QUERY SELECT f_new, n;
END $$;

-- make_alerts is planned for its arguments at every call. PL/pgSQL keeps a
-- generic plan of a statement once five calls found it no dearer, and a
-- generic plan guesses ten candidates: after the few alerts of a quiet
-- start, the first burst of people's first opens (thousands in one call)
-- ran with nested loops over them, 1.8 s instead of 0.27 s for one
-- second of 8,500 hits (bench/run-alerts.sh), and the batcher fell behind.
ALTER FUNCTION mailbeacon.make_alerts(mailbeacon.alert_candidate[], interval) SET plan_cache_mode = force_custom_plan;

-- An alert's JSON writes its times in the session's time zone: it is
-- STABLE, not IMMUTABLE as 008 and 009 declared it and what calls it.
-- PostgreSQL inlines a SQL function only when its body is no more volatile
-- than declared, so every row the webhooks' thread queued made three
-- function calls through the SQL executor (0.3 ms a row under load);
-- declared rightly they are inlined into the statement.
ALTER FUNCTION mailbeacon.alert_json(mailbeacon.alerts) STABLE;
ALTER FUNCTION mailbeacon.webhook_body(mailbeacon.alerts, text) STABLE;
