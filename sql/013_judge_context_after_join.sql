-- Issue 12: judge_context's per-event checks tied to the bursts and pairs
-- found, so that they run only for the events of those.
--
-- The burst and paired-scan UPDATEs checked each event with a subquery
-- over the other events of its message (the links its source clicked
-- around it; a person's click after it). Written over the event alone,
-- PostgreSQL may check it as it scans the events, before the join with
-- the bursts found: for every person's event of the batch's time range,
-- of every message, whether or not it had a burst. A message with
-- thousands of hits in seconds (tests/integration/batcher_faults.sh: 64
-- messages, 700,000 opens in 33 s) made one call run for over six minutes
-- (the test's 600 s timeout, in CI), and the same stream cost 0.04 s in one
-- run of bench/run-classify.sh and 8 s in another, as the plan went. Here
-- the subqueries read the burst's or pair's own columns (equal to the
-- event's by the join), which PostgreSQL can only check after the join:
-- what is judged is unchanged.

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
    FROM (SELECT DISTINCT h.message, h.ip, h.user_agent, h.occurred_at
            FROM mailbeacon.events h
           WHERE h.message = ANY (msgs) AND h.kind = 'honeypot' AND h.ip IS NOT NULL
             AND h.occurred_at BETWEEN lo - honeypot_window AND hi + honeypot_window) h
   WHERE e.message = h.message AND e.ip = h.ip AND e.user_agent = h.user_agent
     AND e.occurred_at BETWEEN h.occurred_at - honeypot_window AND h.occurred_at + honeypot_window
     AND e.kind IN ('open', 'click') AND e.class = 'human' AND (e.occurred_at >= open_from OR e.loaded_at = now());
  GET DIAGNOSTICS n = ROW_COUNT;
  total := total + n;
  UPDATE mailbeacon.events e
     SET class = 'scanner', reason = 'burst', rules_version = version
    FROM (SELECT o.message, o.recipient_idx, o.ip, o.user_agent
            FROM mailbeacon.events o
           WHERE o.message = ANY (click_msgs) AND o.kind = 'click' AND o.ip IS NOT NULL
             AND o.occurred_at BETWEEN lo - 2 * burst_window AND hi + 2 * burst_window
           GROUP BY 1, 2, 3, 4
          HAVING count(DISTINCT o.link_idx) >= greatest(burst_links, 2)) s
   WHERE e.message = s.message AND e.recipient_idx = s.recipient_idx AND e.ip = s.ip
     AND e.user_agent = s.user_agent AND e.kind IN ('open', 'click') AND e.class = 'human'
     AND (e.occurred_at >= open_from OR e.loaded_at = now())
     AND e.occurred_at BETWEEN lo - burst_window AND hi + burst_window
     AND (SELECT count(DISTINCT o.link_idx) FROM mailbeacon.events o
           WHERE o.message = s.message AND o.recipient_idx = s.recipient_idx AND o.kind = 'click' AND o.ip = s.ip
             AND o.user_agent = s.user_agent
             AND o.occurred_at BETWEEN e.occurred_at - burst_window AND e.occurred_at + burst_window)
         >= greatest(burst_links, 2);
  GET DIAGNOSTICS n = ROW_COUNT;
  total := total + n;
  UPDATE mailbeacon.events e
     SET class = 'scanner', reason = 'paired_scan', rules_version = version
    FROM (SELECT o.message, o.recipient_idx, o.link_idx
            FROM mailbeacon.events o
           WHERE o.message = ANY (click_msgs) AND o.kind = 'click'
             AND o.occurred_at BETWEEN lo - pair_window AND hi + pair_window
           GROUP BY 1, 2, 3
          HAVING count(DISTINCT o.ip) >= 2) s
   WHERE e.message = s.message AND e.recipient_idx = s.recipient_idx AND e.link_idx = s.link_idx
     AND e.kind = 'click' AND e.class = 'human' AND (e.occurred_at >= open_from OR e.loaded_at = now())
     AND e.occurred_at BETWEEN lo - pair_window AND hi
     AND EXISTS (SELECT 1 FROM mailbeacon.events p
                  WHERE p.message = s.message AND p.recipient_idx = s.recipient_idx AND p.kind = 'click'
                    AND p.link_idx = s.link_idx AND p.class = 'human' AND p.ip IS DISTINCT FROM e.ip
                    AND p.occurred_at > e.occurred_at AND p.occurred_at <= e.occurred_at + pair_window);
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN total + n;
END $$;

