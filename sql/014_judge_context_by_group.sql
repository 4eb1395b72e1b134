-- Issue 12: judge_context reaches the events it re-judges through the
-- honeypot hits, bursts and pairs found, never by scanning the batch's time
-- window.
--
-- Each UPDATE joined the events to change, by message and source, with the
-- honeypot hits, bursts or pairs found. PostgreSQL was free to read that
-- side by time, and since sql/007 it can through events_human (a partial
-- index of the people's events by occurred_at): with the statistics of a
-- partition filled faster than ANALYZE runs, it took the batch's window for
-- a row or two and scanned it whole (180,000 rows for one burst check, 50 ms
-- a batch even when no message had a burst; bench/run-classify.sh: 7 s of a
-- 16 s run). Here each check is a lateral lookup from the group found, by
-- its message (events_message), and the events are updated by their key:
-- a batch without honeypot hits, bursts or pairs reads nothing but its own
-- click messages. The lookups do not test the class: the planner would
-- take that for leave to read events_human (whose predicate it is) by the
-- window again, on the same wrong estimate. It is tested on the rows found
-- (the updated row's, and behind OFFSET 0, which keeps it out of the
-- paired click's lookup). What is judged is unchanged.

CREATE OR REPLACE FUNCTION mailbeacon.judge_context(msgs uuid[], click_msgs uuid[], lo timestamptz, hi timestamptz,
                                                    pending_only boolean,
                                                    burst_links integer, burst_window interval, pair_window interval,
                                                    honeypot_window interval, version text)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
  n bigint;
  total bigint := 0;
  open_from timestamptz := '-infinity';
BEGIN
  IF pending_only THEN
    SELECT s.final_before INTO open_from FROM mailbeacon.classifier_state s FOR NO KEY UPDATE;
  END IF;
  UPDATE mailbeacon.events e
     SET class = 'scanner', reason = 'honeypot_neighbour', rules_version = version
    FROM (SELECT DISTINCT x.event_id, x.occurred_at
            FROM (SELECT DISTINCT h.message, h.ip, h.user_agent, h.occurred_at
                    FROM mailbeacon.events h
                   WHERE h.message = ANY (msgs) AND h.kind = 'honeypot' AND h.ip IS NOT NULL
                     AND h.occurred_at BETWEEN lo - honeypot_window AND hi + honeypot_window) h
           CROSS JOIN LATERAL (
                 SELECT x.event_id, x.occurred_at
                   FROM mailbeacon.events x
                  WHERE x.message = h.message AND x.ip = h.ip AND x.user_agent = h.user_agent
                    AND x.occurred_at BETWEEN h.occurred_at - honeypot_window AND h.occurred_at + honeypot_window
                    AND x.kind IN ('open', 'click')
                    AND (x.occurred_at >= open_from OR x.loaded_at = now())) x) t
   WHERE e.event_id = t.event_id AND e.occurred_at = t.occurred_at AND e.class = 'human';
  GET DIAGNOSTICS n = ROW_COUNT;
  total := total + n;
  UPDATE mailbeacon.events e
     SET class = 'scanner', reason = 'burst', rules_version = version
    FROM (SELECT x.event_id, x.occurred_at
            FROM (SELECT o.message, o.recipient_idx, o.ip, o.user_agent
                    FROM mailbeacon.events o
                   WHERE o.message = ANY (click_msgs) AND o.kind = 'click' AND o.ip IS NOT NULL
                     AND o.occurred_at BETWEEN lo - 2 * burst_window AND hi + 2 * burst_window
                   GROUP BY 1, 2, 3, 4
                  HAVING count(DISTINCT o.link_idx) >= greatest(burst_links, 2)) s
           CROSS JOIN LATERAL (
                 SELECT x.event_id, x.occurred_at
                   FROM mailbeacon.events x
                  WHERE x.message = s.message AND x.recipient_idx = s.recipient_idx AND x.ip = s.ip
                    AND x.user_agent = s.user_agent AND x.kind IN ('open', 'click')
                    AND (x.occurred_at >= open_from OR x.loaded_at = now())
                    AND x.occurred_at BETWEEN lo - burst_window AND hi + burst_window
                    AND (SELECT count(DISTINCT o.link_idx) FROM mailbeacon.events o
                          WHERE o.message = s.message AND o.recipient_idx = s.recipient_idx AND o.kind = 'click'
                            AND o.ip = s.ip AND o.user_agent = s.user_agent
                            AND o.occurred_at BETWEEN x.occurred_at - burst_window AND x.occurred_at + burst_window)
                        >= greatest(burst_links, 2)) x) t
   WHERE e.event_id = t.event_id AND e.occurred_at = t.occurred_at AND e.class = 'human';
  GET DIAGNOSTICS n = ROW_COUNT;
  total := total + n;
  UPDATE mailbeacon.events e
     SET class = 'scanner', reason = 'paired_scan', rules_version = version
    FROM (SELECT x.event_id, x.occurred_at
            FROM (SELECT o.message, o.recipient_idx, o.link_idx
                    FROM mailbeacon.events o
                   WHERE o.message = ANY (click_msgs) AND o.kind = 'click'
                     AND o.occurred_at BETWEEN lo - pair_window AND hi + pair_window
                   GROUP BY 1, 2, 3
                  HAVING count(DISTINCT o.ip) >= 2) s
           CROSS JOIN LATERAL (
                 SELECT x.event_id, x.occurred_at
                   FROM mailbeacon.events x
                  WHERE x.message = s.message AND x.recipient_idx = s.recipient_idx AND x.link_idx = s.link_idx
                    AND x.kind = 'click' AND (x.occurred_at >= open_from OR x.loaded_at = now())
                    AND x.occurred_at BETWEEN lo - pair_window AND hi
                    AND EXISTS (SELECT 1
                                  FROM (SELECT p.class FROM mailbeacon.events p
                                         WHERE p.message = s.message AND p.recipient_idx = s.recipient_idx
                                           AND p.kind = 'click' AND p.link_idx = s.link_idx AND p.ip IS DISTINCT FROM x.ip
                                           AND p.occurred_at > x.occurred_at AND p.occurred_at <= x.occurred_at + pair_window
                                        OFFSET 0) p
                                 WHERE p.class = 'human')) x) t
   WHERE e.event_id = t.event_id AND e.occurred_at = t.occurred_at AND e.class = 'human';
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN total + n;
END $$;
