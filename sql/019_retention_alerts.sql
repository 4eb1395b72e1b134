-- Issue 14: nothing about a recipient outlives its message. Retention
-- (apply_retention, sql/003) deletes the messages sent before its cutoff,
-- their recipients and links with them (ON DELETE CASCADE), and drops the
-- events' partitions by month; but the alerts (sql/007), which hold
-- recipients' addresses, and the tombstones (sql/017) stayed. They go with
-- their message now, whatever deletes it. A message's retention runs from
-- when it was sent: no open or click extends it.
CREATE FUNCTION mailbeacon.messages_gone() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM mailbeacon.alerts a USING gone g WHERE a.message = g.message;
  DELETE FROM mailbeacon.forgotten f USING gone g WHERE f.message = g.message;
  RETURN NULL;
END $$;
CREATE TRIGGER messages_gone AFTER DELETE ON mailbeacon.messages
  REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION mailbeacon.messages_gone();
