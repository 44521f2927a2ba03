-- Who owns each App (docs/architecture.md §2 Ownership), as the builder announced it: app.spec_created
-- carries the owner, app.owner_changed moves it. Only the owner or an admin moves the App's aliases; an App
-- with no row, or an owner of NULL (the platform's), is moved by an admin only. `updated_at` is the time of
-- the event the owner came from: a late, older event never overwrites a newer one.
CREATE TABLE app_owners (
    app_id      TEXT PRIMARY KEY,
    owner       TEXT,
    updated_at  TIMESTAMPTZ NOT NULL
);
