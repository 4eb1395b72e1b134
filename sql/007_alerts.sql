-- Issue 13: alerts to the sending rep (docs/alerts.md).
--
-- An alert is made from a final event judged human (or proxy, for an
-- open), in the transaction that makes the event final: the batch's own,
-- for events final as they are loaded (a proxy's open; a hit older than
-- final_before), and mailbeacon.finalize's, for the human events whose
-- look-ahead window it closes. Every such transaction holds the one row of
-- classifier_state locked from before it reads final_before to its commit:
--   - finalize cannot close the window over events a batch is re-judging
--     (judge_context reads final_before under the same lock), nor over
--     events a batch has loaded and not committed;
--   - alerts are numbered in the order they commit, so a reader that has
--     seen alert n has seen every alert below n (Last-Event-ID is exact).

-- The recipient's display name from the To or Cc header ('' when none).
ALTER TABLE mailbeacon.recipients ADD COLUMN name text NOT NULL DEFAULT '';

CREATE OR REPLACE FUNCTION mailbeacon.load_sent(stream_id text, message text, message_id text, rep text, subject text,
                                                sent_at_us text, recipients text, links text, client_ip text)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
  m uuid;
  r jsonb;
  l jsonb;
  ip inet;
BEGIN
  BEGIN
    m := message::uuid;
    r := recipients::jsonb;
    l := links::jsonb;
    ip := nullif(client_ip, '')::inet;
    INSERT INTO mailbeacon.messages (message, message_id, rep, subject, sent_at, recipient_count, sender_ip)
    VALUES (m, message_id, rep, subject, to_timestamp(sent_at_us::bigint / 1e6), jsonb_array_length(r), ip)
    ON CONFLICT DO NOTHING;
    INSERT INTO mailbeacon.recipients (message, idx, address, name)
    SELECT m, x.i, x.addr, coalesce(x.name, '') FROM jsonb_to_recordset(r) AS x(i integer, addr text, name text)
    ON CONFLICT DO NOTHING;
    INSERT INTO mailbeacon.links (message, idx, url)
    SELECT m, x.i, x.url FROM jsonb_to_recordset(l) AS x(i integer, url text)
    ON CONFLICT DO NOTHING;
    RETURN true;
  EXCEPTION WHEN others THEN
    INSERT INTO mailbeacon.rejected (stream_id, part, entry, reason)
    VALUES (stream_id, 0,
            json_build_object('type', 'sent', 'message', message, 'message_id', message_id, 'rep', rep,
                              'subject', subject, 'sent_at', sent_at_us, 'recipients', recipients,
                              'links', links, 'client_ip', client_ip)::text,
            SQLERRM)
    ON CONFLICT DO NOTHING;
    RETURN false;
  END;
END $$;

CREATE TABLE mailbeacon.alerts (
  id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, -- commit order (above)
  rep            text NOT NULL,          -- the message's rep (alert_share adds readers, docs/alerts.md)
  kind           text NOT NULL CHECK (kind IN ('open', 'reopen', 'click')),
  message        uuid NOT NULL,
  recipient_idx  integer NOT NULL,       -- 0: one copy went to several ("someone of ...")
  recipient      text NOT NULL,          -- the address; for 0, every recipient's, ", " between
  recipient_name text NOT NULL DEFAULT '',
  subject        text NOT NULL,
  link_idx       integer NOT NULL DEFAULT 0,
  url            text,                   -- the link clicked
  occurred_at    timestamptz NOT NULL,   -- the event's time at the edge
  event_id       uuid NOT NULL UNIQUE,   -- the event it was made from
  class          text NOT NULL,          -- human, or proxy (an open)
  implied_open   boolean NOT NULL DEFAULT false, -- a click with no open before it
  opens          integer NOT NULL,       -- people's opens of this message by this recipient so far
  clicks         integer NOT NULL,       -- people's clicks so far
  created_at     timestamptz NOT NULL DEFAULT now()
);
-- One first open per message and recipient, one alert per link clicked:
-- a redelivered or replayed batch makes no second alert.
CREATE UNIQUE INDEX alerts_first_open ON mailbeacon.alerts (message, recipient_idx) WHERE kind = 'open';
CREATE UNIQUE INDEX alerts_first_click ON mailbeacon.alerts (message, recipient_idx, link_idx) WHERE kind = 'click';
CREATE INDEX alerts_message ON mailbeacon.alerts (message, recipient_idx);
CREATE INDEX alerts_rep ON mailbeacon.alerts (rep, id);

