-- Issue 14: forget keeps the copies sent to several silenced
-- (docs/privacy.md "Forget and export an address").
--
-- The hits on index 0 of a copy sent to several may be any of its
-- recipients'. While a recipient's consent is withdrawn or refused, the
-- silenced pairs (sql/016) hold index 0 of every such copy that went to
-- them; but they are read from the consent and recipient rows, which
-- forget deletes, and forget's tombstones (sql/017) held only the
-- recipient's own index. A recipient who withdrew and was then forgotten
-- had the hits on those copies stored, and alerted, again. Forget now
-- tombstones index 0 of every copy of its messages sent to several (a
-- message of more than one recipient: one copy to all, or per-recipient
-- copies, whose index 0 nobody uses), withdrawn before or not: the
-- address is never tracked again without new consent, and a hit on such a
-- copy may be its. A sent record loaded after the forget (it waited in a
-- spool) does the same for the recipient it drops again.

-- forget as in 021, with the tombstones of index 0; "tombstones" counts
-- the pairs it added.
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
                               'rejected', n_rejected, 'tombstones', n_tombstones);
  INSERT INTO mailbeacon.forget_audit (by_whom, reason, address_hash, counts)
  VALUES (by_whom, regexp_replace(why, mailbeacon.address_pattern(la), '(erased)', 'gi'),
          mailbeacon.address_hash(la), counts);
  PERFORM pg_notify('mailbeacon_silenced', ''); -- the batchers read the silenced pairs again
  RETURN counts;
END $$;

-- What load_sent does once a sent record's rows are in (m): drops again
-- the recipients forgotten before it was loaded (recognised by the keyed
-- hash), with the tombstones of their index and, for a copy sent to
-- several, of index 0; the batchers are told. Later migrations add to it.
CREATE FUNCTION mailbeacon.sent_loaded(m uuid) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  n bigint;
BEGIN
  WITH gone AS (
    DELETE FROM mailbeacon.recipients t
     WHERE t.message = m
       AND EXISTS (SELECT 1 FROM mailbeacon.suppressed s WHERE s.hash = mailbeacon.address_hash(t.address))
    RETURNING t.message, t.idx)
  INSERT INTO mailbeacon.forgotten (message, idx)
  SELECT g.message, g.idx FROM gone g
  UNION
  SELECT g.message, 0 FROM gone g JOIN mailbeacon.messages x ON x.message = g.message WHERE x.recipient_count > 1
  ON CONFLICT DO NOTHING;
  GET DIAGNOSTICS n = ROW_COUNT;
  IF n > 0 THEN
    PERFORM pg_notify('mailbeacon_silenced', '');
  END IF;
END $$;

-- load_sent as in 017, the forgotten recipients dropped by sent_loaded.
CREATE OR REPLACE FUNCTION mailbeacon.load_sent(stream_id text, message text, message_id text, rep text, subject text,
                                     sent_at_us text, recipients text, links text, client_ip text, policy text)
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
    INSERT INTO mailbeacon.messages (message, message_id, rep, subject, sent_at, recipient_count, sender_ip,
                                     policy_version)
    VALUES (m, message_id, rep, subject, to_timestamp(sent_at_us::bigint / 1e6), jsonb_array_length(r), ip,
            nullif(policy, ''))
    ON CONFLICT DO NOTHING;
    INSERT INTO mailbeacon.recipients AS t (message, idx, address, name, track, track_basis, consent_source, consent_at)
    SELECT m, x.i, x.addr, coalesce(x.name, ''), x.track, x.basis, x.consent_source,
           to_timestamp(x.consent_at / 1e6)
      FROM jsonb_to_recordset(r) AS x(i integer, addr text, name text, track text, basis text,
                                      consent_source text, consent_at bigint)
    ON CONFLICT ON CONSTRAINT recipients_pkey DO UPDATE
       SET track = excluded.track, track_basis = excluded.track_basis,
           consent_source = excluded.consent_source, consent_at = excluded.consent_at
     WHERE t.track IS NULL AND excluded.track IS NOT NULL;
    PERFORM mailbeacon.sent_loaded(m);
    INSERT INTO mailbeacon.links (message, idx, url)
    SELECT m, x.i, x.url FROM jsonb_to_recordset(l) AS x(i integer, url text)
    ON CONFLICT DO NOTHING;
    RETURN true;
  EXCEPTION WHEN others THEN
    INSERT INTO mailbeacon.rejected (stream_id, part, entry, reason)
    VALUES (stream_id, 0,
            json_build_object('type', 'sent', 'message', message, 'message_id', message_id, 'rep', rep,
                              'subject', subject, 'sent_at', sent_at_us, 'recipients', recipients,
                              'links', links, 'client_ip', client_ip, 'policy', policy)::text,
            SQLERRM)
    ON CONFLICT DO NOTHING;
    RETURN false;
  END;
END $$;
