//! Query semantics over data written with direct SQL (independent of the transact engine).

use std::collections::HashMap;

use expect_test::{expect, Expect};
use instant_api::QueryRequest;
use instant_schema::{AttrKind, Cardinality, Identity, ServerAttr};
use rusqlite::params;
use serde_json::{json, Value};

use super::dates;
use super::exec::like;
use crate::store::{insert_attr, value_key, App, Store};

/// A readable fixed id: `uid(7)` is `00000000-0000-4000-8000-000000000007`.
fn uid(n: u32) -> String {
    format!("00000000-0000-4000-8000-{n:012}")
}

/// Builds an app's catalogue and rows with plain SQL, following the store conventions.
struct Fixture {
    store: Store,
    app: App,
    attrs: HashMap<(String, String), (i64, ServerAttr)>,
    clock: i64,
}

impl Fixture {
    fn new() -> Fixture {
        let store = Store::open_in_memory().unwrap();
        let (app, _) = store.create_app("query tests", false).unwrap();
        Fixture {
            store,
            app,
            attrs: HashMap::new(),
            clock: 1_000,
        }
    }

    fn add(&mut self, attr: ServerAttr) {
        let pk = insert_attr(&self.store.conn(), self.app.app_pk, &attr).unwrap();
        let key = (
            attr.forward_identity.etype.clone(),
            attr.forward_identity.label.clone(),
        );
        self.attrs.insert(key, (pk, attr));
    }

    fn namespace(&mut self, etype: &str) {
        let mut id = ServerAttr::blob(etype, "id");
        id.unique = true;
        self.add(id);
    }

    /// A blob attribute; `flags` is a mix of `indexed`, `unique`, `many` and a checked type.
    fn blob(&mut self, etype: &str, label: &str, flags: &[&str]) {
        let mut attr = ServerAttr::blob(etype, label);
        for flag in flags {
            match *flag {
                "indexed" => attr.index = true,
                "unique" => attr.unique = true,
                "many" => attr.cardinality = Cardinality::Many,
                data_type => attr.checked_data_type = Some(data_type.to_string()),
            }
        }
        self.add(attr);
    }

    /// A link `etype.label` → `target` with reverse label `reverse`.
    fn link(
        &mut self,
        etype: &str,
        label: &str,
        target: &str,
        reverse: &str,
        has_one: bool,
        unique: bool,
    ) {
        let mut attr = ServerAttr::blob(etype, label);
        attr.value_type = AttrKind::Ref;
        attr.reverse_identity = Some(Identity::new(None, target, reverse));
        attr.cardinality = if has_one {
            Cardinality::One
        } else {
            Cardinality::Many
        };
        attr.unique = unique;
        attr.index = true;
        self.add(attr);
    }

    fn entity(&mut self, etype: &str, n: u32, values: Value) -> String {
        let id = uid(n);
        self.clock += 10;
        let conn = self.store.conn();
        conn.execute(
            "INSERT OR IGNORE INTO entity_keys (app_pk, entity_id) VALUES (?1, ?2)",
            params![self.app.app_pk, id],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO entities (app_pk, etype, entity_pk, entity_id, created_at) VALUES (?1, ?2, (SELECT entity_pk FROM entity_keys WHERE app_pk = ?1 AND entity_id = ?3), ?3, ?4)",
            params![self.app.app_pk, etype, id, self.clock],
        )
        .unwrap();
        for (label, value) in values.as_object().unwrap() {
            let (pk, attr) = &self.attrs[&(etype.to_string(), label.clone())];
            let num = match value {
                Value::Number(n) => n.as_f64(),
                Value::String(s) if attr.checked_data_type.as_deref() == Some("date") => {
                    dates::parse_date(s).map(|ms| ms as f64)
                }
                _ => None,
            };
            conn.execute(
                "INSERT INTO triples (app_pk, entity_pk, attr_pk, value, vkey, num, ref_id, av, created_at) VALUES (?1, (SELECT entity_pk FROM entity_keys WHERE app_pk = ?1 AND entity_id = ?2), ?3, ?4, ?7, ?5, NULL, (SELECT CASE WHEN a.value_type = 'blob' AND (a.is_unique OR a.is_indexed) THEN 1 ELSE 0 END FROM attrs a WHERE a.attr_pk = ?3), ?6)",
                params![self.app.app_pk, id, pk, value.to_string(), num, self.clock, value_key(&value.to_string())],
            )
            .unwrap();
        }
        id
    }

    fn connect(&self, etype: &str, from: u32, label: &str, to: u32) {
        let (pk, _) = &self.attrs[&(etype.to_string(), label.to_string())];
        let conn = self.store.conn();
        conn.execute(
            "INSERT OR IGNORE INTO entity_keys (app_pk, entity_id) VALUES (?1, ?2)",
            params![self.app.app_pk, uid(from)],
        )
        .unwrap();
        conn
            .execute(
                "INSERT INTO triples (app_pk, entity_pk, attr_pk, value, vkey, num, ref_id, created_at) VALUES (?1, (SELECT entity_pk FROM entity_keys WHERE app_pk = ?1 AND entity_id = ?2), ?3, ?4, ?4, NULL, ?5, 0)",
                params![self.app.app_pk, uid(from), pk, json!(uid(to)).to_string(), uid(to)],
            )
            .unwrap();
    }

    fn run(&self, query: Value, inference: bool) -> String {
        let request = QueryRequest { query, inference };
        let result = super::query(&self.store.conn(), &self.app, &request);
        let shown = match result {
            Ok(tree) => tree,
            Err(error) => json!({"status": error.status, "error": error.envelope()}),
        };
        serde_json::to_string_pretty(&shown).unwrap()
    }

    fn check(&self, query: Value, expected: Expect) {
        expected.assert_eq(&self.run(query, false));
    }

    /// Only the error message (or the result, compactly) — for the many one-line error cases.
    fn message(&self, query: Value) -> String {
        let request = QueryRequest {
            query,
            inference: false,
        };
        match super::query(&self.store.conn(), &self.app, &request) {
            Ok(tree) => format!("ok {tree}"),
            Err(error) => error.message,
        }
    }
}

