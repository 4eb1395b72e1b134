-- Issue 12: every open and click gets a class and a reason (docs/classifier.md).
-- (The honeypot kind is added by 004_honeypot_kind.sql.)
--
-- The batcher judges each event from its own facts with the rules file as it
-- loads it, and mailbeacon.judge_context re-judges the events a later event
-- can still change (a burst, a pair, the honeypot) until their look-ahead
-- window closes and they become final. Raw facts are never changed.

-- The address of the client that submitted the message (the sent record's
-- client_ip): the rep's own machine.
ALTER TABLE mailbeacon.messages ADD COLUMN sender_ip inet;

ALTER TABLE mailbeacon.events
  ADD COLUMN purpose text,        -- Sec-Purpose / Purpose / X-Purpose / X-Moz as sent
  ADD COLUMN rules_version text;  -- the rules that judged class and reason

-- Which judgements are final. Only an event judged human can still change
-- (the context rules turn a person's hit into a scanner's, never back), and
-- only while it is younger than final_before: the batcher moves it forward
-- every second, to lookahead_ms before the oldest event that may still come
-- (docs/classifier.md). One row; an event's finality is derived, so making
-- events final writes nothing per event.
CREATE TABLE mailbeacon.classifier_state (
  only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
  final_before timestamptz NOT NULL DEFAULT '-infinity'
);
INSERT INTO mailbeacon.classifier_state DEFAULT VALUES;

-- Events that occurred before this are final.
CREATE FUNCTION mailbeacon.final_before() RETURNS timestamptz LANGUAGE sql STABLE AS $$
  SELECT coalesce((SELECT final_before FROM mailbeacon.classifier_state), '-infinity'::timestamptz)
$$;

-- 1 when the event's judgement is final: its class is not human (nothing
-- changes a machine's), or it occurred before final_before.
CREATE FUNCTION mailbeacon.is_final(class text, occurred_at timestamptz, final_before timestamptz)
RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
  SELECT class IS DISTINCT FROM 'human' OR occurred_at < final_before
$$;
-- What judge_context reads around every batch: the honeypot hits (few) by
-- time, and each message's clicks (not its opens).
CREATE INDEX events_honeypot ON mailbeacon.events (occurred_at) WHERE kind = 'honeypot';
CREATE INDEX events_clicks ON mailbeacon.events (message, occurred_at) WHERE kind = 'click';
-- The newest events by time (a starting batcher asks which hits others
-- loaded last): BRIN, next to nothing to keep up for rows added in time order.
CREATE INDEX events_occurred_at ON mailbeacon.events USING brin (occurred_at);

