-- Issue 14: which consent record may undo a forget or a withdrawal
-- (docs/privacy.md "Consent states from the CRM").
--
-- A forget deletes the address's consent record and history, so "the
-- latest time wins" had nothing left to compare with: re-importing the
-- original consent (a routine CRM sync carrying a 2020 "granted") lifted
-- the suppression, and the address was tracked again. The suppression's
-- time (mailbeacon.suppressed.since) is now what such a record must beat:
-- only consent given after the forget lifts it.
--
-- A record without a time was taken as given now, so it beat everything
-- recorded before it, a withdrawal made on the page too: a CRM that does
-- not know of the withdrawal undid it at its next sync. A record without a
-- time says nothing of when the person decided: it is recorded (history),
-- and it counts as of its import among imports, but it does not replace a
-- withdrawal made on the withdrawal page and does not lift a suppression.
-- To do either, the record must give a time later than theirs.

-- How each state came (import, withdrawal page), and whether its source
-- gave a time (false: given_at is when it was recorded).
ALTER TABLE mailbeacon.consent ADD COLUMN via text NOT NULL DEFAULT 'import',
  ADD COLUMN time_given boolean NOT NULL DEFAULT true;
ALTER TABLE mailbeacon.consent_history ADD COLUMN time_given boolean NOT NULL DEFAULT true;
UPDATE mailbeacon.consent c SET via = h.via
  FROM (SELECT DISTINCT ON (h.address) h.address, h.via
          FROM mailbeacon.consent_history h JOIN mailbeacon.consent c2
            ON c2.address = h.address AND c2.state = h.state AND c2.given_at = h.given_at
         ORDER BY h.address, h.id DESC) h
 WHERE h.address = c.address AND c.via IS DISTINCT FROM h.via;

-- consent_merge as in 015, with the rule above for records without a time.
CREATE OR REPLACE FUNCTION mailbeacon.consent_merge(addrs text[], states text[], countries text[], sources text[],
                                                    ats timestamptz[], via text)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
  n bigint;
BEGIN
  WITH input AS (
    SELECT lower(x.address) AS address, x.state, coalesce(x.country, '') AS country,
           coalesce(x.source, '') AS source, coalesce(x.given_at, now()) AS given_at,
           x.given_at IS NOT NULL AS time_given, x.ord
      FROM unnest(addrs, states, countries, sources, ats) WITH ORDINALITY AS x(address, state, country, source, given_at, ord)),
  history AS (
    INSERT INTO mailbeacon.consent_history (address, state, country, source, given_at, via, time_given)
    SELECT address, state, country, source, given_at, via, time_given FROM input ORDER BY ord),
  -- a record without a time does not replace a withdrawal made on the page
  eligible AS (
    SELECT i.* FROM input i
     WHERE i.time_given
        OR NOT EXISTS (SELECT 1 FROM mailbeacon.consent c
                        WHERE c.address = i.address AND c.state = 'withdrawn' AND c.via = 'withdrawal page'))
  INSERT INTO mailbeacon.consent AS c (address, state, country, source, given_at, via, time_given)
  SELECT address, (array_agg(state ORDER BY given_at DESC, ord DESC))[1],
         coalesce((array_agg(country ORDER BY given_at DESC, ord DESC) FILTER (WHERE country <> ''))[1], ''),
         (array_agg(source ORDER BY given_at DESC, ord DESC))[1], max(given_at), via,
         (array_agg(time_given ORDER BY given_at DESC, ord DESC))[1]
    FROM eligible GROUP BY address
  ON CONFLICT (address) DO UPDATE
     SET state = excluded.state,
         country = CASE WHEN excluded.country <> '' THEN excluded.country ELSE c.country END,
         source = excluded.source, given_at = excluded.given_at, via = excluded.via,
         time_given = excluded.time_given, recorded_at = now()
   WHERE excluded.given_at >= c.given_at
     AND (excluded.time_given OR c.state <> 'withdrawn' OR c.via <> 'withdrawal page')
     AND (c.state, c.country, c.source, c.given_at) IS DISTINCT FROM
         (excluded.state, CASE WHEN excluded.country <> '' THEN excluded.country ELSE c.country END,
          excluded.source, excluded.given_at);
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END $$;

-- Consent lifts a suppression only when it was given after the forget, as
-- its record says (a record without a time does not).
CREATE OR REPLACE FUNCTION mailbeacon.consent_unsuppress() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM mailbeacon.suppressed s
   WHERE s.hash = mailbeacon.address_hash(NEW.address) AND NEW.time_given AND NEW.given_at > s.since;
  RETURN NULL;
END $$;
