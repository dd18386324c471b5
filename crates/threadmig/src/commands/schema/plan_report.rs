//! `threadmig schema plan`: the server's plan for pushing a schema to one app, through the
//! `InstantApi` HTTP adapter, graded step by step and written as a JSON report and a Markdown
//! instruction sheet.
//!
//! Behaviour changes from the old `plan_schema_push` script, on purpose:
//! - the plan comes from `POST /superadmin/apps/:id/schema/push/plan` with the platform SDK's
//!   flags (the route and body the push itself uses), not an undocumented route;
//! - steps are read in the server's `[type, payload]` form, so no step degrades to `unknown`;
//! - the admin token comes from a file, standard input or the organisation directory, never
//!   from argv, and appears in no output;
//! - a schema the server refuses (link collisions) is a blocked gate with the server's error in
//!   the report, not a crash.

use std::io::Read as _;
use std::path::Path;

use anyhow::{bail, Context};
use indexmap::IndexMap;
use instant_api::http::HttpInstantApi;
use instant_api::{ApiError, AppAuth, InstantApi, SchemaPlanResponse, SchemaPushRequest};
use instant_local::directory::LocalDirectory;
use instant_local::Store;
use instant_schema::load_schema;
use instant_schema::plan::{instructions, Instruction};
use instant_schema::severity::{Gate, SeverityCounts};
use org_directory::{ClerkDirectory, CredentialsOutcome, OrgDirectory};
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::sync::Arc;

use crate::cli::SchemaPlanArgs;
use crate::connect::resilience;
use crate::output::{now_rfc3339, print_json, write_atomic};
use crate::Outcome;

/// Where the admin token came from (recorded in the report; the token itself never is).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokenSource {
    File,
    Stdin,
    OrgDirectory,
}

impl TokenSource {
    fn as_str(self) -> &'static str {
        match self {
            TokenSource::File => "file",
            TokenSource::Stdin => "stdin",
            TokenSource::OrgDirectory => "org-directory",
        }
    }
}

pub fn run(args: SchemaPlanArgs, json: bool) -> anyhow::Result<Outcome> {
    // The HTTP client's retries and give-ups, on stderr. Its events carry method, path and
    // status only, never a header, query string or body, so never the token.
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing_subscriber::filter::LevelFilter::INFO)
        .with_target(false)
        .with_ansi(false)
        .try_init();
    let loaded = load_schema(&args.schema_file)?;
    let schema = serde_json::to_value(&*loaded.dsl()).context("serialising the schema")?;
    let (auth, token_source) = resolve_auth(&args)?;
    let api = HttpInstantApi::new(args.http.api_uri(), resilience(&args.http))
        .map_err(|error| anyhow::anyhow!("--instant-api-uri: {}", error.message))?;
    let context = ReportContext {
        app_id: auth.app_id.clone(),
        org_id: args.org.clone().unwrap_or_default(),
        env_name: args.env.clone(),
        api_uri: api.base_url().to_string(),
        endpoint: api.url(&format!(
            "/superadmin/apps/{}/schema/push/plan",
            http_client::encode_path_segment(&auth.app_id)
        )),
        created_at: now_rfc3339(),
        schema_source: loaded.path.display().to_string(),
        schema_type: loaded.format.as_str().to_string(),
        token_source: token_source.as_str(),
    };
    // What `PlatformApi.planSchemaPush` sends.
    let request = SchemaPushRequest {
        schema,
        check_types: true,
        supports_background_updates: true,
    };
    let report = match api.schema_plan(&auth, &request) {
        Ok(response) => plan_report(&context, &response),
        Err(error) if is_schema_refusal(&error) => refusal_report(&context, &error),
        Err(error) => bail!(
            "planning the schema push for app {} at {}: {error}",
            context.app_id,
            context.endpoint
        ),
    };
    let mut bytes = serde_json::to_vec_pretty(&report.json)?;
    bytes.push(b'\n');
    write_atomic(&args.out, &bytes)?;
    write_atomic(&args.instructions_out, report.markdown.as_bytes())?;
    if json {
        print_json(&json!({
            "appId": context.app_id,
            "summary": report.json["summary"],
            "gate": report.gate,
            "out": args.out,
        }))?;
    } else {
        print!("{}", report.table);
        println!(
            "{} steps: {} critical, {} warning, {} review, {} safe",
            report.counts.total(),
            report.counts.critical,
            report.counts.warning,
            report.counts.review,
            report.counts.safe
        );
        println!("gate: {}", report.gate.as_str());
        println!(
            "wrote {} and {}",
            args.out.display(),
            args.instructions_out.display()
        );
    }
    Ok(if report.gate == Gate::Safe {
        Outcome::Ok
    } else {
        Outcome::Findings
    })
}

