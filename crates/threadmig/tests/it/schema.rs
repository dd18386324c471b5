//! `threadmig schema show|diff|phase1` end to end.

use expect_test::expect;

use crate::{fixture, redact, temp_dir, threadmig};

#[test]
fn show_json_of_typescript_round_trips_through_json() {
    // TypeScript -> JSON -> JSON again must be byte-identical: `show --json` is a lossless
    // conversion of a schema file into the DSL serialisation.
    let dir = temp_dir("show-round-trip");
    let ts = fixture("ts/app-spreads/instant.schema.ts");
    let first = threadmig(&["schema", "show", &ts, "--json"], None);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let json_path = dir.join("schema.json");
    std::fs::write(&json_path, &first.stdout).unwrap();
    let second = threadmig(
        &["schema", "show", json_path.to_str().unwrap(), "--json"],
        None,
    );
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert_eq!(first.stdout, second.stdout);
    assert!(first.stdout.starts_with("{\"entities\":{"));
}

#[test]
fn show_prints_a_readable_summary() {
    let dir = temp_dir("show-summary");
    let path = dir.join("small.json");
    std::fs::write(
        &path,
        r#"{"entities":{"todos":{"attrs":{"title":{"valueType":"string","required":true,"isIndexed":true,"config":{"indexed":true,"unique":true},"metadata":{}},"done":{"valueType":"boolean","required":false,"isIndexed":false,"config":{"indexed":false,"unique":false},"metadata":{}}}},"users":{"attrs":{}}},
           "links":{"todoOwner":{"forward":{"on":"todos","has":"one","label":"owner","onDelete":"cascade"},"reverse":{"on":"users","has":"many","label":"todos"}}},"rooms":{}}"#,
    )
    .unwrap();
    let run = threadmig(&["schema", "show", "small.json"], Some(&dir));
    assert_eq!(run.code, 0, "{}", run.stderr);
    expect![[r#"
        small.json (json): 2 entities, 1 links

        todos
          title  string   required indexed unique
          done   boolean  optional

        users

        links
          todoOwner  todos.owner (one) <-> users.todos (many) onDelete=cascade
    "#]]
    .assert_eq(&run.stdout);
}

#[test]
fn show_bad_input_is_one_clear_line_with_exit_two() {
    let dir = temp_dir("show-bad-input");
    std::fs::write(dir.join("broken.ts"), "import { i } from \"@instantdb/core\";\nexport default i.schema({ entities: { a: i.entity({ x: i.string( }) } });\n").unwrap();
    std::fs::write(dir.join("broken.json"), "{\"entities\": [}").unwrap();
    let cases = [
        ("missing.json", "missing"),
        ("broken.ts", "syntax"),
        ("broken.json", "json"),
        ("builtin:nope", "builtin"),
    ];
    let mut seen = Vec::new();
    for (file, _) in cases {
        let run = threadmig(&["schema", "show", file], Some(&dir));
        assert_eq!(run.code, 2, "{file}: {}", run.stderr);
        assert!(run.stdout.is_empty(), "{file}: nothing on stdout");
        assert_eq!(
            run.stderr.lines().count(),
            1,
            "{file}: one line: {}",
            run.stderr
        );
        seen.push(redact(run.stderr.trim_end()));
    }
    expect![[r#"
        [
            "threadmig: error: missing.json: cannot read: No such file or directory (os error 2)",
            "threadmig: error: broken.ts:2:66: syntax error: Unexpected token",
            "threadmig: error: broken.json:1:15: invalid JSON: expected value",
            "threadmig: error: unknown built-in schema `nope` (known: builtin:thread-v1, builtin:legacy-story, builtin:migration-domain)",
        ]
    "#]]
    .assert_debug_eq(&seen);
}

#[test]
fn show_rejects_two_links_claiming_one_label() {
    let file = fixture("ts/duplicate-link-in-file/instant.schema.ts");
    let run = threadmig(&["schema", "show", &file], None);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr
            .contains("`organization_organizations->externalConnections` is claimed twice"),
        "{}",
        run.stderr
    );
}

#[test]
fn diff_legacy_to_thread_v1_is_an_additive_safe_plan() {
    let run = threadmig(
        &[
            "schema",
            "diff",
            "builtin:legacy-story",
            "builtin:thread-v1",
            "--json",
        ],
        None,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let out: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(out["gate"], "safe");
    let steps = out["steps"].as_array().unwrap();
    // Wire form: every step is a `[type, payload]` pair, and only additions are planned.
    assert!(steps.iter().all(|step| step[0] == "add-attr"), "{steps:?}");
    let created: Vec<&str> = steps
        .iter()
        .filter(|step| step[1]["forward-identity"][2] == "id")
        .map(|step| step[1]["forward-identity"][1].as_str().unwrap())
        .collect();
    expect![[r#"["thread_threads", "thread_contexts", "thread_items", "thread_executions", "thread_steps", "thread_parts", "thread_trace_events", "thread_trace_runs", "thread_trace_spans"]"#]]
        .assert_eq(&format!("{created:?}"));
    assert_eq!(out["severity"]["safe"], steps.len());
    // The same inputs give the same bytes: plans are evidence.
    let again = threadmig(
        &[
            "schema",
            "diff",
            "builtin:legacy-story",
            "builtin:thread-v1",
            "--json",
        ],
        None,
    );
    assert_eq!(run.stdout, again.stdout);
}

#[test]
fn diff_finds_the_duplicate_link_case_offline() {
    let current = fixture("json/duplicate-link.pull.json");
    let desired = fixture("ts/duplicate-link/instant.schema.ts");
    let run = threadmig(&["schema", "diff", &current, &desired, "--json"], None);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let out: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(out["gate"], "blocked");
    assert_eq!(out["errors"][0]["kind"], "duplicate");
    assert_eq!(out["errors"][0]["entity"], "organization_organizations");
    assert_eq!(out["errors"][0]["label"], "externalConnections");
    assert_eq!(out["serverError"]["type"], "validation-failed");
    assert!(out["serverError"]["message"]
        .as_str()
        .unwrap()
        .starts_with("Validation failed for schema: organization_organizations->externalConnections: Duplicate entry found for attribute."));
}

#[test]
fn diff_table_grades_steps_and_blocks_on_critical() {
    let dir = temp_dir("diff-table");
    let schema = |title: &str, extra: &str| {
        format!(
            "import {{ i }} from \"@instantdb/core\";\nexport default i.schema({{ entities: {{ posts: i.entity({{ title: {title}, {extra} }}) }} }});\n"
        )
    };
    std::fs::write(
        dir.join("current.ts"),
        schema("i.string()", "views: i.number().indexed()"),
    )
    .unwrap();
    std::fs::write(
        dir.join("desired.ts"),
        schema(
            "i.string().unique()",
            "views: i.number(), body: i.string().optional()",
        ),
    )
    .unwrap();
    let run = threadmig(&["schema", "diff", "current.ts", "desired.ts"], Some(&dir));
    assert_eq!(run.code, 1, "{}", run.stderr);
    expect![[r#"
        #  severity  type          target       description
        1  critical  unique        posts.title  Ensure that posts.title is unique.
        2  warning   remove-index  posts.views  Remove index from posts.views.
        3  safe      add-attr      posts.body   Add attribute posts.body.
        3 steps: 1 critical, 1 warning, 0 review, 1 safe
        gate: blocked
    "#]]
    .assert_eq(&run.stdout);

    // Without background updates the same changes are synchronous `update-attr` steps.
    let run = threadmig(
        &[
            "schema",
            "diff",
            "current.ts",
            "desired.ts",
            "--no-background-updates",
            "--json",
        ],
        Some(&dir),
    );
    let out: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let types: Vec<&str> = out["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s[0].as_str().unwrap())
        .collect();
    assert_eq!(types, ["update-attr", "update-attr", "add-attr"]);
}

#[test]
fn phase1_writes_the_transitional_schema_and_its_rationale() {
    let dir = temp_dir("phase1");
    let diagnostics = serde_json::json!({
        "diagnostics": [
            {"org": {"id": "org_1"}, "issueCode": "schema_duplicate_link",
             "sanitizedPlan": {"ok": true, "status": 200, "removedLinks": ["organizationExternalConnections"]}},
            {"org": {"id": "org_2"}, "issueCode": "schema_duplicate_link",
             "sanitizedPlan": {"ok": false, "status": 400, "removedLinks": ["neverUsed"]}}
        ]
    });
    std::fs::write(dir.join("diagnostics.json"), diagnostics.to_string()).unwrap();
    let schema = fixture("ts/duplicate-link/instant.schema.ts");
    let run = threadmig(
        &[
            "schema",
            "phase1",
            "--schema-file",
            &schema,
            "--diagnostics",
            "diagnostics.json",
            "--out",
            "out/phase1.json",
            "--out-md",
            "out/phase1.md",
            "--json",
        ],
        Some(&dir),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let summary: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        summary["removedLinks"],
        serde_json::json!(["organizationExternalConnections"])
    );
    // The output is itself a loadable (wrapped) schema without the conflicting link.
    let shown = threadmig(&["schema", "show", "out/phase1.json", "--json"], Some(&dir));
    assert_eq!(shown.code, 0, "{}", shown.stderr);
    let phase1: serde_json::Value = serde_json::from_str(&shown.stdout).unwrap();
    assert_eq!(phase1["links"], serde_json::json!({}));
    assert!(phase1["entities"]["organization_organizations"]["attrs"]["clerkOrgId"].is_object());
    let markdown = std::fs::read_to_string(dir.join("out/phase1.md")).unwrap();
    assert!(
        markdown.starts_with("# Phase 1 Transitional Schema"),
        "{markdown}"
    );
}

#[test]
fn phase1_with_nothing_to_remove_fails_and_writes_nothing() {
    let dir = temp_dir("phase1-nothing");
    let schema = fixture("ts/duplicate-link/instant.schema.ts");
    let run = threadmig(
        &[
            "schema",
            "phase1",
            "--schema-file",
            &schema,
            "--remove-links",
            "noSuchLink; other",
            "--out",
            "out/phase1.json",
            "--out-md",
            "out/phase1.md",
        ],
        Some(&dir),
    );
    assert_eq!(run.code, 2);
    expect!["threadmig: error: none of the candidate links is in the schema: noSuchLink, other"]
        .assert_eq(run.stderr.trim_end());
    assert!(!dir.join("out").exists(), "no partial output");
}
