-- Issue 14: a withdrawal confirmed before its message's sent record is
-- loaded (docs/privacy.md "Withdrawal").
--
-- withdraw() (sql/016) found the address through the recipient rows of the
-- token's message. When the sent record was not loaded yet (still in a
-- rewriter's spool while Redis was away, or in a batch of another batcher)
-- it found none and recorded nothing, with no retry, while the page had
-- told the person "Tracking stopped". A withdrawal is now kept by its
-- token's (message, recipient index) until the message's sent record is
-- loaded, and applied then (load_sent, through sent_loaded); meanwhile the
-- pair is silenced, so that its hits are dropped as after any withdrawal.

-- The withdrawals waiting for their sent record: no address (the message,
-- the index, when it was confirmed). A row goes when it is applied.
CREATE TABLE mailbeacon.withdrawals_waiting (
  message     uuid NOT NULL,
  idx         integer NOT NULL,           -- the token's recipient index; 0: every recipient of the copy
  at          timestamptz NOT NULL,       -- when it was confirmed (the earliest, when twice)
  recorded_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (message, idx)
);

-- Applies the withdrawals waiting for message m once its sent record is
-- loaded: the address of each one's recipient (for index 0, of every
-- recipient of the copy) is withdrawn in mailbeacon.consent, at the time it
-- was confirmed, through consent_merge (so a later state still wins). A
-- recipient forgotten meanwhile has no row left: nothing is recorded for
-- it. Returns how many addresses' state changed.
CREATE FUNCTION mailbeacon.withdrawals_apply(m uuid) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
  addrs text[];
  ats timestamptz[];
BEGIN
  IF NOT EXISTS (SELECT 1 FROM mailbeacon.messages g WHERE g.message = m) THEN
    RETURN 0;
  END IF;
  WITH due AS (
    DELETE FROM mailbeacon.withdrawals_waiting w WHERE w.message = m RETURNING w.idx, w.at)
  SELECT array_agg(lower(r.address) ORDER BY d.at, r.idx), array_agg(d.at ORDER BY d.at, r.idx) INTO addrs, ats
    FROM due d JOIN mailbeacon.recipients r ON r.message = m AND (d.idx = 0 OR r.idx = d.idx);
  IF addrs IS NULL THEN
    RETURN 0;
  END IF;
  RETURN mailbeacon.consent_merge(addrs, array_fill('withdrawn'::text, ARRAY[cardinality(addrs)]),
                                  array_fill(''::text, ARRAY[cardinality(addrs)]),
                                  array_fill('withdrawal page'::text, ARRAY[cardinality(addrs)]), ats,
                                  'withdrawal page');
END $$;

-- The waiting withdrawals whose message another transaction loaded while
-- they were recorded (neither saw the other's rows): the batchers call it
-- each time they read the silenced pairs (every minute, and when told).
CREATE FUNCTION mailbeacon.withdrawals_apply_due() RETURNS bigint LANGUAGE sql AS $$
  SELECT coalesce(sum(mailbeacon.withdrawals_apply(w.message)), 0)::bigint
    FROM (SELECT DISTINCT w.message FROM mailbeacon.withdrawals_waiting w
            JOIN mailbeacon.messages g ON g.message = w.message) w
$$;

-- The batcher's call for an event line of kind w (a confirmed withdrawal):
-- kept, then applied at once when the message's sent record is loaded; the
-- batchers are told of one that waits (its pair is silenced).
CREATE OR REPLACE FUNCTION mailbeacon.withdraw(p_message uuid, p_idx integer, p_at timestamptz)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
  n bigint;
BEGIN
  INSERT INTO mailbeacon.withdrawals_waiting AS w (message, idx, at) VALUES (p_message, p_idx, p_at)
  ON CONFLICT (message, idx) DO UPDATE SET at = least(w.at, excluded.at);
  n := mailbeacon.withdrawals_apply(p_message);
  IF EXISTS (SELECT 1 FROM mailbeacon.withdrawals_waiting w WHERE w.message = p_message AND w.idx = p_idx) THEN
    PERFORM pg_notify('mailbeacon_silenced', '');
  END IF;
  RETURN n;
END $$;

-- sent_loaded as in 022, and the withdrawals waiting for the message applied.
CREATE OR REPLACE FUNCTION mailbeacon.sent_loaded(m uuid) RETURNS void LANGUAGE plpgsql AS $$
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
  IF EXISTS (SELECT 1 FROM mailbeacon.withdrawals_waiting w WHERE w.message = m) THEN
    PERFORM mailbeacon.withdrawals_apply(m);
  END IF;
END $$;

-- The silenced pairs (sql/017), now with the withdrawals waiting.
CREATE OR REPLACE VIEW mailbeacon.silenced AS
  SELECT r.message, r.idx
    FROM mailbeacon.consent c JOIN mailbeacon.recipients r ON lower(r.address) = c.address
   WHERE c.state IN ('withdrawn', 'refused')
  UNION
  SELECT r.message, 0
    FROM mailbeacon.consent c JOIN mailbeacon.recipients r ON lower(r.address) = c.address
   WHERE c.state IN ('withdrawn', 'refused')
  UNION
  SELECT f.message, f.idx FROM mailbeacon.forgotten f
  UNION
  SELECT w.message, w.idx FROM mailbeacon.withdrawals_waiting w;
