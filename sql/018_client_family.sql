-- Issue 14: minimise what reps see. The rep API's message timeline gave
-- each event's user agent; reps now see only the client family it names
-- ("Outlook", "Chrome", "Gmail image proxy", ...). The user agent itself
-- stays in mailbeacon.events: the classifier needs it, and analysts and
-- export read it there.
CREATE FUNCTION mailbeacon.client_family(ua text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE
    WHEN ua IS NULL OR ua = '' THEN 'unknown'
    WHEN ua = 'Mozilla/5.0' THEN 'Apple Mail Privacy Protection'
    WHEN ua LIKE '%GoogleImageProxy%' THEN 'Gmail image proxy'
    WHEN ua LIKE '%YahooMailProxy%' THEN 'Yahoo Mail proxy'
    WHEN ua ~* 'outlook|microsoft office|ms-office' THEN 'Outlook'
    WHEN ua ~* 'thunderbird' THEN 'Thunderbird'
    WHEN ua ~* 'bot|crawl|spider|scan|curl|wget|python|go-http|java/|okhttp|libwww|headless' THEN 'automated client'
    WHEN ua LIKE '%Edg/%' OR ua LIKE '%Edge/%' THEN 'Edge'
    WHEN ua LIKE '%Firefox/%' THEN 'Firefox'
    WHEN ua LIKE '%Chrome/%' OR ua LIKE '%CriOS/%' THEN 'Chrome'
    WHEN ua ~ '(iPhone|iPad)' AND ua NOT LIKE '%Safari/%' THEN 'Apple Mail (iOS)'
    WHEN ua LIKE '%Macintosh%' AND ua LIKE '%AppleWebKit%' AND ua NOT LIKE '%Safari/%' THEN 'Apple Mail (macOS)'
    WHEN ua LIKE '%Safari/%' THEN 'Safari'
    ELSE 'other'
  END
$$;

-- message_timeline as in 008, with "client" (the family) in place of "user_agent".
CREATE OR REPLACE FUNCTION mailbeacon.message_timeline(m uuid) RETURNS TABLE (rep text, body text) LANGUAGE sql STABLE AS $$
  SELECT g.rep, json_build_object(
           'message', g.message, 'message_id', g.message_id, 'subject', g.subject, 'sent_at', g.sent_at,
           'rep', g.rep,
           'recipients', (SELECT coalesce(json_agg(json_build_object('i', r.idx, 'address', r.address, 'name', r.name)
                                                   ORDER BY r.idx), '[]')
                            FROM mailbeacon.recipients r WHERE r.message = g.message),
           'links', (SELECT coalesce(json_agg(json_build_object('i', l.idx, 'url', l.url) ORDER BY l.idx), '[]')
                       FROM mailbeacon.links l WHERE l.message = g.message),
           'events', (SELECT coalesce(json_agg(json_build_object(
                               'occurred_at', e.occurred_at, 'kind', e.kind, 'recipient_idx', e.recipient_idx,
                               'link_idx', e.link_idx, 'url', e.url, 'class', e.class, 'reason', e.reason,
                               'final', mailbeacon.is_final(e.class, e.occurred_at, fb.f),
                               'client', mailbeacon.client_family(e.user_agent), 'method', e.method)
                             ORDER BY e.occurred_at, e.event_id), '[]')
                        FROM mailbeacon.events e, (SELECT mailbeacon.final_before() AS f) fb
                       WHERE e.message = g.message))::text
    FROM mailbeacon.messages g WHERE g.message = m
$$;
