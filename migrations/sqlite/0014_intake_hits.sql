-- Public intake requests, counted per client network and per device serial (issue 16):
-- the limits were counted in each replica's memory, so three replicas took three times
-- the limit and a restart forgot the count. Now one row per counted request, which
-- every replica reads and a restart keeps. `kind` is 'address' (an IPv4 address or an
-- IPv6 /64) or 'serial'; `at` is Unix seconds. Rows older than the window (an hour) are
-- pruned as requests come in, so the table holds about an hour of requests.
CREATE TABLE intake_hits (
    id   INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    key  TEXT NOT NULL,
    at   BIGINT NOT NULL
);

CREATE INDEX intake_hits_by_bucket ON intake_hits (kind, key, at);
CREATE INDEX intake_hits_by_time ON intake_hits (at);
