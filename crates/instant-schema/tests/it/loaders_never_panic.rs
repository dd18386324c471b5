//! Property test over every loader: whatever bytes a schema file holds, loading returns a
//! schema or an error, never a panic. Inputs are deterministic mutations of real documents
//! (a fixed xorshift seed), so a failure reproduces exactly.

use std::path::Path;

use instant_schema::plan::{existing_app_schema, parse_plan_response, plan, PlanOptions};
use instant_schema::{load_schema_json, load_schema_typescript, BuiltinSchema, SchemaDocument};

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound.max(1) as u64) as usize
    }
}

/// Bytes that matter to JSON and TypeScript syntax, so mutations reach deep into the parsers.
const INTERESTING: &[u8] = b"{}[]():,;.\"'`\\/*-+0123456789 \n\tetrfnul$_@!?=<>";

fn mutate(rng: &mut XorShift, original: &[u8]) -> Vec<u8> {
    let mut bytes = original.to_vec();
    for _ in 0..=rng.below(4) {
        match rng.below(4) {
            0 if !bytes.is_empty() => {
                let at = rng.below(bytes.len());
                bytes[at] = INTERESTING[rng.below(INTERESTING.len())];
            }
            1 => {
                let at = rng.below(bytes.len() + 1);
                bytes.insert(at, INTERESTING[rng.below(INTERESTING.len())]);
            }
            2 if !bytes.is_empty() => {
                let at = rng.below(bytes.len());
                let end = (at + 1 + rng.below(16)).min(bytes.len());
                bytes.drain(at..end);
            }
            _ => {
                let at = rng.below(bytes.len() + 1);
                bytes.truncate(at);
            }
        }
    }
    bytes
}

fn json_documents() -> Vec<String> {
    let thread = BuiltinSchema::ThreadV1.load().unwrap();
    let dsl = serde_json::to_string(&*thread.dsl()).unwrap();
    let server = serde_json::to_string(&existing_app_schema(&thread.dsl())).unwrap();
    let plan_response = {
        let legacy = BuiltinSchema::LegacyStory.load().unwrap();
        let plan = plan(
            &existing_app_schema(&legacy.dsl()),
            &thread.dsl(),
            PlanOptions::default(),
        )
        .unwrap();
        plan.to_json().to_string()
    };
    vec![
        dsl.clone(),
        format!("{{\"schema\":{dsl}}}"),
        server,
        plan_response,
    ]
}

#[test]
fn mutated_json_documents_never_panic_any_loader() {
    let mut rng = XorShift(0x5eed_1234_abcd_0001);
    let mut outcomes = [0usize; 2];
    for document in json_documents() {
        for _ in 0..1500 {
            let bytes = mutate(&mut rng, document.as_bytes());
            let text = String::from_utf8_lossy(&bytes);
            let loaded = load_schema_json(Path::new("fuzz.json"), &text);
            outcomes[loaded.is_ok() as usize] += 1;
            if let Ok(loaded) = loaded {
                // Whatever loaded must also plan (or refuse) without panicking.
                let current = match &loaded.document {
                    SchemaDocument::Server(server) => server.clone(),
                    SchemaDocument::Dsl(schema) => existing_app_schema(schema),
                };
                let _ = plan(&current, &loaded.dsl(), PlanOptions::default());
            }
            if let Ok(value) = serde_json::from_str::<serde_json::Value>(&text) {
                let _ = parse_plan_response(&value);
            }
        }
    }
    // Both outcomes must occur, or the mutations are not exercising the loader.
    assert!(
        outcomes[0] > 100 && outcomes[1] > 100,
        "errors/ok: {outcomes:?}"
    );
}

#[test]
fn mutated_typescript_schemas_never_panic() {
    let mut rng = XorShift(0x5eed_1234_abcd_0002);
    let mut outcomes = [0usize; 2];
    for builtin in BuiltinSchema::ALL {
        let source = builtin.source().as_bytes();
        for _ in 0..400 {
            let bytes = mutate(&mut rng, source);
            let text = String::from_utf8_lossy(&bytes);
            let loaded = load_schema_typescript(Path::new("fuzz.ts"), &text);
            outcomes[loaded.is_ok() as usize] += 1;
        }
    }
    assert!(
        outcomes[0] > 50 && outcomes[1] > 50,
        "errors/ok: {outcomes:?}"
    );
}
