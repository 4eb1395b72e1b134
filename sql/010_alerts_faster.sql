-- Issue 13: alerts made faster. The first version of make_alerts (007)
-- looked up, for every candidate, the first opens and first clicks chosen
-- in the same call with a subquery: quadratic in the candidates, which a
-- finalize under load counts in thousands (measured: the batcher fell to
-- ~1,500 rows/s behind 8,700 hits/s while 10,000 first opens alerted). Here
-- they are a join and a window function; what it makes is unchanged.

CREATE OR REPLACE FUNCTION mailbeacon.make_alerts(c mailbeacon.alert_candidate[], reopen interval) RETURNS bigint
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
    -- open alert of that recipient (a join, not a subquery per row: a
    -- finalize can hold thousands of candidates)
    SELECT DISTINCT ON (x.message, x.recipient_idx) x.*, 'reopen' AS akind
      FROM cand x
      LEFT JOIN first_open f ON f.message = x.message AND f.recipient_idx = x.recipient_idx
      CROSS JOIN LATERAL (
        SELECT max(a.occurred_at) AS last FROM mailbeacon.alerts a
         WHERE a.message = x.message AND a.recipient_idx = x.recipient_idx
           AND (a.kind IN ('open', 'reopen') OR a.implied_open)) l
     WHERE x.kind = 'open' AND x.occurred_at >= greatest(l.last, f.occurred_at) + reopen
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
    SELECT *, true AS first_of_recipient FROM first_open
    UNION ALL SELECT *, true FROM reopen
    UNION ALL
    -- the recipient's first click among them: the only one that may imply the open
    SELECT *, row_number() OVER (PARTITION BY message, recipient_idx ORDER BY occurred_at, link_idx) = 1
      FROM first_click
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
             AND x.first_of_recipient,
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
