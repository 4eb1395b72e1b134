-- Issue 14: forget erases the address from the text that repeats it
-- (docs/privacy.md "Forget and export an address").
--
-- In an alert of a copy sent to several (index 0), forget (sql/017) put
-- "(erased)" in place of the address in alerts.recipient, but the webhook
-- deliveries of that alert keep their body (sql/009: the alert's JSON, with
-- the list of recipients and "someone of ..." in its text), written when
-- the delivery was queued: the address stayed there. Those bodies are now
-- made again from the alert as it is after the change. The reason given to
-- forget goes into the audit row as it is: one that names the address (a
-- ticket's title) put the plain address there; it is replaced there too.
--
-- The other text columns hold no recipient's address by design: the
-- subjects, link targets and user agents are the sender's and the
-- clients' text, webhook_deliveries.last_error is an HTTP status or
-- libcurl's message, the reps' addresses are the company's.

-- A regular expression matching the address a (any case with ~* or flag
-- i) as a whole: not a part of a longer address ("hana@kunde.de" does not
-- match "ana@kunde.de", nor "ana@kunde.de.example").
CREATE FUNCTION mailbeacon.address_pattern(a text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT '(?<![[:alnum:]._%+-])' || regexp_replace(lower(a), '([^[:alnum:]])', '\\\1', 'g')
         || '(?![[:alnum:]_-]|\.[[:alnum:]])'
$$;

-- forget as in 017; the webhook bodies of the alerts it changed are made
-- again, and the address is replaced in the reason it keeps.
CREATE OR REPLACE FUNCTION mailbeacon.forget(a text, why text, by_whom text) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  la text := lower(a);
  msgs uuid[];
  idxs integer[];
  shared bigint[];
  n_events bigint;
  n_alerts bigint;
  n_bodies bigint;
  n_recipients bigint;
  n_consent bigint;
  n_history bigint;
  n_rejected bigint;
  counts jsonb;
BEGIN
  SELECT coalesce(array_agg(r.message), '{}'), coalesce(array_agg(r.idx), '{}') INTO msgs, idxs
    FROM mailbeacon.recipients r WHERE lower(r.address) = la;
  INSERT INTO mailbeacon.forgotten (message, idx)
  SELECT x.m, x.i FROM unnest(msgs, idxs) AS x(m, i) ON CONFLICT DO NOTHING;
  DELETE FROM mailbeacon.events e USING unnest(msgs, idxs) AS x(m, i)
   WHERE e.message = x.m AND e.recipient_idx = x.i;
  GET DIAGNOSTICS n_events = ROW_COUNT;
  DELETE FROM mailbeacon.alerts al USING unnest(msgs, idxs) AS x(m, i)
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
  DELETE FROM mailbeacon.rejected j WHERE position(la IN lower(j.entry)) > 0;
  GET DIAGNOSTICS n_rejected = ROW_COUNT;
  INSERT INTO mailbeacon.suppressed (hash) VALUES (mailbeacon.address_hash(la)) ON CONFLICT DO NOTHING;
  counts := jsonb_build_object('events', n_events, 'alerts', n_alerts, 'shared_alerts_scrubbed', cardinality(shared),
                               'webhook_bodies_scrubbed', n_bodies,
                               'recipients', n_recipients, 'consent', n_consent, 'consent_history', n_history,
                               'rejected', n_rejected, 'tombstones', cardinality(msgs));
  INSERT INTO mailbeacon.forget_audit (by_whom, reason, address_hash, counts)
  VALUES (by_whom, regexp_replace(why, mailbeacon.address_pattern(la), '(erased)', 'gi'),
          mailbeacon.address_hash(la), counts);
  PERFORM pg_notify('mailbeacon_silenced', ''); -- the batchers read the silenced pairs again
  RETURN counts;
END $$;
