-- A request from the same customer for the same device within 14 days of an approval
-- (customer::feedback::REPEAT_WINDOW_DAYS) names the earlier approved ticket, which the
-- agent sees beside it for a shortened review. Still an agent's decision.
ALTER TABLE tickets ADD COLUMN repeat_of BIGINT REFERENCES tickets (id);
