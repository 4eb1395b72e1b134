-- Issue 14: export returns everything forget erases or changes, and
-- forget erases the rejected entries of the address only
-- (docs/privacy.md "Forget and export an address").
--
-- Export (sql/017) left out the rejected stream entries forget deletes,
-- the alerts of copies sent to several in which forget replaces the
-- address, and the webhook deliveries of the alerts (deleted with them, or
-- their bodies made again, sql/021). It gives them now, and forget counts
-- the deliveries it deletes, so that each kind of row can be compared.
--
-- Forget deleted every rejected entry containing the address as a
-- substring: erasing "ana@kunde.de" deleted the entries of
-- "hana@kunde.de". It matches the address as a whole now
-- (address_pattern, sql/021), in the entry and in the reason.

-- forget as in 022; "webhook_deliveries" counts the deliveries deleted
-- with the recipient's alerts.
CREATE OR REPLACE FUNCTION mailbeacon.forget(a text, why text, by_whom text) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  la text := lower(a);
  pat text := mailbeacon.address_pattern(a);
  msgs uuid[];
  idxs integer[];
  shared bigint[];
  n_events bigint;
  n_alerts bigint;
  n_deliveries bigint;
  n_bodies bigint;
  n_recipients bigint;
  n_consent bigint;
  n_history bigint;
  n_rejected bigint;
  n_tombstones bigint;
  counts jsonb;
BEGIN
  SELECT coalesce(array_agg(r.message), '{}'), coalesce(array_agg(r.idx), '{}') INTO msgs, idxs
    FROM mailbeacon.recipients r WHERE lower(r.address) = la;
  -- its own (message, index) pairs, and index 0 of every copy of its messages sent to several
  INSERT INTO mailbeacon.forgotten (message, idx)
  SELECT x.m, x.i FROM unnest(msgs, idxs) AS x(m, i)
  UNION
  SELECT g.message, 0 FROM mailbeacon.messages g WHERE g.message = ANY (msgs) AND g.recipient_count > 1
  ON CONFLICT DO NOTHING;
  GET DIAGNOSTICS n_tombstones = ROW_COUNT;
  DELETE FROM mailbeacon.events e USING unnest(msgs, idxs) AS x(m, i)
   WHERE e.message = x.m AND e.recipient_idx = x.i;
  GET DIAGNOSTICS n_events = ROW_COUNT;
  SELECT count(*) INTO n_deliveries
    FROM mailbeacon.webhook_deliveries d JOIN mailbeacon.alerts al ON al.id = d.alert_id
    JOIN unnest(msgs, idxs) AS x(m, i) ON al.message = x.m AND al.recipient_idx = x.i;
  DELETE FROM mailbeacon.alerts al USING unnest(msgs, idxs) AS x(m, i) -- their webhook deliveries with them
   WHERE al.message = x.m AND al.recipient_idx = x.i;
  GET DIAGNOSTICS n_alerts = ROW_COUNT;
  WITH changed AS (
    UPDATE mailbeacon.alerts al
       SET recipient = (SELECT string_agg(CASE WHEN lower(p) = la THEN '(erased)' ELSE p END, ', ' ORDER BY o)
                          FROM unnest(string_to_array(al.recipient, ', ')) WITH ORDINALITY AS y(p, o))
     WHERE al.recipient_idx = 0 AND al.message = ANY (msgs)
       AND la = ANY (SELECT lower(p) FROM unnest(string_to_array(al.recipient, ', ')) AS z(p))
    RETURNING al.id)
  SELECT coalesce(array_agg(id), '{}') INTO shared FROM changed;
  UPDATE mailbeacon.webhook_deliveries d SET body = mailbeacon.webhook_body(al, d.format)
    FROM mailbeacon.alerts al
   WHERE al.id = ANY (shared) AND d.alert_id = al.id;
  GET DIAGNOSTICS n_bodies = ROW_COUNT;
  DELETE FROM mailbeacon.recipients r WHERE lower(r.address) = la;
  GET DIAGNOSTICS n_recipients = ROW_COUNT;
  DELETE FROM mailbeacon.consent c WHERE c.address = la;
  GET DIAGNOSTICS n_consent = ROW_COUNT;
  DELETE FROM mailbeacon.consent_history h WHERE h.address = la;
  GET DIAGNOSTICS n_history = ROW_COUNT;
  DELETE FROM mailbeacon.rejected j WHERE j.entry ~* pat OR j.reason ~* pat;
  GET DIAGNOSTICS n_rejected = ROW_COUNT;
  INSERT INTO mailbeacon.suppressed (hash) VALUES (mailbeacon.address_hash(la)) ON CONFLICT DO NOTHING;
  counts := jsonb_build_object('events', n_events, 'alerts', n_alerts, 'webhook_deliveries', n_deliveries,
                               'shared_alerts_scrubbed', cardinality(shared),
                               'webhook_bodies_scrubbed', n_bodies,
                               'recipients', n_recipients, 'consent', n_consent, 'consent_history', n_history,
                               'rejected', n_rejected, 'tombstones', n_tombstones);
  INSERT INTO mailbeacon.forget_audit (by_whom, reason, address_hash, counts)
  VALUES (by_whom, regexp_replace(why, pat, '(erased)', 'gi'),
          mailbeacon.address_hash(la), counts);
  PERFORM pg_notify('mailbeacon_silenced', ''); -- the batchers read the silenced pairs again
  RETURN counts;