/// The app's credentials: from `--admin-token-file` when given, else from the organisation
/// directory for `--org`.
fn resolve_auth(args: &SchemaPlanArgs) -> anyhow::Result<(AppAuth, TokenSource)> {
    if let Some(path) = &args.admin_token_file {
        let (token, source) = read_token(path)?;
        return Ok((AppAuth::new(&args.app_id, token), source));
    }
    let Some(org) = &args.org else {
        bail!(
            "an admin token is needed: --admin-token-file FILE (`-` for standard input), or \
             --org ORG to take the app's credentials from the organisation directory"
        );
    };
    // The embedded workspace's own organisations, or Clerk; never a silent fallback from one
    // to the other.
    let directory: Box<dyn OrgDirectory> = match &args.workspace {
        Some(dir) => Box::new(LocalDirectory::new(Arc::new(Store::open(dir)?))),
        None => Box::new(ClerkDirectory::from_env(&args.clerk_api_uri)?),
    };
    match directory.credentials(org)? {
        CredentialsOutcome::Present(credentials) => {
            if credentials.app_id != args.app_id {
                bail!(
                    "organisation {org} owns app {}, not --app-id {}",
                    credentials.app_id,
                    args.app_id
                );
            }
            Ok((
                AppAuth::new(&credentials.app_id, credentials.admin_token.expose()),
                TokenSource::OrgDirectory,
            ))
        }
        outcome => bail!(
            "organisation {org} has no usable Instant credentials ({}): {}",
            outcome.issue_code().map(|code| code.as_str()).unwrap_or(""),
            outcome.reason().unwrap_or("")
        ),
    }
}

/// The token from a file or standard input (`-`), surrounding whitespace dropped.
fn read_token(path: &Path) -> anyhow::Result<(String, TokenSource)> {
    let (text, source) = if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading the admin token from standard input")?;
        (text, TokenSource::Stdin)
    } else {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("{}: cannot read the admin token file", path.display()))?;
        (text, TokenSource::File)
    };
    let token = text.trim();
    if token.is_empty() {
        bail!(
            "{}: the admin token is empty",
            if source == TokenSource::Stdin {
                "standard input".to_string()
            } else {
                path.display().to_string()
            }
        );
    }
    if token.contains(char::is_whitespace) {
        bail!("the admin token holds whitespace; the file must contain only the token");
    }
    Ok((token.to_string(), source))
}

/// The server's refusal of the schema itself (`plan-errors`: duplicate or backwards links,
/// cascades on many-links): a finding about the schema, not a failure of the tool.
fn is_schema_refusal(error: &ApiError) -> bool {
    error.status == 400
        && error.error_type == "validation-failed"
        && error.hint.get("data-type").and_then(Value::as_str) == Some("schema")
}

/// What the report header says about the run.
#[derive(Debug, Clone)]
struct ReportContext {
    app_id: String,
    org_id: String,
    env_name: String,
    api_uri: String,
    endpoint: String,
    created_at: String,
    schema_source: String,
    schema_type: String,
    token_source: &'static str,
}

struct Report {
    json: Value,
    markdown: String,
    table: String,
    counts: SeverityCounts,
    gate: Gate,
}

fn plan_report(context: &ReportContext, response: &SchemaPlanResponse) -> Report {
    let current = &response.current_schema;
    let steps = instructions(&response.steps, current);
    let counts: SeverityCounts = steps.iter().map(|step| step.severity).collect();
    let gate = Gate::from_counts(&counts);
    let mut by_type: IndexMap<&str, usize> = IndexMap::new();
    for step in &steps {
        *by_type.entry(step.step_type.as_str()).or_insert(0) += 1;
    }
    let summary = json!({
        "total": counts.total(),
        "countsBySeverity": counts,
        "countsByType": by_type,
    });
    let json = report_json(
        context,
        true,
        summary,
        gate,
        steps.iter().map(|step| json!(step)).collect(),
        serde_json::to_value(response).unwrap_or(Value::Null),
        None,
    );
    Report {
        markdown: markdown(context, &steps, &counts, gate, None),
        table: table(&steps),
        json,
        counts,
        gate,
    }
}

