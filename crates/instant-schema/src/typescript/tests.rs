//! Tests for the native schema loader. Expected strings were produced by Node running
//! `JSON.stringify(schema)` with `@instantdb/core@1.0.67` on the same sources.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::{evaluate_schema_file, evaluate_schema_source, TypeScriptError};

/// A scratch directory under the system temp dir, removed on drop.
struct TempTree {
    root: PathBuf,
}

impl TempTree {
    fn new(tag: &str) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let root = std::env::temp_dir().join(format!(
            "instant-schema-ts-{tag}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).expect("create temp dir");
        TempTree { root }
    }

    fn write(&self, relative: &str, text: &str) -> PathBuf {
        let path = self.root.join(relative);
        std::fs::create_dir_all(path.parent().expect("has parent")).expect("create dirs");
        std::fs::write(&path, text).expect("write file");
        path
    }
}

impl Drop for TempTree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn json(result: Result<serde_json::Value, TypeScriptError>) -> String {
    match result {
        Ok(value) => serde_json::to_string(&value).expect("serialise"),
        Err(error) => panic!("expected a schema, got error: {error}"),
    }
}

fn error_text(result: Result<serde_json::Value, TypeScriptError>) -> String {
    match result {
        Ok(value) => panic!("expected an error, got {value}"),
        Err(error) => error.to_string(),
    }
}

/// Evaluates a single-file module given as text (it is not written to disk).
fn eval_text(source: &str) -> Result<serde_json::Value, TypeScriptError> {
    evaluate_schema_source(Path::new("instant.schema.ts"), source)
}

const ATTRS_SOURCE: &str = r#"import { i } from "@instantdb/core";

const _schema = i.schema({
  entities: {
    todos: i.entity({
      text: i.string(),
      count: i.number().optional(),
      done: i.boolean().unique(),
      due: i.date().indexed(),
      meta: i.json<{ a: number }>(),
      blob: i.any(),
      slug: i.string().unique().indexed().optional(),
      legacy: i.string().clientRequired(),
      rank: i.number().indexed().unique(),
    }),
  },
});
type _AppSchema = typeof _schema;
interface AppSchema extends _AppSchema {}
const schema: AppSchema = _schema;
export type { AppSchema };
export default schema;
"#;

/// `JSON.stringify` output from Node with `@instantdb/core@1.0.67`.
const ATTRS_EXPECTED: &str = r#"{"entities":{"todos":{"attrs":{"text":{"valueType":"string","required":true,"isIndexed":false,"config":{"indexed":false,"unique":false},"metadata":{}},"count":{"valueType":"number","required":false,"isIndexed":false,"config":{"indexed":false,"unique":false},"metadata":{}},"done":{"valueType":"boolean","required":true,"isIndexed":false,"config":{"indexed":false,"unique":true},"metadata":{}},"due":{"valueType":"date","required":true,"isIndexed":true,"config":{"indexed":true,"unique":false},"metadata":{}},"meta":{"valueType":"json","required":true,"isIndexed":false,"config":{"indexed":false,"unique":false},"metadata":{}},"blob":{"valueType":"json","required":true,"isIndexed":false,"config":{"indexed":false,"unique":false},"metadata":{}},"slug":{"valueType":"string","required":false,"isIndexed":true,"config":{"indexed":true,"unique":true},"metadata":{}},"legacy":{"valueType":"string","required":false,"isIndexed":false,"config":{"indexed":false,"unique":false},"metadata":{}},"rank":{"valueType":"number","required":true,"isIndexed":true,"config":{"indexed":true,"unique":true},"metadata":{}}},"links":{}}},"links":{},"rooms":{}}"#;

const LINKS_SOURCE: &str = r#"import { i } from "@instantdb/react";

const schema = i.schema({
  entities: {
    users: i.entity({ email: i.string().unique().indexed() }),
    posts: i.entity({ title: i.string() }),
    tags: i.entity({}),
  },
  links: {
    postAuthor: {
      forward: { on: "posts", has: "one", label: "author" },
      reverse: { on: "users", has: "many", label: "posts" },
    },
    postTags: {
      forward: { on: "posts", has: "many", label: "tags", onDelete: "cascade" },
      reverse: { on: "tags", has: "many", label: "posts" },
    },
    // Same label on the same entity from both sides: the reverse entry wins, in place.
    selfRef: {
      forward: { on: "posts", has: "one", label: "tags" },
      reverse: { on: "posts", has: "many", label: "author" },
    },
  },
  rooms: {
    chat: { presence: i.entity({ name: i.string() }), topics: {} },
  },
});
export default schema;
"#;

/// `JSON.stringify` output from Node with `@instantdb/core@1.0.67`.
const LINKS_EXPECTED: &str = r#"{"entities":{"users":{"attrs":{"email":{"valueType":"string","required":true,"isIndexed":true,"config":{"indexed":true,"unique":true},"metadata":{}}},"links":{"posts":{"entityName":"posts","cardinality":"many"}}},"posts":{"attrs":{"title":{"valueType":"string","required":true,"isIndexed":false,"config":{"indexed":false,"unique":false},"metadata":{}}},"links":{"author":{"entityName":"posts","cardinality":"many"},"tags":{"entityName":"posts","cardinality":"one"}}},"tags":{"attrs":{},"links":{"posts":{"entityName":"posts","cardinality":"many"}}}},"links":{"postAuthor":{"forward":{"on":"posts","has":"one","label":"author"},"reverse":{"on":"users","has":"many","label":"posts"}},"postTags":{"forward":{"on":"posts","has":"many","label":"tags","onDelete":"cascade"},"reverse":{"on":"tags","has":"many","label":"posts"}},"selfRef":{"forward":{"on":"posts","has":"one","label":"tags"},"reverse":{"on":"posts","has":"many","label":"author"}}},"rooms":{"chat":{"presence":{"attrs":{"name":{"valueType":"string","required":true,"isIndexed":false,"config":{"indexed":false,"unique":false},"metadata":{}}},"links":{}},"topics":{}}}}"#;

const GRAPH_SOURCE: &str = r#"import * as instant from "@instantdb/admin";
const { i } = instant;
export const schema = i.graph(
  { a: i.entity({ x: i.string() }), b: i.entity({}) },
  { ab: { forward: { on: "a", has: "many", label: "bs" }, reverse: { on: "b", has: "one", label: "a" } } },
);
"#;

/// `JSON.stringify` output from Node with `@instantdb/core@1.0.67`.
const GRAPH_EXPECTED: &str = r#"{"entities":{"a":{"attrs":{"x":{"valueType":"string","required":true,"isIndexed":false,"config":{"indexed":false,"unique":false},"metadata":{}}},"links":{"bs":{"entityName":"b","cardinality":"many"}}},"b":{"attrs":{},"links":{"a":{"entityName":"a","cardinality":"one"}}}},"links":{"ab":{"forward":{"on":"a","has":"many","label":"bs"},"reverse":{"on":"b","has":"one","label":"a"}}}}"#;

const SPREADS_SOURCE: &str = r#"import { i as dsl } from "@instantdb/core";
const base = { createdAt: dsl.date().indexed(), ["updatedAt"]: dsl.date() } as const;
const kind = "status";
const prefix = `thread`;
const common = { ...base, [kind]: dsl.string().optional(), "quoted-key": dsl.json(), 7: dsl.number(), 1.5: dsl.number() };
const entityNames = [`${prefix}_items`, prefix + "_events"] as const;
const [items, events] = entityNames;
const { createdAt, ...rest } = common;
const optionalLinks = undefined;
const schema = dsl.schema({
  entities: {
    [items]: dsl.entity({ ...common, title: dsl.string(), nested: dsl.string() satisfies unknown }),
    [events]: dsl.entity({ createdAt, ...rest, count: (dsl.number() as any)!.optional() }),
    z: dsl.entity({}),
    10: dsl.entity({}),
    2: dsl.entity({ 3: dsl.string(), b: dsl.string(), 1: dsl.string(), a: dsl.string() }),
  },
  links: optionalLinks ?? {},
  rooms: { list: [1, -2, 3.5, null, true, undefined, 1e21, "x"], neg: -0 },
} satisfies Record<string, unknown>);
export { schema as default };
"#;

/// `JSON.stringify` output from Node with `@instantdb/core@1.0.67`.
const SPREADS_EXPECTED: &str = r#"{"entities":{"2":{"attrs":{"1":{"valueType":"string","required":true,"isIndexed":false,"config":{"indexed":false,"unique":false},"metadata":{}},"3":{"valueType":"string","required":true,"isIndexed":false,"config":{"indexed":false,"unique":false},"metadata":{}},"b":{"valueType":"string","required":true,"isIndexed":false,"config":{"indexed":false,"unique":false},"metadata":{}},"a":{"valueType":"string","required":true,"isIndexed":false,"config":{"indexed":false,"unique":false},"metadata":{}}},"links":{}},"10":{"attrs":{},"links":{}},"thread_items":{"attrs":{"7":{"valueType":"number","required":true,"isIndexed":false,"config":{"indexed":false,"unique":false},"metadata":{}},"createdAt":{"valueType":"date","required":true,"isIndexed":true,"config":{"indexed":true,"unique":false},"metadata":{}},"updatedAt":{"valueType":"date","required":true,"isIndexed":false,"config":{"indexed":false,"unique":false},"metadata":{}},"status":{"valueType":"string","required":false,"isIndexed":false,"config":{"indexed":false,"unique":false},"metadata":{}},"quoted-key":{"valueType":"json","required":true,"isIndexed":false,"config":{"indexed":false,"unique":false},"metadata":{}},"1.5":{"valueType":"number","required":true,"isIndexed":false,"config":{"indexed":false,"unique":false},"metadata":{}},"title":{"valueType":"string","required":true,"isIndexed":false,"config":{"indexed":false,"unique":false},"metadata":{}},"nested":{"valueType":"string","required":true,"isIndexed":false,"config":{"indexed":false,"unique":false},"metadata":{}}},"links":{}},"thread_events":{"attrs":{"7":{"valueType":"number","required":true,"isIndexed":false,"config":{"indexed":false,"unique":false},"metadata":{}},"createdAt":{"valueType":"date","required":true,"isIndexed":true,"config":{"indexed":true,"unique":false},"metadata":{}},"updatedAt":{"valueType":"date","required":true,"isIndexed":false,"config":{"indexed":false,"unique":false},"metadata":{}},"status":{"valueType":"string","required":false,"isIndexed":false,"config":{"indexed":false,"unique":false},"metadata":{}},"quoted-key":{"valueType":"json","required":true,"isIndexed":false,"config":{"indexed":false,"unique":false},"metadata":{}},"1.5":{"valueType":"number","required":true,"isIndexed":false,"config":{"indexed":false,"unique":false},"metadata":{}},"count":{"valueType":"number","required":false,"isIndexed":false,"config":{"indexed":false,"unique":false},"metadata":{}}},"links":{}},"z":{"attrs":{},"links":{}}},"links":{},"rooms":{"list":[1,-2,3.5,null,true,null,1e+21,"x"],"neg":0}}"#;

#[test]
fn value_types_and_modifiers_in_library_key_order() {
    assert_eq!(json(eval_text(ATTRS_SOURCE)), ATTRS_EXPECTED);
}

#[test]
fn links_enrich_entities_and_later_labels_win_in_place() {
    assert_eq!(json(eval_text(LINKS_SOURCE)), LINKS_EXPECTED);
}

#[test]
fn graph_has_no_rooms_key() {
    assert_eq!(json(eval_text(GRAPH_SOURCE)), GRAPH_EXPECTED);
}

#[test]
fn with_room_schema_adds_empty_rooms() {
    let source = r#"
        import { i } from "@instantdb/core";
        export default i.graph({ a: i.entity({}) }, {}).withRoomSchema<{}>();
    "#;
    assert_eq!(
        json(eval_text(source)),
        r#"{"entities":{"a":{"attrs":{},"links":{}}},"links":{},"rooms":{}}"#
    );
}

#[test]
fn spreads_computed_keys_templates_destructuring_and_ts_wrappers() {
    assert_eq!(json(eval_text(SPREADS_SOURCE)), SPREADS_EXPECTED);
}

#[test]
fn integer_like_keys_come_first_in_ascending_order() {
    let source = r#"
        import { i } from "@instantdb/core";
        export default i.schema({
            entities: { b: i.entity({}), 10: i.entity({}), a: i.entity({}), "2": i.entity({}), "01": i.entity({}) },
            rooms: { z: 1, 4294967295: 2, 4294967294: 3, 0: 4 },
        });
    "#;
    assert_eq!(
        json(eval_text(source)),
        concat!(
            r#"{"entities":{"2":{"attrs":{},"links":{}},"10":{"attrs":{},"links":{}},"#,
            r#""b":{"attrs":{},"links":{}},"a":{"attrs":{},"links":{}},"01":{"attrs":{},"links":{}}},"#,
            r#""links":{},"rooms":{"0":4,"4294967294":3,"z":1,"4294967295":2}}"#
        )
    );
}

const EMPTY_SCHEMA: &str = r#"{"entities":{"a":{"attrs":{},"links":{}}},"links":{},"rooms":{}}"#;

#[test]
fn every_export_default_form_is_found() {
    let forms = [
        "export default i.schema({ entities: { a: i.entity({}) } });",
        "const schema = i.schema({ entities: { a: i.entity({}) } });\nexport default schema;",
        "const _schema = i.schema({ entities: { a: i.entity({}) } });\n\
         type _AppSchema = typeof _schema;\n\
         interface AppSchema extends _AppSchema {}\n\
         const schema: AppSchema = _schema;\n\
         export type { AppSchema };\n\
         export default schema;",
        "const schema = i.schema({ entities: { a: i.entity({}) } });\nexport { schema as default };",
        "const schema = i.schema({ entities: { a: i.entity({}) } });\nexport { schema };",
        "export const schema = i.schema({ entities: { a: i.entity({}) } });",
        "export const appSchema = i.schema({ entities: { a: i.entity({}) } });",
        "const s = i.schema({ entities: { a: i.entity({}) } });\nexport { s as instantSchema };",
        // `export { x as default }` may come before the declaration (exports are live).
        "export { s as default };\nconst s = i.schema({ entities: { a: i.entity({}) } });",
        // `default` wins over `schema`.
        "export const schema = 1;\nexport default i.schema({ entities: { a: i.entity({}) } });",
    ];
    for form in forms {
        let source = format!("import {{ i }} from \"@instantdb/core\";\n{form}\n");
        assert_eq!(json(eval_text(&source)), EMPTY_SCHEMA, "form:\n{form}");
    }
}

#[test]
fn missing_schema_export_is_reported() {
    let text = error_text(eval_text(
        "import { i } from '@instantdb/core';\nexport const other = 1;",
    ));
    assert_eq!(
        text,
        "instant.schema.ts: no schema export (expected `export default`, or an export named \
         `schema`, `appSchema` or `instantSchema`)"
    );
}

#[test]
fn relative_imports_and_re_exports_resolve_on_disk() {
    let tree = TempTree::new("imports");
    tree.write(
        "schema/shared/attrs.ts",
        "import { i } from '@instantdb/core';\n\
         export const timestamps = { createdAt: i.date().indexed() };\n\
         const hidden = { note: i.string().optional() };\n\
         export default hidden;\n",
    );
    tree.write(
        "schema/shared/index.ts",
        "export { timestamps as stamps } from './attrs';\n\
         export * from './entities.js';\n\
         export { default as notes } from './attrs.ts';\n",
    );
    tree.write(
        "schema/shared/entities.ts",
        "import { i } from '@instantdb/core';\n\
         import * as attrs from './attrs';\n\
         export const people = i.entity({ ...attrs.timestamps, name: i.string() });\n",
    );
    let entry = tree.write(
        "schema/instant.schema.ts",
        "import { i } from '@instantdb/core';\n\
         import { stamps, people, notes } from './shared';\n\
         import type { Unused } from './types-only-never-read';\n\
         export default i.schema({ entities: { people, docs: i.entity({ ...stamps, ...notes }) } });\n",
    );
    assert_eq!(
        json(evaluate_schema_file(&entry)),
        concat!(
            r#"{"entities":{"people":{"attrs":{"createdAt":{"valueType":"date","required":true,"isIndexed":true,"config":{"indexed":true,"unique":false},"metadata":{}},"#,
            r#""name":{"valueType":"string","required":true,"isIndexed":false,"config":{"indexed":false,"unique":false},"metadata":{}}},"links":{}},"#,
            r#""docs":{"attrs":{"createdAt":{"valueType":"date","required":true,"isIndexed":true,"config":{"indexed":true,"unique":false},"metadata":{}},"#,
            r#""note":{"valueType":"string","required":false,"isIndexed":false,"config":{"indexed":false,"unique":false},"metadata":{}}},"links":{}}},"#,
            r#""links":{},"rooms":{}}"#
        )
    );
}

#[test]
fn built_in_source_still_resolves_relative_imports_on_disk() {
    let tree = TempTree::new("builtin");
    tree.write(
        "parts.ts",
        "import { i } from '@instantdb/core';\nexport const a = i.entity({});\n",
    );
    let entry = tree.root.join("virtual.schema.ts"); // never written
    let source = "import { i } from '@instantdb/core';\nimport { a } from './parts';\n\
                  export default i.schema({ entities: { a } });\n";
    assert_eq!(json(evaluate_schema_source(&entry, source)), EMPTY_SCHEMA);
}

#[test]
fn missing_relative_import_names_specifier_and_importer() {
    let tree = TempTree::new("missing");
    let entry = tree.write(
        "instant.schema.ts",
        "import { i } from '@instantdb/core';\nimport { a } from './nope';\nexport default i.schema({ entities: { a } });\n",
    );
    let text = error_text(evaluate_schema_file(&entry));
    let prefix = format!(
        "{}:2:1: cannot import `./nope`: no such module",
        entry.display()
    );
    assert!(text.starts_with(&prefix), "{text}");
}

#[test]
fn used_package_import_fails_with_json_hint() {
    let tree = TempTree::new("package");
    let entry = tree.write(
        "schema/app.ts",
        "import { i } from '@instantdb/core';\n\
         import type { Thing } from '@ekairos/types';\n\
         import { threadDomain } from '@ekairos/thread/domain';\n\
         import { unused } from 'lodash';\n\
         export default i.schema({ entities: { ...threadDomain.entities } });\n",
    );
    let text = error_text(evaluate_schema_file(&entry));
    assert_eq!(
        text,
        format!(
            "{}:3:1: cannot evaluate import of `@ekairos/thread` (package imports need Node \
             to run); export the schema to JSON (for example `JSON.stringify(schema)`) and \
             pass the .json file instead",
            entry.display()
        )
    );
}

#[test]
fn syntax_errors_carry_line_and_column() {
    let text = error_text(eval_text(
        "import { i } from '@instantdb/core';\nconst a = {\n  b: i.string(),,\n};\n",
    ));
    assert!(
        text.starts_with("instant.schema.ts:3:17: syntax error: "),
        "{text}"
    );
}

#[test]
fn unknown_value_type_and_modifier_are_named() {
    let text = error_text(eval_text(
        "import { i } from '@instantdb/core';\nexport default i.schema({ entities: { a: i.entity({ t: i.text() }) } });\n",
    ));
    assert!(
        text.starts_with("instant.schema.ts:2:58: unknown schema type `i.text()`; value types are"),
        "{text}"
    );
    let text = error_text(eval_text(
        "import { i } from '@instantdb/core';\nexport default i.schema({ entities: { a: i.entity({ t: i.string().foo() }) } });\n",
    ));
    assert!(
        text.starts_with("instant.schema.ts:2:67: unknown attribute modifier `.foo()`"),
        "{text}"
    );
    let text = error_text(eval_text(
        "import { i } from '@instantdb/core';\nexport default i.schema({ entities: { a: i.entity(5) } });\n",
    ));
    assert_eq!(
        text,
        "instant.schema.ts:2:42: `i.entity(...)` expects an object of attributes, got number 5"
    );
}

#[test]
fn import_cycles_are_reported() {
    let tree = TempTree::new("cycle");
    tree.write(
        "a.ts",
        "import { b } from './b';\nexport const a = { b };\n",
    );
    tree.write(
        "b.ts",
        "import { a } from './a';\nexport const b = { a };\n",
    );
    let entry = tree.write(
        "instant.schema.ts",
        "import { i } from '@instantdb/core';\nimport { a } from './a';\nexport default i.schema({ entities: a });\n",
    );
    let text = error_text(evaluate_schema_file(&entry));
    let dir = tree.root.display();
    assert_eq!(
        text,
        format!("{dir}/b.ts:1:1: import cycle: {dir}/a.ts -> {dir}/b.ts -> {dir}/a.ts")
    );
}

#[test]
fn execution_is_refused_with_location() {
    let cases = [
        (
            "const x = foo();\nexport default x;",
            "instant.schema.ts:2:11: `foo` is not defined",
        ),
        (
            "const x = new Map();\nexport default x;",
            "instant.schema.ts:2:11: cannot evaluate the `new` expression `new Map()`",
        ),
        (
            "for (const a of []) {}\nexport default 1;",
            "instant.schema.ts:2:1: cannot evaluate the `for` loop",
        ),
        (
            "export default y;\nconst y = 1;",
            "instant.schema.ts:2:16: `y` is used before its declaration",
        ),
        (
            "function make() { return 1 }\nexport default make();",
            "instant.schema.ts:3:16: cannot call function `make` (`make`)",
        ),
        (
            "export default [1, 2].map((x) => x);",
            "instant.schema.ts:2:16: cannot call `[1, 2].map`",
        ),
        (
            "export default 5;",
            "instant.schema.ts: the `default` export is number 5, not a schema object",
        ),
    ];
    for (body, expected_prefix) in cases {
        let source = format!("import {{ i }} from '@instantdb/core';\n{body}\n");
        let text = error_text(eval_text(&source));
        assert!(text.starts_with(expected_prefix), "{body}\n=> {text}");
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    for depth in [300, 5_000, 200_000] {
        let source = format!(
            "import {{ i }} from '@instantdb/core';\nexport default {}1{};\n",
            "[".repeat(depth),
            "]".repeat(depth)
        );
        let text = error_text(eval_text(&source));
        assert!(text.contains("nested too deeply"), "{depth}: {text}");
        let source = format!("export default {}1;\n", "-".repeat(depth));
        assert!(eval_text(&source).is_err());
        // Operators that nest without brackets.
        for chain in ["x => ", "a = ", "1 ** ", "1 ? 1 : ", "new "] {
            let source = format!("let a;\nexport default {}1;\n", chain.repeat(depth));
            assert!(eval_text(&source).is_err(), "{chain}");
        }
    }
}

/// A tiny deterministic xorshift generator, so the mutation test needs no extra crate.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }
}

#[test]
fn truncated_and_mutated_sources_never_panic() {
    let sources = [ATTRS_SOURCE, LINKS_SOURCE, SPREADS_SOURCE, GRAPH_SOURCE];
    let alphabet = b"{}[]()<>,.:;=!?+-*/`'\"$\\ \n0123456789aeinostux_@#";
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let mut outcomes = [0usize; 2];
    for source in sources {
        let bytes = source.as_bytes();
        // Every truncation point (on a char boundary).
        for end in (0..bytes.len()).filter(|&end| source.is_char_boundary(end)) {
            let ok = eval_text(&source[..end]).is_ok();
            outcomes[usize::from(ok)] += 1;
        }
        // Random byte edits: replace, insert, delete, duplicate a slice.
        for _ in 0..400 {
            let mut mutated = bytes.to_vec();
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(mutated.len().max(1));
                match rng.below(4) {
                    0 if !mutated.is_empty() => mutated[at] = alphabet[rng.below(alphabet.len())],
                    1 => mutated.insert(at.min(mutated.len()), alphabet[rng.below(alphabet.len())]),
                    2 if !mutated.is_empty() => {
                        mutated.remove(at);
                    }
                    _ => {
                        let len = rng.below(40).min(mutated.len() - at.min(mutated.len()));
                        let slice = mutated[at..at + len].to_vec();
                        mutated.splice(at..at, slice);
                    }
                }
            }
            let text = String::from_utf8_lossy(&mutated);
            let ok = eval_text(&text).is_ok();
            outcomes[usize::from(ok)] += 1;
        }
    }
    // Both outcomes occur; the point is that none of them panicked.
    assert!(outcomes[0] > 0 && outcomes[1] > 0, "{outcomes:?}");
}