-- load_sent with the submitting client's address (empty: unknown).
DROP FUNCTION mailbeacon.load_sent(text, text, text, text, text, text, text, text);
CREATE FUNCTION mailbeacon.load_sent(stream_id text, message text, message_id text, rep text, subject text,
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
    INSERT INTO mailbeacon.recipients (message, idx, address)
    SELECT m, x.i, x.addr FROM jsonb_to_recordset(r) AS x(i integer, addr text)
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

-- Re-judges, by what the other events of the message say, the opens and
-- clicks of messages msgs judged human so far (and, with pending_only, not
-- final yet, or loaded by this transaction) that a hit of [lo, hi] can change: those within each rule's
-- window of it. "The same source" is the same address and the same user
-- agent (a scanner keeps both; a person behind the same NAT has a browser
-- of their own). First match wins:
--   honeypot_neighbour  a hit on the message's honeypot link from the same
--                       source within honeypot_window
--   burst               from the same source, clicks of burst_links distinct
--                       links of the message and recipient within
--                       burst_window of it (an open: the scanner rendering)
--   paired_scan         a click whose link and recipient a person clicked
--                       from another address within pair_window after it:
--                       the scan a link checker made before sending the
--                       browser on (Safe Links and its peers)
-- Class scanner with that reason and the rules' version. Each rule first
-- finds what could match (honeypot hits, sources with enough distinct
-- links, links clicked from two addresses), usually nothing, and looks at
-- single events only there. click_msgs: those of msgs with clicks or
-- honeypot hits among the hits of [lo, hi] (a burst or a pair needs one);
-- an open that comes in a later batch than every click of a burst around
-- it is left as judged. Returns how many events it changed.
CREATE FUNCTION mailbeacon.judge_context(msgs uuid[], click_msgs uuid[], lo timestamptz, hi timestamptz,
                                         pending_only boolean,
                                         burst_links integer, burst_window interval, pair_window interval,
                                         honeypot_window interval, version text)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
  n bigint;
  total bigint := 0;
  open_from timestamptz := CASE WHEN pending_only THEN mailbeacon.final_before() ELSE '-infinity' END;
BEGIN
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

-- The views count people: human, plus proxy for opens (an image proxy
-- fetches because a person opened), plus one open implied by a person's
-- click for a recipient with no such open (as HubSpot counts). Honeypot hits
-- are counted nowhere. Columns keep their names and meanings; the
-- per-class counts are added after them.
CREATE OR REPLACE VIEW mailbeacon.message_engagement AS
SELECT m.message, m.message_id, m.rep, m.subject, m.sent_at,
       m.recipient_count AS recipients,
       coalesce(e.opens, 0)::bigint AS opens,
       coalesce(e.unique_opens, 0)::bigint AS unique_opens,
       e.first_open, e.last_open,
       coalesce(e.clicks, 0)::bigint AS clicks,
       coalesce(e.unique_clicks, 0)::bigint AS unique_clicks,
       coalesce(e.human_opens, 0)::bigint AS human_opens,
       coalesce(e.human_unique_opens, 0)::bigint AS human_unique_opens,
       e.human_first_open,
       coalesce(e.human_clicks, 0)::bigint AS human_clicks,
       coalesce(e.human_unique_clicks, 0)::bigint AS human_unique_clicks,
       coalesce(e.machine_opens, 0)::bigint AS machine_opens,
       coalesce(e.machine_clicks, 0)::bigint AS machine_clicks,
       coalesce(e.unclassified, 0)::bigint AS unclassified,
       coalesce(e.implied_opens, 0)::bigint AS implied_opens,
       coalesce(e.proxy_opens, 0)::bigint AS proxy_opens,
       coalesce(e.prefetch_opens, 0)::bigint AS prefetch_opens,
       coalesce(e.scanner_opens, 0)::bigint AS scanner_opens,
       coalesce(e.scanner_clicks, 0)::bigint AS scanner_clicks,
       coalesce(e.sender_opens, 0)::bigint AS sender_opens,
       coalesce(e.sender_clicks, 0)::bigint AS sender_clicks,
       coalesce(e.pending, 0)::bigint AS pending
  FROM mailbeacon.messages m
  LEFT JOIN LATERAL (
    SELECT sum(r.opens) AS opens,
           count(*) FILTER (WHERE r.opens > 0) AS unique_opens,
           min(r.first_open) AS first_open,
           max(r.last_open) AS last_open,
           sum(r.clicks) AS clicks,
           count(*) FILTER (WHERE r.clicks > 0) AS unique_clicks,
           sum(r.person_opens + r.implied) AS human_opens,
           count(*) FILTER (WHERE r.person_opens > 0 OR r.person_clicks > 0) AS human_unique_opens,
           min(least(r.person_first_open, r.person_first_click)) AS human_first_open,
           sum(r.person_clicks) AS human_clicks,
           count(*) FILTER (WHERE r.person_clicks > 0) AS human_unique_clicks,
           sum(r.machine_opens) AS machine_opens,
           sum(r.machine_clicks) AS machine_clicks,
           sum(r.unclassified) AS unclassified,
           sum(r.implied) AS implied_opens,
           sum(r.proxy_opens) AS proxy_opens,
           sum(r.prefetch_opens) AS prefetch_opens,
           sum(r.scanner_opens) AS scanner_opens,
           sum(r.scanner_clicks) AS scanner_clicks,
           sum(r.sender_opens) AS sender_opens,
           sum(r.sender_clicks) AS sender_clicks,
           sum(r.pending) AS pending
      FROM (
        SELECT ev.recipient_idx,
               count(*) FILTER (WHERE kind = 'open') AS opens,
               min(occurred_at) FILTER (WHERE kind = 'open') AS first_open,
               max(occurred_at) FILTER (WHERE kind = 'open') AS last_open,
               count(*) FILTER (WHERE kind = 'click') AS clicks,
               count(*) FILTER (WHERE kind = 'open' AND class IN ('human', 'proxy')) AS person_opens,
               min(occurred_at) FILTER (WHERE kind = 'open' AND class IN ('human', 'proxy')) AS person_first_open,
               count(*) FILTER (WHERE kind = 'click' AND class = 'human') AS person_clicks,
               min(occurred_at) FILTER (WHERE kind = 'click' AND class = 'human') AS person_first_click,
               CASE WHEN count(*) FILTER (WHERE kind = 'open' AND class IN ('human', 'proxy')) = 0
                     AND count(*) FILTER (WHERE kind = 'click' AND class = 'human') > 0 THEN 1 ELSE 0 END AS implied,
               count(*) FILTER (WHERE kind = 'open' AND class NOT IN ('human', 'proxy')) AS machine_opens,
               count(*) FILTER (WHERE kind = 'click' AND class <> 'human') AS machine_clicks,
               count(*) FILTER (WHERE class IS NULL) AS unclassified,
               count(*) FILTER (WHERE kind = 'open' AND class = 'proxy') AS proxy_opens,
               count(*) FILTER (WHERE kind = 'open' AND class = 'prefetch') AS prefetch_opens,
               count(*) FILTER (WHERE kind = 'open' AND class = 'scanner') AS scanner_opens,
               count(*) FILTER (WHERE kind = 'click' AND class = 'scanner') AS scanner_clicks,
               count(*) FILTER (WHERE kind = 'open' AND class = 'sender') AS sender_opens,
               count(*) FILTER (WHERE kind = 'click' AND class = 'sender') AS sender_clicks,
               count(*) FILTER (WHERE class = 'human' AND occurred_at >= fb.final_before) AS pending
          FROM mailbeacon.events ev, (SELECT mailbeacon.final_before() AS final_before) fb
         WHERE ev.message = m.message AND ev.kind IN ('open', 'click')
         GROUP BY ev.recipient_idx
      ) r
  ) e ON true;

CREATE OR REPLACE VIEW mailbeacon.link_clicks AS
SELECT l.message, l.idx AS link_idx, l.url, m.rep, m.subject, m.sent_at,
       count(ev.event_id) AS clicks,
       count(DISTINCT ev.recipient_idx) AS unique_clicks,
       count(ev.event_id) FILTER (WHERE ev.class = 'human') AS human_clicks,
       count(DISTINCT ev.recipient_idx) FILTER (WHERE ev.class = 'human') AS human_unique_clicks,
       min(ev.occurred_at) AS first_click,
       max(ev.occurred_at) AS last_click,
       count(ev.event_id) FILTER (WHERE ev.class = 'scanner') AS scanner_clicks,
       count(ev.event_id) FILTER (WHERE ev.class = 'sender') AS sender_clicks,
       min(ev.occurred_at) FILTER (WHERE ev.class = 'human') AS human_first_click
  FROM mailbeacon.links l
  JOIN mailbeacon.messages m ON m.message = l.message
  LEFT JOIN mailbeacon.events ev ON ev.message = l.message AND ev.kind = 'click' AND ev.link_idx = l.idx
 GROUP BY l.message, l.idx, l.url, m.rep, m.subject, m.sent_at;

CREATE OR REPLACE VIEW mailbeacon.recipient_timeline AS
SELECT lower(r.address) AS address, r.message, m.rep, m.subject,
       m.sent_at AS occurred_at, 'sent'::text AS kind, NULL::integer AS link_idx, NULL::text AS url,
       NULL::text AS class, NULL::inet AS ip, NULL::text AS user_agent, NULL::uuid AS event_id,
       NULL::text AS reason, NULL::boolean AS final
  FROM mailbeacon.recipients r
  JOIN mailbeacon.messages m ON m.message = r.message
UNION ALL
SELECT lower(r.address), r.message, m.rep, m.subject,
       ev.occurred_at, ev.kind::text, nullif(ev.link_idx, 0), ev.url,
       ev.class, ev.ip, ev.user_agent, ev.event_id,
       ev.reason, mailbeacon.is_final(ev.class, ev.occurred_at, mailbeacon.final_before())
  FROM mailbeacon.events ev
  JOIN mailbeacon.recipients r ON r.message = ev.message AND r.idx = ev.recipient_idx
  JOIN mailbeacon.messages m ON m.message = ev.message
 WHERE ev.kind IN ('open', 'click');

-- Per recipient address, across every message sent to it: for the analyst
-- and the rep's CRM. A message counts as opened when a person opened it
-- (human or proxy open, or a person's click); hits of a copy that went to
-- several recipients (index 0) belong to no one address and are not here.
CREATE VIEW mailbeacon.contact_engagement AS
SELECT lower(r.address) AS address,
       count(*) AS messages,
       count(*) FILTER (WHERE p.opened) AS opened,
       count(*) FILTER (WHERE p.clicked) AS clicked,
       round(100.0 * count(*) FILTER (WHERE p.opened) / count(*), 1) AS opened_pct,
       min(m.sent_at) AS first_sent,
       max(m.sent_at) AS last_sent,
       max(p.last_human) AS last_human_activity,
       coalesce(sum(p.machine_hits), 0)::bigint AS machine_hits
  FROM mailbeacon.recipients r
  JOIN mailbeacon.messages m ON m.message = r.message
  LEFT JOIN LATERAL (
    SELECT bool_or((ev.kind = 'open' AND ev.class IN ('human', 'proxy')) OR (ev.kind = 'click' AND ev.class = 'human'))
             AS opened,
           bool_or(ev.kind = 'click' AND ev.class = 'human') AS clicked,
           max(ev.occurred_at) FILTER (WHERE (ev.kind = 'open' AND ev.class IN ('human', 'proxy'))
                                          OR (ev.kind = 'click' AND ev.class = 'human')) AS last_human,
           count(*) FILTER (WHERE ev.class NOT IN ('human', 'proxy')) AS machine_hits
      FROM mailbeacon.events ev
     WHERE ev.message = r.message AND ev.recipient_idx = r.idx AND ev.kind IN ('open', 'click')
  ) p ON true
 GROUP BY lower(r.address);