-- The human events by time: what finalize makes final.
CREATE INDEX events_human ON mailbeacon.events (occurred_at) WHERE class = 'human';

-- Nothing loaded before this migration alerts anyone.
UPDATE mailbeacon.classifier_state SET final_before = greatest(final_before, now());

-- judge_context as in 005, but reading final_before under the row lock
-- (above).
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
           WHERE o.message = e.message AND o.recipient_idx = e.recipient_idx AND o.kind = 'click' AND o.ip = e.ip
             AND o.user_agent = e.user_agent
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
                  WHERE p.message = e.message AND p.recipient_idx = e.recipient_idx AND p.kind = 'click'
                    AND p.link_idx = e.link_idx AND p.class = 'human' AND p.ip IS DISTINCT FROM e.ip
                    AND p.occurred_at > e.occurred_at AND p.occurred_at <= e.occurred_at + pair_window);
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN total + n;
END $$;

-- An event that may make an alert.
CREATE TYPE mailbeacon.alert_candidate AS (
  event_id uuid, kind mailbeacon.event_kind, message uuid, recipient_idx integer, link_idx integer,
  occurred_at timestamptz, class text, url text);

-- Makes the alerts of final events c (docs/alerts.md "What makes an
-- alert"), in the order the events occurred, and wakes the listeners of
-- channel mailbeacon_alerts when it made any (at commit; the payload is
-- the newest id). The caller holds classifier_state's row. Returns how
-- many it made.
CREATE FUNCTION mailbeacon.make_alerts(c mailbeacon.alert_candidate[], reopen interval) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
  n bigint;
  top bigint;
BEGIN
  IF cardinality(c) = 0 THEN
    RETURN 0;
  END IF;
  WITH cand AS (
    SELECT * FROM unnest(c)
  ), first_open AS (
    -- the first open of a recipient with no open alert yet (a click's
    -- implied open counts as one)
    SELECT DISTINCT ON (x.message, x.recipient_idx) x.*, 'open' AS akind
      FROM cand x
     WHERE x.kind = 'open'
       AND NOT EXISTS (SELECT 1 FROM mailbeacon.alerts a
                        WHERE a.message = x.message AND a.recipient_idx = x.recipient_idx
                          AND (a.kind IN ('open', 'reopen') OR a.implied_open))
     ORDER BY x.message, x.recipient_idx, x.occurred_at
  ), reopen AS (
    -- "opened again": the first open at least `reopen` after the last
    -- open alert of that recipient
    SELECT DISTINCT ON (x.message, x.recipient_idx) x.*, 'reopen' AS akind
      FROM cand x
      CROSS JOIN LATERAL (
        SELECT greatest((SELECT max(a.occurred_at) FROM mailbeacon.alerts a
                          WHERE a.message = x.message AND a.recipient_idx = x.recipient_idx
                            AND (a.kind IN ('open', 'reopen') OR a.implied_open)),
                        (SELECT f.occurred_at FROM first_open f
                          WHERE f.message = x.message AND f.recipient_idx = x.recipient_idx)) AS last) l
     WHERE x.kind = 'open' AND x.occurred_at >= l.last + reopen
     ORDER BY x.message, x.recipient_idx, x.occurred_at
  ), first_click AS (
    SELECT DISTINCT ON (x.message, x.recipient_idx, x.link_idx) x.*, 'click' AS akind
      FROM cand x
     WHERE x.kind = 'click' AND x.class = 'human'
       AND NOT EXISTS (SELECT 1 FROM mailbeacon.alerts a
                        WHERE a.message = x.message AND a.recipient_idx = x.recipient_idx
                          AND a.kind = 'click' AND a.link_idx = x.link_idx)
     ORDER BY x.message, x.recipient_idx, x.link_idx, x.occurred_at
  ), chosen AS (
    SELECT * FROM first_open UNION ALL SELECT * FROM reopen UNION ALL SELECT * FROM first_click
  ), made AS (
    INSERT INTO mailbeacon.alerts (rep, kind, message, recipient_idx, recipient, recipient_name, subject, link_idx,
                                   url, occurred_at, event_id, class, implied_open, opens, clicks)
    SELECT m.rep, x.akind, x.message, x.recipient_idx, coalesce(r.address, ''), coalesce(r.name, ''), m.subject,
           x.link_idx, x.url, x.occurred_at, x.event_id, x.class,
           -- the first click of a recipient with no person's open before it
           x.akind = 'click'
             AND NOT EXISTS (SELECT 1 FROM mailbeacon.events o
                              WHERE o.message = x.message AND o.recipient_idx = x.recipient_idx AND o.kind = 'open'
                                AND o.class IN ('human', 'proxy') AND o.occurred_at <= x.occurred_at)
             AND NOT EXISTS (SELECT 1 FROM mailbeacon.alerts a
                              WHERE a.message = x.message AND a.recipient_idx = x.recipient_idx
                                AND (a.kind IN ('open', 'reopen') OR a.implied_open))
             AND NOT EXISTS (SELECT 1 FROM first_click y
                              WHERE y.message = x.message AND y.recipient_idx = x.recipient_idx
                                AND (y.occurred_at, y.link_idx) < (x.occurred_at, x.link_idx)),
           k.opens, k.clicks
      FROM chosen x
      JOIN mailbeacon.messages m ON m.message = x.message
      CROSS JOIN LATERAL (
        SELECT count(*) FILTER (WHERE e.kind = 'open' AND e.class IN ('human', 'proxy')) AS opens,
               count(*) FILTER (WHERE e.kind = 'click' AND e.class = 'human') AS clicks
          FROM mailbeacon.events e
         WHERE e.message = x.message AND e.recipient_idx = x.recipient_idx AND e.occurred_at <= x.occurred_at) k
      LEFT JOIN LATERAL (
        SELECT string_agg(rr.address, ', ' ORDER BY rr.idx) AS address,
               CASE WHEN x.recipient_idx = 0 THEN '' ELSE min(rr.name) END AS name
          FROM mailbeacon.recipients rr
         WHERE rr.message = x.message AND (x.recipient_idx = 0 OR rr.idx = x.recipient_idx)) r ON true
     ORDER BY x.occurred_at, x.event_id
    ON CONFLICT DO NOTHING
    RETURNING id
  )
  SELECT count(*), max(id) INTO n, top FROM made;
  IF n > 0 THEN
    PERFORM pg_notify('mailbeacon_alerts', top::text);
  END IF;
  RETURN n;
END $$;

-- The alerts of the batch's own events that are final as they are loaded
-- (loaded by this transaction, of messages msgs, in [lo, hi]): a proxy's
-- open, or a person's hit older than final_before. In the batch's
-- transaction, after judge_context.
CREATE FUNCTION mailbeacon.alerts_loaded(msgs uuid[], lo timestamptz, hi timestamptz, reopen interval)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
  fb timestamptz;
BEGIN
  SELECT s.final_before INTO fb FROM mailbeacon.classifier_state s FOR NO KEY UPDATE;
  RETURN mailbeacon.make_alerts(ARRAY(
    SELECT ROW(e.event_id, e.kind, e.message, e.recipient_idx, e.link_idx, e.occurred_at, e.class, e.url)::mailbeacon.alert_candidate
      FROM mailbeacon.events e
     WHERE e.message = ANY (msgs) AND e.occurred_at BETWEEN lo AND hi AND e.loaded_at = now()
       AND ((e.class = 'proxy' AND e.kind = 'open')
            OR (e.class = 'human' AND e.kind IN ('open', 'click') AND e.occurred_at < fb))), reopen);
END $$;

-- Moves final_before forward to cutoff and makes the alerts of the human
-- events it makes final. Returns the new final_before and the alerts made.
CREATE FUNCTION mailbeacon.finalize(cutoff timestamptz, reopen interval)
RETURNS TABLE (final_before timestamptz, alerts bigint) LANGUAGE plpgsql AS $$
DECLARE
  f_old timestamptz;
  f_new timestamptz;
  n bigint := 0;
BEGIN
  SELECT s.final_before INTO f_old FROM mailbeacon.classifier_state s FOR NO KEY UPDATE;
  f_new := greatest(f_old, cutoff);
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
