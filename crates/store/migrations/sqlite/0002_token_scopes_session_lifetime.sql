-- API tokens get a scope and an expiry; sessions get an absolute lifetime besides the idle timeout.
-- Tokens that existed before keep working as they did: an admin's become `admin` tokens, and all
-- expire 90 days after their creation. Sessions that existed end 12 hours after they began.

ALTER TABLE api_tokens ADD COLUMN scope TEXT NOT NULL DEFAULT 'read' CHECK (scope IN ('read', 'admin'));
ALTER TABLE api_tokens ADD COLUMN expires_at INTEGER NOT NULL DEFAULT 0;
UPDATE api_tokens SET scope = 'admin' WHERE user_id IN (SELECT id FROM users WHERE role = 'admin');
UPDATE api_tokens SET expires_at = created_at + 7776000000;

ALTER TABLE sessions ADD COLUMN absolute_expires_at INTEGER NOT NULL DEFAULT 0;
UPDATE sessions SET absolute_expires_at = created_at + 43200000;
