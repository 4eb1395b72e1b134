-- Issue 14: the tracking policy per recipient (docs/privacy.md).
--
-- consent: each address's consent state as it stands, from the CRM's
-- imports (mailbeacon-server consent import) and the withdrawal page;
-- consent_history: every state ever recorded, as proof. The latest given
-- time wins: an import of an older state does not undo a later withdrawal.
-- The rewriter never reads these: it reads the consent copy that
-- `mailbeacon-server consent copy` writes from them.
CREATE TABLE mailbeacon.consent (
  address    text PRIMARY KEY CHECK (address = lower(address)),
  state      text NOT NULL CHECK (state IN ('unknown', 'granted', 'refused', 'withdrawn')),
  country    text NOT NULL DEFAULT '' CHECK (country ~ '^([A-Z]{2})?$'),
  source     text NOT NULL DEFAULT '',
  given_at   timestamptz NOT NULL,         -- when the recipient gave or withdrew it (as the source says)
  recorded_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE mailbeacon.consent_history (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  address     text NOT NULL,
  state       text NOT NULL,
  country     text NOT NULL DEFAULT '',
  source      text NOT NULL DEFAULT '',
  given_at    timestamptz NOT NULL,
  recorded_at timestamptz NOT NULL DEFAULT now(),
  via         text NOT NULL                -- import, withdrawal page, ...
);
CREATE INDEX consent_history_address ON mailbeacon.consent_history (address, id);

-- Records states for addresses (lower-cased here), in the order given:
-- always in the history; in consent the latest given of each address, when
-- it is not older than what is there (a record without a country keeps the
-- latest one known, from the same call or from before). A NULL time is now. Returns how many addresses' current
-- state changed. One statement for a whole chunk of an import.
CREATE FUNCTION mailbeacon.consent_merge(addrs text[], states text[], countries text[], sources text[],
                                         ats timestamptz[], via text)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
  n bigint;
BEGIN
  WITH input AS (
    SELECT lower(x.address) AS address, x.state, coalesce(x.country, '') AS country,
           coalesce(x.source, '') AS source, coalesce(x.given_at, now()) AS given_at, x.ord
      FROM unnest(addrs, states, countries, sources, ats) WITH ORDINALITY AS x(address, state, country, source, given_at, ord)),
  history AS (
    INSERT INTO mailbeacon.consent_history (address, state, country, source, given_at, via)
    SELECT address, state, country, source, given_at, via FROM input ORDER BY ord)
  INSERT INTO mailbeacon.consent AS c (address, state, country, source, given_at)
  SELECT address, (array_agg(state ORDER BY given_at DESC, ord DESC))[1],
         coalesce((array_agg(country ORDER BY given_at DESC, ord DESC) FILTER (WHERE country <> ''))[1], ''),
         (array_agg(source ORDER BY given_at DESC, ord DESC))[1], max(given_at)
    FROM input GROUP BY address
  ON CONFLICT (address) DO UPDATE
     SET state = excluded.state,
         country = CASE WHEN excluded.country <> '' THEN excluded.country ELSE c.country END,
         source = excluded.source, given_at = excluded.given_at, recorded_at = now()
   WHERE excluded.given_at >= c.given_at
     AND (c.state, c.country, c.source, c.given_at) IS DISTINCT FROM
         (excluded.state, CASE WHEN excluded.country <> '' THEN excluded.country ELSE c.country END,
          excluded.source, excluded.given_at);
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END $$;

-- One address's state (the withdrawal page); true when it changed.
CREATE FUNCTION mailbeacon.consent_set(a text, st text, ctry text, src text, at timestamptz, via text)
RETURNS boolean LANGUAGE sql AS $$
  SELECT mailbeacon.consent_merge(ARRAY[a], ARRAY[st], ARRAY[ctry], ARRAY[src], ARRAY[at], via) > 0
$$;

-- What the tracking policy decided, stored with the message as proof: the
-- policy's version, and per recipient what it allowed, on what basis, and
-- the consent record it read (NULL: not decided in the copies loaded, or
-- a record from before this migration).
ALTER TABLE mailbeacon.messages ADD COLUMN policy_version text;
ALTER TABLE mailbeacon.recipients ADD COLUMN track text, ADD COLUMN track_basis text,
  ADD COLUMN consent_source text, ADD COLUMN consent_at timestamptz;

-- load_sent with the policy: as in 007, plus the policy's version and each
-- recipient's decision. Per-recipient copies each decide their own
-- recipient, so a copy loaded after the first fills in its recipient's
-- decision. The nine-argument form of 007 stays for batchers not yet
-- upgraded.
CREATE FUNCTION mailbeacon.load_sent(stream_id text, message text, message_id text, rep text, subject text,
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
