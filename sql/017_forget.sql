-- Issue 14: forget and export an address (docs/privacy.md).
--
-- A forgotten address leaves a suppression entry: a keyed hash of the
-- address in lower case, sha256(secret || address), with a secret made
-- here, once, that stays in this database (and in the consent copy, which
-- needs it to recognise the address). No table keeps the plain address.
CREATE TABLE mailbeacon.privacy_key (
  one    boolean PRIMARY KEY DEFAULT true CHECK (one),
  secret bytea NOT NULL
);
INSERT INTO mailbeacon.privacy_key (secret)
VALUES (decode(replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), 'hex'));

CREATE FUNCTION mailbeacon.address_hash(a text) RETURNS bytea LANGUAGE sql STABLE AS $$
  SELECT sha256(k.secret || convert_to(lower(a), 'UTF8')) FROM mailbeacon.privacy_key k
$$;

-- Never tracked again without new consent (a consent record after the
-- forget: an import or a withdrawal page can only record it anew).
CREATE TABLE mailbeacon.suppressed (
  hash  bytea PRIMARY KEY,
  since timestamptz NOT NULL DEFAULT now()
);

-- Tombstones: the (message, recipient index) pairs of forgotten recipients,
-- so that their hits still in Redis or a spool are dropped when loaded
-- (the batcher's silenced set reads them).
CREATE TABLE mailbeacon.forgotten (
  message uuid NOT NULL,
  idx     integer NOT NULL,
  PRIMARY KEY (message, idx)
);

-- Who forgot an address, when, why, and how many rows went: no plain address.
CREATE TABLE mailbeacon.forget_audit (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  at           timestamptz NOT NULL DEFAULT now(),
  by_whom      text NOT NULL,
  reason       text NOT NULL,
  address_hash bytea NOT NULL,
  counts       jsonb NOT NULL
);

-- Erases the recipient a (any case) in one transaction, across every
-- partition: the events of its (message, index) pairs, their alerts, its
-- recipient rows, its consent and consent history, the rejected stream
-- entries that name it; in alerts of copies sent to several (index 0) its
-- address is replaced by "(erased)". What stays, with no way back to it:
-- each message's recipient_count and the index-0 events of copies sent to
-- several (whose hits cannot be put on one person). Adds the tombstones
-- and the suppression entry, and the audit row. Returns the counts.
CREATE FUNCTION mailbeacon.forget(a text, why text, by_whom text) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  la text := lower(a);
  msgs uuid[];
  idxs integer[];
  n_events bigint;
  n_alerts bigint;
  n_shared bigint;
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
  UPDATE mailbeacon.alerts al
     SET recipient = (SELECT string_agg(CASE WHEN lower(p) = la THEN '(erased)' ELSE p END, ', ' ORDER BY o)
                        FROM unnest(string_to_array(al.recipient, ', ')) WITH ORDINALITY AS y(p, o))
   WHERE al.recipient_idx = 0 AND al.message = ANY (msgs)
     AND la = ANY (SELECT lower(p) FROM unnest(string_to_array(al.recipient, ', ')) AS z(p));
  GET DIAGNOSTICS n_shared = ROW_COUNT;
  DELETE FROM mailbeacon.recipients r WHERE lower(r.address) = la;
  GET DIAGNOSTICS n_recipients = ROW_COUNT;
  DELETE FROM mailbeacon.consent c WHERE c.address = la;
  GET DIAGNOSTICS n_consent = ROW_COUNT;
  DELETE FROM mailbeacon.consent_history h WHERE h.address = la;
  GET DIAGNOSTICS n_history = ROW_COUNT;
  DELETE FROM mailbeacon.rejected j WHERE position(la IN lower(j.entry)) > 0;
  GET DIAGNOSTICS n_rejected = ROW_COUNT;
  INSERT INTO mailbeacon.suppressed (hash) VALUES (mailbeacon.address_hash(la)) ON CONFLICT DO NOTHING;
  counts := jsonb_build_object('events', n_events, 'alerts', n_alerts, 'shared_alerts_scrubbed', n_shared,
                               'recipients', n_recipients, 'consent', n_consent, 'consent_history', n_history,
                               'rejected', n_rejected, 'tombstones', cardinality(msgs));
  INSERT INTO mailbeacon.forget_audit (by_whom, reason, address_hash, counts)
  VALUES (by_whom, why, mailbeacon.address_hash(la), counts);
  PERFORM pg_notify('mailbeacon_silenced', ''); -- the batchers read the silenced pairs again
  RETURN counts;
END $$;

-- Everything stored about the address a (any case), for a subject access
-- request: exactly what forget() would erase, and the suppression entry.
CREATE FUNCTION mailbeacon.export(a text) RETURNS jsonb LANGUAGE sql STABLE AS $$
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
                      'url', al.url, 'class', al.class, 'created_at', al.created_at) ORDER BY al.id), '[]')
                     FROM mailbeacon.alerts al WHERE al.message = r.message AND al.recipient_idx = r.idx))
        ORDER BY m.sent_at, m.message), '[]')
        FROM mailbeacon.recipients r JOIN mailbeacon.messages m USING (message)
       WHERE lower(r.address) = lower(a)))
$$;

-- The silenced pairs (sql/016), now with the tombstones.
CREATE OR REPLACE VIEW mailbeacon.silenced AS
  SELECT r.message, r.idx
    FROM mailbeacon.consent c JOIN mailbeacon.recipients r ON lower(r.address) = c.address
   WHERE c.state IN ('withdrawn', 'refused')
  UNION
  SELECT r.message, 0
    FROM mailbeacon.consent c JOIN mailbeacon.recipients r ON lower(r.address) = c.address
   WHERE c.state IN ('withdrawn', 'refused')
  UNION
  SELECT f.message, f.idx FROM mailbeacon.forgotten f;

-- New consent after a forget lifts the suppression: the address may be
-- tracked again, as that consent allows.
CREATE FUNCTION mailbeacon.consent_unsuppress() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM mailbeacon.suppressed WHERE hash = mailbeacon.address_hash(NEW.address);
  RETURN NULL;
END $$;
CREATE TRIGGER consent_granted_unsuppresses AFTER INSERT OR UPDATE OF state ON mailbeacon.consent
  FOR EACH ROW WHEN (NEW.state = 'granted') EXECUTE FUNCTION mailbeacon.consent_unsuppress();

-- A withdrawal or refusal recorded (an import, the page): the batchers read
-- the silenced pairs again at once (LISTEN mailbeacon_silenced), not only
-- every minute.
CREATE FUNCTION mailbeacon.consent_silence() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('mailbeacon_silenced', '');
  RETURN NULL;
END $$;
CREATE TRIGGER consent_silences AFTER INSERT OR UPDATE OF state ON mailbeacon.consent
  FOR EACH ROW WHEN (NEW.state IN ('withdrawn', 'refused')) EXECUTE FUNCTION mailbeacon.consent_silence();

-- load_sent as in 015, and a recipient forgotten before its sent record
-- was loaded is recognised (by the keyed hash) and dropped.
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
    -- a sent record loaded after its recipient was forgotten (it waited in a spool): that
    -- recipient's row goes again, and a tombstone drops its hits
    WITH gone AS (
      DELETE FROM mailbeacon.recipients t
       WHERE t.message = m
         AND EXISTS (SELECT 1 FROM mailbeacon.suppressed s WHERE s.hash = mailbeacon.address_hash(t.address))
      RETURNING t.message, t.idx)
    INSERT INTO mailbeacon.forgotten (message, idx) SELECT g.message, g.idx FROM gone g ON CONFLICT DO NOTHING;
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
