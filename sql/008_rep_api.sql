-- Issue 13: what the rep API reads (docs/alerts.md). Reps are matched in
-- any case: a rep token's address and alert_share's entries are
-- lower-cased, and so is the column they are compared with.
CREATE INDEX alerts_rep_lower ON mailbeacon.alerts (lower(rep), id);
DROP INDEX mailbeacon.alerts_rep;
CREATE INDEX messages_rep_lower ON mailbeacon.messages (lower(rep), sent_at);

-- Who an alert is about: "Dana Whitfield <dana@acme.example>", the address
-- alone, or for a copy to several recipients "someone of a, b".
CREATE FUNCTION mailbeacon.alert_who(a mailbeacon.alerts) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN a.recipient_idx = 0 THEN 'someone of ' || a.recipient
              WHEN a.recipient_name <> '' THEN a.recipient_name || ' <' || a.recipient || '>'
              ELSE a.recipient END
$$;

-- An alert as the API, its stream and the webhooks give it. "text" is a
-- sentence in plain text: whoever shows it escapes it.
CREATE FUNCTION mailbeacon.alert_json(a mailbeacon.alerts) RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
  SELECT jsonb_build_object(
    'id', a.id, 'kind', a.kind, 'rep', a.rep, 'message', a.message,
    'recipient_idx', a.recipient_idx, 'recipient', a.recipient, 'recipient_name', a.recipient_name,
    'subject', a.subject, 'link_idx', a.link_idx, 'url', a.url,
    'occurred_at', a.occurred_at, 'class', a.class, 'implied_open', a.implied_open,
    'opens', a.opens, 'clicks', a.clicks,
    'text', mailbeacon.alert_who(a) || CASE a.kind
              WHEN 'open' THEN ' opened "' || a.subject || '"'
              WHEN 'reopen' THEN ' opened "' || a.subject || '" again'
              ELSE ' clicked ' || coalesce(a.url, 'a link') || ' in "' || a.subject || '"'
                   || CASE WHEN a.implied_open THEN ' (so opened it)' ELSE '' END
            END)
$$;

-- The latest messages of the reps (lower-cased addresses), newest first,
-- with what people did: a JSON array.
CREATE FUNCTION mailbeacon.rep_messages(reps text[], lim integer) RETURNS text LANGUAGE sql STABLE AS $$
  SELECT coalesce(json_agg(json_build_object(
           'message', e.message, 'subject', e.subject, 'sent_at', e.sent_at, 'rep', e.rep,
           'recipients', (SELECT json_agg(json_build_object('i', r.idx, 'address', r.address, 'name', r.name)
                                          ORDER BY r.idx)
                            FROM mailbeacon.recipients r WHERE r.message = e.message),
           'opened', e.human_opens > 0, 'clicked', e.human_clicks > 0,
           'opens', e.human_opens, 'clicks', e.human_clicks, 'implied_opens', e.implied_opens,
           'first_open', e.human_first_open, 'machine_opens', e.machine_opens,
           'machine_clicks', e.machine_clicks, 'pending', e.pending) ORDER BY e.sent_at DESC), '[]')::text
    FROM (SELECT * FROM mailbeacon.message_engagement
           WHERE lower(rep) = ANY (reps) ORDER BY sent_at DESC LIMIT lim) e
$$;

-- One message with its recipients, links and every event in time order
-- (class, reason, whether final; no client address): its rep (to check
-- who may read it) and the JSON object. No row: no such message.
CREATE FUNCTION mailbeacon.message_timeline(m uuid) RETURNS TABLE (rep text, body text) LANGUAGE sql STABLE AS $$
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
                               'user_agent', e.user_agent, 'method', e.method)
                             ORDER BY e.occurred_at, e.event_id), '[]')
                        FROM mailbeacon.events e, (SELECT mailbeacon.final_before() AS f) fb
                       WHERE e.message = g.message))::text
    FROM mailbeacon.messages g WHERE g.message = m
$$;
