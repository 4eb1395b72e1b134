-- mailbeacon schema: sent messages, their recipients and links, and the
-- open/click events, range partitioned by month (UTC) on occurred_at.
-- Applied by `mailbeacon-server migrate` in one transaction.

CREATE TYPE mailbeacon.event_kind AS ENUM ('open', 'click');

-- One row per rewritten message (type=sent stream entries, keyed by message).
CREATE TABLE mailbeacon.messages (
  message         uuid PRIMARY KEY,
  message_id      text NOT NULL DEFAULT '',        -- Message-ID header, no angle brackets
  rep             text NOT NULL,                   -- the sending rep's address
  subject         text NOT NULL DEFAULT '',
  sent_at         timestamptz NOT NULL,            -- when the rewriter saw it
  recipient_count integer NOT NULL,
  loaded_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX messages_rep_sent_at ON mailbeacon.messages (rep, sent_at);
CREATE INDEX messages_sent_at ON mailbeacon.messages (sent_at);
CREATE INDEX messages_message_id ON mailbeacon.messages (message_id);

CREATE TABLE mailbeacon.recipients (
  message uuid NOT NULL REFERENCES mailbeacon.messages ON DELETE CASCADE,
  idx     integer NOT NULL,                        -- the recipient index the tokens carry (1..n)
  address text NOT NULL,
  PRIMARY KEY (message, idx)
);
CREATE INDEX recipients_address ON mailbeacon.recipients (lower(address));

CREATE TABLE mailbeacon.links (
  message uuid NOT NULL REFERENCES mailbeacon.messages ON DELETE CASCADE,
  idx     integer NOT NULL,                        -- the link index the tokens carry (1..n)
  url     text NOT NULL,
  PRIMARY KEY (message, idx)
);

-- Every recorded hit, exactly once: the edge makes the event id, and the
-- primary key (with the partition key, as PostgreSQL requires) is what makes
-- a redelivered or replayed event a no-op.
CREATE TABLE mailbeacon.events (
  event_id      uuid NOT NULL,                     -- made at the edge: time, edge random, counter
  kind          mailbeacon.event_kind NOT NULL,
  message       uuid NOT NULL,
  recipient_idx integer NOT NULL,                  -- 0: "someone" (one copy went to several)
  link_idx      integer NOT NULL,                  -- 0 for opens
  occurred_at   timestamptz NOT NULL,              -- time of the hit at the edge
  ip            inet,                              -- client IP (truncated when configured)
  method        text NOT NULL,
  edge          text NOT NULL,
  user_agent    text NOT NULL,
  url           text,                              -- click target; NULL for opens
  loaded_at     timestamptz NOT NULL DEFAULT now(),-- when the batcher's transaction began
  class         text,                              -- set by the classifier; NULL: not classified
  reason        text,                              -- why the classifier chose the class
  PRIMARY KEY (event_id, occurred_at)
) PARTITION BY RANGE (occurred_at);
CREATE INDEX events_message ON mailbeacon.events (message, occurred_at);

-- Stream entries the batcher could not load (malformed lines, unknown entry
-- types): kept here instead of being dropped, so nothing is lost silently.
CREATE TABLE mailbeacon.rejected (
  stream_id   text NOT NULL,                       -- the stream entry's id
  part        integer NOT NULL,                    -- 0: the whole entry; n: its n-th event line
  entry       text NOT NULL,                       -- what could not be loaded
  reason      text NOT NULL,
  rejected_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (stream_id, part)
);

-- Creating or dropping a partition locks mailbeacon.events exclusively, so
-- it waits for running queries and everything waits for it: these functions
-- give up after lock_timeout (5 s; the caller retries) rather than stall
-- loading behind a long report.

-- The month partition of events that holds instant `at` (months in UTC),
-- created when missing. Returns its name. Safe to call concurrently.
CREATE FUNCTION mailbeacon.ensure_partition(at timestamptz) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
  first timestamp := date_trunc('month', at AT TIME ZONE 'UTC');
  name text := 'events_' || to_char(first, 'YYYY_MM');
BEGIN
  IF to_regclass('mailbeacon.' || name) IS NULL THEN
    PERFORM set_config('lock_timeout', '5s', true);
    PERFORM pg_advisory_xact_lock(hashtext('mailbeacon.events partitions'));
    IF to_regclass('mailbeacon.' || name) IS NULL THEN
      EXECUTE format('CREATE TABLE mailbeacon.%I PARTITION OF mailbeacon.events FOR VALUES FROM (%L) TO (%L)',
                     name, first AT TIME ZONE 'UTC', (first + interval '1 month') AT TIME ZONE 'UTC');
    END IF;
  END IF;
  RETURN name;
END $$;

-- The partitions for the month of `at` and the `ahead` months after it
-- (months in UTC, whatever the session's TimeZone).
CREATE FUNCTION mailbeacon.ensure_partitions(at timestamptz DEFAULT now(), ahead integer DEFAULT 3)
RETURNS SETOF text LANGUAGE sql AS $$
  SELECT mailbeacon.ensure_partition((date_trunc('month', at AT TIME ZONE 'UTC') + make_interval(months => m))
                                     AT TIME ZONE 'UTC')
    FROM generate_series(0, ahead) AS m
$$;

-- Retention, as of `at`:
--  * keep_days > 0: drops every events partition whose whole month ended more
--    than keep_days before `at`, and deletes messages sent before that
--    (their recipients and links go with them) and rejected entries kept
--    since before that;
--  * ip_days > 0: truncates the IPs of events older than ip_days to /24
--    (IPv4) or /48 (IPv6).
-- Returns one line per action taken.
CREATE FUNCTION mailbeacon.apply_retention(keep_days integer, ip_days integer, at timestamptz DEFAULT now())
RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
  part record;
  n bigint;
  cutoff timestamptz;
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
    UPDATE mailbeacon.events
       SET ip = set_masklen(network(set_masklen(ip, CASE family(ip) WHEN 4 THEN 24 ELSE 48 END)),
                            CASE family(ip) WHEN 4 THEN 32 ELSE 128 END)
     WHERE occurred_at < at - make_interval(days => ip_days)
       AND ip IS NOT NULL
       AND ip <> set_masklen(network(set_masklen(ip, CASE family(ip) WHEN 4 THEN 24 ELSE 48 END)),
                             CASE family(ip) WHEN 4 THEN 32 ELSE 128 END);
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n > 0 THEN
      RETURN NEXT 'truncated the IPs of ' || n || ' events';
    END IF;
  END IF;
END $$;

-- Loads one type=sent stream entry (arguments as in docs/events.md);
-- per-recipient copies of a message share its rows. A record that does not
-- load (bad JSON, bad UUID) goes to mailbeacon.rejected; returns false then.
CREATE FUNCTION mailbeacon.load_sent(stream_id text, message text, message_id text, rep text, subject text,
                                     sent_at_us text, recipients text, links text)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
  m uuid;
  r jsonb;
  l jsonb;
BEGIN
  BEGIN
    m := message::uuid;
    r := recipients::jsonb;
    l := links::jsonb;
    INSERT INTO mailbeacon.messages (message, message_id, rep, subject, sent_at, recipient_count)
    VALUES (m, message_id, rep, subject, to_timestamp(sent_at_us::bigint / 1e6), jsonb_array_length(r))
    ON CONFLICT DO NOTHING;
    INSERT INTO mailbeacon.recipients (message, idx, address)
    SELECT m, x.i, x.addr FROM jsonb_to_recordset(r) AS x(i integer, addr text)
    ON CONFLICT DO NOTHING;
    INSERT INTO mailbeacon.links (message, idx, url)
    SELECT m, x.i, x.url FROM jsonb_to_recordset(l) AS x(i integer, url text)
    ON CONFLICT DO NOTHING;
    RETURN true;
  EXCEPTION WHEN others THEN
    INSERT INTO mailbeacon.rejected (stream_id, part, entry, reason)
    VALUES (stream_id, 0,
            json_build_object('type', 'sent', 'message', message, 'message_id', message_id, 'rep', rep,
                              'subject', subject, 'sent_at', sent_at_us, 'recipients', recipients,
                              'links', links)::text,
            SQLERRM)
    ON CONFLICT DO NOTHING;
    RETURN false;
  END;
END $$;