END $$;

-- Everything stored about the address a (any case), for a subject access
-- request: every row forget() erases or changes, and the suppression entry.
--   consent, consent_history: erased;
--   messages: per recipient row (erased), its message (which stays), its
--     events and its alerts (erased), each alert with its webhook
--     deliveries (erased with it);
--   shared_alerts: the alerts of copies sent to several that name the
--     address, where forget replaces it (the other recipients are given as
--     "(another recipient)"), with their webhook deliveries, whose bodies
--     are made again (not given: they name the other recipients);
--   rejected: the rejected stream entries that name it, whole (erased).
CREATE OR REPLACE FUNCTION mailbeacon.export(a text) RETURNS jsonb LANGUAGE sql STABLE AS $$
  WITH mine AS (
    SELECT r.* FROM mailbeacon.recipients r WHERE lower(r.address) = lower(a)
  )
  SELECT jsonb_build_object(
    'address', lower(a),
    'suppressed', EXISTS (SELECT 1 FROM mailbeacon.suppressed s WHERE s.hash = mailbeacon.address_hash(a)),
    'consent', (SELECT to_jsonb(c) FROM mailbeacon.consent c WHERE c.address = lower(a)),
    'consent_history', (SELECT coalesce(jsonb_agg(to_jsonb(h) ORDER BY h.id), '[]')
                          FROM mailbeacon.consent_history h WHERE h.address = lower(a)),
    'messages', (SELECT coalesce(jsonb_agg(jsonb_build_object(
        'message', m.message, 'message_id', m.message_id, 'rep', m.rep, 'subject', m.subject,
        'sent_at', m.sent_at, 'policy_version', m.policy_version,
        'recipient', jsonb_build_object('idx', r.idx, 'address', r.address, 'name', r.name, 'track', r.track,
                                        'track_basis', r.track_basis, 'consent_source', r.consent_source,
                                        'consent_at', r.consent_at),
        'events', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                      'occurred_at', e.occurred_at, 'kind', e.kind, 'link_idx', e.link_idx, 'url', e.url,
                      'ip', host(e.ip), 'method', e.method, 'user_agent', e.user_agent, 'purpose', e.purpose,
                      'class', e.class, 'reason', e.reason, 'rules_version', e.rules_version)
                      ORDER BY e.occurred_at, e.event_id), '[]')
                     FROM mailbeacon.events e WHERE e.message = r.message AND e.recipient_idx = r.idx),
        'alerts', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                      'id', al.id, 'kind', al.kind, 'occurred_at', al.occurred_at, 'link_idx', al.link_idx,
                      'url', al.url, 'class', al.class, 'created_at', al.created_at,
                      'webhook_deliveries', (SELECT coalesce(jsonb_agg(to_jsonb(d) - 'alert_id' ORDER BY d.url), '[]')
                                               FROM mailbeacon.webhook_deliveries d WHERE d.alert_id = al.id))
                      ORDER BY al.id), '[]')
                     FROM mailbeacon.alerts al WHERE al.message = r.message AND al.recipient_idx = r.idx))
        ORDER BY m.sent_at, m.message, r.idx), '[]')
        FROM mine r JOIN mailbeacon.messages m USING (message)),
    'shared_alerts', (SELECT coalesce(jsonb_agg(jsonb_build_object(
        'id', al.id, 'message', al.message, 'kind', al.kind, 'occurred_at', al.occurred_at,
        'link_idx', al.link_idx, 'url', al.url, 'class', al.class, 'created_at', al.created_at,
        'recipient', (SELECT string_agg(CASE WHEN lower(p) = lower(a) THEN p ELSE '(another recipient)' END, ', '
                                        ORDER BY o)
                        FROM unnest(string_to_array(al.recipient, ', ')) WITH ORDINALITY AS y(p, o)),
        'webhook_deliveries', (SELECT coalesce(jsonb_agg(to_jsonb(d) - 'alert_id' - 'body' ORDER BY d.url), '[]')
                                 FROM mailbeacon.webhook_deliveries d WHERE d.alert_id = al.id))
        ORDER BY al.id), '[]')
        FROM mailbeacon.alerts al
       WHERE al.recipient_idx = 0 AND al.message IN (SELECT message FROM mine)
         AND lower(a) = ANY (SELECT lower(p) FROM unnest(string_to_array(al.recipient, ', ')) AS z(p))),
    'rejected', (SELECT coalesce(jsonb_agg(to_jsonb(j) ORDER BY j.rejected_at, j.stream_id, j.part), '[]')
                   FROM mailbeacon.rejected j
                  WHERE j.entry ~* mailbeacon.address_pattern(a) OR j.reason ~* mailbeacon.address_pattern(a)))
$$;