/// users ←author— posts, users —profile→ profiles (has-one both ways), users.friends (many).
fn library() -> Fixture {
    let mut f = Fixture::new();
    f.namespace("users");
    f.blob("users", "handle", &["indexed", "unique", "string"]);
    f.blob("users", "email", &[]);
    f.blob("users", "age", &["indexed", "number"]);
    f.blob("users", "born", &["indexed", "date"]);
    f.blob("users", "nick", &[]);
    f.blob("users", "aliases", &["many"]);
    f.namespace("posts");
    f.blob("posts", "title", &["indexed", "string"]);
    f.blob("posts", "score", &["indexed", "number"]);
    f.blob("posts", "draft", &["boolean"]);
    f.namespace("profiles");
    f.blob("profiles", "bio", &[]);
    f.link("posts", "author", "users", "posts", true, false);
    f.link("users", "profile", "profiles", "owner", true, true);
    f.link("users", "friends", "users", "friendOf", false, false);

    f.entity("users", 1, json!({"handle": "alice", "email": "a@x.io", "age": 31, "born": "1993-04-01T00:00:00Z", "nick": null}));
    f.entity(
        "users",
        2,
        json!({"handle": "bob", "email": "b@x.io", "age": 25, "born": "1999-01-01T00:00:00Z"}),
    );
    f.entity(
        "users",
        3,
        json!({"handle": "Carol", "age": null, "born": null, "nick": "cc"}),
    );
    f.entity(
        "posts",
        11,
        json!({"title": "Hello", "score": 5, "draft": false}),
    );
    f.entity(
        "posts",
        12,
        json!({"title": "hello world", "score": 9, "draft": true}),
    );
    f.entity("posts", 13, json!({"title": "Zebra", "score": null}));
    f.entity("posts", 14, json!({"title": "ünïcode", "score": 7}));
    f.entity("profiles", 21, json!({"bio": "likes tea"}));
    f.connect("posts", 11, "author", 1);
    f.connect("posts", 12, "author", 1);
    f.connect("posts", 13, "author", 2);
    f.connect("users", 1, "profile", 21);
    f.connect("users", 1, "friends", 2);
    f.connect("users", 1, "friends", 3);
    f
}

