-- Issue 12: a hit on the message's invisible honeypot link is an event of
-- its own kind (counted in no view). Alone in its migration: a value added
-- to an enum cannot be used in the transaction that adds it, and
-- 005_classes.sql indexes it.
ALTER TYPE mailbeacon.event_kind ADD VALUE IF NOT EXISTS 'honeypot';
