-- The views analysts query (docs/analytics.md). Classes come from the
-- classifier: 'human' is a person; any other class is a machine (image
-- proxy prefetch, link scanner, bot); NULL is not classified yet.

-- Per message: recipients, opens, unique opens (distinct recipients), first
-- and last open, clicks, unique clicks (distinct recipients who clicked),
-- each also for people only (human_*), and what machines did.
CREATE VIEW mailbeacon.message_engagement AS
SELECT m.message, m.message_id, m.rep, m.subject, m.sent_at,
       m.recipient_count AS recipients,
       coalesce(e.opens, 0) AS opens,
       coalesce(e.unique_opens, 0) AS unique_opens,
       e.first_open, e.last_open,
       coalesce(e.clicks, 0) AS clicks,
       coalesce(e.unique_clicks, 0) AS unique_clicks,
       coalesce(e.human_opens, 0) AS human_opens,
       coalesce(e.human_unique_opens, 0) AS human_unique_opens,
       e.human_first_open,
       coalesce(e.human_clicks, 0) AS human_clicks,
       coalesce(e.human_unique_clicks, 0) AS human_unique_clicks,
       coalesce(e.machine_opens, 0) AS machine_opens,
       coalesce(e.machine_clicks, 0) AS machine_clicks,
       coalesce(e.unclassified, 0) AS unclassified
  FROM mailbeacon.messages m
  LEFT JOIN LATERAL (
    SELECT count(*) FILTER (WHERE kind = 'open') AS opens,
           count(DISTINCT recipient_idx) FILTER (WHERE kind = 'open') AS unique_opens,
           min(occurred_at) FILTER (WHERE kind = 'open') AS first_open,
           max(occurred_at) FILTER (WHERE kind = 'open') AS last_open,
           count(*) FILTER (WHERE kind = 'click') AS clicks,
           count(DISTINCT recipient_idx) FILTER (WHERE kind = 'click') AS unique_clicks,
           count(*) FILTER (WHERE kind = 'open' AND class = 'human') AS human_opens,
           count(DISTINCT recipient_idx) FILTER (WHERE kind = 'open' AND class = 'human') AS human_unique_opens,
           min(occurred_at) FILTER (WHERE kind = 'open' AND class = 'human') AS human_first_open,
           count(*) FILTER (WHERE kind = 'click' AND class = 'human') AS human_clicks,
           count(DISTINCT recipient_idx) FILTER (WHERE kind = 'click' AND class = 'human') AS human_unique_clicks,
           count(*) FILTER (WHERE kind = 'open' AND class <> 'human') AS machine_opens,
           count(*) FILTER (WHERE kind = 'click' AND class <> 'human') AS machine_clicks,
           count(*) FILTER (WHERE class IS NULL) AS unclassified
      FROM mailbeacon.events ev
     WHERE ev.message = m.message
  ) e ON true;

-- Per rep and day (UTC, by sent_at): messages sent, and how many of them
-- (and what share) were opened / clicked at least once (all hits, and
-- people only). Sum the counts, not the percentages, to roll days up.
CREATE VIEW mailbeacon.rep_daily AS
SELECT rep,
       (sent_at AT TIME ZONE 'UTC')::date AS day,
       count(*) AS sent,
       sum(recipients) AS recipients,
       count(*) FILTER (WHERE opens > 0) AS opened,
       round(100.0 * count(*) FILTER (WHERE opens > 0) / count(*), 1) AS opened_pct,
       count(*) FILTER (WHERE clicks > 0) AS clicked,
       round(100.0 * count(*) FILTER (WHERE clicks > 0) / count(*), 1) AS clicked_pct,
       count(*) FILTER (WHERE human_opens > 0) AS human_opened,
       round(100.0 * count(*) FILTER (WHERE human_opens > 0) / count(*), 1) AS human_opened_pct,
       count(*) FILTER (WHERE human_clicks > 0) AS human_clicked,
       round(100.0 * count(*) FILTER (WHERE human_clicks > 0) / count(*), 1) AS human_clicked_pct
  FROM mailbeacon.message_engagement
 GROUP BY rep, (sent_at AT TIME ZONE 'UTC')::date;

-- Per tracked link: clicks, distinct recipients who clicked, first and last click.
CREATE VIEW mailbeacon.link_clicks AS
SELECT l.message, l.idx AS link_idx, l.url, m.rep, m.subject, m.sent_at,
       count(ev.event_id) AS clicks,
       count(DISTINCT ev.recipient_idx) AS unique_clicks,
       count(ev.event_id) FILTER (WHERE ev.class = 'human') AS human_clicks,
       count(DISTINCT ev.recipient_idx) FILTER (WHERE ev.class = 'human') AS human_unique_clicks,
       min(ev.occurred_at) AS first_click,
       max(ev.occurred_at) AS last_click
  FROM mailbeacon.links l
  JOIN mailbeacon.messages m ON m.message = l.message
  LEFT JOIN mailbeacon.events ev ON ev.message = l.message AND ev.kind = 'click' AND ev.link_idx = l.idx
 GROUP BY l.message, l.idx, l.url, m.rep, m.subject, m.sent_at;

-- Per recipient address: the send and every open and click of the messages
-- sent to it, with the recipient's own index (hits of a copy that went to
-- several recipients carry index 0 and cannot be put on one address).
-- Order by occurred_at when reading.
CREATE VIEW mailbeacon.recipient_timeline AS
SELECT lower(r.address) AS address, r.message, m.rep, m.subject,
       m.sent_at AS occurred_at, 'sent'::text AS kind, NULL::integer AS link_idx, NULL::text AS url,
       NULL::text AS class, NULL::inet AS ip, NULL::text AS user_agent, NULL::uuid AS event_id
  FROM mailbeacon.recipients r
  JOIN mailbeacon.messages m ON m.message = r.message
UNION ALL
SELECT lower(r.address), r.message, m.rep, m.subject,
       ev.occurred_at, ev.kind::text, nullif(ev.link_idx, 0), ev.url,
       ev.class, ev.ip, ev.user_agent, ev.event_id
  FROM mailbeacon.events ev
  JOIN mailbeacon.recipients r ON r.message = ev.message AND r.idx = ev.recipient_idx
  JOIN mailbeacon.messages m ON m.message = ev.message;