#[test]
fn entities_nested_links_both_directions_and_key_order() {
    let f = library();
    f.check(
        json!({"users": {"$": {"where": {"handle": "alice"}}, "profile": {}, "posts": {}, "friends": {}}}),
        expect![[r#"
            {
              "users": [
                {
                  "id": "00000000-0000-4000-8000-000000000001",
                  "handle": "alice",
                  "email": "a@x.io",
                  "age": 31,
                  "born": "1993-04-01T00:00:00Z",
                  "nick": null,
                  "profile": [
                    {
                      "id": "00000000-0000-4000-8000-000000000021",
                      "bio": "likes tea"
                    }
                  ],
                  "posts": [
                    {
                      "id": "00000000-0000-4000-8000-000000000011",
                      "title": "Hello",
                      "score": 5,
                      "draft": false,
                      "author": "00000000-0000-4000-8000-000000000001"
                    },
                    {
                      "id": "00000000-0000-4000-8000-000000000012",
                      "title": "hello world",
                      "score": 9,
                      "draft": true,
                      "author": "00000000-0000-4000-8000-000000000001"
                    }
                  ],
                  "friends": [
                    {
                      "id": "00000000-0000-4000-8000-000000000002",
                      "handle": "bob",
                      "email": "b@x.io",
                      "age": 25,
                      "born": "1999-01-01T00:00:00Z"
                    },
                    {
                      "id": "00000000-0000-4000-8000-000000000003",
                      "handle": "Carol",
                      "age": null,
                      "born": null,
                      "nick": "cc"
                    }
                  ]
                }
              ]
            }"#]],
    );
    // Unexpanded has-one links show the linked id, as `ea-ids-for-etype` selects them.
    f.check(
        json!({"posts": {"$": {"where": {"title": "Zebra"}}}}),
        expect![[r#"
            {
              "posts": [
                {
                  "id": "00000000-0000-4000-8000-000000000013",
                  "title": "Zebra",
                  "score": null,
                  "author": "00000000-0000-4000-8000-000000000002"
                }
              ]
            }"#]],
    );
}

/// A link whose other end is not an entity of the linked namespace (a link to an id that was
/// never written, or from one) is left out of nested results in both directions; only ids
/// that are entities come back, in creation order.
#[test]
fn nested_links_leave_out_ends_that_are_not_entities() {
    let f = library();
    f.connect("posts", 14, "author", 99);
    f.connect("posts", 98, "author", 2);
    f.check(
        json!({"posts": {"$": {"where": {"title": "ünïcode"}, "fields": ["title"]}, "author": {}},
               "users": {"$": {"where": {"handle": "bob"}, "fields": ["handle"]}, "posts": {"$": {"fields": ["title"]}}}}),
        expect![[r#"
            {
              "posts": [
                {
                  "id": "00000000-0000-4000-8000-000000000014",
                  "title": "ünïcode",
                  "author": []
                }
              ],
              "users": [
                {
                  "id": "00000000-0000-4000-8000-000000000002",
                  "handle": "bob",
                  "posts": [
                    {
                      "id": "00000000-0000-4000-8000-000000000013",
                      "title": "Zebra"
                    }
                  ]
                }
              ]
            }"#]],
    );
}

#[test]
fn inference_makes_has_one_links_singular() {
    let f = library();
    expect![[r#"
        {
          "users": [
            {
              "id": "00000000-0000-4000-8000-000000000003",
              "handle": "Carol",
              "age": null,
              "born": null,
              "nick": "cc",
              "profile": null,
              "posts": []
            },
            {
              "id": "00000000-0000-4000-8000-000000000001",
              "handle": "alice",
              "email": "a@x.io",
              "age": 31,
              "born": "1993-04-01T00:00:00Z",
              "nick": null,
              "profile": {
                "id": "00000000-0000-4000-8000-000000000021",
                "bio": "likes tea"
              },
              "posts": [
                {
                  "id": "00000000-0000-4000-8000-000000000011",
                  "title": "Hello"
                },
                {
                  "id": "00000000-0000-4000-8000-000000000012",
                  "title": "hello world"
                }
              ]
            },
            {
              "id": "00000000-0000-4000-8000-000000000002",
              "handle": "bob",
              "email": "b@x.io",
              "age": 25,
              "born": "1999-01-01T00:00:00Z",
              "profile": null,
              "posts": [
                {
                  "id": "00000000-0000-4000-8000-000000000013",
                  "title": "Zebra"
                }
              ]
            }
          ],
          "posts": [
            {
              "id": "00000000-0000-4000-8000-000000000014",
              "title": "ünïcode",
              "score": 7,
              "author": null
            }
          ]
        }"#]].assert_eq(&f.run(
        json!({"users": {"$": {"order": {"handle": "asc"}}, "profile": {}, "posts": {"$": {"fields": ["title"]}}}, "posts": {"$": {"where": {"id": uid(14)}}, "author": {}}}),
        true,
    ));
    // The reverse side of a unique link is has-one too.
    expect![[r#"
        {
          "profiles": [
            {
              "id": "00000000-0000-4000-8000-000000000021",
              "bio": "likes tea",
              "owner": {
                "id": "00000000-0000-4000-8000-000000000001",
                "handle": "alice"
              }
            }
          ]
        }"#]]
    .assert_eq(&f.run(
        json!({"profiles": {"owner": {"$": {"fields": ["handle"]}}}}),
        true,
    ));
}

#[test]
fn unknown_names_give_empty_results_and_rule_params_are_ignored() {
    let f = library();
    f.check(
        json!({"zippy": {}, "users": {"$": {"where": {"posts.zippy": "x"}}}, "profiles": {"zippy": {}, "$": {"fields": ["bio"]}}, "$$ruleParams": {"k": 1}}),
        expect![[r#"
            {
              "zippy": [],
              "users": [],
              "profiles": [
                {
                  "id": "00000000-0000-4000-8000-000000000021",
                  "bio": "likes tea",
                  "zippy": []
                }
              ]
            }"#]],
    );
    f.check(json!({}), expect![[r#"{}"#]]);
    // An unknown `where` attribute wins over a bad order: the page is never validated.
    f.check(
        json!({"users": {"$": {"where": {"zippy": 1}, "order": {"email": "asc"}}}}),
        expect![[r#"
            {
              "users": []
            }"#]],
    );
}

#[test]
fn where_equality_ids_links_and_paths() {
    let f = library();
    let ids = |query: Value| -> String {
        let text = f.run(query, false);
        let tree: Value = serde_json::from_str(&text).unwrap();
        match tree
            .as_object()
            .and_then(|t| t.values().next())
            .and_then(Value::as_array)
        {
            Some(rows) => rows
                .iter()
                .map(|row| row["id"].as_str().unwrap()[30..].to_string())
                .collect::<Vec<_>>()
                .join(" "),
            None => text,
        }
    };
    let cases = [
        json!({"users": {"$": {"where": {"email": "b@x.io"}}}}),
        json!({"users": {"$": {"where": {"age": 31.0}}}}),
        json!({"users": {"$": {"where": {"id": uid(2)}}}}),
        json!({"posts": {"$": {"where": {"author": uid(1)}}}}),
        json!({"posts": {"$": {"where": {"author.id": uid(1)}}}}),
        json!({"users": {"$": {"where": {"posts": uid(13)}}}}),
        json!({"posts": {"$": {"where": {"author.handle": "alice", "score": 9}}}}),
        json!({"users": {"$": {"where": {"friends.friends.handle": "bob"}}}}),
        json!({"users": {"$": {"where": {"friendOf.handle": "alice"}}}}),
        json!({"posts": {"$": {"where": {"author.profile.bio": "likes tea"}}}}),
        json!({"users": {"$": {"where": {"born": "1999-01-01"}}}}),
        json!({"users": {"$": {"where": {"born": 915_148_800_000i64}}}}),
        json!({"posts": {"$": {"where": {"draft": true}}}}),
        // Implicit AND through the same link needs one linked entity holding both…
        json!({"users": {"$": {"where": {"posts.title": "Hello", "posts.score": 9}}}}),
        // …while `and` tests each condition on its own.
        json!({"users": {"$": {"where": {"and": [{"posts.title": "Hello"}, {"posts.score": 9}]}}}}),
        json!({"users": {"$": {"where": {"or": [{"handle": "bob"}, {"handle": "Carol"}, {"email": "a@x.io"}]}}}}),
        json!({"users": {"$": {"where": {"or": [{"and": [{"age": 31}, {"email": "a@x.io"}]}, {"or": [{"handle": "bob"}]}]}}}}),
        json!({"users": {"$": {"where": {"handle": {"$in": ["bob", "alice", "nobody"]}}}}}),
        json!({"users": {"$": {"where": {"handle": {"in": []}}}}}),
        json!({"users": {"$": {"where": {"age": {"$in": [25, null]}}}}}),
        json!({"posts": {"$": {"where": {"author": {"$in": [uid(2)]}}}}}),
    ];
    let shown: Vec<String> = cases
        .into_iter()
        .map(|case| {
            let shown =
                case["users"].get("$").or(case["posts"].get("$")).unwrap()["where"].to_string();
            format!("{shown} => {}", ids(case))
        })
        .collect();
    expect![[r#"
        {"email":"b@x.io"} => 000002
        {"age":31.0} => 000001
        {"id":"00000000-0000-4000-8000-000000000002"} => 000002
        {"author":"00000000-0000-4000-8000-000000000001"} => 000011 000012
        {"author.id":"00000000-0000-4000-8000-000000000001"} => 000011 000012
        {"posts":"00000000-0000-4000-8000-000000000013"} => 000002
        {"author.handle":"alice","score":9} => 000012
        {"friends.friends.handle":"bob"} => 
        {"friendOf.handle":"alice"} => 000002 000003
        {"author.profile.bio":"likes tea"} => 000011 000012
        {"born":"1999-01-01"} => 000002
        {"born":915148800000} => 000002
        {"draft":true} => 000012
        {"posts.title":"Hello","posts.score":9} => 
        {"and":[{"posts.title":"Hello"},{"posts.score":9}]} => 000001
        {"or":[{"handle":"bob"},{"handle":"Carol"},{"email":"a@x.io"}]} => 000001 000002 000003
        {"or":[{"and":[{"age":31},{"email":"a@x.io"}]},{"or":[{"handle":"bob"}]}]} => 000001 000002
        {"handle":{"$in":["bob","alice","nobody"]}} => 000001 000002
        {"handle":{"in":[]}} => 
        {"age":{"$in":[25,null]}} => 000002 000003
        {"author":{"$in":["00000000-0000-4000-8000-000000000002"]}} => 000013"#]]
    .assert_eq(&shown.join("\n"));
}

#[test]
fn where_not_is_null_comparisons_and_like() {
    let f = library();
    let ids = |query: Value| -> String {
        let tree: Value = serde_json::from_str(&f.run(query.clone(), false)).unwrap();
        match tree
            .as_object()
            .and_then(|t| t.values().next())
            .and_then(Value::as_array)
        {
            Some(rows) => rows
                .iter()
                .map(|row| row["id"].as_str().unwrap()[30..].to_string())
                .collect::<Vec<_>>()
                .join(" "),
            None => tree.to_string(),
        }
    };
    let cases = [
        json!({"users": {"$": {"where": {"email": {"$not": "a@x.io"}}}}}),
        json!({"users": {"$": {"where": {"age": {"$ne": 31}}}}}),
        json!({"posts": {"$": {"where": {"author.handle": {"$not": "alice"}}}}}),
        json!({"posts": {"$": {"where": {"author": {"$not": uid(1)}}}}}),
        json!({"users": {"$": {"where": {"nick": {"$isNull": true}}}}}),
        json!({"users": {"$": {"where": {"nick": {"$isNull": false}}}}}),
        json!({"users": {"$": {"where": {"profile": {"$isNull": true}}}}}),
        json!({"users": {"$": {"where": {"posts": {"$isNull": false}}}}}),
        json!({"users": {"$": {"where": {"profile.bio": {"$isNull": true}}}}}),
        json!({"posts": {"$": {"where": {"score": {"$gt": 5}}}}}),
        json!({"posts": {"$": {"where": {"score": {"$gte": 5}}}}}),
        json!({"posts": {"$": {"where": {"score": {"$lt": 9}}}}}),
        json!({"posts": {"$": {"where": {"score": {"$lte": 7}}}}}),
        json!({"posts": {"$": {"where": {"title": {"$gt": "Zebra"}}}}}),
        json!({"users": {"$": {"where": {"born": {"$lt": "1995-01-01T00:00:00Z"}}}}}),
        json!({"users": {"$": {"where": {"born": {"$gte": 915_148_800_000i64}}}}}),
        json!({"posts": {"$": {"where": {"title": {"$like": "%ello%"}}}}}),
        json!({"posts": {"$": {"where": {"title": {"$like": "hello%"}}}}}),
        json!({"posts": {"$": {"where": {"title": {"$ilike": "HELLO%"}}}}}),
        json!({"posts": {"$": {"where": {"title": {"$like": "_ebra"}}}}}),
        json!({"posts": {"$": {"where": {"title": {"$ilike": "ÜNÏ%"}}}}}),
    ];
    let shown: Vec<String> = cases
        .into_iter()
        .map(|case| {
            let shown =
                case["users"].get("$").or(case["posts"].get("$")).unwrap()["where"].to_string();
            format!("{shown} => {}", ids(case))
        })
        .collect();
    expect![[r#"
        {"email":{"$not":"a@x.io"}} => 000002 000003
        {"age":{"$ne":31}} => 000002 000003
        {"author.handle":{"$not":"alice"}} => 000013 000014
        {"author":{"$not":"00000000-0000-4000-8000-000000000001"}} => 000013
        {"nick":{"$isNull":true}} => 000001 000002
        {"nick":{"$isNull":false}} => 000003
        {"profile":{"$isNull":true}} => 000002 000003
        {"posts":{"$isNull":false}} => 000001 000002
        {"profile.bio":{"$isNull":true}} => 000002 000003
        {"score":{"$gt":5}} => 000012 000014
        {"score":{"$gte":5}} => 000011 000012 000014
        {"score":{"$lt":9}} => 000011 000014
        {"score":{"$lte":7}} => 000011 000014
        {"title":{"$gt":"Zebra"}} => 000012 000014
        {"born":{"$lt":"1995-01-01T00:00:00Z"}} => 000001
        {"born":{"$gte":915148800000}} => 000002
        {"title":{"$like":"%ello%"}} => 000011 000012
        {"title":{"$like":"hello%"}} => 000012
        {"title":{"$ilike":"HELLO%"}} => 000011 000012
        {"title":{"$like":"_ebra"}} => 000013
        {"title":{"$ilike":"ÜNÏ%"}} => 000014"#]]
    .assert_eq(&shown.join("\n"));
}

#[test]
fn order_pagination_and_fields() {
    let f = library();
    let ids = |query: Value| -> String {
        let tree: Value = serde_json::from_str(&f.run(query.clone(), false)).unwrap();
        match tree
            .as_object()
            .and_then(|t| t.values().next())
            .and_then(Value::as_array)
        {
            Some(rows) => rows
                .iter()
                .map(|row| row["id"].as_str().unwrap()[30..].to_string())
                .collect::<Vec<_>>()
                .join(" "),
            None => tree.to_string(),
        }
    };
    let cases = [
        json!({"posts": {}}),
        json!({"posts": {"$": {"order": {"serverCreatedAt": "desc"}}}}),
        json!({"posts": {"$": {"order": {"title": "asc"}}}}),
        json!({"posts": {"$": {"order": {"title": "desc"}}}}),
        json!({"posts": {"$": {"order": {"score": "asc"}}}}),
        json!({"posts": {"$": {"order": {"score": "desc"}}}}),
        json!({"users": {"$": {"order": {"born": "desc"}}}}),
        json!({"posts": {"$": {"limit": 2}}}),
        json!({"posts": {"$": {"first": 2, "offset": 1}}}),
        json!({"posts": {"$": {"last": 2}}}),
        json!({"posts": {"$": {"last": 2, "order": {"score": "desc"}}}}),
        json!({"posts": {"$": {"offset": 3}}}),
        json!({"posts": {"$": {"limit": 1, "where": {"score": {"$gt": 1}}, "order": {"score": "desc"}}}}),
        json!({"posts": {"$": {"limit": 2, "order": {"serverCreatedAt": "desc"}, "where": {"draft": {"$not": true}}}}}),
        // `fields` without the ordered key: the final sort only sees ids.
        json!({"posts": {"$": {"order": {"title": "desc"}, "fields": ["score"]}}}),
    ];
    let shown: Vec<String> = cases
        .into_iter()
        .map(|case| format!("{} => {}", case, ids(case.clone())))
        .collect();
    expect![[r#"
        {"posts":{}} => 000011 000012 000013 000014
        {"posts":{"$":{"order":{"serverCreatedAt":"desc"}}}} => 000014 000013 000012 000011
        {"posts":{"$":{"order":{"title":"asc"}}}} => 000011 000013 000012 000014
        {"posts":{"$":{"order":{"title":"desc"}}}} => 000014 000012 000013 000011
        {"posts":{"$":{"order":{"score":"asc"}}}} => 000013 000011 000014 000012
        {"posts":{"$":{"order":{"score":"desc"}}}} => 000012 000014 000011 000013
        {"users":{"$":{"order":{"born":"desc"}}}} => 000002 000001 000003
        {"posts":{"$":{"limit":2}}} => 000011 000012
        {"posts":{"$":{"first":2,"offset":1}}} => 000012 000013
        {"posts":{"$":{"last":2}}} => 000013 000014
        {"posts":{"$":{"last":2,"order":{"score":"desc"}}}} => 000011 000013
        {"posts":{"$":{"offset":3}}} => 000014
        {"posts":{"$":{"limit":1,"where":{"score":{"$gt":1}},"order":{"score":"desc"}}}} => 000012
        {"posts":{"$":{"limit":2,"order":{"serverCreatedAt":"desc"},"where":{"draft":{"$not":true}}}}} => 000014 000013
        {"posts":{"$":{"order":{"title":"desc"},"fields":["score"]}}} => 000014 000013 000012 000011"#]].assert_eq(&shown.join("\n"));

    // Child order works on any attribute and child limits are ignored.
    f.check(
        json!({"users": {"$": {"where": {"handle": "alice"}, "fields": ["handle"]}, "posts": {"$": {"order": {"title": "desc"}, "limit": 1, "fields": ["title"]}}, "friends": {"$": {"order": {"nick": "desc"}, "fields": ["nick"]}}}}),
        expect![[r#"
            {
              "users": [
                {
                  "id": "00000000-0000-4000-8000-000000000001",
                  "handle": "alice",
                  "posts": [
                    {
                      "id": "00000000-0000-4000-8000-000000000012",
                      "title": "hello world"
                    },
                    {
                      "id": "00000000-0000-4000-8000-000000000011",
                      "title": "Hello"
                    }
                  ],
                  "friends": [
                    {
                      "id": "00000000-0000-4000-8000-000000000003",
                      "nick": "cc"
                    },
                    {
                      "id": "00000000-0000-4000-8000-000000000002"
                    }
                  ]
                }
              ]
            }"#]],
    );
}

#[test]
fn cursors_page_after_and_before() {
    let f = library();
    let id_attr = f.attrs[&("posts".to_string(), "id".to_string())]
        .1
        .id
        .clone();
    // `insert_attr` drew the attribute ids; read them back from the store.
    let conn = f.store.conn();
    let posts_id: String = conn
        .query_row(
            "SELECT id FROM attrs WHERE etype = 'posts' AND label = 'id'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let score_id: String = conn
        .query_row(
            "SELECT id FROM attrs WHERE etype = 'posts' AND label = 'score'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    drop(conn);
    assert!(id_attr.is_none());
    let created_12: i64 = 1_050;
    let shown = [
        json!({"posts": {"$": {"after": [uid(12), posts_id, uid(12), created_12]}}}),
        json!({"posts": {"$": {"after": [uid(12), posts_id, uid(12), created_12], "afterInclusive": true, "first": 1}}}),
        json!({"posts": {"$": {"before": [uid(12), posts_id, uid(12), created_12]}}}),
        json!({"posts": {"$": {"order": {"score": "asc"}, "after": [uid(11), score_id, 5, 0]}}}),
        json!({"posts": {"$": {"order": {"score": "asc"}, "after": [uid(11), posts_id, 5, 0]}}}),
        json!({"posts": {"$": {"after": [uid(11), uid(999), 5, 0]}}}),
    ]
    .into_iter()
    .map(|query| {
        let text = f.run(query, false);
        let tree: Value = serde_json::from_str(&text).unwrap();
        match tree["posts"].as_array() {
            Some(rows) => rows
                .iter()
                .map(|row| row["id"].as_str().unwrap()[30..].to_string())
                .collect::<Vec<_>>()
                .join(" "),
            None => tree["error"]["message"].to_string(),
        }
    })
    .collect::<Vec<_>>();
    expect![[r#"
        000013 000014
        000012
        000011
        000014 000012
        "Validation failed for query: Invalid after cursor. The query orders by `score`, but the query that returned the cursor orders by `serverCreatedAt`."
        "Validation failed for query: Invalid after cursor. The query orders by `serverCreatedAt`, but the query that returned the cursor orders by a missing attribute.""#]].assert_eq(&shown.join("\n"));
}

#[test]
fn order_validation_errors() {
    let f = library();
    f.check(json!({"users": {"$": {"order": {"email": "asc"}}}}), expect![[r#"
        {
          "status": 400,
          "error": {
            "type": "validation-failed",
            "message": "Validation failed for query: The `users.email` attribute is not indexed. Only indexed and typed attributes can be used to order by., The `users.email` attribute is not typed. Only typed and indexed attributes can be used to order by.",
            "hint": {
              "data-type": "query",
              "input": {
                "users": {
                  "$": {
                    "order": {
                      "email": "asc"
                    }
                  }
                }
              },
              "errors": [
                {
                  "expected": "supported-order?",
                  "in": [
                    "users",
                    "$",
                    "order"
                  ],
                  "message": "The `users.email` attribute is not indexed. Only indexed and typed attributes can be used to order by."
                },
                {
                  "expected": "supported-order?",
                  "in": [
                    "users",
                    "$",
                    "order"
                  ],
                  "message": "The `users.email` attribute is not typed. Only typed and indexed attributes can be used to order by."
                }
              ]
            }
          }
        }"#]]);
    let messages: Vec<String> = [
        json!({"users": {"$": {"order": {"aliases": "asc"}}}}),
        json!({"users": {"$": {"order": {"zippy": "asc"}}}}),
        json!({"users": {"$": {"order": {"handle": "DESC"}}}}),
        json!({"users": {"$": {"order": {"handle": "asc", "age": "asc"}}}}),
        json!({"users": {"$": {"order": ["handle"]}}}),
        // Child order is not validated.
        json!({"users": {"$": {"where": {"handle": "bob"}, "fields": []}, "friends": {"$": {"order": {"email": "asc"}}}}}),
    ]
    .into_iter()
    .map(|query| f.message(query))
    .collect();
    expect![[r#"
        Validation failed for query: The `users.aliases` attribute is not indexed. Only indexed and typed attributes can be used to order by., The `users.aliases` attribute is not typed. Only typed and indexed attributes can be used to order by., The `users.aliases` attribute has cardinality `many`. Only attributes with cardinality `one` can be used to order by.
        Validation failed for query: There is no `zippy` attribute for users.
        Validation failed for query: We only support "asc" or "desc" in the `order` clause. Got "DESC".
        Validation failed for query: We only support a single key in the `order` clause. Got handle,age.
        Validation failed for query
        ok {"users":[{"id":"00000000-0000-4000-8000-000000000002","friends":[]}]}"#]].assert_eq(&messages.join("\n"));
}

#[test]
fn option_validation_errors() {
    let f = library();
    f.check(json!({"users": {"$": {"limit": 0}}}), expect![[r#"
        {
          "status": 400,
          "error": {
            "type": "validation-failed",
            "message": "Validation failed for query: The limit field must be a positive integer. Got 0.",
            "hint": {
              "data-type": "query",
              "input": {
                "users": {
                  "$": {
                    "limit": 0
                  }
                }
              },
              "errors": [
                {
                  "expected": "supported-options?",
                  "in": [
                    "users",
                    "$",
                    "limit"
                  ],
                  "message": "The limit field must be a positive integer. Got 0."
                }
              ]
            }
          }
        }"#]]);
    f.check(
        json!({"users": {"bookshelves": []}}),
        expect![[r#"
        {
          "status": 400,
          "error": {
            "type": "validation-failed",
            "message": "Validation failed for query",
            "hint": {
              "data-type": "query",
              "input": {
                "users": {
                  "bookshelves": []
                }
              },
              "errors": [
                {
                  "expected": "map?",
                  "in": [
                    "users",
                    "bookshelves"
                  ]
                }
              ]
            }
          }
        }"#]],
    );
    let messages: Vec<String> = [
        json!({"users": {"$": {"limit": -1}}}),
        json!({"users": {"$": {"limit": 1.5}}}),
        json!({"users": {"$": {"first": "2"}}}),
        json!({"users": {"$": {"last": 0}}}),
        json!({"users": {"$": {"offset": -1}}}),
        json!({"users": {"$": {"limit": 1, "first": 1}}}),
        json!({"users": {"$": {"first": 1, "last": 1}}}),
        json!({"users": {"$": {"limit": 1, "first": 1, "last": 1}}}),
        json!({"users": {"$": {"forgot": 1}}}),
        json!({"users": {"posts": {"$": {"offset": 1}}}}),
        json!({"users": {"posts": {"$": {"after": [uid(1), uid(2), 1, 1]}}}}),
        json!({"users": {"$": {"fields": "handle"}}}),
        json!({"users": {"$": {"fields": [1]}}}),
        json!({"users": {"$": {"before": 10}}}),
        json!({"users": {"$": {"before": [1, 2]}}}),
        json!({"users": {"$": {"before": [1, "x", 3, 4]}}}),
        json!({"users": {"$": {"before": [1, uid(1), 3, "t"]}}}),
        json!({"users": {"$": {"aggregate": "sum"}}}),
        json!({"users": {"$": {"aggregate": "count"}}}),
        json!({"users": {"$": {"aggregate": "count"}, "posts": {}}}),
        json!({"users": {"handle": {}}}),
        json!(5),
        json!(null),
        json!([]),
    ]
    .into_iter()
    .map(|query| f.message(query))
    .collect();
    expect![[r#"
        Validation failed for query: The limit field must be a positive integer. Got -1.
        Validation failed for query: The limit field must be a positive integer. Got 1.5.
        Validation failed for query: The first field must be a positive integer. Got "2".
        Validation failed for query: The last field must be a positive integer. Got 0.
        Validation failed for query: The offset field must be a non-negative integer. Got -1.
        Validation failed for query: Only provide one of `limit` or `first`.
        Validation failed for query: Only provide one of `first` or `last`.
        Validation failed for query: Only provide one of `limit` or `first` or `last`.
        Validation failed for query: We only support `where`, `order`, `limit`, `offset`, `before`, and `after` clauses.
        Validation failed for query: We currently only support `offset`, `before`, and `after` clauses on the top-level field. Limit fields will be ignored
        Validation failed for query: We currently only support `offset`, `before`, and `after` clauses on the top-level field. Limit fields will be ignored
        Validation failed for query: The `fields` property should be an array of field names.
        Validation failed for coerced-query
        Validation failed for query: Expected a join row for the cursor, got 10.
        Validation failed for query: Expected a join row with 4 items for the cursor, got [1,2].
        Validation failed for query: Expected a join row with a uuid attribute id in the second position, got "x".
        Validation failed for query: Expected a join row with an integer created_at in the last position, got "t".
        Validation failed for query: The aggregate field only accepts "count", got "sum".
        ok {"users":[]}
        Validation failed for query: You can not combine aggregates with child queries at this time.
        Validation failed for attr: users.handle needs to be a link
        Malformed parameter: ["body" "query"]
        Missing parameter: ["body" "query"]
        Malformed parameter: ["body" "query"]"#]].assert_eq(&messages.join("\n"));
}

#[test]
fn where_validation_errors() {
    let f = library();
    f.check(
        json!({"users": {"$": {"where": {"age": "old"}}}}),
        expect![[r#"
            {
              "status": 400,
              "error": {
                "type": "validation-failed",
                "message": "Validation failed for query: The data type of `users.age` is `number`, but the query got the value `\"old\"` of type `string`.",
                "hint": {
                  "data-type": "query",
                  "input": {
                    "users": {
                      "$": {
                        "where": {
                          "age": "old"
                        }
                      }
                    }
                  },
                  "errors": [
                    {
                      "expected?": "number?",
                      "in": [
                        "users",
                        "$",
                        "where",
                        "age"
                      ],
                      "message": "The data type of `users.age` is `number`, but the query got the value `\"old\"` of type `string`."
                    }
                  ]
                }
              }
            }"#]],
    );
    f.check(
        json!({"users": {"$": {"where": {"handle": {"$is": "x"}}}}}),
        expect![[r#"
            {
              "status": 400,
              "error": {
                "type": "validation-failed",
                "message": "Validation failed for coerced-query",
                "hint": {
                  "data-type": "coerced-query",
                  "input": {
                    "users": {
                      "$": {
                        "where": {
                          "handle": {
                            "$is": "x"
                          }
                        }
                      }
                    }
                  },
                  "errors": [
                    {
                      "expected": "instant.db.instaql/where-value-valid-keys?",
                      "in": [
                        0,
                        "option-map",
                        "where-conds",
                        0,
                        1
                      ]
                    }
                  ]
                }
              }
            }"#]],
    );
    f.check(
        json!({"users": {"$": {"where": {"email": {"$in": ["a", null]}}}}}),
        expect![[r#"
            {
              "status": 400,
              "error": {
                "type": "validation-failed",
                "message": "Validation failed for query: Only indexed attrs can check for `nil` in `$in`. users.email is not indexed.",
                "hint": {
                  "data-type": "query",
                  "input": {
                    "users": {
                      "$": {
                        "where": {
                          "email": {
                            "$in": [
                              "a",
                              null
                            ]
                          }
                        }
                      }
                    }
                  },
                  "errors": [
                    {
                      "expected?": "indexed?",
                      "in": [
                        "users",
                        "$",
                        "where",
                        "$in",
                        [
                          "a",
                          null
                        ]
                      ],
                      "message": "Only indexed attrs can check for `nil` in `$in`. users.email is not indexed."
                    }
                  ]
                }
              }
            }"#]],
    );
    let messages: Vec<String> = [
        json!({"users": {"$": {"where": ["x"]}}}),
        json!({"users": {"$": {"where": {"handle": null}}}}),
        json!({"users": {"$": {"where": {"handle": {"$in": {}}}}}}),
        json!({"users": {"$": {"where": {"handle": {"$isNull": "a"}}}}}),
        json!({"users": {"$": {"where": {"or": []}}}}),
        json!({"users": {"$": {"where": {"and": []}}}}),
        json!({"users": {"$": {"where": {"handle.x": "a"}}}}),
        json!({"users": {"$": {"where": {"profile": "hello"}}}}),
        json!({"users": {"$": {"where": {"profile": {"$in": [uid(1), "hello"]}}}}}),
        json!({"users": {"$": {"where": {"profile": {"$not": "hello"}}}}}),
        json!({"users": {"$": {"where": {"handle": 1}}}}),
        json!({"posts": {"$": {"where": {"draft": 0}}}}),
        json!({"users": {"$": {"where": {"born": "tomorrow"}}}}),
        json!({"users": {"$": {"where": {"born": 1e30}}}}),
        json!({"users": {"$": {"where": {"born": "not a date"}}}}),
        json!({"users": {"$": {"where": {"email": {"$gt": "a"}}}}}),
        json!({"users": {"$": {"where": {"nick": {"$like": "a"}}}}}),
        json!({"users": {"$": {"where": {"handle": {"$gt": 10}}}}}),
        json!({"users": {"$": {"where": {"handle": {"$like": 10}}}}}),
        json!({"users": {"$": {"where": {"handle": {"$ilike": 10}}}}}),
        json!({"users": {"$": {"where": {"age": {"$like": "1%"}}}}}),
        json!({"users": {"$": {"where": {"born": {"$gt": "now"}}}}}),
        json!({"posts": {"$": {"where": {"title": {"$not": 3}}}}}),
        json!({"users": {"$": {"where": {"age": {"$in": [1, "x"]}}}}}),
    ]
    .into_iter()
    .map(|query| f.message(query))
    .collect();
    expect![[r#"
        Validation failed for query
        Validation failed for coerced-query
        Validation failed for coerced-query
        Validation failed for coerced-query
        Validation failed for query: The list of `or` conditions can't be empty.
        Validation failed for query: The list of `and` conditions can't be empty.
        Validation failed for attr: users.handle needs to be a link
        Validation failed for query: Expected profile to be a uuid, got "hello"
        Validation failed for query: Expected profile to match on a uuid, found "hello" in ["00000000-0000-4000-8000-000000000001","hello"]
        Validation failed for query: Expected profile to be a uuid, got {"$not":"hello"}
        Validation failed for query: The data type of `users.handle` is `string`, but the query got the value `1` of type `number`.
        Validation failed for query: The data type of `posts.draft` is `boolean`, but the query got the value `0` of type `number`.
        Validation failed for query: The data type of `users.born` is `date`, but the query got value `"tomorrow"` of type `string`.
        Validation failed for query: The data type of `users.born` is `date`, but the query got value `1e+30` of type `number`.
        Validation failed for query: The data type of `users.born` is `date`, but the query got value `"not a date"` of type `string`.
        Validation failed for query: The `users.email` attribute must be indexed to use comparison operators.
        Validation failed for query: The `users.nick` attribute must be indexed to use comparison operators.
        Validation failed for query: The data type of `users.handle` is `string`, but the query got the value `10` of type `number`.
        Validation failed for query: The $like value for `users.handle` must be a string, but the query got the value `10` of type `number`.
        Validation failed for query: The $like value for `users.handle` must be a string, but the query got the value `10` of type `number`.
        Validation failed for query: The data type of `users.age` is `number`, but the query got the value `"1%"` of type `string`.
        Validation failed for query: The data type of `users.born` is `date`, but the query got value `"now"` of type `string`.
        Validation failed for query: The data type of `posts.title` is `string`, but the query got the value `3` of type `number`.
        Validation failed for query: The data type of `users.age` is `number`, but the query got the value `"x"` of type `string`."#]].assert_eq(&messages.join("\n"));
}

#[test]
fn like_patterns() {
    let cases = [
        ("a%", "abc", false),
        ("%c", "abc", false),
        ("a_c", "abc", false),
        ("a_c", "abbc", false),
        ("ABC", "abc", false),
        ("ABC", "abc", true),
        ("100\\%", "100%", false),
        ("100\\%", "1000", false),
        ("%", "", false),
    ];
    let shown: Vec<String> = cases
        .iter()
        .map(|(pattern, text, ci)| format!("{pattern} {text} {ci} => {}", like(pattern, text, *ci)))
        .collect();
    expect![[r#"
        a% abc false => true
        %c abc false => true
        a_c abc false => true
        a_c abbc false => false
        ABC abc false => false
        ABC abc true => true
        100\% 100% false => true
        100\% 1000 false => false
        %  false => true"#]]
    .assert_eq(&shown.join("\n"));
}

/// Builds 1,000,000 users with an indexed `email` and times an equality query on it.
/// `cargo test -p instant-local --release -- --ignored indexed_equality_over_a_million --nocapture`
#[test]
#[ignore]
fn indexed_equality_over_a_million_entities() {
    let mut f = Fixture::new();
    f.namespace("users");
    f.blob("users", "email", &["indexed", "unique", "string"]);
    f.blob("users", "n", &["indexed", "number"]);
    let email_pk = f.attrs[&("users".to_string(), "email".to_string())].0;
    let n_pk = f.attrs[&("users".to_string(), "n".to_string())].0;
    let started = std::time::Instant::now();
    {
        let mut conn = f.store.conn();
        let tx = conn.transaction().unwrap();
        {
            let mut key = tx
                .prepare("INSERT OR IGNORE INTO entity_keys (app_pk, entity_id) VALUES (?1, ?2)")
                .unwrap();
            let mut entity = tx
                .prepare("INSERT INTO entities (app_pk, etype, entity_pk, entity_id, created_at) VALUES (?1, 'users', (SELECT entity_pk FROM entity_keys WHERE app_pk = ?1 AND entity_id = ?2), ?2, ?3)")
                .unwrap();
            let mut triple = tx
                .prepare("INSERT INTO triples (app_pk, entity_pk, attr_pk, value, vkey, num, ref_id, av, created_at) VALUES (?1, (SELECT entity_pk FROM entity_keys WHERE app_pk = ?1 AND entity_id = ?2), ?3, ?4, ?4, ?5, NULL, (SELECT CASE WHEN a.value_type = 'blob' AND (a.is_unique OR a.is_indexed) THEN 1 ELSE 0 END FROM attrs a WHERE a.attr_pk = ?3), ?6)")
                .unwrap();
            for n in 0..1_000_000u32 {
                let id = uuid::Uuid::new_v4().to_string();
                let at = 1_000 + i64::from(n);
                key.execute(params![f.app.app_pk, id]).unwrap();
                entity.execute(params![f.app.app_pk, id, at]).unwrap();
                triple
                    .execute(params![
                        f.app.app_pk,
                        id,
                        email_pk,
                        json!(format!("user{n}@x.io")).to_string(),
                        Option::<f64>::None,
                        at
                    ])
                    .unwrap();
                triple
                    .execute(params![
                        f.app.app_pk,
                        id,
                        n_pk,
                        n.to_string(),
                        f64::from(n),
                        at
                    ])
                    .unwrap();
            }
        }
        tx.commit().unwrap();
    }
    eprintln!("built 1,000,000 entities in {:?}", started.elapsed());
    let request = QueryRequest {
        query: json!({"users": {"$": {"where": {"email": "user765432@x.io"}}}}),
        inference: false,
    };
    let conn = f.store.conn();
    // Warm the statement cache once, then take the median of repeated runs.
    let first = super::query(&conn, &f.app, &request).unwrap();
    assert_eq!(first["users"][0]["n"], json!(765_432));
    let mut timings: Vec<std::time::Duration> = (0..50)
        .map(|_| {
            let started = std::time::Instant::now();
            let result = super::query(&conn, &f.app, &request).unwrap();
            let elapsed = started.elapsed();
            assert_eq!(result["users"].as_array().unwrap().len(), 1);
            elapsed
        })
        .collect();
    timings.sort();
    let paged = QueryRequest {
        query: json!({"users": {"$": {"limit": 10, "offset": 500_000}}}),
        inference: false,
    };
    let started = std::time::Instant::now();
    let page = super::query(&conn, &f.app, &paged).unwrap();
    let paged_elapsed = started.elapsed();
    assert_eq!(page["users"].as_array().unwrap().len(), 10);
    eprintln!(
        "indexed equality over 1,000,000 entities: median {:?}, max {:?}; default order limit 10 offset 500000: {:?}",
        timings[timings.len() / 2],
        timings[timings.len() - 1],
        paged_elapsed
    );
    assert!(timings[timings.len() / 2] < std::time::Duration::from_millis(10));
}