fn refusal_report(context: &ReportContext, error: &ApiError) -> Report {
    let counts = SeverityCounts::default();
    let gate = Gate::for_plan_errors();
    let summary = json!({
        "total": 0,
        "countsBySeverity": counts,
        "countsByType": {},
    });
    let json = report_json(
        context,
        false,
        summary,
        gate,
        Vec::new(),
        Value::Null,
        Some(error),
    );
    Report {
        markdown: markdown(context, &[], &counts, gate, Some(error)),
        table: format!("the server refuses this schema:\n  {}\n", error.message),
        json,
        counts,
        gate,
    }
}

/// The `--out` document: the old script's keys, plus `gate` and, on refusal, `error`.
fn report_json(
    context: &ReportContext,
    ok: bool,
    summary: Value,
    gate: Gate,
    instructions: Vec<Value>,
    payload: Value,
    error: Option<&ApiError>,
) -> Value {
    let mut out = json!({
        "ok": ok,
        "appId": context.app_id,
        "orgId": context.org_id,
        "envName": context.env_name,
        "apiUri": context.api_uri,
        "endpoint": context.endpoint,
        "createdAt": context.created_at,
        "schemaSource": context.schema_source,
        "schemaType": context.schema_type,
        "summary": summary,
        "gate": gate,
        "instructions": instructions,
        "payload": payload,
        // No dotenv file is ever loaded; the keys stay for readers of the old reports.
        "meta": {
            "envFilesLoaded": [],
            "envFilesFailed": [],
            "envAliasesApplied": [],
            "tokenSource": context.token_source,
        },
    });
    if let Some(error) = error {
        let mut envelope = error.envelope();
        envelope["status"] = json!(error.status);
        out["error"] = envelope;
    }
    out
}

