//! Input shapes and malformed input: one clear error with the byte offset, nothing written.

use migration::run::{run, Config, Input, RunError};
use migration::transform::Options;

fn run_on(dataset: &[u8]) -> (Result<migration::run::Summary, RunError>, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("dataset.json");
    std::fs::write(&input, dataset).unwrap();
    let result = run(&Config {
        input: Input::Dataset(input),
        out_dir: tmp.path().join("02-transform"),
        options: Options::default(),
        sort_budget: 1 << 20,
    });
    (result, tmp)
}

const ROW: &str = r#"{"id":"c0000000-0000-4000-8000-000000000001","createdAt":1735689600000}"#;

#[test]
fn bare_data_and_payload_shapes_agree() {
    let bare = format!(r#"{{"context_contexts":[{ROW}]}}"#);
    let data = format!(r#"{{"data":{{"context_contexts":[{ROW}]}}}}"#);
    let payload = format!("\u{feff}{{\"meta\":{{\"a\":[1,2]}},\n \"payload\" : {{ \"data\" : {{\n\"context_contexts\" : [\n{ROW}\n]}}}}}}");
    for text in [bare, data, payload] {
        let (result, _tmp) = run_on(text.as_bytes());
        let summary = result.unwrap();
        assert_eq!(summary.input["context_contexts"], 1, "{text}");
        assert_eq!(summary.output["thread_contexts"], 1, "{text}");
    }
}

#[test]
fn malformed_row_names_the_byte_offset_and_writes_nothing() {
    let prefix =
        r#"{"context_contexts":[{"id":"c0000000-0000-4000-8000-000000000001","createdAt":1},"#;
    let bad = r#"{"id":"c0000000-0000-4000-8000-000000000002" "key":"k"}"#;
    let text = format!("{prefix}{bad}]}}");
    let (result, tmp) = run_on(text.as_bytes());
    let error = result.unwrap_err().to_string();
    let expected_offset = prefix.len() + bad.find(" \"key\"").unwrap() + 1;
    assert!(
        error.contains(&format!(
            "byte {expected_offset}: context_contexts row 2: invalid JSON"
        )),
        "{error} (expected offset {expected_offset})"
    );
    let left: Vec<_> = std::fs::read_dir(tmp.path().join("02-transform"))
        .unwrap()
        .collect();
    assert!(left.is_empty(), "files left behind: {left:?}");
}

#[test]
fn truncated_document_names_the_byte_offset() {
    let text = format!(r#"{{"context_contexts":[{ROW},{{"id":"x"#);
    let (result, _tmp) = run_on(text.as_bytes());
    let error = result.unwrap_err().to_string();
    assert!(
        error.contains(&format!(
            "byte {}: unexpected end of input inside a string",
            text.len()
        )),
        "{error}"
    );
    let (result, _tmp) = run_on(b"[1,2]");
    assert!(result
        .unwrap_err()
        .to_string()
        .contains("byte 0: the dataset must be a JSON object"));
}

#[test]
fn malformed_ndjson_line_names_the_byte_offset() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("01-extract");
    std::fs::create_dir_all(&dir).unwrap();
    let good = format!("{ROW}\n");
    std::fs::write(
        dir.join("context_contexts.ndjson"),
        format!("{good}{{\"id\": tru}}\n"),
    )
    .unwrap();
    let result = run(&Config {
        input: Input::ExtractDir(dir),
        out_dir: tmp.path().join("02-transform"),
        options: Options::default(),
        sort_budget: 1 << 20,
    });
    let error = result.unwrap_err().to_string();
    assert!(error.contains("context_contexts.ndjson: byte"), "{error}");
    let offset: usize = error
        .split("byte ")
        .nth(1)
        .unwrap()
        .split(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        offset >= good.len() + 7 && offset <= good.len() + 11,
        "{error}"
    );
}
