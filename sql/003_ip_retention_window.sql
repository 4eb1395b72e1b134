-- IP retention reads only what it has not read yet. apply_retention keeps in
-- mailbeacon.retention_state the time before which every event's IP is
-- truncated, and each run reads from a day before it to the new cutoff,
-- instead of every partition older than ip_days every hour. Events that
-- arrive already older than ip_retention_days (an edge's spool replayed days
-- later) are truncated by the batcher as it loads them. After loading old
-- events by other means, read everything again once with:
--   UPDATE mailbeacon.retention_state SET ip_truncated_before = '-infinity';

CREATE TABLE mailbeacon.retention_state (
  only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
  ip_truncated_before timestamptz NOT NULL DEFAULT '-infinity'
);
INSERT INTO mailbeacon.retention_state DEFAULT VALUES;

CREATE OR REPLACE FUNCTION mailbeacon.apply_retention(keep_days integer, ip_days integer, at timestamptz DEFAULT now())
RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
  part record;
  n bigint;
  cutoff timestamptz;
  done timestamptz;
BEGIN
  PERFORM set_config('lock_timeout', '5s', true);
  -- one run at a time (several batchers each run it every hour)
  PERFORM pg_advisory_xact_lock(hashtext('mailbeacon.events partitions'));
  IF keep_days > 0 THEN
    cutoff := at - make_interval(days => keep_days);
    FOR part IN
      SELECT c.relname,
             to_timestamp(substr(c.relname, 8), 'YYYY_MM')::timestamp AS first
        FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        JOIN pg_class p ON p.oid = i.inhparent
        JOIN pg_namespace ns ON ns.oid = p.relnamespace
       WHERE ns.nspname = 'mailbeacon' AND p.relname = 'events' AND c.relname ~ '^events_[0-9]{4}_[0-9]{2}$'
       ORDER BY c.relname
    LOOP
      IF (part.first + interval '1 month') AT TIME ZONE 'UTC' <= cutoff THEN
        EXECUTE format('DROP TABLE IF EXISTS mailbeacon.%I', part.relname);
        RETURN NEXT 'dropped partition ' || part.relname;
      END IF;
    END LOOP;
    DELETE FROM mailbeacon.messages WHERE sent_at < cutoff;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n > 0 THEN
      RETURN NEXT 'deleted ' || n || ' messages sent before ' || cutoff;
    END IF;
    DELETE FROM mailbeacon.rejected WHERE rejected_at < cutoff;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n > 0 THEN
      RETURN NEXT 'deleted ' || n || ' rejected entries kept since before ' || cutoff;
    END IF;
  END IF;
  IF ip_days > 0 THEN
    cutoff := at - make_interval(days => ip_days);
    SELECT ip_truncated_before INTO done FROM mailbeacon.retention_state;
    IF done IS NULL THEN
      INSERT INTO mailbeacon.retention_state DEFAULT VALUES;
      done := '-infinity';
    END IF;
    IF cutoff > done THEN
      -- from a day before where the last run stopped (clocks of the batchers
      -- and of PostgreSQL may differ) to the new cutoff
      UPDATE mailbeacon.events
         SET ip = set_masklen(network(set_masklen(ip, CASE family(ip) WHEN 4 THEN 24 ELSE 48 END)),
                              CASE family(ip) WHEN 4 THEN 32 ELSE 128 END)
       WHERE occurred_at >= done - interval '1 day'
         AND occurred_at < cutoff
         AND ip IS NOT NULL
         AND ip <> set_masklen(network(set_masklen(ip, CASE family(ip) WHEN 4 THEN 24 ELSE 48 END)),
                               CASE family(ip) WHEN 4 THEN 32 ELSE 128 END);
      GET DIAGNOSTICS n = ROW_COUNT;
      IF n > 0 THEN
        RETURN NEXT 'truncated the IPs of ' || n || ' events';
      END IF;
      UPDATE mailbeacon.retention_state SET ip_truncated_before = cutoff;
    END IF;
  END IF;
END $$;
