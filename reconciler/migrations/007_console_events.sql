-- Live updates for the web console (docs/console.md). Every change the console shows sends a
-- small NOTIFY on the channel edgeplane_console_<schema>: channel names are database-wide, so
-- the schema keeps control planes sharing one database apart. Every replica LISTENs and
-- forwards what it hears to its server-sent-event clients, so a browser connected to any
-- replica sees changes made by all of them. NOTIFY is delivered at commit: a rolled-back
-- change sends nothing.
--
-- Payload: {"type": TG_ARGV[0], "project": <project name or null>, "id": <row id as text>,
-- "status": <row status or null>}, well under NOTIFY's 8000-byte limit whatever the row holds.
-- Other tables can join with one CREATE TRIGGER ... EXECUTE FUNCTION edgeplane_console_notify('<type>').
CREATE FUNCTION edgeplane_console_notify() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  r jsonb := to_jsonb(NEW);
  project text;
BEGIN
  IF r->>'project_id' IS NOT NULL THEN
    EXECUTE format('SELECT name FROM %I.projects WHERE id = $1', TG_TABLE_SCHEMA)
      INTO project USING (r->>'project_id')::uuid;
  END IF;
  PERFORM pg_notify(
    'edgeplane_console_' || TG_TABLE_SCHEMA,
    json_build_object('type', TG_ARGV[0], 'project', project, 'id', r->>'id', 'status', r->>'status')::text
  );
  RETURN NULL;
END
$$;

-- A reconcile is queued, starts, finishes, is superseded, or gets its per-POP outcome.
CREATE TRIGGER console_reconciliation_insert AFTER INSERT ON reconciliations
  FOR EACH ROW EXECUTE FUNCTION edgeplane_console_notify('reconciliation');
CREATE TRIGGER console_reconciliation_update AFTER UPDATE ON reconciliations
  FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.outcome IS DISTINCT FROM NEW.outcome)
  EXECUTE FUNCTION edgeplane_console_notify('reconciliation');

-- An audit row is appended (the log is append-only, so inserts are all there is).
CREATE TRIGGER console_audit_insert AFTER INSERT ON audit_logs
  FOR EACH ROW EXECUTE FUNCTION edgeplane_console_notify('audit');

-- A deployment is created or changes state (a version becomes active, runners ack it).
CREATE TRIGGER console_deployment_insert AFTER INSERT ON deployments
  FOR EACH ROW EXECUTE FUNCTION edgeplane_console_notify('deployment');
CREATE TRIGGER console_deployment_update AFTER UPDATE ON deployments
  FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.active IS DISTINCT FROM NEW.active)
  EXECUTE FUNCTION edgeplane_console_notify('deployment');

-- A runner registers, heartbeats, acks a generation or goes offline. Nodes belong to no
-- project: "project" is null and the events endpoint decides who may see them.
CREATE TRIGGER console_node_insert AFTER INSERT ON nodes
  FOR EACH ROW EXECUTE FUNCTION edgeplane_console_notify('node');
CREATE TRIGGER console_node_update AFTER UPDATE ON nodes
  FOR EACH ROW EXECUTE FUNCTION edgeplane_console_notify('node');

-- A pull request's preview is deployed, closed or expires.
CREATE TRIGGER console_preview_insert AFTER INSERT ON previews
  FOR EACH ROW EXECUTE FUNCTION edgeplane_console_notify('preview');
CREATE TRIGGER console_preview_update AFTER UPDATE ON previews
  FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.head_sha IS DISTINCT FROM NEW.head_sha)
  EXECUTE FUNCTION edgeplane_console_notify('preview');
