-- Issue 14: withdrawal through the disclosure line's page (docs/privacy.md).
--
-- The edge records a confirmed withdrawal as an event line of kind "w" for
-- its token's message and recipient index; the batcher calls withdraw() in
-- the batch's transaction instead of loading it as an event: the
-- recipient's address (for index 0, a copy sent to several: every
-- recipient's) is withdrawn in mailbeacon.consent, through consent_merge.
CREATE FUNCTION mailbeacon.withdraw(p_message uuid, p_idx integer, p_at timestamptz)
RETURNS bigint LANGUAGE sql AS $$
  SELECT coalesce(mailbeacon.consent_merge(array_agg(lower(r.address)), array_agg('withdrawn'::text),
                                           array_agg(''::text), array_agg('withdrawal page'::text),
                                           array_agg(p_at), 'withdrawal page'), 0)
    FROM mailbeacon.recipients r
   WHERE r.message = p_message AND (p_idx = 0 OR r.idx = p_idx)
$$;

-- The (message, recipient index) pairs whose hits are no longer stored,
-- on any message, old ones too: their recipient withdrew or refused
-- consent; and index 0 of a message one of whose recipients did (its hits
-- could be that recipient's). The batcher keeps this set in memory and
-- drops those hits before loading (no row, no alert).
CREATE INDEX consent_silenced ON mailbeacon.consent (address) WHERE state IN ('withdrawn', 'refused');
CREATE VIEW mailbeacon.silenced AS
  SELECT r.message, r.idx
    FROM mailbeacon.consent c JOIN mailbeacon.recipients r ON lower(r.address) = c.address
   WHERE c.state IN ('withdrawn', 'refused')
  UNION
  SELECT r.message, 0
    FROM mailbeacon.consent c JOIN mailbeacon.recipients r ON lower(r.address) = c.address
   WHERE c.state IN ('withdrawn', 'refused');
