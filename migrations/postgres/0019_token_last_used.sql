-- When each API token was last used (issue 19: the tokens page shows it, so a forgotten
-- token still in use, or one used where nobody expects, stands out). Written at most once
-- a minute per token: an API call reads the token on every request, and a write for each
-- would queue every call behind the single writer.
ALTER TABLE api_tokens ADD COLUMN last_used_at BIGINT;