fn markdown(
    context: &ReportContext,
    steps: &[Instruction],
    counts: &SeverityCounts,
    gate: Gate,
    refusal: Option<&ApiError>,
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Instant Schema Plan Instructions\n");
    let _ = writeln!(out, "- Mode: plan only (nothing was applied)");
    let _ = writeln!(out, "- App ID: `{}`", context.app_id);
    if !context.org_id.is_empty() {
        let _ = writeln!(out, "- Org: `{}`", context.org_id);
    }
    let _ = writeln!(out, "- Env: {}", context.env_name);
    let _ = writeln!(out, "- Generated: {}", context.created_at);
    let _ = writeln!(
        out,
        "- Schema source: `{}` ({})",
        context.schema_source, context.schema_type
    );
    let _ = writeln!(out, "- Endpoint: {}", context.endpoint);
    let _ = writeln!(out, "\n## Summary\n");
    let _ = writeln!(out, "- Total steps: {}", counts.total());
    let _ = writeln!(out, "- Critical: {}", counts.critical);
    let _ = writeln!(out, "- Warning: {}", counts.warning);
    let _ = writeln!(out, "- Review: {}", counts.review);
    let _ = writeln!(out, "- Safe: {}", counts.safe);
    let _ = writeln!(out, "- Gate: **{}**", gate.as_str());
    let _ = writeln!(out, "\n## Required Gates\n");
    let _ = writeln!(
        out,
        "1. A person approves this plan before any step that is not a dry run."
    );
    let _ = writeln!(
        out,
        "2. Data moves extract -> transform -> dry run -> verify, in that order."
    );
    let _ = writeln!(
        out,
        "3. Every step leaves its audit snapshot and final record."
    );
    let _ = writeln!(out, "4. Roll out as a canary, one organisation at a time.");
    let _ = writeln!(out, "\n## Agent Actions By Step\n");
    if let Some(error) = refusal {
        let _ = writeln!(
            out,
            "The server refuses this schema, so there is no plan. Fix the schema first:\n"
        );
        let _ = writeln!(out, "- {}", error.message);
        return out;
    }
    if steps.is_empty() {
        let _ = writeln!(out, "No steps: the app already has this schema.");
        return out;
    }
    for step in steps {
        let target = step
            .target
            .as_deref()
            .map(|target| format!(" ({target})"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{}. [{}] `{}`{target}",
            step.index,
            step.severity.as_str(),
            step.step_type
        );
        let _ = writeln!(out, "   - Plan: {}", step.summary);
        let _ = writeln!(out, "   - Action: {}", step.action);
    }
    let _ = writeln!(out, "\n## Next Commands\n");
    let _ = writeln!(out, "```sh");
    let _ = writeln!(
        out,
        "# Re-plan after changing the schema (the token is read from standard input):"
    );
    let _ = writeln!(
        out,
        "threadmig schema plan --app-id {} --schema-file {} --instant-api-uri {} --admin-token-file -",
        context.app_id,
        shell_word(&context.schema_source),
        context.api_uri
    );
    let _ = writeln!(
        out,
        "# Check the application code against the thread model:"
    );
    let _ = writeln!(out, "threadmig model-plan --repo <APP_REPO>");
    let _ = writeln!(out, "```");
    out
}

/// A path as one shell word.
fn shell_word(text: &str) -> String {
    if !text.is_empty()
        && text
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"-_./:+@=".contains(&byte))
    {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

/// The steps as a table for the terminal.
fn table(steps: &[Instruction]) -> String {
    if steps.is_empty() {
        return "no steps: the app already has this schema\n".into();
    }
    super::instructions_table(steps)
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::expect;

    fn context() -> ReportContext {
        ReportContext {
            app_id: "7a1c0d1e-0000-4000-8000-000000000001".into(),
            org_id: String::new(),
            env_name: "production".into(),
            api_uri: "http://127.0.0.1:8888".into(),
            endpoint: "http://127.0.0.1:8888/superadmin/apps/7a1c0d1e-0000-4000-8000-000000000001/schema/push/plan".into(),
            created_at: "2026-01-01T00:00:00Z".into(),
            schema_source: "/tmp/my schema.json".into(),
            schema_type: "json".into(),
            token_source: "file",
        }
    }

    fn response() -> SchemaPlanResponse {
        let empty = json!({"refs": {}, "blobs": {}});
        serde_json::from_value(json!({
            "new-schema": empty,
            "current-schema": {"refs": {}, "blobs": {"posts": {"title": {
                "id": "a0000000-0000-4000-8000-000000000001",
                "value-type": "blob", "cardinality": "one",
                "forward-identity": ["b0000000-0000-4000-8000-000000000001", "posts", "title"],
                "unique?": false, "index?": false, "required?": false}}}},
            "steps": [
                ["add-attr", {"id": "a1", "value-type": "blob", "cardinality": "one",
                              "forward-identity": ["i1", "posts", "body"],
                              "unique?": false, "index?": false, "required?": false}],
                ["index", {"attr-id": "a0000000-0000-4000-8000-000000000001",
                           "forward-identity": ["b0000000-0000-4000-8000-000000000001", "posts", "title"]}],
                ["unique", {"attr-id": "a0000000-0000-4000-8000-000000000001",
                            "forward-identity": ["b0000000-0000-4000-8000-000000000001", "posts", "title"]}],
                ["rename-attr", {"id": "x"}]
            ]
        }))
        .expect("a plan response")
    }

    #[test]
    fn instructions_grade_each_step_and_name_its_target() {
        let report = plan_report(&context(), &response());
        assert_eq!(report.gate, Gate::Blocked);
        expect![[r#"
            {
              "countsBySeverity": {
                "critical": 1,
                "review": 1,
                "safe": 2,
                "warning": 0
              },
              "countsByType": {
                "add-attr": 1,
                "index": 1,
                "rename-attr": 1,
                "unique": 1
              },
              "total": 4
            }
            [
              {
                "action": "No backfill by default; add one if readers need a non-null value (posts.body).",
                "index": 1,
                "severity": "safe",
                "summary": "Add attribute posts.body.",
                "target": "posts.body",
                "type": "add-attr"
              },
              {
                "action": "Watch indexing time and query latency while the index builds (posts.title).",
                "index": 2,
                "severity": "safe",
                "summary": "Add index to posts.title.",
                "target": "posts.title",
                "type": "index"
              },
              {
                "action": "Detect duplicates, dedupe them, and block the apply until the data is clean (posts.title).",
                "index": 3,
                "severity": "critical",
                "summary": "Ensure that posts.title is unique.",
                "target": "posts.title",
                "type": "unique"
              },
              {
                "action": "Review this step by hand: the tool does not know it.",
                "index": 4,
                "severity": "review",
                "summary": "Unknown schema operation rename-attr.",
                "target": null,
                "type": "rename-attr"
              }
            ]"#]]
        .assert_eq(&format!(
            "{}\n{}",
            sorted(&report.json["summary"]),
            sorted(&report.json["instructions"])
        ));
        // The raw response is kept in wire form.
        assert_eq!(report.json["payload"]["steps"][1][0], "index");
        assert_eq!(report.json["meta"]["tokenSource"], "file");
    }

    #[test]
    fn markdown_lists_steps_and_quotes_paths() {
        let report = plan_report(&context(), &response());
        let markdown = report.markdown;
        assert!(markdown.starts_with("# Instant Schema Plan Instructions\n"));
        assert!(markdown.contains("- Gate: **blocked**"), "{markdown}");
        assert!(markdown.contains(
            "3. [critical] `unique` (posts.title)\n   - Plan: Ensure that posts.title is unique.\n"
        ));
        assert!(
            markdown.contains("--schema-file '/tmp/my schema.json'"),
            "{markdown}"
        );
        for heading in [
            "## Summary",
            "## Required Gates",
            "## Agent Actions By Step",
            "## Next Commands",
        ] {
            assert!(markdown.contains(heading), "{heading}");
        }
    }

    #[test]
    fn an_empty_plan_is_safe_and_says_so() {
        let mut empty = response();
        empty.steps.clear();
        let report = plan_report(&context(), &empty);
        assert_eq!(report.gate, Gate::Safe);
        assert!(report
            .markdown
            .ends_with("## Agent Actions By Step\n\nNo steps: the app already has this schema.\n"));
    }

    #[test]
    fn a_refused_schema_is_a_blocked_report_with_the_server_error() {
        let error = ApiError::validation(
            "schema",
            json!("plan"),
            vec![
                json!({"in": ["schema"], "message": "posts->author: Duplicate entry found for attribute."}),
            ],
        );
        assert!(is_schema_refusal(&error));
        assert!(!is_schema_refusal(&ApiError::new(
            400,
            "record-not-found",
            "x",
            Value::Null
        )));
        let report = refusal_report(&context(), &error);
        assert_eq!(report.gate, Gate::Blocked);
        assert_eq!(report.json["ok"], false);
        assert_eq!(report.json["error"]["status"], 400);
        assert_eq!(report.json["error"]["type"], "validation-failed");
        assert!(report.markdown.contains("Duplicate entry found"));
    }

    #[test]
    fn tokens_are_read_trimmed_and_must_be_one_word() {
        let dir = std::env::temp_dir().join(format!("threadmig-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("token");
        std::fs::write(&file, "  5e0c9a52-1111-4222-8333-944445555666\n").unwrap();
        let (token, source) = read_token(&file).unwrap();
        assert_eq!(token, "5e0c9a52-1111-4222-8333-944445555666");
        assert_eq!(source, TokenSource::File);
        std::fs::write(&file, "\n").unwrap();
        assert!(read_token(&file).unwrap_err().to_string().contains("empty"));
        std::fs::write(&file, "two words").unwrap();
        let error = read_token(&file).unwrap_err().to_string();
        assert!(
            error.contains("whitespace") && !error.contains("words"),
            "{error}"
        );
        assert!(read_token(&dir.join("absent")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// JSON with sorted keys, pretty, for stable expectations.
    fn sorted(value: &Value) -> String {
        fn sort(value: &Value) -> Value {
            match value {
                Value::Object(map) => {
                    let mut keys: Vec<_> = map.keys().collect();
                    keys.sort();
                    Value::Object(
                        keys.into_iter()
                            .map(|k| (k.clone(), sort(&map[k])))
                            .collect(),
                    )
                }
                Value::Array(items) => Value::Array(items.iter().map(sort).collect()),
                other => other.clone(),
            }
        }
        serde_json::to_string_pretty(&sort(value)).unwrap()
    }
}
