-- Issue 13: webhooks (docs/alerts.md "Webhooks"). Every alert is posted
-- to the endpoints webhooks_file names for its rep; what was tried and
-- what succeeded is kept here, so that a restarted batcher neither loses a
-- delivery nor repeats one that succeeded.

-- The newest alert whose deliveries were queued (one row).
CREATE TABLE mailbeacon.webhook_state (
  only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
  last_alert bigint NOT NULL
);
INSERT INTO mailbeacon.webhook_state VALUES (true, (SELECT coalesce(max(id), 0) FROM mailbeacon.alerts));

-- Endpoints that answered 410 Gone: nothing more is posted to them.
CREATE TABLE mailbeacon.webhook_endpoints (
  url         text PRIMARY KEY,
  disabled_at timestamptz NOT NULL DEFAULT now(),
  reason      text NOT NULL
);

CREATE TABLE mailbeacon.webhook_deliveries (
  alert_id     bigint NOT NULL REFERENCES mailbeacon.alerts ON DELETE CASCADE,
  url          text NOT NULL,
  webhook_id   text NOT NULL,               -- the webhook-id header: the same in every attempt
  format       text NOT NULL CHECK (format IN ('standard', 'slack')),
  body         text NOT NULL,               -- the same in every attempt
  attempts     integer NOT NULL DEFAULT 0,  -- started so far
  next_at      timestamptz NOT NULL DEFAULT now(), -- the next attempt; while one runs, when it is given up
  state        text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed', 'disabled')),
  last_status  integer,                     -- the last attempt's HTTP status; NULL: no answer
  last_error   text,
  delivered_at timestamptz,
  PRIMARY KEY (alert_id, url)
);
CREATE INDEX webhook_deliveries_due ON mailbeacon.webhook_deliveries (next_at) WHERE state = 'pending';

-- What is posted: Standard Webhooks' {type, timestamp, data}, or Slack's
-- incoming webhook message (text, and a block with Slack's three
-- characters escaped).
CREATE FUNCTION mailbeacon.webhook_body(a mailbeacon.alerts, format text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE format
    WHEN 'slack' THEN
      json_build_object(
        'text', mailbeacon.alert_json(a)->>'text',
        'blocks', json_build_array(json_build_object(
          'type', 'section',
          'text', json_build_object(
            'type', 'mrkdwn',
            'text', replace(replace(replace(mailbeacon.alert_json(a)->>'text', '&', '&amp;'), '<', '&lt;'), '>', '&gt;')))))::text
    ELSE
      json_build_object('type', 'alert.' || a.kind, 'timestamp', a.created_at, 'data', mailbeacon.alert_json(a))::text
  END
$$;
